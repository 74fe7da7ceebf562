"""Typed exceptions. The library raises these; the CLI turns each into one line plus a hint."""

from __future__ import annotations


class DocQAError(Exception):
    """Base class. ``str(err)`` is a complete sentence that says what to do."""


class BadIndex(DocQAError):
    """The index file cannot be used (not docqa's, corrupt, wrong schema, not writable)."""


class IndexNotFound(BadIndex):
    pass


class SchemaMismatch(BadIndex):
    pass


class IndexReadOnly(BadIndex):
    pass


class IndexLocked(DocQAError):
    """Another ``docqa index`` run holds the index."""


class DiskFull(DocQAError):
    """A write failed for lack of space; the index is as it was before the failed document."""


class BadQuestion(DocQAError):
    """The question is empty (or nothing searchable is left in it)."""


class ModelError(DocQAError):
    """The reader model or tokenizer cannot be loaded (not cached offline, wrong kind...)."""


class DatasetError(DocQAError):
    """An evaluation dataset is not SQuAD-shaped."""


class OcrUnavailable(DocQAError):
    """Tesseract, or the language data asked for, is not installed (the message says how)."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first non-blank line of ``err``'s message (its type's name if it has none), cut to
    ``limit`` characters: what a one-line error message quotes of a library's exception."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]
