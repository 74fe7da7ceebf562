"""Indexing: walk folders, skip what is unchanged, extract in killable workers, write.

One pipeline, pluggable executors. The driver (this module's ``Indexer``) walks the paths,
decides what to (re)extract and is the only SQLite writer: one transaction per document, Ctrl-C
held back while one is written. An ``Executor`` only maps ``extract_and_split`` over the files
it is given: ``LocalExecutor`` in this machine's worker processes, ``docqa.distributed``'s
``RayExecutor`` on a Ray cluster. Either way each file runs in a ``Sandbox`` worker (pebble) with
a per-file timeout and address-space cap, so a hostile file that loops (even inside C code) or
balloons in memory is killed on its own. Folders are walked lazily and only a few files are in
flight, so 50,000 files stream.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import multiprocessing
import os
import resource
import signal
import sqlite3
import stat as stat_mod
import sys
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple, Protocol, TypeVar

from docqa import objectstore, ocr
from docqa.errors import DocQAError, first_line
from docqa.extract import extract, extraction_version, kind_of
from docqa.machine import usable_cores
from docqa.split import split_pages
from docqa.store import DocumentRow, Store, index_error
from docqa.types import DEFAULT_TIMEOUT_S, PROBLEM_STATUSES, FileResult, IndexReport, Limits, OcrOptions, Passage

log = logging.getLogger(__name__)

_BLOCK = 1 << 20
_PR_SET_PDEATHSIG = 1

class _Outcome(NamedTuple):
    """What a worker sends back for one file."""

    status: str
    message: str
    pages: tuple[str, ...] = ()
    passages: tuple[Passage, ...] = ()
    ocr_pages: tuple[int, ...] = ()  # see ``Extraction``
    ocr: str = ""


J = TypeVar("J")  # what the driver tracks for a task; executors carry it through untouched


class PathNotFound(DocQAError):
    pass


class WorkersFailed(DocQAError):
    """The extraction processes died without a file to blame (they could not start)."""


def _workers_failed(err: BaseException) -> WorkersFailed:
    return WorkersFailed(
        f"the extraction processes stopped unexpectedly ({err}); what was indexed is kept, re-run "
        "to continue"
    )


@contextmanager
def _main_not_rerun() -> Iterator[None]:
    """Workers started meanwhile do not re-run the caller's script.

    A forkserver (or spawn) child re-imports the parent's ``__main__`` from its ``__file__`` or
    ``__spec__``: a plain script that calls ``DocQA.index`` without an ``if __name__ ==
    "__main__":`` guard would index again in every worker. The workers need nothing from
    ``__main__`` (their functions live in this module), so it is hidden while the pool lives.
    A REPL or a notebook has neither attribute: nothing changes there.
    """
    main = sys.modules.get("__main__")
    file, spec = getattr(main, "__file__", None), getattr(main, "__spec__", None)
    if main is None or (file is None and spec is None):
        yield
        return
    if file is not None:
        del main.__file__
    main.__spec__ = None  # multiprocessing reads it, so it must exist
    try:
        yield
    finally:
        main.__spec__ = spec
        if file is not None:
            main.__file__ = file


@dataclass(frozen=True)
class _Candidate:
    """A supported file found by the walk, with what ``stat`` said when it was found."""

    path: str  # for the file system (a non-UTF-8 name keeps its surrogate escapes)
    key: str  # the absolute path as stored in the index (always valid UTF-8)
    rel_path: str  # for people: relative to the root, printable
    root: str
    kind: str
    size: int
    mtime: float
    fs: Any = field(default=None, compare=False)  # pyarrow's, for an object-store URI; None: local


# A file to extract: what the walk saw, its sha256, and the index's row for it (if any).
_Job = tuple[_Candidate, str, "DocumentRow | None"]


@dataclass(frozen=True)
class _Skip:
    """Something the walk found but cannot index: reported, never extracted."""

    key: str
    result: FileResult
    folder: bool = False  # a folder that could not be listed: keep what is indexed under it


def as_text(path: str) -> str:
    """A path as valid UTF-8 text: undecodable bytes of a file name become ``\\xNN``.

    Used for the paths stored and shown (SQLite and JSON cannot hold surrogate escapes).
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# -- the worker side ------------------------------------------------------------------------


