"""What an answer span may be, and how it is shown.

- Boundaries: an answer never crosses a paragraph break. Extraction keeps a newline only where
  it means something (a paragraph end, a heading, a list item: see ``extract.clean_text``), so
  any newline is one; a page break (``PAGE_BREAK``) is one too unless a sentence runs across
  it. The reader only decodes spans inside one paragraph (``token_segments``).
- Clean-up (``trim``): surrounding white space, trailing and leading punctuation, and brackets
  or quotes left unbalanced are cut off the span; its offsets move with it, so they still slice
  the document to exactly the citation's text.
- Display (``shown``): white space and control characters inside the span become one space
  (an answer across a page break inside a sentence reads "of Scripture").
- Its sentence (``sentence_around``): the rest of the sentence an answer stands in, which
  ranking compares with the question.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from docqa.types import PAGE_BREAK

_SENTENCE_END = (".", "!", "?", ":", ";")
_LOOK_BACK = 8  # characters before a page break searched for a sentence end
_EDGE_PUNCT = ",;:.!?·…"
_OPENERS = {"(": ")", "[": "]", "{": "}", "“": "”", "‘": "’", "«": "»"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}
_STRAIGHT = '"'
# Where a sentence ends: after . ! ? (and closing quotes/brackets) and white space, or at a newline.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]’”]*\s+|\n+")
# A trailing period that belongs to the word: "U.S.", "Washington, D.C.", "J.", "etc."
_KEEP_PERIOD = re.compile(r"(?:\b\w\.){2,}$|(?:^|\s)\w\.$|\betc\.$", re.IGNORECASE)


def crosses_paragraph(text: str, start: int, end: int) -> bool:
    """Does ``text[start:end]`` (the gap between two tokens, or a span) hold a paragraph break?"""
    gap = text[start:end]
    if "\n" in gap:
        return True
    at = gap.find(PAGE_BREAK)
    while at >= 0:
        if text[max(0, start + at - _LOOK_BACK):start + at].rstrip().endswith(_SENTENCE_END):
            return True
        at = gap.find(PAGE_BREAK, at + 1)
    return False


def token_segments(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """The paragraph number of each token of ``text`` (``offsets``: its characters): a span is
    allowed only between tokens of the same number."""
    segments, current, previous_end = [], 0, None
    for start, end in offsets:
        if previous_end is not None and crosses_paragraph(text, previous_end, start):
            current += 1
        segments.append(current)
        previous_end = end
    return segments


def sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the sentence(s) of ``text`` holding ``text[start:end]`` begin and end."""
    lo, hi = 0, len(text)
    for m in _SENTENCE_BREAK.finditer(text):
        if m.end() <= start:
            lo = m.end()
        elif m.start() >= end:
            hi = m.start()
            break
    return lo, hi


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence(s) of ``text`` holding ``text[start:end]``, with that span left out."""
    lo, hi = sentence_bounds(text, start, end)
    return f"{text[lo:start]} {text[end:hi]}"


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` with edge white space and punctuation and unbalanced brackets and
    quotes cut off; returns the new ``(start, end)`` (unchanged if nothing would be left)."""
    original = (start, end)
    while start < end:
        before = (start, end)
        while start < end and (text[start].isspace() or _is_control(text[start]) or text[start] in _EDGE_PUNCT):
            start += 1
        while end > start and (text[end - 1].isspace() or _is_control(text[end - 1])
                               or (text[end - 1] in _EDGE_PUNCT and not _KEEP_PERIOD.search(text[start:end]))):
            end -= 1
        start, end = _balance(text, start, end)
        if (start, end) == before:
            break
    return (start, end) if start < end else original


def _balance(text: str, start: int, end: int) -> tuple[int, int]:
    """Cut at the first bracket or quote that has no partner inside the span, keeping the longer
    side ("fact (Fermat's little theorem" -> "Fermat's little theorem", "Chebyshev)" -> "Chebyshev")."""
    stack: list[int] = []
    for i in range(start, end):
        ch = text[i]
        if ch in _OPENERS:
            stack.append(i)
        elif ch in _CLOSERS:
            if stack and text[stack[-1]] == _CLOSERS[ch]:
                stack.pop()
            else:
                return _keep_longer(start, end, i)
    if stack:
        return _keep_longer(start, end, stack[0])
    quotes = [i for i in range(start, end) if text[i] == _STRAIGHT]
    if len(quotes) % 2:
        return _keep_longer(start, end, quotes[0] if quotes[0] - start < end - quotes[-1] else quotes[-1])
    wrapped = (quotes == [start, end - 1] if text[start] == _STRAIGHT
               else _OPENERS.get(text[start]) == text[end - 1] and _balance(text, start + 1, end - 1) == (start + 1, end - 1))
    if end - start > 2 and wrapped:
        return start + 1, end - 1  # wrapped whole in one pair: "(1823)" -> "1823"
    return start, end


def _keep_longer(start: int, end: int, cut: int) -> tuple[int, int]:
    return (start, cut) if cut - start > end - cut - 1 else (cut + 1, end)


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"


def shown(text: str) -> str:
    """A span's text for people: runs of white space and control characters become one space."""
    return " ".join("".join(" " if _is_control(c) else c for c in text).split())
