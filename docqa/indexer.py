"""Indexing: walk folders, skip what is unchanged, extract in killable workers, write.

Extraction and splitting run in worker processes (pebble) so both cores work and a hostile file
that loops (even inside C code) or balloons in memory is killed on its own: per-file timeout,
per-worker address-space cap. All writes stay in this process, one transaction per document.
Folders are walked lazily and only a few files are in flight, so 50,000 files stream.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import resource
import stat as stat_mod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from docqa.errors import DocQAError
from docqa.extract import extract, kind_of
from docqa.split import split_pages
from docqa.store import DocumentRow, Store
from docqa.types import PROBLEM_STATUSES, FileResult, IndexReport, Passage

log = logging.getLogger(__name__)

DEFAULT_MAX_MB = 200
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 2048
_BLOCK = 1 << 20


class PathNotFound(DocQAError):
    pass


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_MB * 1024 * 1024
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_bytes: int = DEFAULT_MEMORY_MB * 1024 * 1024


@dataclass(frozen=True)
class _Candidate:
    """A supported file found by the walk, with what ``stat`` said when it was found."""

    abs_path: str
    rel_path: str
    root: str
    kind: str
    size: int
    mtime: float


def _limit_memory(extra_bytes: int) -> None:
    """Worker initializer: cap the address space at what it has now plus ``extra_bytes``,
    so a decompression bomb raises MemoryError in the worker instead of eating the machine."""
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * resource.getpagesize()
    except OSError:
        current = 0
    limit = current + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _extract_and_split(
    path: str, passwords: tuple[str, ...], words: int, overlap: int
) -> tuple[str, str, tuple[str, ...], list[Passage]]:
    """Runs in a worker: returns (status, message, pages, passages)."""
    try:
        ex = extract(Path(path), passwords=passwords)
        if ex.status != "ok":
            return ex.status, ex.message, (), []
        return "ok", ex.message, ex.pages, split_pages(ex.pages, words=words, overlap=overlap)
    except MemoryError:
        return "too-large", "extraction ran out of memory (the memory cap per file was hit)", (), []


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def walk(paths: Sequence[str | os.PathLike[str]]) -> Iterator[_Candidate | FileResult]:
    """Yield supported files lazily (and ``FileResult``s for files skipped on the way).

    Hidden files and folders are skipped (like ripgrep); symlinked folders are followed once
    (a loop is cut by remembering each real folder visited).
    """
    for given in paths:
        top = Path(os.path.expanduser(os.fspath(given)))
        if top.is_file():
            yield from _candidate(top.absolute(), str(top.absolute().parent))
            continue
        root = str(top.absolute())
        seen: set[tuple[int, int]] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=_walk_error):
            try:
                st = os.stat(dirpath)
            except OSError:
                dirnames[:] = []
                continue
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield from _candidate(Path(dirpath, name), root)


def _walk_error(err: OSError) -> None:
    log.warning("cannot list %s: %s", err.filename, err.strerror)


def _display(path: str) -> str:
    # Non-UTF-8 file names arrive as surrogate escapes; show them safely.
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def _candidate(path: Path, root: str) -> Iterator[_Candidate | FileResult]:
    abs_path = str(path)
    rel = os.path.relpath(abs_path, root)
    kind = kind_of(path)
    if kind is None:
        yield FileResult(_display(rel), "unsupported", f"{path.suffix or 'no extension'}: not a supported file type")
        return
    try:
        st = os.stat(abs_path)
    except OSError as err:
        yield FileResult(_display(rel), "corrupt", f"cannot read: {err.strerror}")
        return
    if not stat_mod.S_ISREG(st.st_mode):
        yield FileResult(_display(rel), "unsupported", "not a regular file")
        return
    yield _Candidate(abs_path, rel, root, kind, st.st_size, st.st_mtime)


class Indexer:
    """One indexing run over an open, writable ``Store``."""

    def __init__(
        self,
        store: Store,
        *,
        passwords: Sequence[str] = (),
        workers: int | None = None,
        limits: Limits = Limits(),
        progress: Callable[[FileResult], None] | None = None,
    ) -> None:
        self.store = store
        self.passwords = tuple(passwords)
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.limits = limits
        self.progress = progress
        self.words = int(store.settings.get("passage_words", 120))  # type: ignore[arg-type]
        self.overlap = int(store.settings.get("overlap_words", 30))  # type: ignore[arg-type]
        self.files: list[FileResult] = []

    def run(self, paths: Sequence[str | os.PathLike[str]]) -> IndexReport:
        missing = [str(p) for p in paths if not os.path.exists(os.path.expanduser(os.fspath(p)))]
        if missing:
            raise PathNotFound(f"no such file or folder: {', '.join(missing)}")
        interrupted = False
        seen: set[str] = set()
        try:
            self._index(walk(paths), seen)
            self._remove_missing(paths, seen)
        except KeyboardInterrupt:
            interrupted = True
        return report(str(self.store.path), self.files, interrupted=interrupted)

    # -- the pipeline ------------------------------------------------------------------------

    def _index(self, found: Iterable[_Candidate | FileResult], seen: set[str]) -> None:
        from pebble import ProcessPool

        # forkserver: workers start clean even if this process holds threads (torch) or a
        # large heap; fork from a threaded parent can deadlock.
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPool(
            max_workers=self.workers,
            initializer=_limit_memory,
            initargs=(self.limits.memory_bytes,),
            context=context,
        )
        in_flight: deque = deque()
        try:
            for item in found:
                if isinstance(item, FileResult):
                    self._report(item)
                    continue
                seen.add(item.abs_path)
                job = self._plan(item)
                if job is None:
                    continue
                future = pool.schedule(
                    _extract_and_split,
                    args=(item.abs_path, self.passwords, self.words, self.overlap),
                    timeout=self.limits.timeout_s,
                )
                in_flight.append((job, future))
                # Bounded look-ahead: stream the folder, keep the workers busy, hold little.
                while len(in_flight) >= 2 * self.workers:
                    self._finish(*in_flight.popleft())
            while in_flight:
                self._finish(*in_flight.popleft())
        except BaseException:
            pool.stop()
            raise
        finally:
            pool.close()
            pool.join()

    def _plan(self, c: _Candidate) -> tuple[_Candidate, str, DocumentRow | None] | None:
        """Decide what to do with a found file; returns a job to extract, or None if done."""
        old = self.store.document(c.abs_path)
        if c.size > self.limits.max_bytes:
            self._write_problem(c, "", "too-large", f"{c.size / 1e6:.0f} MB is over the "
                                f"{self.limits.max_bytes / 1e6:.0f} MB cap; raise it with --max-size")
            return None
        if old is not None and old.size == c.size and old.mtime == c.mtime and not self._retry(old):
            self._report_unchanged(c, old)
            return None
        try:
            sha = sha256_of(c.abs_path)
        except OSError as err:
            self._write_problem(c, "", "corrupt", f"cannot read: {err.strerror}")
            return None
        if old is not None and old.sha256 == sha and not self._retry(old):
            self.store.touch(c.abs_path, size=c.size, mtime=c.mtime)
            self._report_unchanged(c, old)
            return None
        twin = next((d for d in self.store.documents_with_sha(sha) if d.abs_path != c.abs_path), None)
        if twin is not None:
            # Moved, renamed or copied: same bytes, so reuse its pages and passages.
            row = self._row(c, sha, twin.kind, twin.page_count, "indexed", "")
            self.store.copy_document(twin.id, row)
            self._report_indexed(c, old, twin.page_count, self._passage_count(c.abs_path))
            return None
        return c, sha, old

    def _retry(self, old: DocumentRow) -> bool:
        # A file that needed a password gets another try when passwords are given.
        return old.status == "encrypted" and bool(self.passwords)

    def _finish(self, job: tuple[_Candidate, str, DocumentRow | None], future) -> None:
        from pebble import ProcessExpired

        c, sha, old = job
        try:
            status, message, pages, passages = future.result()
        except FutureTimeout:
            status, message, pages, passages = (
                "timeout", f"extraction took over {self.limits.timeout_s:g} s and was stopped; "
                "raise --timeout if the file is just big", (), [])
        except ProcessExpired as err:
            status, message, pages, passages = (
                "corrupt", f"the extractor crashed on this file (exit code {err.exitcode})", (), [])
        except Exception as err:  # a bug or a library failure on a hostile file: name it, go on
            log.debug("extraction failed for %s", c.abs_path, exc_info=True)
            status, message, pages, passages = (
                "corrupt", f"extraction failed: {type(err).__name__}: {err}".splitlines()[0], (), [])
        if not os.path.exists(c.abs_path):
            self._report(FileResult(_display(c.rel_path), "removed", "deleted while being indexed"))
            if old is not None:
                self.store.remove([c.abs_path])
            return
        if status != "ok":
            self._write_problem(c, sha, status, message)
            return
        row = self._row(c, sha, c.kind, len(pages), "indexed", message)
        self.store.put_document(row, pages, passages)
        self._report_indexed(c, old, len(pages), len(passages), message)

    # -- bookkeeping -------------------------------------------------------------------------

    def _row(self, c: _Candidate, sha: str, kind: str, pages: int, status: str, message: str) -> DocumentRow:
        return DocumentRow(
            path=c.rel_path, abs_path=c.abs_path, root=c.root, size=c.size, mtime=c.mtime,
            sha256=sha, kind=kind, page_count=pages, status=status, message=message,
        )

    def _passage_count(self, abs_path: str) -> int:
        return int(self.store.conn.execute(
            "SELECT count(*) FROM passages JOIN documents ON documents.id = passages.document_id "
            "WHERE documents.abs_path = ?", (abs_path,)).fetchone()[0])

    def _report_indexed(self, c: _Candidate, old: DocumentRow | None, pages: int, passages: int,
                        message: str = "") -> None:
        status = "updated" if old is not None else "indexed"
        self._report(FileResult(_display(c.rel_path), status, message, pages, passages))

    def _report_unchanged(self, c: _Candidate, old: DocumentRow) -> None:
        if old.status in ("indexed", "updated"):
            self._report(FileResult(_display(c.rel_path), "unchanged", "", old.page_count,
                                    self._passage_count(c.abs_path)))
        else:  # still the same problem: say it again, so every run names its failures
            self._report(FileResult(_display(c.rel_path), old.status, old.message))

    def _write_problem(self, c: _Candidate, sha: str, status: str, message: str) -> None:
        # A problem replaces any older version of the file: its text is no longer what's there.
        self.store.put_document(self._row(c, sha, c.kind, 0, status, message))
        self._report(FileResult(_display(c.rel_path), status, message))

    def _remove_missing(self, paths: Sequence[str | os.PathLike[str]], seen: set[str]) -> None:
        for given in paths:
            top = Path(os.path.expanduser(os.fspath(given))).absolute()
            if not top.is_dir():
                continue
            gone = [d for d in self.store.documents(under=str(top)) if d.abs_path not in seen]
            for doc in gone:
                self.store.remove([doc.abs_path])
                self._report(FileResult(_display(doc.path), "removed", "file is gone"))

    def _report(self, result: FileResult) -> None:
        self.files.append(result)
        if self.progress is not None:
            self.progress(result)


def report(index: str, files: Sequence[FileResult], *, interrupted: bool = False) -> IndexReport:
    """Counts are derived from the per-file statuses, so they always agree with ``files``."""
    statuses = [f.status for f in files]
    return IndexReport(
        index=index,
        added=statuses.count("indexed"),
        updated=statuses.count("updated"),
        unchanged=statuses.count("unchanged"),
        removed=statuses.count("removed"),
        failed=sum(s in PROBLEM_STATUSES and s != "unsupported" for s in statuses),
        skipped=statuses.count("unsupported"),
        files=tuple(files),
        interrupted=interrupted,
    )