def _init_worker(memory_bytes: int) -> None:
    """Worker initializer: die with the pool, cap memory, keep library chatter off stderr."""
    try:
        # If the indexer is killed (even by kill -9) its forkserver exits; this makes the
        # kernel kill the worker then, so a stuck extraction never outlives the run.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the worker exits at its next task instead
        pass
    _limit_memory(memory_bytes)
    # pypdf logs and warns about every oddity it repairs; problems come back as statuses.
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")


def _limit_memory(extra_bytes: int) -> None:
    """Cap the address space at what the worker has now plus ``extra_bytes``, so a
    decompression bomb raises MemoryError in the worker instead of eating the machine."""
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * resource.getpagesize()
    except OSError:
        current = 0
    limit = current + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@dataclass(frozen=True)
class ExtractOptions:
    """How every file of a run is extracted and split; travels with each task to any executor."""

    passwords: tuple[str, ...] = ()
    words: int = 120
    overlap: int = 30
    ocr: OcrOptions = OcrOptions()
    timeout_s: float = DEFAULT_TIMEOUT_S  # the per-file limit: OCR stops short of it


@dataclass(frozen=True)
class ExtractTask:
    """One file to extract: read from ``path`` (in the pyarrow file system ``fs`` for an
    object-store URI), or from ``data`` when its bytes were shipped with the task (a file only on
    the driver's disk, extracted on another machine)."""

    path: str
    options: ExtractOptions
    data: bytes | None = None
    fs: Any = None


def extract_and_split(task: ExtractTask) -> _Outcome:
    """The one extraction function every executor runs (in a sandboxed worker process). OCR
    stops a little before the per-file limit would kill the worker, so a long scan keeps the
    pages it read."""
    o = task.options
    deadline = time.monotonic() + o.timeout_s - max(1.0, 0.05 * o.timeout_s)
    try:
        ex = extract(Path(task.path), passwords=o.passwords, ocr=o.ocr, deadline=deadline, data=task.data)
        key = ex.ocr + _limits_mark(o.timeout_s, o.ocr) if ex.ocr.endswith(ocr.PARTIAL) else ex.ocr
        if ex.status != "ok":
            return _Outcome(ex.status, ex.message, ocr=key)
        passages = tuple(split_pages(ex.pages, words=o.words, overlap=o.overlap))
        return _Outcome("ok", ex.message, ex.pages, passages, ex.ocr_pages, key)
    except MemoryError:
        return _Outcome("too-large", _OUT_OF_MEMORY)


def _limits_mark(timeout_s: float, options: OcrOptions) -> str:
    """Recorded with a PDF whose OCR a time limit cut short: read again only under other limits
    (the same ones would cut it short again)."""
    return f"@{timeout_s:g}/{options.page_timeout_s:g}"


_OUT_OF_MEMORY = ("extraction needed more memory than the per-file cap (a decompression bomb "
                  "or a huge page); docqa skipped it")


class Sandbox:
    """Worker processes that run ``extract_and_split`` under the per-file limits: a file that
    overruns the time limit is killed (``timeout``), one that crashes its worker is ``corrupt``,
    one that balloons past the memory cap is ``too-large``. The local executor feeds one with
    every core; each Ray task runs its file in a one-worker sandbox of its own node."""

    def __init__(self, workers: int, limits: Limits) -> None:
        from pebble import ProcessPool

        self.limits = limits
        # forkserver: workers start clean even if this process holds threads (torch, Ray) or
        # a large heap; fork from a threaded parent can deadlock. The server imports the
        # extractors once, so each worker (and each later run in this process) starts at once.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["docqa.indexer"])
        self.pool = ProcessPool(max_workers=workers, initializer=_init_worker,
                                initargs=(limits.memory_bytes,), context=context)

    def submit(self, task: ExtractTask) -> Future[_Outcome]:
        try:
            return self.pool.schedule(extract_and_split, args=(task,), timeout=self.limits.timeout_s)
        except RuntimeError as err:  # pebble: the pool broke (see outcome)
            raise _workers_failed(err) from err

    def outcome(self, future: Future[_Outcome]) -> _Outcome:
        from pebble import ProcessExpired

        try:
            return future.result()
        except FutureTimeout:
            return _Outcome("timeout", f"extraction took over {self.limits.timeout_s:g} s and was stopped; "
                            "it is tried again next run; raise --timeout if the file is just big")
        except BrokenProcessPool as err:  # a worker died with no task: not this file's fault
            raise _workers_failed(err) from err
        except ProcessExpired as err:
            return _Outcome("corrupt", f"the extractor crashed on this file ({_exit_reason(err.exitcode)}); "
                            "check that it opens in its usual program")
        except Exception as err:  # a bug or a library failure on a hostile file: name it, go on
            log.debug("extraction failed", exc_info=True)
            first = f"{type(err).__name__}: {err}".splitlines()[0][:200]
            return _Outcome("corrupt", f"extraction failed ({first}); please report it")

    def close(self, completed: bool) -> None:
        # Interrupted or failed: kill the workers now (their files get no status).
        self.pool.close() if completed else self.pool.stop()
        self.pool.join()


