"""The small frozen dataclasses that cross module boundaries.

Data flows one way: files -> ``Extraction`` (pages) -> ``Passage`` -> SQLite;
question -> ``Hit`` -> ``Span`` -> ``Answer`` (with ``Citation``). ``dataclasses.asdict`` of
any result is its JSON shape, so field names here are a public contract.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

# A document's text is its pages joined with this, so a character offset maps to a page.
PAGE_BREAK = "\f"


def page_starts(pages: Sequence[str]) -> list[int]:
    """Offset of each page in the document text (pages joined with ``PAGE_BREAK``)."""
    starts, offset = [], 0
    for text in pages:
        starts.append(offset)
        offset += len(text) + len(PAGE_BREAK)
    return starts

# Every file ends an indexing run with exactly one of these.
STATUSES = (
    "indexed",
    "unchanged",
    "updated",
    "removed",
    "empty",
    "encrypted",
    "corrupt",
    "too-large",
    "timeout",
    "unsupported",
)
PROBLEM_STATUSES = ("empty", "encrypted", "corrupt", "too-large", "timeout", "unsupported")


@dataclass(frozen=True)
class Extraction:
    """What the extractor got out of one file: one string per page, or a problem.

    ``status`` is ``"ok"`` or one of ``PROBLEM_STATUSES``; ``message`` says what happened and
    what to do. Page-level failures keep the other pages (and are noted in ``message``).
    """

    kind: str  # "pdf" | "docx" | "pptx" | "epub" | "txt" | "md" | "html"
    pages: tuple[str, ...] = ()
    status: str = "ok"
    message: str = ""
    ocr_pages: tuple[int, ...] = ()  # 1-based numbers of the pages whose text Tesseract read
    ocr: str = ""  # the OCR settings the text depends on (``docqa.ocr.key``); "" when none

    @property
    def text(self) -> str:
        return PAGE_BREAK.join(self.pages)


@dataclass(frozen=True)
class Passage:
    """A window of a document's text. ``document_text[start:end] == text`` always."""

    ordinal: int
    start: int
    end: int
    page: int  # 1-based page holding ``start``
    last_page: int  # 1-based page holding ``end - 1``
    text: str


OCR_MODES = ("auto", "off", "force")
DEFAULT_OCR_PAGE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class OcrOptions:
    """When PDF pages are read with Tesseract: ``auto`` only pages without a usable text layer,
    ``force`` every page, ``off`` none. ``lang`` is Tesseract's (``eng``, ``eng+deu``)."""

    mode: str = "auto"
    lang: str = "eng"
    page_timeout_s: float = DEFAULT_OCR_PAGE_TIMEOUT_S


# What one "page" is for each kind of file (docqa info, README).
PAGE_MEANS = {
    "pdf": "PDF page",
    "docx": "page up to a hard page break",
    "pptx": "slide, with its notes",
    "epub": "chapter (spine order)",
    "html": "whole file",
    "md": "whole file",
    "txt": "whole file",
}

# Questions whose windows go through the reader together (``ask_many``, ``docqa eval``).
BATCH_QUESTIONS = 32

DEFAULT_MAX_MB = 200
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 2048


@dataclass(frozen=True)
class Limits:
    """What one file may cost the indexer: bytes on disk, seconds and memory to extract."""

    max_bytes: int = DEFAULT_MAX_MB * 1024 * 1024
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_bytes: int = DEFAULT_MEMORY_MB * 1024 * 1024


@dataclass(frozen=True)
class FileResult:
    path: str
    status: str
    message: str = ""
    pages: int = 0
    passages: int = 0
    ocr_pages: int = 0  # pages whose text was read by OCR


@dataclass(frozen=True)
class IndexReport:
    index: str
    added: int
    updated: int
    unchanged: int
    removed: int
    failed: int
    skipped: int = 0  # unsupported file types, counted but not stored
    files: tuple[FileResult, ...] = ()
    interrupted: bool = False


@dataclass(frozen=True)
class Problem:
    path: str
    status: str
    message: str


@dataclass(frozen=True)
class IndexInfo:
    index: str
    documents: int
    pages: int
    passages: int
    by_status: dict[str, int]
    problems: tuple[Problem, ...]
    schema_version: int
    settings: dict[str, object]
    size_bytes: int
    embedding_model: str | None = None  # the model of the passage vectors (`index --embed`)
    vectors: int = 0
    ocr_pages: int = 0  # pages whose text was read by OCR (may hold recognition errors)
    pages_by_kind: dict[str, int] = field(default_factory=dict)  # what a page is: PAGE_MEANS


