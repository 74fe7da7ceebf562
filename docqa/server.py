"""``docqa serve``: a local HTTP API and web page that keep the reader model loaded.

One worker thread owns the ``DocQA`` that reads (torch is not happy with many threads calling
one model, and its SQLite connection must be used by one thread at a time). Questions that
arrive together wait a few milliseconds in a queue and go through one ``ask_batch`` call, so
concurrent clients share the reader's batched inference. Everything else (search, documents,
pages, health) uses a second read-only ``DocQA`` behind a lock, so it never waits on the model.

JSON shapes are ``dataclasses.asdict`` of the result dataclasses, as in the CLI's ``--json``.
Errors are ``{"error": <HTTP reason>, "message": <what to do>}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from docqa.api import DocQA, DocumentNotFound, document_json
from docqa.errors import BadIndex, BadQuestion, DocQAError, ModelError
from docqa.handoff import published
from docqa.store import DocumentRow
from docqa.types import AskResult, IndexInfo, SearchResult

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_QUESTION_CHARS = 2_000
MAX_BODY_BYTES = 64 * 1024  # a 2,000-character question JSON-escapes to at most ~24 KB
MAX_BATCH = 16
BATCH_WAIT_S = 0.005
MAX_PENDING = 256  # questions queued beyond this get 503 "busy" instead of waiting for minutes
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
# The page needs nothing from elsewhere (pdf.js is vendored; its worker is a same-origin module).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# Swagger UI's page starts itself with an inline script (its assets are local: fastapi-offline).
SWAGGER_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
# The original file's type by kind: text kinds (HTML included, so an indexed web page never
# runs script on this origin) as plain text; the office and e-book formats as themselves
# (browsers download them); anything else as bytes.
TEXT_TYPE = "text/plain; charset=utf-8"
FILE_TYPES = {
    "pdf": "application/pdf", "txt": TEXT_TYPE, "md": TEXT_TYPE, "html": TEXT_TYPE,
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "epub": "application/epub+zip",
}

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class Busy(DocQAError):
    """The question queue is full."""


class FileChanged(DocQAError):
    """The file on disk is no longer the one the index holds."""


# -- the batching worker ---------------------------------------------------------------------


@dataclass(frozen=True)
class AskOptions:
    """Questions are batched only with others asked with the same options."""

    top_k: int = 3
    passages: int = 10
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Job:
    question: str
    options: AskOptions
    future: Future[AskResult]


@dataclass
class BatchStats:
    batches: int = 0
    questions: int = 0
    largest: int = 0


class Batcher:
    """Loads the reader, then answers queued questions in batches from one thread."""

    def __init__(self, qa: DocQA, *, max_batch: int = MAX_BATCH, wait_s: float = BATCH_WAIT_S,
                 max_pending: int = MAX_PENDING) -> None:
        self.qa = qa
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.max_pending = max_pending
        self.state = "loading"  # -> "ready" | "failed"
        self.error = ""
        self.model: dict[str, str] = {}  # name, then device and precision once loaded
        self.stats = BatchStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="docqa-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def submit(self, question: str, options: AskOptions) -> Future[AskResult]:
        if self._queue.qsize() >= self.max_pending:
            raise Busy(f"{self.max_pending} questions are already waiting; try again in a moment")
        future: Future[AskResult] = Future()
        self._queue.put(_Job(question, options, future))
        return future

    def _run(self) -> None:
        self._load()
        while (jobs := self._collect()) is not None:
            groups: dict[AskOptions, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.options, []).append(job)
            for options, group in groups.items():
                self._answer(group, options)
        self._fail_pending(DocQAError("the server is shutting down"))

    def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            reader = self.qa.reader
            self.model["name"] = reader.model_name
            reader.load()
        except Exception as err:  # any failure: report it on /health and /ask, keep serving search
            self.error = str(err) if isinstance(err, DocQAError) else f"cannot load the reader model: {err!r}"
            self.state = "failed"
            log.error("docqa serve: %s", self.error)
            return
        self.model.update(device=reader.device, precision=reader.precision)
        self.state = "ready"
        log.info("docqa serve: reader model loaded in %.1f s", time.perf_counter() - t0)

    def _collect(self) -> list[_Job] | None:
        """The next batch: the first waiting job, plus whatever arrives within ``wait_s``."""
        first = self._queue.get()
        if first is None:
            return None
        jobs = [first]
        deadline = time.monotonic() + self.wait_s
        while len(jobs) < self.max_batch:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # answer this batch, then stop
                break
            jobs.append(job)
        return jobs

    def _answer(self, jobs: list[_Job], options: AskOptions) -> None:
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if not live:
            return
        if self.state == "failed":
            for job in live:
                job.future.set_exception(ModelError(self.error))
            return
        self.stats.batches += 1
        self.stats.questions += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        try:
            results = self._ask([j.question for j in live], options)
        except DocQAError as err:
            if len(live) == 1:
                live[0].future.set_exception(err)
                return
            # One bad question (e.g. nothing searchable) must not fail the others: ask one by one.
            for job in live:
                try:
                    job.future.set_result(self._ask([job.question], options)[0])
                except Exception as own:
                    job.future.set_exception(own)
            return
        except Exception as err:
            log.exception("docqa serve: ask_batch failed")
            for job in live:
                job.future.set_exception(err)
            return
        for job, result in zip(live, results):
            job.future.set_result(result)

    def _ask(self, questions: list[str], options: AskOptions) -> list[AskResult]:
        return self.qa.ask_batch(questions, top_k=options.top_k, passages=options.passages,
                                 paths=list(options.paths) or None)

    def _fail_pending(self, err: Exception) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(err)


# -- request and response models (for validation and the OpenAPI docs) ------------------------


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(max_length=MAX_QUESTION_CHARS, description="The question, in plain words.")
    top_k: int = Field(3, ge=1, le=20, description="Answers to return.")
    passages: int = Field(10, ge=1, le=50, description="Passages to read.")
    paths: list[Annotated[str, Field(max_length=1_000)]] | None = Field(
        None, max_length=20, description="Only documents whose path matches one of these globs.")


class DocumentOut(BaseModel):
    id: int
    path: str
    kind: str
    status: str
    message: str
    pages: int
    size: int
    indexed_at: str


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class PageOut(BaseModel):
    document_id: int
    path: str
    kind: str = Field(description='"pdf", "txt", "md" or "html"; a PDF page can be drawn from '
                                  "GET /documents/{document_id}/file.")
    page: int
    pages: int
    start: int = Field(description="Offset of the page's first character in the document text: "
                                   "a citation's `start - page.start` indexes into `text`.")
    text: str
    ocr: bool = Field(False, description="The text was read by OCR from a scanned page: it may hold "
                                         "recognition errors.")


class BatchingOut(BaseModel):
    max_batch: int
    batches: int
    questions: int
    largest: int


class HealthOut(BaseModel):
    status: str = Field(description='"loading" (the reader model is loading), "ready" or "failed".')
    message: str
    model: dict[str, str] = Field(description="The reader model's name, and its device and precision once loaded.")
    index: IndexInfo
    batching: BatchingOut


class ErrorOut(BaseModel):
    error: str
    message: str


# -- errors ------------------------------------------------------------------------------------


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": HTTPStatus(status).phrase, "message": message}, status_code=status)


def _status_of(err: DocQAError) -> int:
    if isinstance(err, BadQuestion):
        return 400
    if isinstance(err, DocumentNotFound):
        return 404
    if isinstance(err, FileChanged):
        return 409
    if isinstance(err, (ModelError, Busy, BadIndex)):
        return 503
    return 500


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DocQAError)
    async def docqa_error(_: Request, err: DocQAError) -> JSONResponse:
        return error_response(_status_of(err), str(err))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def crash(_: Request, err: Exception) -> JSONResponse:
        log.exception("docqa serve: unexpected error")
        return error_response(500, f"unexpected error ({type(err).__name__}); see the server log")


# -- host check, body cap and security headers ------------------------------------------------


def host_of(header: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``[::1]``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.split(":", 1)[0]


class Guard:
    """ASGI middleware: rejects other Host headers (DNS rebinding: a web page in the user's browser
    must not read their documents), caps request bodies, adds security headers."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str] | None, max_body: int) -> None:
        self.app = app
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}
        self.max_body = max_body

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.allowed_hosts is not None and host_of(headers.get("host", "")) not in self.allowed_hosts:
            port = (scope.get("server") or ("", 8000))[1]
            await error_response(400, f"unexpected Host header; open http://127.0.0.1:{port}/ "
                                      "(or start docqa serve with --host)")(scope, receive, send)
            return
        body = await self._read_body(headers, receive)
        if body is None:
            await error_response(413, f"the request is larger than {self.max_body // 1024} KB; "
                                      f"questions may have up to {MAX_QUESTION_CHARS} characters")(
                scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), _with_headers(send, scope["path"]))

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes | None:
        """The whole body, or None when it is bigger than allowed (read no further)."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return None
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return None
        return body


def _replay(body: bytes, receive: Receive) -> Receive:
    done = False

    async def replayed() -> MutableMapping[str, Any]:
        nonlocal done
        if done:
            return await receive()
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _with_headers(send: Send, path: str) -> Send:
    extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
    if path not in SWAGGER_PATHS:
        extra += [(b"content-security-policy", PAGE_CSP.encode()), (b"x-frame-options", b"DENY")]

    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = list(message.get("headers", [])) + extra
        await send(message)

    return sending


# -- the app -----------------------------------------------------------------------------------


def create_app(
    qa: DocQA,
    *,
    max_batch: int = MAX_BATCH,
    batch_wait_s: float = BATCH_WAIT_S,
    allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API and page over ``qa``'s index. ``qa`` answers questions from the worker thread only;
    the other endpoints read the index through their own read-only connection.
    ``allowed_hosts=None`` accepts any Host header (for a server exposed on purpose)."""
    batcher = Batcher(qa, max_batch=max_batch, wait_s=batch_wait_s)
    reads = DocQA(qa.index_path, retriever=qa.retriever_name)
    lock = threading.Lock()  # one thread at a time on the `reads` SQLite connection

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await asyncio.to_thread(batcher.close)
            reads.close()

    app = FastAPIOffline(
        title="docqa",
        summary="Ask questions of the indexed documents; answers cite file, page and characters.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    _install_error_handlers(app)
    _add_routes(app, batcher, reads, lock)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Added last, so it runs first: bad hosts and big bodies never reach the app.
    app.add_middleware(Guard, allowed_hosts=allowed_hosts, max_body=max_body)  # type: ignore[arg-type]
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("docqa")
    except PackageNotFoundError:
        return "0"


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": HTTPStatus(code).phrase} for code in (400, 404, 409, 413, 422, 503)
}


