"""OCR quality end to end: held-out SQuAD articles as scanned PDFs vs the same PDFs with text.

    python bench/ocr.py [--articles 40:48] [--limit 400] [--model ../shared/models/minilm-squad-proxy]
                        [--font /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf]

Each article is typeset (tests/pdfgen.py: 3 paragraphs a page, 10 pt Helvetica; characters
outside Windows-1252, such as "−" or "≡", in an embedded TrueType font, so that the page shows
what its text layer holds) into a PDF with a text layer, and the same pages are rasterised at 300 dpi, skewed 1 degree, speckled and stored
as image-only pages (a scanned copy). Both folders are indexed with `docqa index` (the scans
through Tesseract, --ocr auto), then the articles' questions are asked of each index with the
same reader. Prints the OCR'd words' recall against the text layer, OCR pages/s, and open
EM/F1 (the top answer of the whole pipeline; an abstention scores 0) on each, with the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test PDF writer, with its scanner

from pdfgen import write_pdf  # noqa: E402

from docqa import DocQA  # noqa: E402
from docqa.datasets import load_squad  # noqa: E402
from docqa.evaluate import best_over_golds, exact_match, f1, has_answer  # noqa: E402
from docqa.types import Limits  # noqa: E402

SHARED = ROOT.parent / "shared"
PARAGRAPHS_PER_PAGE = 3
WORD = re.compile(r"\w+")


def write_articles(articles, folder: Path, *, scanned: bool, font: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    pages_written = 0
    for a in articles:
        paragraphs = a.text.split("\n\n")
        pages = ["\n\n".join(paragraphs[i:i + PARAGRAPHS_PER_PAGE]) for i in range(0, len(paragraphs), PARAGRAPHS_PER_PAGE)]
        numbers = set(range(1, len(pages) + 1)) if scanned else set()
        write_pdf(folder / f"{a.index}.pdf", pages, scanned=numbers, dpi=300, skew=1.0, seed=a.index,
                  unicode_font=font)
        pages_written += len(pages)
    return pages_written


def word_recall(expected: str, got: str) -> float:
    want, have = Counter(WORD.findall(expected)), Counter(WORD.findall(got))
    return sum((want & have).values()) / max(1, sum(want.values()))


def retrieval_recall(index: Path, questions, k: int = 10) -> float:
    """Share of questions with a gold answer in the top ``k`` passages (no reader: every question)."""
    with DocQA(index) as qa:
        found = [has_answer(q.answers, " ".join(h.text for h in qa.search(q.question, k=k).hits)) for q in questions]
    return 100 * sum(found) / len(found)


def answer_quality(indexes: dict[str, Path], model: str, questions) -> dict[str, tuple[float, float, float]]:
    """Open EM, F1 (abstentions score 0) and seconds per question on each index. The indexes
    read the same 16 questions in turn, and the running scores go to stderr: a run stopped
    early still compares the two on the same questions."""
    scores = {name: ([], [], 0.0) for name in indexes}
    with contextlib.ExitStack() as stack:
        readers = {name: stack.enter_context(DocQA(index, model=model)) for name, index in indexes.items()}
        for start in range(0, len(questions), 16):
            batch = questions[start:start + 16]
            for name, qa in readers.items():
                ems, f1s, seconds = scores[name]
                t0 = time.perf_counter()
                for q, result in zip(batch, qa.ask_batch([q.question for q in batch], top_k=1, passages=10)):
                    text = result.answers[0].text if result.answers else ""
                    ems.append(best_over_golds(exact_match, text, q.answers))
                    f1s.append(best_over_golds(f1, text, q.answers))
                scores[name] = (ems, f1s, seconds + time.perf_counter() - t0)
            em_now = [100 * sum(ems) / len(ems) for ems, _, _ in scores.values()]
            f1_now = [100 * sum(f1s) / len(f1s) for _, f1s, _ in scores.values()]
            print(f"{start + len(batch)} questions read: open EM {em_now[0]:.1f} vs {em_now[-1]:.1f}, "
                  f"F1 {f1_now[0]:.1f} vs {f1_now[-1]:.1f} ({f1_now[-1] / max(f1_now[0], 1e-9):.1%})",
                  file=sys.stderr, flush=True)
    return {name: (100 * sum(ems) / len(ems), 100 * sum(f1s) / len(f1s), seconds / len(ems))
            for name, (ems, f1s, seconds) in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=SHARED / "data" / "squad" / "dev-v1.1.json")
    parser.add_argument("--articles", default="40:48")
    parser.add_argument("--limit", type=int, default=None, help="questions asked (a seeded sample); default all")
    parser.add_argument("--model", default=str(SHARED / "models" / "minilm-squad-proxy"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--font", type=Path, default=Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
                        help="TrueType font for characters outside Windows-1252 (without one they would "
                             "be invisible on the scans but present in the text layer)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the PDFs and indexes in this folder and keep them; a later run reuses them")
    args = parser.parse_args()
    if not args.font.is_file():
        parser.error(f"no font at {args.font}: install fonts-dejavu-core or pass --font a .ttf file")
    lo, hi = (int(x) for x in args.articles.split(":"))
    articles = load_squad(args.dataset, slice(lo, hi))
    every = [q for a in articles for q in a.questions]
    questions = random.Random(0).sample(every, len(every))[: args.limit or len(every)]
    with contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory() as tmp:
        indexes = {}
        for name, scanned in (("text layer", False), ("scanned (OCR)", True)):
            folder, indexes[name] = Path(tmp, name.split()[0]), Path(tmp, f"{name.split()[0]}.db")
            if indexes[name].exists():
                print(f"{name}: the index in {indexes[name]} from an earlier run")
                continue
            pages = write_articles(articles, folder, scanned=scanned, font=args.font)
            t0 = time.perf_counter()
            with DocQA(indexes[name]) as qa:
                # A whole article's scan can outlast the default per-file limit on a busy machine.
                report = qa.index([folder], workers=args.workers, limits=Limits(timeout_s=3600))
            seconds = time.perf_counter() - t0
            assert report.failed == 0 and not any(f.message for f in report.files), report
            ocr_pages = sum(f.ocr_pages for f in report.files)
            print(f"{name}: {len(articles)} PDFs, {pages} pages indexed in {seconds:.0f} s "
                  f"({pages / seconds:.2f} pages/s; {ocr_pages} pages read by OCR)")
        with DocQA(indexes["text layer"]) as text_qa, DocQA(indexes["scanned (OCR)"]) as scan_qa:
            texts = {a.index: (text_qa.document_text(f"{a.index}.pdf"), scan_qa.document_text(f"{a.index}.pdf"))
                     for a in articles}
        recalls = [word_recall(*pair) for pair in texts.values()]
        print(f"OCR word recall vs the text layer: {100 * sum(recalls) / len(recalls):.2f}% "
              f"(worst article {100 * min(recalls):.2f}%)")
        # An answer no reader can give: no gold answer (SQuAD-normalised) anywhere in the article.
        held = [sum(has_answer(q.answers, texts[a.index][side]) for a in articles for q in a.questions) for side in (0, 1)]
        print(f"a gold answer in the article's text: text layer {held[0]}, scanned {held[1]} of {len(every)} questions")
        # Passages and sentences end at paragraphs: one that starts in lowercase cuts a sentence.
        cut = [sum(len(re.findall(r"\n\n[a-z]", pair[side])) for pair in texts.values()) for side in (0, 1)]
        print(f"paragraphs that start in lowercase: text layer {cut[0]}, scanned {cut[1]}")
        for name, index in indexes.items():
            print(f"{name}: a gold answer in the top 10 passages for {retrieval_recall(index, every):.1f}% "
                  f"of all {len(every)} questions")
        print(f"\n{len(questions)} questions of SQuAD dev articles {args.articles}, reader {args.model}")
        print("| index | open EM | open F1 | s/question |")
        print("|---|---:|---:|---:|")
        scores = {}
        for name, (em, f1_, spq) in answer_quality(indexes, args.model, questions).items():
            scores[name] = f1_
            print(f"| {name} | {em:.1f} | {f1_:.1f} | {spq:.2f} |")
        print(f"\nscanned / text open F1: {scores['scanned (OCR)'] / scores['text layer']:.1%} (goal >= 95%)")


if __name__ == "__main__":
    main()
