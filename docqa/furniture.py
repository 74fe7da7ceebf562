"""Page furniture: running heads and feet of a PDF's pages (or a deck's slides).

pypdf returns them as part of every page's text ("Page 10 of 48 Instructions for Form 1040NR"),
so left in, the first or last passage of every page starts or ends with the same words, a
question that names the document matches every page alike, and answers can run into them. A
line is furniture when it sits among the first or last ``EDGE_LINES`` lines of at least
``MIN_PAGES`` pages and of at least ``MIN_SHARE`` of the pages with text, compared with its
digits masked (page numbers, dates). It is kept where it first appears, so the document's own
title stays searchable, and dropped wherever else it stands as a whole line: a layout engine
may put a running foot mid-page (pages read in columns, ``docqa.columns``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

EDGE_LINES = 3
MIN_PAGES = 3
# A quarter, not a half: a document's pages read by different engines (pypdf, pdfminer for
# pages in columns, OCR) break the same head into lines differently.
MIN_SHARE = 0.25
# Furniture is a line, not a paragraph: a longer repeated line is left alone. It has words: a
# bare number or a one-character table cell repeated at page edges is left alone too (a lone
# page number costs a passage little; a table's cells are content). A line whose numbers change
# from page to page needs more words than a fixed one: "Part 1", "Part 2"... on every slide are
# titles, "Page 3 of 48 Instructions for Form 1040NR" is a running head.
MAX_CHARS = 200
MIN_LETTERS = 3
MIN_LETTERS_NUMBERED = 10

_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


def strip_furniture(pages: Sequence[str]) -> list[str]:
    """``pages`` (one string a page, its lines as extracted) without their repeated head and foot
    lines."""
    lines = [page.split("\n") for page in pages]
    keys = [[_key(line) for line in page] for page in lines]
    counts = Counter(key for page in keys for key in set(_edges(page)))
    need = max(MIN_PAGES, math.ceil(MIN_SHARE * sum(1 for page in pages if page)))
    candidates = {key for key, n in counts.items() if n >= need}
    forms: dict[str, set[str]] = {key: set() for key in candidates}
    for page_lines, page_keys in zip(lines, keys):
        for line, key in zip(page_lines, page_keys):
            if key in forms:
                forms[key].add(line.strip())
    furniture = {key for key in candidates
                 if len(forms[key]) == 1 or sum(c.isalpha() for c in key) >= MIN_LETTERS_NUMBERED}
    if not furniture:
        return list(pages)
    seen: set[str] = set()
    out = []
    for page, page_lines, page_keys in zip(pages, lines, keys):
        drop = {i for i, key in enumerate(page_keys) if key in furniture and key in seen}
        seen.update(key for key in page_keys if key in furniture)
        # (blank lines left behind are the caller's: clean_text collapses them)
        out.append("\n".join(line for i, line in enumerate(page_lines) if i not in drop) if drop else page)
    return out


def _key(line: str) -> str:
    """A line compared with others: digits masked, spaces and case folded ("" for no key)."""
    if len(line) > MAX_CHARS or sum(c.isalpha() for c in line) < MIN_LETTERS:
        return ""
    return _SPACES.sub(" ", _DIGITS.sub("#", line)).strip().casefold()


def _edges(keys: list[str]) -> list[str]:
    """The keys of a page's first and last ``EDGE_LINES`` lines that could be furniture (blank
    lines, bare numbers and long lines are passed over)."""
    filled = [key for key in keys if key]
    return filled[:EDGE_LINES] + filled[-EDGE_LINES:]
