"""Reading order for PDF pages whose content stream draws the columns line by line.

pypdf gives a page's text in content-stream order. Most producers (TeX, Word, Distiller) draw a
multi-column page one column at a time, so that order reads well. Some draw it row by row across
the columns (the IRS's forms instructions, i1040nr.pdf): pypdf's text then alternates between
columns every line, and every passage, search hit and answer on such a page mixes unrelated
sentences. ``Runs`` watches where pypdf's text runs sit while it extracts; a page where most
runs of prose jump between columns is re-read: pdfminer.six's layout analysis finds its text
boxes (paragraphs, or a column's stretch of one) and ``reading_order`` reads them column by
column. Tables are drawn row by row too, and read best that way, so only pages with many runs of
prose (words, not figures) are re-read.
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

# A run of prose: at least this many characters, this share of them letters, this many words.
PROSE_CHARS = 20
PROSE_LETTERS = 0.6
PROSE_WORDS = 4
# A page needs this many prose runs to be judged (a few table cells or captions are not a
# page of columns) ...
MIN_PROSE_RUNS = 24
# ... and this share of consecutive prose runs a column apart (this share of the page width).
# Measured on the shared PDFs: i1040nr's prose pages 0.49-0.85; TeX papers drawn column by
# column at most 0.18; the tables of a Word report up to 0.54 but never with 24 prose runs.
SWITCH_SHARE = 0.4
COLUMN_JUMP = 0.2
# pdfminer must give back at least this share of pypdf's characters, or its text is not used:
# glyphs it cannot map to text come out as "(cid:12)" (dropped here: a lone icon is harmless, a
# whole font of them loses the page's words).
KEEP_SHARE = 0.9
_UNMAPPED = re.compile(r"\(cid:\d+\)")
# Boxes whose left edges are this close (points) start the same column; a column has at
# least this many boxes starting at its left edge.
ALIGN_PT = 4.0
COLUMN_BOXES = 2
# Columns are at least this share of the text's width apart (four columns fit).
MIN_COLUMN = 0.2
# pdfminer keeps an object per glyph: a page with more text than this (a normal page has 2-6k
# characters) keeps pypdf's order rather than risk the worker's memory cap.
MAX_PAGE_CHARS = 40_000
# Time kept back for the rest of the file when a deadline is near.
MARGIN_S = 2.0
# pdfminer joins glyphs into one line while the gap between them is under this many glyph
# widths. Its default, 2.0, bridges the gutter of a tightly set page: i1040nr's line "of physical
# presence in 2007, but only" became one line with the next column's heading "Who Must File",
# and many paragraphs took lines of their neighbour column. 1.5 keeps every column apart on the
# shared PDFs while a bold run-in heading ("Exception. You do not have to...") stays in its
# line; 1.0 cut those (docs/bench-index.md).
CHAR_MARGIN = 1.5


class Runs:
    """A ``visitor_text`` for pypdf's ``extract_text``: the x position of every prose run."""

    def __init__(self) -> None:
        self.xs: list[float] = []

    def __call__(self, text: str, cm: Sequence[float], tm: Sequence[float], font: object, size: float) -> None:
        text = text.strip()
        if (len(text) >= PROSE_CHARS and text.count(" ") >= PROSE_WORDS - 1
                and sum(c.isalpha() for c in text) >= PROSE_LETTERS * len(text)):
            self.xs.append(tm[4] * cm[0] + tm[5] * cm[2] + cm[4])  # the run's origin on the page

    def interleaved(self, page: Any) -> bool:
        """Whether the runs seen on ``page`` (pypdf's) alternate between columns (row-by-row
        drawing). Never raises: a page whose media box cannot be read keeps pypdf's order."""
        if len(self.xs) < MIN_PROSE_RUNS:
            return False
        try:
            width = float(page.mediabox.width)
        except Exception:  # a hostile media box; pypdf read the text all the same
            return False
        jumps = sum(abs(a - b) > COLUMN_JUMP * width for a, b in zip(self.xs, self.xs[1:]))
        return jumps >= SWITCH_SHARE * (len(self.xs) - 1)


def read_in_columns(data: bytes, numbers: Sequence[int], pypdf_texts: dict[int, str], *,
                    password: str | None = None, deadline: float | None = None) -> dict[int, str]:
    """The text of the pages ``numbers`` (1-based) column by column: pdfminer.six finds the
    text boxes (paragraphs, or a column's stretch of one), ``reading_order`` orders them.

    A page is left out (the caller keeps pypdf's text) where pdfminer fails, loses characters
    pypdf found (``pypdf_texts``), the page holds more than ``MAX_PAGE_CHARS``, or the file's
    ``deadline`` (``time.monotonic()``) is near."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextContainer

    wanted = sorted(n for n in set(numbers) if len(pypdf_texts[n]) <= MAX_PAGE_CHARS)
    out: dict[int, str] = {}
    # boxes_flow=None: pdfminer's own box ordering reads two paragraphs that sit side by side
    # at the same height as neighbours (left, right, left...); it is also its slowest step.
    pages = extract_pages(io.BytesIO(data), password=password or "", laparams=LAParams(boxes_flow=None, char_margin=CHAR_MARGIN),
                          page_numbers=[n - 1 for n in wanted])
    for number in wanted:
        if deadline is not None and time.monotonic() > deadline - MARGIN_S:
            break
        try:
            layout = next(pages)
        except (MemoryError, TimeoutError):  # the worker's own limits: the indexer handles them
            raise
        except Exception:  # StopIteration, or pdfminer failing on an odd file: pypdf's text stands
            break
        boxes = [Box(b.x0, b.x1, b.y1, b.get_text()) for b in layout if isinstance(b, LTTextContainer)]
        # A blank line between boxes: each is a paragraph or a column's stretch of one.
        text = _UNMAPPED.sub("", "\n\n".join(box.text for box in reading_order(boxes)))
        if _visible(text) >= KEEP_SHARE * _visible(pypdf_texts[number]):
            out[number] = text
    return out


class Box(NamedTuple):
    left: float
    right: float
    top: float  # PDF coordinates: y grows up the page
    text: str


def reading_order(boxes: list[Box]) -> list[Box]:
    """Column by column, each top to bottom, in sections cut by boxes that span columns (a
    heading, a running head, a wide table), which are read where they stand."""
    lefts = _column_lefts(boxes)

    def column(box: Box) -> int:
        return sum(left <= box.left + ALIGN_PT for left in lefts)

    def spans(box: Box) -> bool:
        return any(box.left + ALIGN_PT < left < box.right - ALIGN_PT for left in lefts)

    ordered: list[Box] = []
    section: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.top):
        if spans(box):
            ordered += sorted(section, key=lambda b: (column(b), -b.top)) + [box]
            section = []
        else:
            section.append(box)
    return ordered + sorted(section, key=lambda b: (column(b), -b.top))


def _column_lefts(boxes: list[Box]) -> list[float]:
    """Where columns start: left edges that several boxes share, at least a column's width
    apart (an indented list inside a column shares its left edges too, and is not a column)."""
    if not boxes:
        return []
    counts = Counter(round(box.left / ALIGN_PT) for box in boxes)
    width = max(box.right for box in boxes) - min(box.left for box in boxes)
    lefts: list[float] = []
    for key in sorted(key for key, n in counts.items() if n >= COLUMN_BOXES):
        if not lefts or key * ALIGN_PT - lefts[-1] >= MIN_COLUMN * width:
            lefts.append(key * ALIGN_PT)
    return lefts


def _visible(text: str) -> int:
    return sum(not c.isspace() for c in text)
