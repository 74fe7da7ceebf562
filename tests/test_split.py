"""split.py: exact offsets, right pages, sentence-aware overlapping windows of bounded size,
on real documents (SQuAD articles, real PDF pages), hostile ones and arbitrary ones."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from functools import cache

import pytest
from conftest import PDFS, SQUAD
from hypothesis import given, settings
from hypothesis import strategies as st

from docqa.datasets import load_squad
from docqa.extract import extract
from docqa.split import split_pages, split_sentences
from docqa.types import PAGE_BREAK, Passage

# A word as split.py counts it, or fewer: a CJK character, or a run of other non-space characters.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
WORD = re.compile(f"[{CJK}]|[^\\s{CJK}]+")
ABBREVIATIONS = ("e.g.", "i.e.", "Fig.", "Dr.", "Mr.", "Mrs.", "No.")
REAL_PDFS = (
    "encrypted/dmca.pdf",
    "multi_column/issue-982-example.pdf",
    "multi_column/naacl06-shinyama.pdf",
    "non_latin/issue-67-example.pdf",
    "scanned/Seige_of_Vicksburg_Sample_OCR.pdf",
    "text/2023-06-20-PV.pdf",
)


def words_in(text: str) -> int:
    return len(WORD.findall(text))


def check(pages: Sequence[str], passages: list[Passage], words: int, overlap: int) -> None:
    """Every promise split_pages makes about ``passages`` of the document ``pages``."""
    doc = PAGE_BREAK.join(pages)
    page_at: list[int] = []  # page number of every character of doc
    for number, page in enumerate(pages, 1):
        page_at.extend([number] * (len(page) + len(PAGE_BREAK)))
    covered = 0
    for ordinal, p in enumerate(passages):
        assert p.ordinal == ordinal
        assert p.text and doc[p.start : p.end] == p.text
        assert not p.text[0].isspace() and not p.text[-1].isspace()
        assert (p.page, p.last_page) == (page_at[p.start], page_at[p.end - 1])
        assert words_in(p.text) <= words + words // 2
        assert doc[covered : p.start].isspace() or p.start <= covered  # nothing skipped
        covered = max(covered, p.end)
    assert doc[covered:].strip() == ""
    for a, b in zip(passages, passages[1:]):
        assert a.start < b.start and a.end < b.end
        if b.start < a.end:
            assert words_in(doc[b.start : a.end]) <= overlap


@cache
def squad_articles() -> list[str]:
    if not SQUAD.is_file():
        pytest.skip(f"{SQUAD} is absent (the shared test material sits beside the project)")
    return [a.text for a in load_squad(SQUAD)]


@cache
def pdf_pages(name: str) -> tuple[str, ...]:
    if not PDFS.is_dir():
        pytest.skip(f"{PDFS} is absent (the shared test material sits beside the project)")
    result = extract(PDFS / name)
    assert result.status == "ok"
    return result.pages


# -- real documents --------------------------------------------------------------------------


def test_squad_articles_split_into_exact_overlapping_windows() -> None:
    sizes, pairs, overlapping = [], 0, 0
    for text in squad_articles():
        passages = split_pages([text])
        check([text], passages, 120, 30)
        sizes.extend(words_in(p.text) for p in passages)
        pairs += len(passages) - 1
        overlapping += sum(b.start < a.end for a, b in zip(passages, passages[1:]))
        for p in passages:
            assert not p.text.endswith(ABBREVIATIONS)
    assert 95 <= sum(sizes) / len(sizes) <= 125  # about 120 words
    assert overlapping >= 0.98 * pairs


@pytest.mark.parametrize("name", REAL_PDFS)
def test_real_pdf_pages_split_with_right_page_numbers(name: str) -> None:
    pages = pdf_pages(name)
    passages = split_pages(pages)
    check(pages, passages, 120, 30)
    assert passages[-1].last_page == max(n for n, page in enumerate(pages, 1) if page.strip())
    if len(pages) > 1:
        crossing = [p for p in passages if p.last_page > p.page]
        assert crossing and all(PAGE_BREAK in p.text for p in crossing)


@pytest.mark.parametrize(("words", "overlap"), [(60, 0), (60, 20), (200, 50), (12, 11)])
def test_other_window_settings(words: int, overlap: int) -> None:
    pages = pdf_pages("multi_column/naacl06-shinyama.pdf")
    check(pages, split_pages(pages, words=words, overlap=overlap), words, overlap)


def test_squad_sentences_are_not_cut_at_abbreviations_or_decimals() -> None:
    for text in squad_articles():
        for start, end in split_sentences(text):
            assert not text[start:end].endswith(ABBREVIATIONS), text[start : end + 20]
            assert not (text[end - 1] == "." and text[end : end + 1].isdigit())  # 3.|14


# -- sentences -------------------------------------------------------------------------------

SENTENCES = [
    "See e.g. the results in Fig. 3 of the U.S. Army report.",
    "Dr. Smith paid 3.14 dollars for item No. 5 on Main St. yesterday.",
    "J. R. R. Tolkien wrote it, i.e. the book with maps.",
    "Wait... what happened next?",
    "It worked!",
    "Prices rose 2.5% vs. last year (approx. half).",
]


def test_split_sentences_keeps_abbreviations_and_decimals_whole() -> None:
    text = " ".join(SENTENCES)
    assert [text[s:e] for s, e in split_sentences(text)] == SENTENCES


def test_split_sentences_breaks_at_line_paragraph_and_page_breaks() -> None:
    text = "A heading\nFirst sentence of it\n\nNext paragraph\fNext page.   "
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "A heading", "First sentence of it", "Next paragraph", "Next page."
    ]


def test_split_sentences_handles_other_scripts() -> None:
    text = "你好世界。我们走吧！これは日本語です。नमस्ते। दूसरा।"
    assert len(split_sentences(text)) == 5


# -- windows and overlap ---------------------------------------------------------------------


def sentence(n: int, length: int = 10) -> str:
    return " ".join(f"s{n}w{i}" for i in range(length - 1)) + f" s{n}end."


def test_windows_hold_whole_sentences_and_repeat_the_last_ones() -> None:
    text = " ".join(sentence(n) for n in range(40))
    passages = split_pages([text], words=40, overlap=15)
    check([text], passages, 40, 15)
    assert len(passages) == 13  # sentences 0-3, 3-6, ..., 36-39
    for a, b in zip(passages, passages[1:]):
        assert words_in(a.text) == 40 and a.text.endswith("end.")
        last_sentence = a.text.rsplit(". ", 1)[1]  # 10 words <= 15: repeated whole
        assert b.text.startswith(last_sentence) and a.end - b.start == len(last_sentence)


def test_a_sentence_longer_than_a_window_is_cut_into_word_windows() -> None:
    text = " ".join(f"w{i}" for i in range(5000))  # one 5000-word sentence
    passages = split_pages([text], words=100, overlap=25)
    check([text], passages, 100, 25)
    for a, b in zip(passages, passages[1:]):
        assert a.text.split()[-25:] == b.text.split()[:25]  # exactly 25 words repeated
    # pieces of 75 words: the first window is one piece, the others 25 repeated + 75 new
    assert words_in(passages[0].text) == 75
    assert {words_in(p.text) for p in passages[1:-1]} == {100}


def test_a_long_sentence_is_overlapped_by_its_last_words() -> None:
    text = sentence(0, 10) + " " + sentence(1, 60) + " " + sentence(2, 10)
    a, b = split_pages([text], words=70, overlap=20)
    assert a.text == sentence(0, 10) + " " + sentence(1, 60)
    assert b.text.split()[:20] == a.text.split()[-20:] and b.text.endswith(sentence(2, 10))


def test_passages_cross_pages_and_know_both_pages() -> None:
    pages = ["Page one has this first sentence.", "", "Page three holds the end. Really."]
    passages = split_pages(pages)
    assert len(passages) == 1
    (p,) = passages
    assert (p.page, p.last_page, p.start) == (1, 3, 0)
    assert p.text == PAGE_BREAK.join(pages)
    small = split_pages(pages, words=6, overlap=0)
    assert [(p.page, p.last_page) for p in small] == [(1, 1), (3, 3)]


def test_empty_documents_have_no_passages() -> None:
    assert split_pages([]) == [] and split_pages(["", "  \n ", "\n\n"]) == []


def test_bad_settings_are_refused() -> None:
    for words, overlap in [(0, 0), (10, 10), (10, -1)]:
        with pytest.raises(ValueError):
            split_pages(["text"], words=words, overlap=overlap)


def test_cjk_text_without_spaces_is_cut_by_characters() -> None:
    text = "这是一个没有标点也没有空格的很长的中文句子" * 100
    passages = split_pages([text], words=120, overlap=30)
    check([text], passages, 120, 30)
    assert max(len(p.text) for p in passages) <= 180


def test_long_runs_without_spaces_are_cut() -> None:
    blob = "QUJD" * 250_000  # 1 MB of base64-like text, no spaces
    passages = split_pages([blob], words=120, overlap=30)
    check([blob], passages, 120, 30)
    assert max(len(p.text) for p in passages) <= 180 * 20  # at most 180 words of 20 characters


def test_big_texts_split_in_seconds() -> None:
    line = "word " * 2_000_000  # a 10 MB line without punctuation
    started = time.perf_counter()
    passages = split_pages([line])
    assert time.perf_counter() - started < 15
    assert 22_000 < len(passages) < 22_500  # 90 new words a window (2M / 90 = 22,222)
    text = "\n\n".join(squad_articles()) * 2  # ~6.6 MB of prose
    started = time.perf_counter()
    split_pages([text])
    assert time.perf_counter() - started < 15


def test_same_input_same_passages() -> None:
    pages = pdf_pages("text/2023-06-20-PV.pdf")
    assert split_pages(pages) == split_pages(list(pages))


# -- any input -------------------------------------------------------------------------------

# Text made of pieces that matter to a splitter, and any character at all (lone surrogates too).
TEXT = st.lists(
    st.one_of(
        st.sampled_from(list("ab Z.!?\n\f\t-…\u00a0\ud800") + ["e.g. ", "U.S. ", "3.14", "你好。", "x" * 25]),
        st.characters(exclude_categories=()),
    ),
    max_size=80,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    pages=st.lists(TEXT, max_size=5),
    words=st.integers(1, 20),
    data=st.data(),
)
def test_any_pages_give_exact_passages(pages: list[str], words: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, words - 1))
    passages = split_pages(pages, words=words, overlap=overlap)
    check(pages, passages, words, overlap)
    assert passages == split_pages(pages, words=words, overlap=overlap)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_any_text_gives_ordered_stripped_sentences(text: str) -> None:
    end = 0
    for start, stop in split_sentences(text):
        assert end <= start < stop <= len(text)
        assert not text[start].isspace() and not text[stop - 1].isspace()
        assert text[end:start].strip() == ""
        end = stop
    assert text[end:].strip() == ""
