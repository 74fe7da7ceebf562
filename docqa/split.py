"""Pages -> overlapping, sentence-aware passages with exact character offsets.

A document's text is ``PAGE_BREAK.join(pages)``; every passage is a slice of it
(``text[start:end] == passage.text``) that starts and ends on a non-space character. Windows
hold whole sentences, about ``words`` words (never more than 1.5x), and the next window
repeats about ``overlap`` words of whole sentences (or, after a long sentence, its last words).
A sentence too long for one window (a 50 MB line without punctuation) is cut into word windows.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import sentencex

from docqa.types import PAGE_BREAK, Passage, page_starts

# Sentence boundaries come from sentencex (Wikimedia; Rust, maintained): it keeps "e.g.",
# "i.e.", "Fig. 3", "U.S. Army", "Dr.", "No. 5", 3.14, "J. R. R. Tolkien" and ellipses whole,
# ends sentences at 。！？। as well as . ? !, splits ~300k chars in a few milliseconds and
# returns character offsets. pysbd (unmaintained since 2021) gave the same splits on our samples
# but took 0.8 s for 213k chars; nltk's punkt needs model data that cannot be fetched offline.
# A document's language is unknown: English abbreviation rules, every script's terminators.
_LANGUAGE = "en"
# Line and page breaks always end a sentence (clean_text keeps a newline only where it means
# something: after a heading, list item or paragraph end).
_HARD_BREAKS = re.compile(r"[\n\f\v\r\x1c-\x1e\x85\u2028\u2029]+")
# The segmenter gets at most this many characters at a time: bounded memory on a 50 MB line.
_CHUNK = 200_000
_SURROGATES = re.compile("[\ud800-\udfff]")
_CJK = "\u2e80-\u2fff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# A word: one CJK character (those scripts have no spaces), or a run of up to 20 other
# non-space characters (a longer run, like a base64 blob, counts as several words).
_WORD = f"[{_CJK}]|[^\\s{_CJK}]{{1,20}}"
_WORDS = re.compile(_WORD)
_HAS_CJK = re.compile(f"[{_CJK}]")


@dataclass(frozen=True)
class _Unit:
    """A sentence, or a piece of one too long for a window: ``text[start:end]``, stripped."""

    start: int
    end: int
    words: int


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences in ``text``, each stripped of surrounding whitespace."""
    return list(_sentences(text))