class Originals:
    """Checks that an indexed document's file on disk is still the one indexed.

    Same size and mtime: the same file (the indexer's own rule). Same size but another mtime:
    its sha256 decides, remembered per (path, size, mtime) so the range requests of one PDF
    view hash it once."""

    def __init__(self) -> None:
        self._hashes: dict[tuple[str, int, float], str] = {}
        self._lock = threading.Lock()

    def check(self, doc: DocumentRow) -> Path:
        """The file's path, or ``FileChanged`` saying what changed and what to do."""
        from docqa.indexer import sha256_of

        path = Path(doc.abs_path)
        redo = f"re-run `docqa index` on {doc.root} to index what is there now"
        try:
            st = path.stat()
        except OSError:
            raise FileChanged(f"{doc.path} is no longer on disk; {redo}") from None
        if st.st_size == doc.size and st.st_mtime == doc.mtime:
            return path
        if st.st_size == doc.size:
            key = (doc.abs_path, st.st_size, st.st_mtime)
            with self._lock:
                sha = self._hashes.get(key)
            if sha is None:
                sha = sha256_of(str(path))
                with self._lock:
                    if len(self._hashes) > 1024:
                        self._hashes.clear()
                    self._hashes[key] = sha
            if sha == doc.sha256:
                return path
        raise FileChanged(f"{doc.path} has changed on disk since it was indexed; {redo}")


