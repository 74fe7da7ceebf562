"""HTML main content: which extractor keeps an article and drops the page's chrome, on real pages.

    git clone https://github.com/scrapinghub/article-extraction-benchmark /tmp/aeb
    python bench/webpages.py /tmp/aeb

The article-extraction benchmark holds 181 real news and blog pages (html/*.html.gz, as
fetched) and, for each, the article body a person marked (ground-truth.json). For every page
and extractor this compares the words extracted with the article's words (as multisets):
recall = the article's words kept, precision = the words extracted that belong to the article
(the rest is chrome: menus, footers, teasers, cookie notices). Extractors, in one run:
  whole page    the visible text of the page (docqa before issue 13; still used for Markdown)
  semantic      docqa: <main>/<article>, without nav/aside/page header+footer/ARIA chrome roles
  trafilatura   trafilatura.extract (favor_recall, tables kept), the well-known extractor
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from docqa.extract import _decode, _html_text, _main_text, clean_text

WORD = re.compile(r"\w+")


def words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in WORD.findall(text))


def score(truth: str, got: str) -> tuple[float, float]:
    t, g = words(truth), words(got)
    common = sum((t & g).values())
    return (common / max(1, sum(g.values())), common / max(1, sum(t.values())))


def trafilatura_text(markup: str) -> str:
    import trafilatura

    return trafilatura.extract(markup, favor_recall=True, include_tables=True, include_comments=False) or ""


EXTRACTORS: dict[str, Callable[[str], str]] = {
    "whole page": lambda m: clean_text(_html_text(m)),
    "semantic (docqa)": lambda m: clean_text(_html_text(m, main=True)),
    "trafilatura": trafilatura_text,
    "page paragraphs that trafilatura keeps": lambda m: clean_text(_main_text(m)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a checkout of scrapinghub/article-extraction-benchmark")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    truth = json.loads((args.data / "ground-truth.json").read_text())
    keys = sorted(truth)[: args.limit]
    pages = {k: _decode(gzip.decompress((args.data / "html" / f"{k}.html.gz").read_bytes()), html=True) for k in keys}
    print(f"{len(keys)} pages")
    print("| extractor | precision | recall | F1 | pages with recall < 0.8 | ms/page |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, extractor in EXTRACTORS.items():
        precisions, recalls, f1s, lost = [], [], [], 0
        t0 = time.perf_counter()
        for k in keys:
            p, r = score(truth[k]["articleBody"], extractor(pages[k]))
            precisions.append(p)
            recalls.append(r)
            f1s.append(2 * p * r / (p + r) if p + r else 0.0)
            lost += r < 0.8
        ms = 1000 * (time.perf_counter() - t0) / len(keys)
        print(f"| {name} | {statistics.mean(precisions):.3f} | {statistics.mean(recalls):.3f} | "
              f"{statistics.mean(f1s):.3f} | {lost} | {ms:.0f} |")


if __name__ == "__main__":
    main()
