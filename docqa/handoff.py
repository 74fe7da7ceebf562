"""Hand-off: a shell ``docqa ask`` sends its question to a running ``docqa serve`` on the same
index and model, instead of importing torch and loading the model itself.

The server writes a record beside the index (``INDEX.serve.json``, mode 0600): its pid, port,
hostname and a random secret token. ``docqa ask`` uses it only when

- the record belongs to this user, is readable by no one else, names this machine and a live pid;
- the process on ``127.0.0.1:PORT`` proves it holds the token (HMAC of a fresh nonce: a port
  reused by another program, or another server, cannot answer);
- that server reports the same index (resolved path and file identity: a rebuilt index is
  another index) and the same answer settings (model, tokenizer, device, precision, answer
  length, retriever, threshold, widen, mu), and its model is loaded.

Only then is the question sent, to loopback only. Any mismatch or error means "answer locally";
a record whose pid is dead is removed. This module imports no torch, transformers or server
libraries: that is the point of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docqa.errors import BadQuestion
from docqa.types import Answer, AskResult, Citation, Hit, Timings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from docqa.api import DocQA

log = logging.getLogger(__name__)

RECORD_SUFFIX = ".serve.json"
HANDSHAKE_TIMEOUT_S = 2.0
# An answer may queue behind other clients' questions; past this, answer locally instead.
ASK_TIMEOUT_S = 300.0
_LOOPBACK = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "0.0.0.0": "127.0.0.1",
             "::1": "::1", "[::1]": "::1", "::": "::1", "[::]": "::1"}


def record_path(index_path: Path) -> Path:
    return Path(f"{index_path}{RECORD_SUFFIX}")


def index_identity(index_path: Path) -> dict[str, Any]:
    """The index as a server and a client must agree on it: the same resolved path and the same
    file (a deleted and rebuilt index at the same path is another file)."""
    resolved = Path(index_path).expanduser().resolve()
    st = os.stat(resolved)
    return {"path": str(resolved), "file": [st.st_dev, st.st_ino]}


def _model_name(name: str | None) -> str | None:
    path = Path(name).expanduser() if name else None
    return str(path.resolve()) if path is not None and path.is_dir() else name


def answer_settings(qa: DocQA, mu: float | None = None) -> dict[str, Any]:
    """Everything besides the question and the per-request options that decides the answers."""
    from docqa.rank import DEFAULT_MU
    from docqa.reader import DEFAULT_MODEL

    r = qa.reader_settings
    return {
        "model": _model_name(r["model"] or os.environ.get("DOCQA_MODEL") or DEFAULT_MODEL),
        "tokenizer": _model_name(r["tokenizer"]),
        "device": r["device"],
        "precision": r["precision"],
        "max_answer_len": r["max_answer_len"],
        "retriever": qa.retriever_name,
        "threshold": qa.threshold,
        "widen": qa.widen,
        "mu": DEFAULT_MU if mu is None else mu,
    }


def _proof(token: str, nonce: str) -> str:
    return hmac.new(token.encode(), nonce.encode(), hashlib.sha256).hexdigest()


# -- the server side -----------------------------------------------------------------------------


@contextmanager
def published(app: FastAPI, qa: DocQA, host: str, port: int) -> Iterator[Path | None]:
    """Add ``GET /handoff`` to ``app`` and write the record beside ``qa``'s index while serving;
    the record is removed on the way out (if it is still this server's). Yields its path, or
    None when there is none (a host loopback cannot reach, or an index folder not writable)."""
    token = secrets.token_hex(32)
    identity = index_identity(qa.index_path)
    settings = answer_settings(qa)
    _add_route(app, token, identity, settings)
    loopback = _LOOPBACK.get(host.lower())
    path = record_path(qa.index_path)
    record = {"pid": os.getpid(), "host": loopback, "port": port, "hostname": socket.gethostname(),
              "token": token}
    written = loopback is not None and port > 0 and _write_private(path, record)
    try:
        with _exit_on_sigterm():
            yield path if written else None
    finally:
        if written and _read_record(path).get("token") == token:  # a newer server may own it now
            path.unlink(missing_ok=True)


@contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """uvicorn shuts down on SIGTERM, then raises it again with the handler it found: make that
    handler a SystemExit, so ``finally`` blocks (removing the record) run."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _add_route(app: FastAPI, token: str, identity: dict[str, Any], settings: dict[str, Any]) -> None:
    from starlette.responses import JSONResponse

    batcher = app.state.batcher

    def handoff(request: Any) -> JSONResponse:  # a plain Starlette endpoint: no schema, no DI
        # Only for clients on this machine: the CLI hand-off never crosses the network.
        if request.client is None or request.client.host not in ("127.0.0.1", "::1"):
            return JSONResponse({"error": "Forbidden", "message": "loopback only"}, status_code=403)
        nonce = request.query_params.get("nonce", "")
        if not 16 <= len(nonce) <= 128:
            return JSONResponse({"error": "Bad Request", "message": "nonce: 16-128 characters"}, status_code=400)
        model = dict(batcher.model)
        return JSONResponse({"proof": _proof(token, nonce), "status": batcher.state, "index": identity,
                             "settings": settings,
                             "resolved": {"device": model.get("device"), "precision": model.get("precision")}})

    app.router.add_route("/handoff", handoff, methods=["GET"], include_in_schema=False)


def _write_private(path: Path, record: dict[str, Any]) -> bool:
    """Write ``record`` as JSON readable only by this user, atomically; False if it cannot be."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, path)
        return True
    except OSError as err:
        log.warning("docqa serve: cannot write %s (%s); `docqa ask` will not find this server",
                    path, err.strerror)
        tmp.unlink(missing_ok=True)
        return False


def _read_record(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# -- the client side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A verified server: same index, same settings, model loaded."""

    host: str
    port: int
    pid: int

    def ask(self, question: str, top_k: int, passages: int, paths: Sequence[str] | None) -> AskResult | None:
        """The server's answer, or None when it fails (then answer locally). A question the
        server refuses as bad raises ``BadQuestion`` with its message, as a local ask would."""
        body = {"question": question, "top_k": top_k, "passages": passages, "paths": list(paths) if paths else None}
        try:
            status, data = _request(self.host, self.port, "POST", "/ask", body, ASK_TIMEOUT_S)
        except (OSError, ValueError) as err:
            log.info("the server at %s:%d failed (%s); answering here", self.host, self.port, err)
            return None
        if status == 400 and isinstance(data.get("message"), str):
            raise BadQuestion(data["message"])
        if status != 200:
            log.info("the server at %s:%d answered %d (%s); answering here", self.host, self.port, status,
                     data.get("message"))
            return None
        try:
            return ask_result(data)
        except (KeyError, TypeError, ValueError) as err:
            log.info("the server's answer has another shape (%s); answering here", err)
            return None


def find_server(qa: DocQA, mu: float | None = None) -> Server | None:
    """The running server that answers exactly as ``qa`` would, or None (with the reason logged)."""
    path = record_path(qa.index_path)
    try:
        st = os.stat(path)
    except OSError:
        return None
    why = _unusable(path, st)
    if why:
        log.info("not using %s: %s", path, why)
        return None
    record = _read_record(path)
    try:
        pid, port, host = int(record["pid"]), int(record["port"]), str(record["host"])
        token, hostname = str(record["token"]), str(record["hostname"])
    except (KeyError, TypeError, ValueError):
        log.info("not using %s: not a docqa serve record", path)
        return None
    if host not in ("127.0.0.1", "::1") or hostname != socket.gethostname():
        log.info("not using %s: the server is not on this machine's loopback", path)
        return None
    if not _alive(pid):
        log.info("removing %s: its server (pid %d) is gone", path, pid)
        path.unlink(missing_ok=True)
        return None
    nonce = secrets.token_hex(16)
    try:
        status, hello = _request(host, port, "GET", f"/handoff?nonce={nonce}", None, HANDSHAKE_TIMEOUT_S)
    except (OSError, ValueError) as err:
        log.info("not using the server at %s:%d: %s", host, port, err)
        return None
    if status != 200 or not hmac.compare_digest(str(hello.get("proof", "")), _proof(token, nonce)):
        log.info("not using %s:%d: it is not the server that wrote %s", host, port, path)
        return None
    why = _mismatch(hello, qa, mu)
    if why:
        log.info("not using the server at %s:%d (pid %d): %s", host, port, pid, why)
        return None
    log.info("asking the server at %s:%d (pid %d)", host, port, pid)
    return Server(host, port, pid)


def _unusable(path: Path, st: os.stat_result) -> str:
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return "it belongs to another user"
    if st.st_mode & 0o077:
        return "others can read or change it"
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mismatch(hello: dict[str, Any], qa: DocQA, mu: float | None) -> str:
    if hello.get("status") not in ("ready", "loading"):  # a loading server: /ask waits for it
        return f"its model is {hello.get('status')}"
    try:
        if hello.get("index") != index_identity(qa.index_path):
            return "it serves another index"
    except OSError:
        return "this index does not exist"
    theirs, ours = hello.get("settings") or {}, answer_settings(qa, mu)
    resolved = hello.get("resolved") or {}
    for key, value in ours.items():
        # "--device cpu" here matches a server that resolved "auto" to cpu; "auto" needs "auto".
        if theirs.get(key) != value and not (key in resolved and resolved[key] == value):
            return f"its {key} is {theirs.get(key)!r}, not {value!r}"
    return ""


def _request(host: str, port: int, method: str, target: str, body: dict[str, Any] | None,
             timeout: float) -> tuple[int, dict[str, Any]]:
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Host": f"[{host}]:{port}" if ":" in host else f"{host}:{port}"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, target, body=payload, headers=headers)
        response = conn.getresponse()
        data = json.loads(response.read() or b"{}")
        return response.status, data if isinstance(data, dict) else {}
    finally:
        conn.close()


def ask_result(data: dict[str, Any]) -> AskResult:
    """An ``AskResult`` back from its ``dataclasses.asdict`` JSON."""
    def answer(a: dict[str, Any]) -> Answer:
        return Answer(**{**a, "citations": tuple(Citation(**c) for c in a["citations"])})

    return AskResult(question=data["question"], answers=tuple(answer(a) for a in data["answers"]),
                     timings=Timings(**data["timings"]), abstained=data["abstained"],
                     passages=tuple(Hit(**h) for h in data["passages"]), off_topic=data.get("off_topic", False))