def _add_routes(app: FastAPI, batcher: Batcher, reads: DocQA, lock: threading.Lock) -> None:
    originals = Originals()

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.post("/ask", response_model=AskResult, responses=ERRORS)
    async def ask(request: AskRequest) -> JSONResponse:
        """Answer a question with cited spans (the JSON of `docqa ask --json`). Questions asked
        while the model loads wait for it; see `/health`."""
        options = AskOptions(request.top_k, request.passages, tuple(request.paths or ()))
        result = await asyncio.wrap_future(batcher.submit(request.question, options))
        return JSONResponse(dataclasses.asdict(result))

    @app.get("/search", response_model=SearchResult, responses=ERRORS)
    def search(
        q: Annotated[str, Query(max_length=MAX_QUESTION_CHARS, description="The question or keywords.")],
        k: Annotated[int, Query(ge=1, le=100, description="Passages to return.")] = 10,
        path: Annotated[list[str] | None, Query(max_length=20, description="Path globs (repeatable).")] = None,
    ) -> JSONResponse:
        """The passages that best match `q` (BM25; the JSON of `docqa search --json`)."""
        with lock:
            result = reads.search(q, k=k, paths=path or None)
        return JSONResponse(dataclasses.asdict(result))

    @app.get("/documents", response_model=DocumentsOut)
    def documents() -> DocumentsOut:
        """Every indexed file, problem files included (see `status` and `message`)."""
        with lock:
            rows = list(reads.store.documents())
        return DocumentsOut(documents=[DocumentOut(**document_json(d)) for d in rows])  # type: ignore[arg-type]

    @app.get("/documents/{document_id}/pages/{number}", response_model=PageOut, responses=ERRORS)
    def document_page(document_id: int, number: int) -> JSONResponse:
        """One page's text as stored in the index, with its offset in the document text."""
        with lock:
            page = reads.read_page(document_id, number)
        return JSONResponse(dataclasses.asdict(page))

    @app.get("/documents/{document_id}/file", response_class=FileResponse,
             responses={**ERRORS, 200: {"description": "The file's bytes (Range requests work)."}})
    def document_file(document_id: int) -> FileResponse:
        """The original file of an indexed document, inline (PDFs as `application/pdf`, text,
        Markdown and HTML as plain text). 409 when the file on disk is no longer the one indexed."""
        with lock:
            doc = reads.store.document_by_id(document_id)
        if doc is None:
            raise DocumentNotFound(f"no document {document_id} in the index; see GET /documents")
        if doc.status not in ("indexed", "updated"):
            raise DocumentNotFound(f"{doc.path} is not indexed ({doc.status}: {doc.message})")
        path = originals.check(doc)
        return FileResponse(path, media_type=FILE_TYPES.get(doc.kind, "application/octet-stream"),
                            filename=Path(doc.path).name, content_disposition_type="inline")

    @app.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
    def health() -> JSONResponse:
        """Whether the reader model is loaded, still loading or failed, and the index's counts."""
        with lock:
            info = reads.info()
        messages = {"loading": "loading the reader model; questions wait until it is ready",
                    "ready": "ready", "failed": batcher.error}
        s = batcher.stats
        body = {
            "status": batcher.state,
            "message": messages[batcher.state],
            "model": dict(batcher.model),
            "index": dataclasses.asdict(info),
            "batching": {"max_batch": batcher.max_batch, "batches": s.batches,
                         "questions": s.questions, "largest": s.largest},
        }
        return JSONResponse(body, status_code=503 if batcher.state == "failed" else 200)


