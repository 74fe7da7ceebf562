"""Span boundaries and clean-up (docqa/spans.py): paragraphs, trimming, display."""

from __future__ import annotations

import pytest

from docqa.spans import crosses_paragraph, sentence_around, shown, token_segments, trim


@pytest.mark.parametrize("text, crosses", [
    ("away.\n\nKeepers", True),
    ("Keepers\nUntil automation", True),  # extraction keeps a newline only after a heading or paragraph
    ("the teaching of\fScripture", False),  # a sentence across a page break
    ("the end.\fA new page", True),
    ("plain words", False),
])
def test_paragraph_breaks(text: str, crosses: bool) -> None:
    assert crosses_paragraph(text, 0, len(text)) is crosses


def test_token_segments_number_paragraphs() -> None:
    text = "One two.\n\nThree four"
    offsets = [(0, 3), (4, 8), (10, 15), (16, 20)]
    assert token_segments(text, offsets) == [0, 0, 1, 1]


@pytest.mark.parametrize("span, want", [
    ("Chebyshev)", "Chebyshev"),
    ("fact (Fermat's little theorem", "Fermat's little theorem"),
    ("trial division.", "trial division"),
    ("“quoted”.", "quoted"),
    ('"a" and "b"', '"a" and "b"'),
    ("(a) and (b)", "(a) and (b)"),
    ("U.S.", "U.S."),
    ("...", "..."),  # nothing would be left: unchanged
])
def test_trim(span: str, want: str) -> None:
    text = f"<{span}>"
    start, end = trim(text, 1, 1 + len(span))
    assert text[start:end] == want


def test_shown_text_has_no_control_characters_or_newlines() -> None:
    assert shown("of\fScripture\n and\x00 more") == "of Scripture and more"


@pytest.mark.parametrize("span, around", [
    ("Berlin", "  is the capital (of Germany)."),  # up to the sentence end, closing bracket kept
    ("Germany", "Berlin is the capital (of  )."),
    ("Paris", "Then   was\fnamed."),  # a page break inside a sentence ends nothing
    ("Heading", " "),  # a line of its own
])
def test_sentence_around_a_span(span: str, around: str) -> None:
    text = "Intro. Berlin is the capital (of Germany). Then Paris was\fnamed. Its name.\nHeading\nMore."
    start = text.index(span)
    assert sentence_around(text, start, start + len(span)) == around
