"""Helpers for the indexer and reliability tests: run ``docqa`` for real, check an index.

``check_index`` is the definition of "the index is valid" used after every hostile run, kill
and interruption: SQLite's own integrity check, the FTS index agreeing with the passages, and
no partial document (every indexed document has all its pages and passages; a problem
document has none).
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from docqa.cli import cli
from docqa.types import PAGE_BREAK

ROOT = Path(__file__).resolve().parent.parent
# One passage as stored: (ordinal, page, last_page, start, end, text).
PassageRow = tuple[int, int, int, int, int, str]


# What every file of ../shared/data/pdfs ends as, with no password given (see SOURCES.md).
SHARED_PDF_STATUS = {
    "encrypted/dmca.pdf": "indexed",  # empty user password: opens without prompting
    "encrypted/encrypted-file.pdf": "encrypted",
    "encrypted/libreoffice-writer-password.pdf": "encrypted",
    "encrypted/password-example.pdf": "encrypted",
    "encrypted/r2-user-password.pdf": "encrypted",
    "encrypted/r6-both-passwords.pdf": "encrypted",
    "encrypted/r6-owner-password.pdf": "indexed",
    "malformed/crazyones.truncated-6000B.pdf": "corrupt",
    "malformed/empty.pdf": "corrupt",
    "malformed/issue-1061.truncated-half.pdf": "corrupt",
    "malformed/malformed-from-issue-932.pdf": "indexed",
    "malformed/simple1.pdf": "corrupt",
    "malformed/zen_of_python_corrupted.pdf": "indexed",
    "multi_column/i1040nr.pdf": "indexed",
    "multi_column/issue-1061-colour-space-stack.pdf": "indexed",
    "multi_column/issue-982-example.pdf": "indexed",
    "multi_column/naacl06-shinyama.pdf": "indexed",
    "non_latin/issue-67-example.pdf": "indexed",
    "non_latin/jo.pdf": "indexed",
    "non_latin/multilang.pdf": "indexed",
    "scanned/175.pdf": "indexed",  # no text layer: read by OCR
    "scanned/Seige_of_Vicksburg_Sample_OCR.pdf": "indexed",
    "text/2023-06-20-PV.pdf": "indexed",
    "text/GeoBase_NHNC1_Data_Model_UML_EN.pdf": "indexed",
    "text/crazyones.expected.txt": "indexed",
    "text/crazyones.pdf": "indexed",
}

def docqa(*args: str | os.PathLike[str]) -> list[str]:
    """The command line of a real ``docqa`` process."""
    return [sys.executable, "-m", "docqa", *map(str, args)]


def run_docqa(*args: str | os.PathLike[str], timeout: float = 120,
              preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(docqa(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, preexec_fn=preexec_fn)


def invoke(*args: str | os.PathLike[str]) -> Result:
    """``docqa ARGS`` run in this process by click's runner (fast: no interpreter start, and
    the forkserver stays warm between runs); ``result.exception`` is any uncaught error."""
    return CliRunner().invoke(cli, [os.fspath(a) for a in args])


def invoke_json(*args: str | os.PathLike[str]) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


WORDS = ("river", "mountain", "harbour", "lantern", "orchard", "meadow", "granite", "willow",
         "compass", "thunder", "saddle", "copper", "falcon", "glacier", "bramble", "quarry")


def essay(seed: int, sentences: int = 300) -> str:
    """Sentences of exactly ten plain words: every essay of a length splits the same way."""
    rng = random.Random(seed)
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(10)).capitalize() + "."
                    for _ in range(sentences))


def connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def check_index(db: Path) -> None:
    """Assert the index at ``db`` is whole: integrity, FTS in sync, no partial document."""
    # FTS5's integrity-check is spelled as an INSERT, so it needs a writable connection.
    with sqlite3.connect(db, timeout=30) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        if not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            return  # killed before the schema's transaction committed: an empty, usable file
        # Raises sqlite3.DatabaseError ("database disk image is malformed") if the FTS index
        # and the passages table disagree.
        conn.execute("INSERT INTO passages_fts(passages_fts) VALUES('integrity-check')")
        fts = conn.execute("SELECT count(*) FROM passages_fts").fetchone()[0]
        assert fts == conn.execute("SELECT count(*) FROM passages").fetchone()[0]
        docs = conn.execute("SELECT id, path, status, page_count FROM documents").fetchall()
        for doc_id, path, status, page_count in docs:
            pages = [r[0] for r in conn.execute(
                "SELECT text FROM pages WHERE document_id = ? ORDER BY number", (doc_id,))]
            passages = passages_of(conn, doc_id)
            if status not in ("indexed", "updated"):
                assert (pages, passages) == ([], []), f"{path}: a {status} document holds text"
                continue
            assert len(pages) == page_count > 0, f"{path}: {len(pages)} of {page_count} pages"
            assert passages, f"{path}: indexed without passages"
            assert [p[0] for p in passages] == list(range(len(passages))), f"{path}: passages missing"
            text = PAGE_BREAK.join(pages)
            for _, _, _, start, end, passage in passages:
                assert text[start:end] == passage, f"{path}: passage offsets do not slice the text"
        orphans = conn.execute(
            "SELECT (SELECT count(*) FROM passages WHERE document_id NOT IN (SELECT id FROM documents))"
            " + (SELECT count(*) FROM pages WHERE document_id NOT IN (SELECT id FROM documents))"
        ).fetchone()[0]
        assert orphans == 0


def passages_of(conn: sqlite3.Connection, doc_id: int) -> list[PassageRow]:
    return conn.execute(
        'SELECT ordinal, page, last_page, start, "end", text FROM passages '
        "WHERE document_id = ? ORDER BY ordinal", (doc_id,)).fetchall()


def content(db: Path) -> dict[str, tuple[str, list[PassageRow]]]:
    """What the index says about each file: {path: (status, passages)}; {} before the schema."""
    with connect(db) as conn:
        if not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            return {}
        return {path: (status, passages_of(conn, doc_id))
                for doc_id, path, status in conn.execute("SELECT id, path, status FROM documents")}


def stored(db: Path) -> dict[str, tuple]:
    """Everything the index holds about each file but where it was found (absolute path, root,
    mtime) and ids: {path: (document, pages, passages)}."""
    with connect(db) as conn:
        return {d[0]: (d[1:-1], conn.execute("SELECT number, start, text FROM pages WHERE document_id = ? "
                                           "ORDER BY number", (d[-1],)).fetchall(), passages_of(conn, d[-1]))
                for d in conn.execute("SELECT path, size, sha256, kind, page_count, status, message, id "
                                      "FROM documents")}


def statuses(report: dict[str, object] | object) -> dict[str, str]:
    """{path: status} of an index report (``IndexReport`` or its JSON); each path once."""
    files = report["files"] if isinstance(report, dict) else report.files  # type: ignore[attr-defined]
    pairs = [(f["path"], f["status"]) if isinstance(f, dict) else (f.path, f.status) for f in files]
    result = dict(pairs)
    assert len(result) == len(pairs), "a file got more than one status"
    return result


def descendants(pid: int) -> set[int]:
    """The live processes below ``pid`` (its workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def wait_gone(pids: set[int], timeout: float = 10) -> set[int]:
    """The pids still alive (zombies count as gone) after waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if _alive(p)}
        time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def indexed_count(db: Path) -> int:
    """Documents committed so far (0 while the index does not exist yet)."""
    try:
        with connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
    except sqlite3.Error:
        return 0


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def unprivileged() -> Callable[[], None] | None:
    """A ``preexec_fn`` under which file permissions apply, or None when they already do.

    Tests run as root here and in CI, and root reads and writes anything. Dropping the two
    capabilities that bypass permissions from the child's bounding set makes it an ordinary
    owner-bound process (still uid 0, so it can run the interpreter under /root)."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
            if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    probe = subprocess.run([sys.executable, "-c", "pass"], preexec_fn=drop, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("running as root without CAP_SETPCAP: cannot make file permissions apply")
    return drop


def interrupt(proc: subprocess.Popen[str], group: bool) -> None:
    """Ctrl-C: to the whole process group (a terminal does that) or to the main process."""
    if group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
