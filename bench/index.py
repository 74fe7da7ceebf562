"""Indexing throughput: `docqa index` pages/s vs plain single-process pypdf over the same pages.

    python bench/index.py [--copies 3] [--workers 2]

Copies the shared multi-column PDFs N times (each copy gets a distinct trailing comment so the
indexer cannot reuse a twin's extraction), then, in one run, times
  1. plain pypdf: PdfReader + extract_text() on every page, one process;
  2. `docqa index` into a fresh index (extraction, cleaning, splitting, SQLite + FTS5 writes).
Prints pages/s for both and the ratio (aim: docqa >= 80% of raw pypdf).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pypdf import PdfReader

SHARED_PDFS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdfs" / "multi_column"


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
    cmd = [sys.executable, "-m", "docqa", "index", str(folder), "-i", str(index), "-q", "--json"]
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
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


if __name__ == "__main__":
    main()