class Executor(Protocol):
    """Where extraction runs: local worker processes (``LocalExecutor``) or a Ray cluster
    (``docqa.distributed.RayExecutor``). The driver plans and writes; an executor only maps
    ``extract_and_split`` over the tasks it pulls and streams the outcomes back."""

    # Files up to this many bytes travel as bytes with their task (0: workers read the path).
    ship_bytes: int
    # Whether its workers read object-store URIs; if not, they get the bytes the driver hashed.
    reads_uris: bool

    def run(self, jobs: Iterable[tuple[J, ExtractTask]]) -> Generator[tuple[J, _Outcome], None, None]:
        """Pull ``jobs`` lazily (planning runs as they are pulled) and yield each job with its
        outcome, in completion order. Stops its workers when closed early."""
        ...


class LocalExecutor:
    """Extraction in this machine's worker processes, a bounded number of files in flight."""

    ship_bytes = 0
    reads_uris = False

    def __init__(self, workers: int | None = None, limits: Limits = Limits()) -> None:
        self.workers = max(1, workers or usable_cores())
        self.limits = limits

    def run(self, jobs: Iterable[tuple[J, ExtractTask]]) -> Iterator[tuple[J, _Outcome]]:
        sandbox: Sandbox | None = None  # started on the first file to extract
        in_flight: dict[Future[_Outcome], tuple[int, J]] = {}
        completed = False
        try:
            for n, (job, task) in enumerate(jobs):
                sandbox = sandbox or Sandbox(self.workers, self.limits)
                in_flight[sandbox.submit(task)] = n, job
                # Bounded look-ahead streams the folder; finishing in completion order keeps
                # one stuck file from idling the other workers.
                if len(in_flight) >= 2 * self.workers:
                    yield from self._finish_some(sandbox, in_flight)
            while in_flight:
                yield from self._finish_some(sandbox, in_flight)  # type: ignore[arg-type]
            completed = True
        finally:
            if sandbox is not None:
                sandbox.close(completed)

    @staticmethod
    def _finish_some(sandbox: Sandbox, in_flight: dict[Future[_Outcome], tuple[int, J]]
                     ) -> Iterator[tuple[J, _Outcome]]:
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: in_flight[f][0]):  # the same order every run
            yield in_flight.pop(future)[1], sandbox.outcome(future)


# -- finding files --------------------------------------------------------------------------


def sha256_of(path: str) -> str:
    return read_and_hash(path)[0]


def read_and_hash(path: str, *, keep: bool = False, fs: Any = None) -> tuple[str, bytes | None]:
    """The file's sha256, and (with ``keep``) its bytes, read once (from pyarrow's ``fs``
    when given)."""
    h = hashlib.sha256()
    blocks: list[bytes] = []
    with open(path, "rb") if fs is None else fs.open_input_stream(path) as f:
        while block := f.read(_BLOCK):
            h.update(block)
            if keep:
                blocks.append(block)
    return h.hexdigest(), b"".join(blocks) if keep else None