@dataclass(frozen=True)
class PageText:
    """One indexed page: ``text`` starts at offset ``start`` of the document's text, so a
    citation's ``start - page.start`` indexes into it."""

    document_id: int
    path: str
    kind: str
    page: int
    pages: int
    start: int
    text: str
    ocr: bool = False  # the text was read by OCR from a scanned page: it may hold recognition errors


@dataclass(frozen=True)
class Hit:
    """One retrieved passage. ``start``/``end`` are offsets in the document's text."""

    rank: int
    score: float
    passage_id: int
    path: str
    page: int
    last_page: int
    start: int
    end: int
    text: str
    document_id: int = 0


@dataclass(frozen=True)
class SearchResult:
    """``off_topic``: the dense retriever found no passage closer to the question than texts
    about different things are to each other: the collection is not about what it asks."""

    question: str
    retriever: str
    hits: tuple[Hit, ...]
    off_topic: bool = False


@dataclass(frozen=True)
class Context:
    """What the reader reads for one hit: ``text == document_text[start:start + len(text)]``.

    Usually the hit's passage, possibly widened with its neighbours' text.
    """

    hit: Hit
    text: str
    start: int


@dataclass(frozen=True)
class Span:
    """A candidate answer read from one context. ``start``/``end`` are offsets in the
    document's text. ``score`` is the raw start+end logit sum, on the reader's own scale
    (rank.py normalises it per question)."""

    context: Context
    start: int
    end: int
    score: float

    @property
    def text(self) -> str:
        return self.context.text[self.start - self.context.start : self.end - self.context.start]


@dataclass(frozen=True)
class Citation:
    path: str
    page: int
    start: int
    end: int
    passage_id: int
    context: str
    context_start: int
    document_id: int = 0  # the page is GET /documents/{document_id}/pages/{page} in `docqa serve`
    ocr: bool = False  # the page's text was read by OCR: it may hold recognition errors
    text: str = ""  # exactly document_text[start:end] (an answer's text is shown cleaned up)
    last_page: int = 0  # the page holding end - 1: differs from ``page`` across a page break


@dataclass(frozen=True)
class Answer:
    text: str
    score: float
    confidence: float
    citations: tuple[Citation, ...]
    reader_score: float = 0.0  # normalised reader part of ``score`` (see rank.py)
    retriever_score: float = 0.0  # normalised retriever part of ``score``


@dataclass(frozen=True)
class Timings:
    retrieve_s: float = 0.0
    read_s: float = 0.0
    load_s: float = 0.0


@dataclass(frozen=True)
class Reading:
    """One question retrieved and read but not yet ranked: ``DocQA.rank`` makes it an
    ``AskResult``. Kept apart so answers can be re-ranked (another ``mu``) without re-reading."""

    question: str
    hits: tuple[Hit, ...]
    contexts: tuple[Context, ...]
    spans: tuple[Span, ...]
    timings: Timings = field(default_factory=Timings)
    off_topic: bool = False  # as its SearchResult said


@dataclass(frozen=True)
class AskResult:
    """Answers to one question, best first. ``abstained`` means none passed the threshold, or
    the question is ``off_topic`` (``SearchResult.off_topic``; then nothing was read):
    ``answers`` is then empty and ``passages`` holds the best hits to show instead."""

    question: str
    answers: tuple[Answer, ...]
    timings: Timings = field(default_factory=Timings)
    abstained: bool = False
    passages: tuple[Hit, ...] = ()
    off_topic: bool = False

    # Iterating an AskResult iterates its answers: `for a in qa.ask(q): ...`.
    def __iter__(self) -> Iterator[Answer]:
        return iter(self.answers)

    def __len__(self) -> int:
        return len(self.answers)

    def __getitem__(self, i: int) -> Answer:
        return self.answers[i]


@dataclass(frozen=True)
class BatchQuestion:
    """One line of ``docqa ask --batch``: a question, its id, and optionally the path globs
    it is asked of (like ``--path``)."""

    id: str | int
    question: str
    paths: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BatchAnswer:
    """What ``DocQA.ask_many`` gives for one ``BatchQuestion``: its result, or why there is
    none (a bad question, a bad input line); one line of ``docqa ask --batch``'s output."""

    id: str | int
    result: AskResult | None = None
    error: str = ""
