"""Indexing throughput: `docqa index` pages/s vs plain single-process pypdf over the same pages,
and on scanned pages (OCR) vs plain Tesseract one page after another.

    python bench/index.py [--copies 3] [--workers 2] [--ocr-pages 8]

Copies the shared multi-column PDFs N times (each copy gets a distinct trailing comment so the
indexer cannot reuse a twin's extraction), then, in one run, times
  1. plain pypdf: PdfReader + extract_text() on every page, one process;
  2. `docqa index` into a fresh index (extraction, cleaning, splitting, SQLite + FTS5 writes).
Prints pages/s for both and the ratio (aim: docqa >= 80% of raw pypdf). Then, with Tesseract
installed, OCR: --ocr-pages pages of SQuAD text (3 paragraphs a page, 10 pt) scanned at 300 dpi
(tests/pdfgen.py), in PDFs of 2 pages, timed as
  3. plain Tesseract: the `tesseract` command on each page's 300-dpi image (rendered beforehand,
     not timed), one page after another, with its default threads;
  4. `docqa index --ocr auto` of the scanned PDFs (rendering, Tesseract with one thread in each
     worker, all cores).
and plain Tesseract again with one thread (docqa's setting), with the CPU seconds per page of
each, which a busy machine barely changes: on an otherwise idle machine, docqa's pages/s is
about cores / (one-thread CPU s/page).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pypdf import PdfReader

ROOT = Path(__file__).resolve().parents[1]
SHARED_PDFS = ROOT.parent / "shared" / "data" / "pdfs" / "multi_column"
SQUAD = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def make_corpus(folder: Path, copies: int) -> list[Path]:
    files = []
    for n in range(copies):
        for src in sorted(SHARED_PDFS.glob("*.pdf")):
            dst = folder / f"{src.stem}-{n}.pdf"
            shutil.copyfile(src, dst)
            with open(dst, "ab") as f:  # a PDF comment after %%EOF: same pages, different bytes
                f.write(f"\n% copy {n}\n".encode())
            files.append(dst)
    return files


def plain_pypdf(files: list[Path]) -> tuple[int, float]:
    t0 = time.perf_counter()
    pages = 0
    for path in files:
        for page in PdfReader(path).pages:
            page.extract_text()
            pages += 1
    return pages, time.perf_counter() - t0


def docqa_index(folder: Path, index: Path, workers: int | None) -> float:
    # --no-embed: this compares extraction with pypdf; embedding is bench/retrieval.py speed's.
    cmd = [sys.executable, "-m", "docqa", "index", str(folder), "-i", str(index), "-q", "--json", "--no-embed"]
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def ocr_corpus(folder: Path, pages: int) -> list[Path]:
    """``pages`` scanned pages of SQuAD dev text (articles 40 on), two to a PDF; their images."""
    sys.path.insert(0, str(ROOT / "tests"))
    import pypdfium2 as pdfium
    from pdfgen import write_pdf

    paragraphs = [p["context"] for article in json.loads(SQUAD.read_text())["data"][40:]
                  for p in article["paragraphs"]]
    texts = ["\n\n".join(paragraphs[3 * i:3 * i + 3]) for i in range(pages)]
    images = []
    for n in range(0, pages, 2):
        pdf = write_pdf(folder / f"scan-{n}.pdf", texts[n:n + 2], scanned=set(range(1, len(texts[n:n + 2]) + 1)))
        for i, page in enumerate(pdfium.PdfDocument(pdf)):
            images.append(folder.parent / f"scan-{n}-{i}.png")
            page.render(scale=300 / 72, grayscale=True).to_pil().save(images[-1])
    return images


def plain_tesseract(images: list[Path], threads: str | None = None) -> float:
    env = dict(os.environ, OMP_THREAD_LIMIT=threads) if threads else None
    t0 = time.perf_counter()
    for image in images:
        subprocess.run(["tesseract", str(image), "stdout", "-l", "eng", "--dpi", "300"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def children_cpu() -> float:
    """CPU seconds of every finished child process and their descendants (workers, Tesseract):
    what the work costs whatever else loads the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--ocr-pages", type=int, default=8, help="scanned pages for the OCR rows (0: none)")
    args = parser.parse_args()
    if not SHARED_PDFS.is_dir():
        sys.exit(f"{SHARED_PDFS} is absent")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "pdfs")
        folder.mkdir()
        files = make_corpus(folder, args.copies)
        pages, raw_s = plain_pypdf(files)
        docqa_s = docqa_index(folder, Path(tmp, "bench.db"), args.workers)
    print(f"{len(files)} PDFs, {pages} pages")
    print("| method | seconds | pages/s | ratio to pypdf |")
    print("|---|---|---|---|")
    print(f"| plain pypdf extract_text (1 process) | {raw_s:.1f} | {pages / raw_s:.1f} | 1.00 |")
    print(f"| docqa index (workers={args.workers or 'all cores'}) | {docqa_s:.1f} | {pages / docqa_s:.1f} | "
          f"{raw_s / docqa_s:.2f} |")
    if not args.ocr_pages or shutil.which("tesseract") is None or not SQUAD.is_file():
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "scans")
        folder.mkdir()
        images = ocr_corpus(folder, args.ocr_pages)
        cpu0 = children_cpu()
        tesseract_s = plain_tesseract(images)
        cpu1 = children_cpu()
        single_s = plain_tesseract(images, threads="1")
        cpu2 = children_cpu()
        docqa_s = docqa_index(folder, Path(tmp, "ocr.db"), args.workers)
    n = len(images)
    print(f"\nOCR: {n} scanned pages (300 dpi), {len(list(range(0, n, 2)))} PDFs")
    print("| method | seconds | pages/s | ratio to plain Tesseract | CPU s/page |")
    print("|---|---|---|---|---|")
    print(f"| plain tesseract, one page after another | {tesseract_s:.1f} | {n / tesseract_s:.2f} | 1.00 | "
          f"{(cpu1 - cpu0) / n:.2f} |")
    print(f"| the same, one thread (OMP_THREAD_LIMIT=1, as in docqa's workers) | {single_s:.1f} | {n / single_s:.2f} | "
          f"{tesseract_s / single_s:.2f} | {(cpu2 - cpu1) / n:.2f} |")
    # The workers are the forkserver's children, which the accounting above cannot see.
    print(f"| docqa index --ocr auto (workers={args.workers or 'all cores'}) | {docqa_s:.1f} | {n / docqa_s:.2f} | "
          f"{tesseract_s / docqa_s:.2f} | - |")
    cores = args.workers or len(os.sched_getaffinity(0))
    print(f"\non an idle machine docqa would read about {cores} cores / {(cpu2 - cpu1) / n:.2f} CPU s a page "
          f"= {cores * n / (cpu2 - cpu1):.2f} pages/s (plus rendering)")


if __name__ == "__main__":
    main()