# -- running -----------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """A loud warning when ``host`` lets other machines in, else None."""
    if is_loopback(host):
        return None
    where = "every network interface" if host in ("0.0.0.0", "::", "[::]") else host
    return (
        f"WARNING: docqa serve is listening on {where}: anyone who can reach this machine can "
        "read every indexed document, with no password. Use --host 127.0.0.1 unless you mean it."
    )


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a background thread (for tests, benchmarks, notebooks); yields its URL.
    ``port=0`` picks a free port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="docqa-http", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread died while starting; see the log above")
            time.sleep(0.01)
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve(qa: DocQA, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info") -> None:
    """Run the server until interrupted (Ctrl-C)."""
    import uvicorn

    warning = exposure_warning(host)
    if warning:
        print("\n" + "!" * 80 + f"\n{warning}\n" + "!" * 80 + "\n", file=sys.stderr, flush=True)
    logging.getLogger("docqa").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s:     %(message)s")
    app = create_app(qa, allowed_hosts=None if warning else (*LOOPBACK_HOSTS, host.lower()))
    shown = f"[{host}]" if ":" in host else host
    print(f"docqa: open http://{shown}:{port}/ (API docs at /docs); the model loads in the background",
          file=sys.stderr, flush=True)
    with published(app, qa, host, port):  # `docqa ask` on this index hands its questions over
        uvicorn.run(app, host=host.strip("[]"), port=port, log_level=log_level, timeout_graceful_shutdown=5)