def split_pages(pages: Sequence[str], *, words: int = 120, overlap: int = 30) -> list[Passage]:
    """Cut a document (its pages) into overlapping windows of about ``words`` words.

    Raises ``ValueError`` unless ``words >= 1`` and ``0 <= overlap < words``."""
    if words < 1 or not 0 <= overlap < words:
        raise ValueError(f"need words >= 1 and 0 <= overlap < words, got {words=}, {overlap=}")
    text = PAGE_BREAK.join(pages)
    units = list(_units(text, words + words // 2, words - overlap))
    if not units:
        return []
    starts = page_starts(pages)
    passages = []
    for ordinal, (start, end) in enumerate(_windows(text, units, words, overlap)):
        passages.append(
            Passage(
                ordinal=ordinal,
                start=start,
                end=end,
                page=bisect.bisect_right(starts, start),
                last_page=bisect.bisect_right(starts, end - 1),
                text=text[start:end],
            )
        )
    return passages



def _sentences(text: str) -> Iterator[tuple[int, int]]:
    # The segmenter is Rust: lone surrogates cannot cross over, so swap them for U+FFFD
    # (same length, offsets unchanged).
    safe = _SURROGATES.sub("\ufffd", text)
    block_start = 0
    for brk in _HARD_BREAKS.finditer(safe):
        yield from _block_sentences(safe, block_start, brk.start())
        block_start = brk.end()
    yield from _block_sentences(safe, block_start, len(safe))


def _block_sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Sentences of ``text[start:end]`` (no hard breaks inside), fed to the segmenter in chunks
    cut at whitespace so a huge block never sits in memory twice over."""
    while start < end:
        stop = end
        if end - start > _CHUNK:
            space = text.rfind(" ", start + _CHUNK // 2, start + _CHUNK)
            stop = space + 1 if space != -1 else start + _CHUNK
        for found in sentencex.get_sentence_boundaries(_LANGUAGE, text[start:stop]):
            sentence = found["text"]
            lead = len(sentence) - len(sentence.lstrip())
            trail = len(sentence) - len(sentence.rstrip())
            if lead < len(sentence):
                yield start + found["start_index"] + lead, start + found["end_index"] - trail
        start = stop


def _count_words(text: str, start: int, end: int) -> int:
    parts = text[start:end].split()
    if _HAS_CJK.search(text, start, end) or max(map(len, parts), default=0) > 20:
        return len(_WORDS.findall(text, start, end))
    return len(parts)  # the same count, much faster


@lru_cache(maxsize=8)
def _window_pattern(words: int) -> re.Pattern[str]:
    """Group 1: the next 1 to ``words`` words after any white space (a C-speed jump)."""
    return re.compile(f"\\s*((?:{_WORD})(?:\\s*(?:{_WORD})){{0,{words - 1}}})")


def _units(text: str, max_words: int, piece_words: int) -> Iterator[_Unit]:
    """Sentences of at most ``max_words`` words; a longer one is cut into pieces of
    ``piece_words`` (so that a piece plus the words repeated from the window before fill one
    window)."""
    for start, end in _sentences(text):
        # A sentence this long (in characters) goes straight to the cutter, which counts as it
        # goes: str.split on a 50 MB line would build millions of strings first.
        if end - start <= max_words * 22:
            count = _count_words(text, start, end)
            if count <= max_words:
                yield _Unit(start, end, count)
                continue
        pattern, pos = _window_pattern(piece_words), start
        while pos < end:
            piece = pattern.match(text, pos, end)
            if piece is None:  # unreachable: every non-space character starts a word
                break
            # The pattern stops short of ``piece_words`` only at the end of the sentence.
            count = piece_words if piece.end() < end else _count_words(text, piece.start(1), end)
            yield _Unit(piece.start(1), piece.end(), count)
            pos = piece.end()


def _fits(total: int, more: int, words: int) -> bool:
    """Add a sentence while the window stays within ``words``; a window under half full may
    stretch to 1.5x rather than end early."""
    return total + more <= words or (total < words // 2 and total + more <= words + words // 2)


def _windows(text: str, units: list[_Unit], words: int, overlap: int) -> Iterator[tuple[int, int]]:
    max_words = words + words // 2
    first, start, total, last = 0, units[0].start, units[0].words, 0
    while True:
        while last + 1 < len(units) and _fits(total, units[last + 1].words, words):
            last += 1
            total += units[last].words
        yield start, units[last].end
        if last + 1 == len(units):
            return
        first, start, total = _overlap(text, units, first, start, last, overlap)
        following = units[last + 1]
        if total + following.words > max_words:
            first, start, total = last + 1, following.start, 0  # no room to repeat anything
        last += 1
        total += following.words


def _overlap(
    text: str, units: list[_Unit], first: int, start: int, last: int, overlap: int
) -> tuple[int, int, int]:
    """Where the next window starts within the window ``units[first..last]`` (which begins at
    ``start``): the last whole sentences worth at most ``overlap`` words, else the last
    ``overlap`` words. Returns (first unit, start offset, words repeated)."""
    k, repeated = last, 0
    while k > first and repeated + units[k].words <= overlap:
        repeated += units[k].words
        k -= 1
    if k < last:
        return k + 1, units[k + 1].start, repeated
    none = last + 1, units[last + 1].start, 0
    if overlap == 0:
        return none
    head = start if last == first else units[last].start
    end = units[last].end
    # Match ``overlap`` words backwards from the end, on the reversed sentence.
    tail = _window_pattern(overlap).match(text[head:end][::-1])
    if tail is None or end - tail.end() <= start:
        return none  # (it would repeat the whole window)
    return last, end - tail.end(), min(overlap, units[last].words)
