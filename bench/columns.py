"""Questions on a manual whose pages are drawn row by row across three columns (i1040nr.pdf,
the IRS's instructions for Form 1040-NR): pypdf's order vs docqa's column order, one run.

    python bench/columns.py [--model ../shared/models/minilm-squad-proxy] [--retriever hybrid]

Indexes the PDF twice, once with the row-by-row pages re-read column by column (docqa's way,
``docqa/columns.py``) and once with pypdf's content-stream order, then asks the same questions
of both; the indexing time (extraction, splitting, writing; one process) is shown too. The questions were written by hand from the page text (answers checked against the
page); a hit or answer counts when it holds the gold answer (SQuAD normalisation). Prints a
markdown table.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docqa import DocQA, columns, indexer  # noqa: E402
from docqa.normalize import normalize_answer  # noqa: E402

PDF = ROOT.parent / "shared" / "data" / "pdfs" / "multi_column" / "i1040nr.pdf"
MODEL = ROOT.parent / "shared" / "models" / "minilm-squad-proxy"

# (question, gold answer, page): every page below is drawn row by row across its columns.
QUESTIONS = [
    ("What is the penalty for each failure to report a treaty-based return position?", "$1,000", 30),
    ("How many months can installment payments of the tax owed take?", "60 months", 25),
    ("Which form explains how to get an employer identification number?", "Form SS-4", 8),
    ("What workload must an eligible student carry?", "at least half the normal full-time workload", 17),
    ("Which publication is a quick reference guide to U.S. tax treaties?", "Pub. 901", 30),
    ("What rate applies to gross income taxed under section 871(a)?", "30%", 8),
    ("What number do you call for EFTPS customer service in the United States?", "1-800-316-6541", 25),
    ("Where is the amount of effectively connected wages shown for most people?", "Form(s) W-2, box 1", 10),
    ("Which form must a former long-term resident filing a dual-status return attach?", "Form 8854", 30),
    ("Which forms increase the tax withholding from other income?", "Form W-4P or W-4V", 25),
    ("What must you do with your compensation if you worked both inside and outside the United States?",
     "allocate your compensation between U.S. and non-U.S. sources", 10),
    ("Whom should you contact about the higher deferral limit of a section 457(b) plan?", "plan administrator", 10),
]


def holds(text: str, gold: str) -> bool:
    return normalize_answer(gold) in normalize_answer(text)


def run(model: str, retriever: str, in_columns: bool, tmp: Path) -> dict[str, float]:
    index = tmp / ("columns.db" if in_columns else "pypdf.db")
    keep_pypdf = mock.patch.object(columns.Runs, "interleaved", lambda self, width: False)
    # Extraction in this process (not in forkserver workers), so the patch above reaches it.
    here = mock.patch.object(indexer.LocalExecutor, "run", _in_process)
    counts = {"hit@1": 0.0, "hit@5": 0.0, "hit@10": 0.0, "answer": 0.0, "abstained": 0.0}
    with here, nullcontext() if in_columns else keep_pypdf, DocQA(index, model=model) as qa:
        start = time.perf_counter()
        qa.index([PDF], embed=False)
        counts["extract s"] = time.perf_counter() - start
        qa.index([PDF])  # the passages' vectors (unchanged file: only the embedding runs)
    with DocQA(index, model=model) as qa:
        for question, gold, _ in QUESTIONS:
            hits = qa.search(question, k=10, retriever=retriever).hits
            for k in (1, 5, 10):
                counts[f"hit@{k}"] += any(holds(h.text, gold) for h in hits[:k])
            result = qa.ask(question)
            counts["abstained"] += result.abstained
            counts["answer"] += bool(result.answers) and holds(result.answers[0].text, gold)
    return counts


def _in_process(self: object, jobs: Iterable[tuple[object, indexer.ExtractTask]]) -> Iterator[tuple[object, object]]:
    for job, task in jobs:
        yield job, indexer.extract_and_split(task)


def trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def reading_order_table() -> None:
    """Reading order on the re-read pages against poppler's ``pdftotext`` (its own flow
    analysis, another program's view of the same pages): the share of each text's word trigrams
    that pdftotext's text of the page also has. A line joined across the gutter or a paragraph
    read into its neighbour makes trigrams no column holds. Skipped without pdftotext."""
    import pypdf

    if shutil.which("pdftotext") is None:
        print("\n(pdftotext not installed: no reading-order table; apt install poppler-utils)")
        return
    data = PDF.read_bytes()
    reader = pypdf.PdfReader(io.BytesIO(data))
    pypdf_texts, pages = {}, []
    for n, page in enumerate(reader.pages, 1):  # as docqa's extraction decides which pages to re-read
        runs = columns.Runs()
        pypdf_texts[n] = page.extract_text(visitor_text=runs)
        if runs.interleaved(page):
            pages.append(n)
    reference = {n: trigrams(subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), str(PDF), "-"],
                                            capture_output=True, text=True, check=True).stdout) for n in pages}
    rows = {"pypdf's stream order": pypdf_texts}
    shipped = columns.CHAR_MARGIN
    for margin in sorted({2.0, shipped, 1.0}, reverse=True):
        note = " (docqa)" if margin == shipped else " (pdfminer's default)" if margin == 2.0 else ""
        with mock.patch.object(columns, "CHAR_MARGIN", margin):
            rows[f"column by column, char_margin {margin}{note}"] = columns.read_in_columns(data, pages, pypdf_texts)
    print(f"\nreading order on the {len(pages)} re-read pages vs pdftotext")
    print("| page text | word trigrams also in pdftotext's | worst page |")
    print("|---|---:|---:|")
    for label, texts in rows.items():
        shares = [(len(trigrams(texts[n]) & reference[n]), len(trigrams(texts[n]))) for n in pages]
        print(f"| {label} | {100 * sum(a for a, _ in shares) / sum(b for _, b in shares):.1f}% | "
              f"{100 * min(a / max(1, b) for a, b in shares):.1f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--retriever", default="auto")
    parser.add_argument("--order-only", action="store_true", help="only the reading-order table (no model)")
    args = parser.parse_args()
    if args.order_only:
        return reading_order_table()
    n = len(QUESTIONS)
    print(f"{PDF.name}: {n} questions, model {Path(args.model).name}, retriever {args.retriever}")
    print("| page text | index without embedding, s | hit@1 | hit@5 | hit@10 | top answer holds the gold answer | abstained |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, in_columns in (("pypdf's stream order", False), ("column by column (docqa)", True)):
            c = run(args.model, args.retriever, in_columns, Path(tmp))
            cells = " | ".join(f"{c[key]:.0f}/{n}" for key in ("hit@1", "hit@5", "hit@10", "answer", "abstained"))
            print(f"| {label} | {c['extract s']:.1f} | {cells} |")
    reading_order_table()


if __name__ == "__main__":
    main()