def walk(paths: Sequence[str | os.PathLike[str] | objectstore.Remote]) -> Iterator[_Candidate | _Skip]:
    """Yield supported files lazily (and ``_Skip``s for what cannot be indexed on the way).

    Hidden files and folders are skipped (like ripgrep); symlinked folders are followed once
    (a loop, or a second way to the same folder, is cut by remembering each folder visited).
    An object-store URI comes opened (``objectstore.open_uri``).
    """
    for given in paths:
        if isinstance(given, objectstore.Remote):
            yield from _walk_uri(given)
            continue
        top = Path(os.path.expanduser(os.fspath(given)))
        if top.is_file():
            yield from _candidate(str(top.absolute()), str(top.absolute().parent))
            continue
        root = str(top.absolute())
        seen: set[tuple[int, int]] = set()
        unlisted: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unlisted.append):
            yield from _unlisted(unlisted, root)
            try:
                st = os.stat(dirpath)
            except OSError:
                dirnames[:] = []
                continue
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            # Real folders before linked ones, so a link into the tree is the one cut.
            dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")),
                                 key=lambda d: (os.path.islink(os.path.join(dirpath, d)), d))
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield from _candidate(os.path.join(dirpath, name), root)
        yield from _unlisted(unlisted, root)


def _unlisted(errors: list[OSError], root: str) -> Iterator[_Skip]:
    while errors:
        err = errors.pop(0)
        folder = os.fspath(err.filename or root)
        yield _Skip(as_text(folder), FileResult(
            as_text(os.path.relpath(folder, root)) + os.sep, "corrupt",
            f"cannot list this folder ({err.strerror}); its files were skipped and what is "
            "indexed from it is kept; check its permissions"), folder=True)


def _walk_uri(remote: objectstore.Remote) -> Iterator[_Candidate | _Skip]:
    for f in objectstore.files(remote):
        kind = kind_of(Path(f.rel))
        root = f.uri[: len(f.uri) - len(f.rel) - 1]
        yield _unsupported(f.rel, f.uri, f.rel) if kind is None else \
            _Candidate(f.path, f.uri, f.rel, root, kind, f.size, f.mtime, remote.fs)


def _unsupported(name: str, key: str, rel: str) -> _Skip:
    suffix = Path(name).suffix or "no extension"
    return _Skip(key, FileResult(rel, "unsupported", f"{suffix}: not a supported file type"))


def _candidate(path: str, root: str) -> Iterator[_Candidate | _Skip]:
    key, rel = as_text(path), as_text(os.path.relpath(path, root))
    kind = kind_of(Path(path))
    if kind is None:
        yield _unsupported(path, key, rel)
        return
    try:
        st = os.stat(path)
    except OSError as err:
        yield _Skip(key, _unstattable(path, rel, err))
        return
    if not stat_mod.S_ISREG(st.st_mode):
        yield _Skip(key, FileResult(rel, "unsupported", "not a regular file"))
        return
    yield _Candidate(path, key, rel, as_text(root), kind, st.st_size, st.st_mtime)


def _unstattable(path: str, rel: str, err: OSError) -> FileResult:
    if os.path.islink(path):  # os.walk lists a dangling or looping link as a file
        return FileResult(rel, "unsupported", f"a broken symbolic link ({err.strerror}); not indexed")
    if isinstance(err, FileNotFoundError):
        return FileResult(rel, "removed", "deleted while being indexed")
    return FileResult(rel, "corrupt", f"cannot read it ({err.strerror})")


# -- Ctrl-C ---------------------------------------------------------------------------------


