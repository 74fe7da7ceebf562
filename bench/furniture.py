"""Running heads and feet (``docqa/furniture.py``): what leaves the shared PDFs' text, one run.

    python bench/furniture.py [FOLDER]        # ../shared/data/pdfs by default

Extracts every PDF twice, with and without the furniture step, and prints a markdown table:
pages whose text changed, words before and after, the passages (default split) that hold one
of the dropped runs of words before and after (after: where a line was kept, its first page, or
the same words in the body), and the run dropped most often. A PDF where nothing changed is left
out of the table.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections import Counter
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docqa import extract as extraction  # noqa: E402
from docqa.split import split_pages  # noqa: E402

PDFS = ROOT.parent / "shared" / "data" / "pdfs"


def dropped(before: list[str], after: list[str]) -> Counter[str]:
    """Runs of words the pages before held and the pages after do not (difflib on each page's
    words; white-space changes, such as lines joined anew, are not counted)."""
    gone: Counter[str] = Counter()
    for old, new in zip(before, after):
        a, b = old.split(), new.split()
        for op, i1, i2, _, _ in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
            if op == "delete":
                gone[" ".join(a[i1:i2])] += 1
    return gone


def holding(pages: list[str], runs: Counter[str]) -> int:
    return sum(any(run in " ".join(p.text.split()) for run in runs) for p in split_pages(pages))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=PDFS)
    args = parser.parse_args(argv)
    print("| PDF | pages | pages changed | words before -> after | passages holding a dropped run, before -> after | run dropped most often |")
    print("|---|---:|---:|---:|---:|---|")
    for path in sorted(args.folder.rglob("*.pdf")):
        after = extraction.extract(path)
        with mock.patch.object(extraction, "strip_furniture", list):
            before = extraction.extract(path)
        if after.status != "ok" or after.pages == before.pages:
            continue
        old, new = list(before.pages), list(after.pages)
        gone = dropped(old, new)
        line, times = gone.most_common(1)[0] if gone else ("(white space only)", 0)
        changed = sum(a != b for a, b in zip(old, new))
        words = f"{sum(len(p.split()) for p in old):,} -> {sum(len(p.split()) for p in new):,}"
        print(f"| {path.relative_to(args.folder)} | {len(new)} | {changed} | {words} | "
              f"{holding(old, gone)} -> {holding(new, gone)} | {line[:60]!r} ({times}x) |")


if __name__ == "__main__":
    main()