class _Interrupts:
    """Ctrl-C stops the run between documents: while a document is written and reported it
    is held, so every document in the index is in the summary and none is half-written."""

    def __init__(self) -> None:
        self._holding = False
        self._pending = False
        self._previous: Callable[[int, FrameType | None], object] | int | None = None

    def __enter__(self) -> _Interrupts:
        # Signal handlers can only be set from the main thread; elsewhere (a server thread)
        # there is no Ctrl-C to handle. An ignored SIGINT (nohup) stays ignored.
        if threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._holding:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def held(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self._pending:
            raise KeyboardInterrupt


# -- the run --------------------------------------------------------------------------------


class Indexer:
    """One indexing run over an open, writable ``Store``."""

    def __init__(
        self,
        store: Store,
        *,
        passwords: Sequence[str] = (),
        workers: int | None = None,
        limits: Limits = Limits(),
        ocr: OcrOptions = OcrOptions(),
        progress: Callable[[FileResult], None] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.store = store
        self.ocr = ocr
        self._ocr_key = ""  # the run's ``docqa.ocr.key``, known once Tesseract is checked
        self.passwords = tuple(passwords)
        self.limits = limits
        self.executor: Executor = executor or LocalExecutor(workers, limits)
        self.progress = progress
        self.options = ExtractOptions(
            passwords=self.passwords,
            words=int(store.settings.get("passage_words", 120)),  # type: ignore[call-overload]
            overlap=int(store.settings.get("overlap_words", 30)),  # type: ignore[call-overload]
            ocr=ocr,
            timeout_s=limits.timeout_s,
        )
        self.files: list[FileResult] = []
        self._seen: set[str] = set()  # index keys of every path this run gave a status
        self._unlisted: list[str] = []  # folders that could not be listed
        self._interrupts = _Interrupts()

    def run(self, paths: Sequence[str | os.PathLike[str]]) -> IndexReport:
        paths = [objectstore.local_path(os.fspath(p)) or p for p in paths]
        # Each URI is opened and stat'ed once per run (a bad URI or no access fails here, before
        # any work); the walk and _remove_missing reuse it.
        given = [objectstore.open_uri(os.fspath(p)) if objectstore.is_uri(p) else p for p in paths]
        missing = [str(p) for p, g in zip(paths, given) if not _exists_given(g)]
        if missing:
            raise PathNotFound(f"no such file or folder: {', '.join(missing)}")
        if self.ocr.mode == "force" or (self.ocr.mode == "auto" and ocr.available()):
            ocr.check(self.ocr.lang)  # fail now with what to install, not on every scanned file
        self._ocr_key = ocr.key(self.ocr)
        interrupted = False
        try:
            with self._interrupts:
                self.store.merge_lazily()
                self._index(walk(given))
                self._remove_missing(given)
                if any(f.status in ("indexed", "updated", "removed") for f in self.files):
                    self.store.optimize()
        except KeyboardInterrupt:
            interrupted = True
        except sqlite3.Error as err:  # a read that failed (a write already maps its errors)
            raise index_error(self.store.path, err) from err
        self.store.name_documents()  # a new root may make two documents' paths look alike
        return report(str(self.store.path), self.files, interrupted=interrupted)

    # -- the pipeline ------------------------------------------------------------------------

    def _index(self, found: Iterator[_Candidate | _Skip]) -> None:
        # closing: stopped early (Ctrl-C, an error), the executor stops its workers at once.
        # _main_not_rerun: a worker may be (re)started at any time while the executor runs.
        with _main_not_rerun(), closing(self.executor.run(self._jobs(found))) as outcomes:
            for (c, sha, old), outcome in outcomes:
                self._finish(c, sha, old, outcome)

    def _jobs(self, found: Iterator[_Candidate | _Skip]) -> Iterator[tuple[_Job, ExtractTask]]:
        """The files to extract, planned lazily as the executor pulls them."""
        for item in found:
            if item.key in self._seen:  # reached twice (overlapping paths, linked folders)
                continue
            self._seen.add(item.key)
            if isinstance(item, _Skip):
                self._skip(item)
                continue
            planned = self._plan(item)
            if planned is not None:
                job, data = planned
                yield job, ExtractTask(item.path, self.options, data, item.fs if data is None else None)

    def _plan(self, c: _Candidate) -> tuple[_Job, bytes | None] | None:
        """Decide what to do with a found file: a job to extract (with the file's bytes when
        the executor ships them), or None when it is done."""
        old = self.store.document(c.key)
        if old is not None and old.size == c.size and old.mtime == c.mtime and not self._retry(old, c):
            self._report_unchanged(c, old)
            return None
        if c.size > self.limits.max_bytes:
            self._write_problem(c, "", "too-large", f"{_mb(c.size)} is over the {_mb(self.limits.max_bytes)} "
                                "size cap; raise it with --max-size (in MB)")
            return None
        keep = c.size <= self.executor.ship_bytes or (c.fs is not None and not self.executor.reads_uris)
        try:
            sha, data = read_and_hash(c.path, keep=keep, fs=c.fs)
        except FileNotFoundError:
            self._vanished(c, old)
            return None
        except OSError as err:
            reason = err.strerror or first_line(err, 200)
            self._write_problem(c, "", "corrupt", f"cannot read it ({reason}); check its permissions")
            return None
        if old is not None and old.sha256 == sha and not self._retry(old, c):
            with self._interrupts.held():
                self.store.touch(c.key, size=c.size, mtime=c.mtime)
                self._report_unchanged(c, old)
            return None
        twin = next((d for d in self.store.documents_with_sha(sha)
                     if d.abs_path != c.key and not self._outdated(d)), None)
        if twin is not None:
            # Moved, renamed or copied: same bytes, so reuse its pages and passages.
            row = self._row(c, sha, twin.kind, twin.page_count, "indexed", twin.message, twin.ocr)
            with self._interrupts.held():
                self.store.copy_document(twin.id, row)
                self._report_indexed(c, old, twin.page_count, self._passage_count(c.key), twin.message,
                                     self.store.ocr_page_count(c.key))
            return None
        return (c, sha, old), data

    def _retry(self, old: DocumentRow, c: _Candidate) -> bool:
        """An unchanged file that failed last time but may work now, or whose text depends on
        OCR settings or a version of docqa's extraction that changed."""
        if self._outdated(old):
            return True
        if old.status == "encrypted":
            return bool(self.passwords)
        if old.status == "timeout":  # the machine may have been busy, or --timeout was raised
            return True
        if old.status == "too-large" and not old.sha256:  # over the size cap: was it raised?
            return c.size <= self.limits.max_bytes
        return old.status == "corrupt" and not old.sha256  # unreadable: permissions may be fixed

    def _outdated(self, old: DocumentRow) -> bool:
        """This run would read the document differently: other OCR settings, or another version
        of docqa's extraction than the one that read it (an index built by an older docqa)."""
        return self._ocr_stale(old) or old.extractor != extraction_version(old.kind)

    def _ocr_stale(self, old: DocumentRow) -> bool:
        """The run's --ocr/--ocr-lang would read this document differently: a PDF whose pages
        needed OCR (or were all OCR'd) under other settings, or any PDF once --ocr is force;
        or a PDF whose OCR a time limit cut short, now under other limits."""
        if old.kind != "pdf" or old.status not in ("indexed", "updated", "empty"):
            return False
        if not old.ocr:
            return self.ocr.mode == "force"
        cut_short = self._ocr_key + ocr.PARTIAL + _limits_mark(self.limits.timeout_s, self.ocr)
        return old.ocr not in (self._ocr_key, cut_short)

    def _finish(self, c: _Candidate, sha: str, old: DocumentRow | None, outcome: _Outcome) -> None:
        status, message, pages, passages, ocr_pages, ocr_key = outcome
        if not (os.path.exists(c.path) if c.fs is None else objectstore.exists(c.fs, c.path)):
            self._vanished(c, old)
            return
        if status == "lost":  # unread by its worker, or no outcome came back: retried next run
            self._write_problem(c, "", "corrupt", message)
            return
        if status != "ok":
            self._write_problem(c, sha, status, message, ocr_key)
            return
        # The row keeps the stat taken before reading: if the file changed since, the next
        # run sees a different size or mtime and reads it again.
        row = self._row(c, sha, c.kind, len(pages), "indexed", message, ocr_key)
        with self._interrupts.held():
            self.store.put_document(row, pages, passages, ocr_pages=ocr_pages)
            self._report_indexed(c, old, len(pages), len(passages), message, len(ocr_pages))

    # -- bookkeeping -------------------------------------------------------------------------

    def _row(self, c: _Candidate, sha: str, kind: str, pages: int, status: str, message: str,
             ocr_key: str = "") -> DocumentRow:
        return DocumentRow(
            path=c.rel_path, abs_path=c.key, root=c.root, size=c.size, mtime=c.mtime,
            sha256=sha, kind=kind, page_count=pages, status=status, message=message, ocr=ocr_key,
            extractor=extraction_version(kind),
        )

    def _passage_count(self, key: str) -> int:
        return int(self.store.conn.execute(
            "SELECT count(*) FROM passages JOIN documents ON documents.id = passages.document_id "
            "WHERE documents.abs_path = ?", (key,)).fetchone()[0])

    def _skip(self, item: _Skip) -> None:
        if item.folder:
            self._unlisted.append(item.key)
            self._report(item.result)
            return
        if self.store.document(item.key) is not None:  # it was indexed; now it cannot be read
            with self._interrupts.held():
                self.store.remove([item.key])
                self._report(FileResult(item.result.path, "removed", item.result.message))
            return
        self._report(item.result)

    def _vanished(self, c: _Candidate, old: DocumentRow | None) -> None:
        with self._interrupts.held():
            if old is not None:
                self.store.remove([c.key])
            self._report(FileResult(c.rel_path, "removed", "deleted while being indexed"))

    def _report_indexed(self, c: _Candidate, old: DocumentRow | None, pages: int, passages: int,
                        message: str = "", ocr_pages: int = 0) -> None:
        # "updated" replaces text the index had; a file that failed before is newly "indexed".
        status = "updated" if old is not None and old.status in ("indexed", "updated") else "indexed"
        self._report(FileResult(c.rel_path, status, message, pages, passages, ocr_pages))

    def _report_unchanged(self, c: _Candidate, old: DocumentRow) -> None:
        if old.status in ("indexed", "updated"):
            self._report(FileResult(c.rel_path, "unchanged", old.message, old.page_count,
                                    self._passage_count(c.key), self.store.ocr_page_count(c.key)))
        else:  # still the same problem: say it again, so every run names its failures
            self._report(FileResult(c.rel_path, old.status, old.message))

    def _write_problem(self, c: _Candidate, sha: str, status: str, message: str, ocr_key: str = "") -> None:
        # A problem replaces any older version of the file: its text is no longer what's there.
        with self._interrupts.held():
            self.store.put_document(self._row(c, sha, c.kind, 0, status, message, ocr_key))
            self._report(FileResult(c.rel_path, status, message))

    def _remove_missing(self, paths: Sequence[str | os.PathLike[str] | objectstore.Remote]) -> None:
        for given in paths:
            if isinstance(given, objectstore.Remote):
                if given.kind != "folder":
                    continue
                under = given.uri
            else:
                top = Path(os.path.expanduser(os.fspath(given))).absolute()
                if not top.is_dir():
                    continue
                under = as_text(str(top))
            gone = [d for d in self.store.documents(under=under)
                    if d.abs_path not in self._seen and not self._under_unlisted(d.abs_path)]
            for doc in gone:
                with self._interrupts.held():
                    self.store.remove([doc.abs_path])
                    self._seen.add(doc.abs_path)
                    self._report(FileResult(doc.path, "removed", "file is gone"))

    def _under_unlisted(self, key: str) -> bool:
        return any(key == folder or key.startswith(folder.rstrip(os.sep) + os.sep)
                   for folder in self._unlisted)

    def _report(self, result: FileResult) -> None:
        self.files.append(result)
        if self.progress is not None:
            self.progress(result)


def _exists_given(path: str | os.PathLike[str] | objectstore.Remote) -> bool:
    if isinstance(path, objectstore.Remote):
        return path.kind is not None
    return os.path.exists(os.path.expanduser(os.fspath(path)))


def _mb(size: int) -> str:
    return f"{size / 2**20:.3g} MB"  # MiB, like --max-size


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            pass
    return f"exit code {exitcode}"


def report(index: str, files: Sequence[FileResult], *, interrupted: bool = False) -> IndexReport:
    """Counts are derived from the per-file statuses, so they always agree with ``files``;
    files are listed by path, so a report does not depend on which worker finished first."""
    statuses = [f.status for f in files]
    return IndexReport(
        index=index,
        added=statuses.count("indexed"),
        updated=statuses.count("updated"),
        unchanged=statuses.count("unchanged"),
        removed=statuses.count("removed"),
        failed=sum(s in PROBLEM_STATUSES and s != "unsupported" for s in statuses),
        skipped=statuses.count("unsupported"),
        files=tuple(sorted(files, key=lambda f: f.path)),
        interrupted=interrupted,
    )
