"""docqa never crashes, hangs, corrupts the index or loses work (issue 7).

Hostile files, a hostile file system, damaged indexes, hostile questions, kill -9, Ctrl-C and
concurrent use, all with real parts: generated hostile files, real ``docqa`` processes and
signals, real SQLite files. ``indexcheck.check_index`` is what "the index is valid" means.
The long loops are marked slow (``--runslow``); a short version of each is always on.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hostile
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from indexcheck import (
    check_index,
    content,
    descendants,
    docqa,
    essay,
    indexed_count,
    interrupt,
    invoke,
    invoke_json,
    run_docqa,
    statuses,
    unprivileged,
    wait_for,
    wait_gone,
)
from pdfgen import write_pdf

from docqa.api import DocQA
from docqa.errors import BadQuestion
from docqa.types import AskResult, Limits

# pytest's record_property: the figures quoted in docs/RELIABILITY.md (see --junitxml).
Record = Callable[[str, object], None]


# -- a corpus whose indexing takes a few seconds (for kills, Ctrl-C and concurrency) ----------


def write_corpus(folder: Path, version: str = "a") -> None:
    """30 essays and 2 PDFs; in version "b" the first 10 essays have other words."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(30):
        seed = n + (1000 if version == "b" and n < 10 else 0)
        (folder / f"essay-{n:02}.txt").write_text(essay(seed), encoding="utf-8")
    for n in range(2):
        write_pdf(folder / f"report-{n}.pdf", [essay(500 + 10 * n + p, 30) for p in range(8)])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The corpus in version "a", and what an uninterrupted run makes of versions a and b."""
    root = tmp_path_factory.mktemp("corpus")
    references = {}
    for version in ("b", "a"):
        write_corpus(root / "docs", version)
        index = root / f"reference-{version}.db"
        with DocQA(index) as qa:
            qa.index([root / "docs"])
        references[version] = content(index)
    started = time.monotonic()
    assert run_docqa("index", root / "docs", "-i", root / "timed.db", "-q").returncode == 0
    return {"folder": root / "docs", "a": references["a"], "b": references["b"],
            "seconds": time.monotonic() - started}


# -- hostile inputs in one run --------------------------------------------------------------

HOSTILE_STATUS = {
    "pdf/random-bytes.pdf": "corrupt",
    "pdf/3000-pages.pdf": "indexed",
    "pdf/nested-100000-deep.pdf": "corrupt",
    "pdf/page-tree-cycle.pdf": "corrupt",
    "pdf/self-drawing-xobject.pdf": "indexed",
    "pdf/over-size-cap.pdf": "too-large",
    "txt/latin-1.txt": "indexed",
    "txt/nul-bytes.txt": "indexed",
    "txt/mostly-nul.txt": "unsupported",
    "txt/one-8mb-line.txt": "indexed",
    "txt/utf-16-bom.txt": "indexed",
    "txt/utf-16-no-bom.txt": "indexed",
    "txt/empty.txt": "empty",
    "html/huge-script.html": "indexed",
}


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    pdf, txt, html = root / "pdf", root / "txt", root / "html"
    hostile.write(pdf / "random-bytes.pdf", hostile.random_bytes(100_000))
    hostile.write(pdf / "3000-pages.pdf", hostile.many_pages_pdf(3000))
    hostile.write(pdf / "nested-100000-deep.pdf", hostile.nested_pdf(100_000))
    hostile.write(pdf / "page-tree-cycle.pdf", hostile.cyclic_pdf())
    hostile.write(pdf / "self-drawing-xobject.pdf", hostile.self_drawing_pdf())
    hostile.sparse_file(pdf / "over-size-cap.pdf", 250 << 20)
    hostile.write(txt / "latin-1.txt", "Crème brûlée in a café, naïvely. ".encode("latin-1") * 50)
    hostile.write(txt / "nul-bytes.txt", b"A stray\x00 null byte in an otherwise plain line of text. " * 50)
    hostile.write(txt / "mostly-nul.txt", b"\x00\x00\x00x" * 5000)
    line = b"alpha beta gamma delta epsilon zeta eta theta iota kappa "
    hostile.write(txt / "one-8mb-line.txt", line * (8_000_000 // len(line)))
    hostile.write(txt / "utf-16-bom.txt", "Sixteen-bit text with a byte order mark.".encode("utf-16"))
    hostile.write(txt / "utf-16-no-bom.txt", "Sixteen-bit text without a mark.".encode("utf-16-le"))
    hostile.write(txt / "empty.txt", b"")
    script = b"var trap = '<p>not visible</p>';\n" * 600_000  # 20 MB of script
    hostile.write(html / "huge-script.html", b"<html><body><p>Visible words about lighthouses.</p>"
                  b"<script>" + script + b"</script><p>More visible text.</p></body></html>")
    return root


def test_hostile_files_in_one_run(hostile_folder: Path, tmp_path: Path) -> None:
    # The shared PDFs get the same treatment in test_indexer.py.
    index = tmp_path / "all.db"
    report = invoke_json("index", hostile_folder, "-i", index, "-q")  # exit 0: failures are statuses
    assert statuses(report) == HOSTILE_STATUS
    by_path = {f["path"]: f for f in report["files"]}
    for f in report["files"]:
        if f["status"] not in ("indexed", "unchanged"):
            assert f["message"] and "\n" not in f["message"], f
    assert by_path["pdf/3000-pages.pdf"]["pages"] == 3000
    assert by_path["pdf/over-size-cap.pdf"]["message"] == (
        "250 MB is over the 200 MB size cap; raise it with --max-size (in MB)")
    assert by_path["txt/mostly-nul.txt"]["message"] == "binary content, not text; not indexed"
    check_index(index)
    stored = {path: " ".join(p[5] for p in passages) for path, (_, passages) in content(index).items()}
    assert "in a caf" in stored["txt/latin-1.txt"]  # which 8-bit charset is the extractor's guess
    assert "A stray null byte in an otherwise plain line of text." in stored["txt/nul-bytes.txt"]
    assert stored["txt/utf-16-bom.txt"] == "Sixteen-bit text with a byte order mark."
    assert stored["txt/utf-16-no-bom.txt"] == "Sixteen-bit text without a mark."
    assert "lighthouses" in stored["html/huge-script.html"] and "trap" not in stored["html/huge-script.html"]
    again = invoke_json("index", hostile_folder, "-i", index, "-q")
    assert statuses(again) == {p: "unchanged" if s == "indexed" else s for p, s in HOSTILE_STATUS.items()}


def test_timeout_stops_an_endless_extraction(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    hostile.write(folder / "slow.pdf", hostile.slow_pdf(pages=4))  # ~60 s of pure-Python parsing
    (folder / "ok.txt").write_text("Quick words about quokkas.", encoding="utf-8")
    index = tmp_path / "i.db"
    started = time.monotonic()
    proc = subprocess.Popen(docqa("index", folder, "-i", index, "--json", "-q", "--timeout", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = _workers_of(proc)
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert statuses(report) == {"slow.pdf": "timeout", "ok.txt": "indexed"}
    assert report["files"][1]["message"] == ("extraction took over 1 s and was stopped; it is tried "
                                             "again next run; raise --timeout if the file is just big")
    assert elapsed < 30  # 1 s, then SIGTERM (SIGKILL 3 s later if stuck in C): not the ~60 s parse
    assert wait_gone(workers) == set()
    again = invoke_json("index", folder, "-i", index, "-q", "--timeout", "1")
    assert statuses(again) == {"slow.pdf": "timeout", "ok.txt": "unchanged"}  # tried again
    check_index(index)


def _workers_of(proc: subprocess.Popen[str]) -> set[int]:
    """The worker processes of a running ``docqa index`` (once they exist)."""
    found: set[int] = set()

    def started() -> bool:
        found.update(descendants(proc.pid))
        return len(found) >= 2 or proc.poll() is not None

    wait_for(started, what="worker processes")
    return found


def test_memory_cap_turns_a_decompression_bomb_into_a_status(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    hostile.write(folder / "bomb.pdf", hostile.bomb_pdf(pages=10))  # inflates to 700 MB
    (folder / "ok.txt").write_text("Calm words about clouds.", encoding="utf-8")
    with DocQA(tmp_path / "i.db") as qa:
        report = qa.index([folder], limits=Limits(memory_bytes=300 << 20))
    assert statuses(report) == {"bomb.pdf": "too-large", "ok.txt": "indexed"}
    assert report.files[0].message == ("extraction needed more memory than the per-file cap (a "
                                       "decompression bomb or a huge page); docqa skipped it")
    check_index(tmp_path / "i.db")


@pytest.mark.slow
def test_full_size_bomb_and_50mb_line_with_default_limits(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    hostile.write(folder / "bomb.pdf", hostile.bomb_pdf())  # 60 x 70 MB = 4.2 GB inflated
    line = b"alpha beta gamma delta epsilon zeta eta theta iota kappa "
    hostile.write(folder / "line.txt", line * (50_000_000 // len(line)))
    proc = run_docqa("index", folder, "-i", tmp_path / "i.db", "--json", "-q", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert statuses(json.loads(proc.stdout)) == {"bomb.pdf": "too-large", "line.txt": "indexed"}
    check_index(tmp_path / "i.db")


# -- the file system ------------------------------------------------------------------------


def test_unreadable_files_and_folders_are_named_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "locked").mkdir(parents=True)
    (folder / "ok.txt").write_text("Open words about owls.", encoding="utf-8")
    (folder / "secret.txt").write_text("Secret words about seals.", encoding="utf-8")
    (folder / "locked" / "inner.txt").write_text("Inner words about ibises.", encoding="utf-8")
    index = tmp_path / "i.db"
    invoke_json("index", folder, "-i", index, "-q")
    before = content(index)
    (folder / "secret.txt").write_text("Secret words, changed, about sea lions.", encoding="utf-8")
    (folder / "secret.txt").chmod(0)
    (folder / "locked").chmod(0)
    try:
        proc = run_docqa("index", folder, "-i", index, "--json", "-q", preexec_fn=unprivileged())
    finally:
        (folder / "secret.txt").chmod(0o644)
        (folder / "locked").chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert statuses(report) == {"ok.txt": "unchanged", "secret.txt": "corrupt", "locked/": "corrupt"}
    messages = {f["path"]: f["message"] for f in report["files"]}
    assert messages["secret.txt"] == "cannot read it (Permission denied); check its permissions"
    assert messages["locked/"] == ("cannot list this folder (Permission denied); its files were skipped "
                                   "and what is indexed from it is kept; check its permissions")
    assert content(index)["locked/inner.txt"] == before["locked/inner.txt"]  # not lost
    fixed = invoke_json("index", folder, "-i", index, "-q")
    assert statuses(fixed) == {"ok.txt": "unchanged", "secret.txt": "indexed", "locked/inner.txt": "unchanged"}
    check_index(index)


def test_files_deleted_or_rewritten_while_being_indexed(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    names = [f"f{n:02}.txt" for n in range(30)]
    for n, name in enumerate(names):
        (folder / name).write_text(essay(n, 40), encoding="utf-8")
    # With 2 workers, 4 files are in flight: at the first status f01-f03 are queued, being read
    # or (on a busy machine) read already; f10 and later are not walked yet. Both stages lose
    # files and get rewritten ones.
    in_flight = names[1:3]
    deleted, rewritten = in_flight + names[10:20], names[3:4] + names[20:]

    def meddle(_: object) -> None:
        if (folder / deleted[0]).exists():
            for name in deleted:
                (folder / name).unlink()
            for n, name in enumerate(rewritten):
                (folder / name).write_text(essay(100 + n, 60), encoding="utf-8")

    index = tmp_path / "i.db"
    with DocQA(index) as qa:
        report = qa.index([folder], workers=2, progress=meddle)
        got = statuses(report)
        # A file read before it was deleted is indexed as read; the next run removes it.
        assert {got[n] for n in deleted if n not in in_flight} == {"removed"}
        assert {got[n] for n in in_flight} <= {"removed", "indexed"}
        assert {got[n] for n in names if n not in deleted} == {"indexed"}
        check_index(index)
        assert not (set(deleted) - {n for n in in_flight if got[n] == "indexed"}) & set(content(index))
        qa.index([folder])  # f01-f03 may have been read before they changed: this run fixes them
        assert not set(deleted) & set(content(index))
    fresh = tmp_path / "fresh.db"
    with DocQA(fresh) as qa:
        qa.index([folder])
    assert content(index) == content(fresh)


def test_symlink_loops_and_broken_links(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "ok.txt").write_text("Steady words about storks.", encoding="utf-8")
    (folder / "a" / "b" / "deep.txt").write_text("Deep words about dolphins.", encoding="utf-8")
    (folder / "a" / "b" / "up").symlink_to(folder)  # a folder loop
    (folder / "loop").symlink_to("loop")  # a link to itself
    (folder / "self.pdf").symlink_to("self.pdf")
    (folder / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    report = invoke_json("index", folder, "-i", tmp_path / "i.db", "-q")
    assert statuses(report) == {"ok.txt": "indexed", "a/b/deep.txt": "indexed", "loop": "unsupported",
                                "self.pdf": "unsupported", "dangling.txt": "unsupported"}
    messages = {f["path"]: f["message"] for f in report["files"]}
    assert messages["self.pdf"] == "a broken symbolic link (Too many levels of symbolic links); not indexed"
    assert messages["dangling.txt"] == "a broken symbolic link (No such file or directory); not indexed"


def test_non_utf8_file_names(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    raw = os.fsencode(folder)
    with open(raw + b"/caf\xe9.txt", "wb") as f:
        f.write(b"Words about espresso in a Latin-1 named file.")
    with open(raw + b"/\xff\xfe notes.md", "wb") as f:
        f.write(b"# Notes\n\nWords about marmots.")
    index = tmp_path / "i.db"
    first = invoke_json("index", folder, "-i", index, "-q")
    assert statuses(first) == {"caf\\xe9.txt": "indexed", "\\xff\\xfe notes.md": "indexed"}
    second = invoke_json("index", folder, "-i", index, "-q")
    assert statuses(second) == {"caf\\xe9.txt": "unchanged", "\\xff\\xfe notes.md": "unchanged"}
    assert invoke_json("search", "espresso", "-i", index)["hits"][0]["path"] == "caf\\xe9.txt"
    os.unlink(raw + b"/caf\xe9.txt")
    third = invoke_json("index", folder, "-i", index, "-q")
    assert statuses(third) == {"caf\\xe9.txt": "removed", "\\xff\\xfe notes.md": "unchanged"}


def _make_deep(base: Path, levels: int, name_len: int = 200) -> bytes:
    """Folders ``levels`` deep (names of ``name_len`` chars) with a file at the bottom, made
    relative to open folders so paths longer than PATH_MAX can exist; returns the relative path."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    rel = b""
    try:
        for level in range(levels):
            name = f"{level:03}".ljust(name_len, "d")
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            rel += name.encode() + b"/"
        leaf = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"Words at the bottom of a very deep folder.")
        os.close(leaf)
    finally:
        os.close(fd)
    return rel + b"deep.txt"


def test_very_long_paths(tmp_path: Path) -> None:
    long_ok, too_long = tmp_path / "long", tmp_path / "too-long"
    long_ok.mkdir()
    too_long.mkdir()
    _make_deep(long_ok, 17)  # about 3,500 characters: long but usable
    _make_deep(too_long, 24)  # over PATH_MAX (4,096): the kernel refuses the path
    files = invoke_json("index", long_ok, too_long, "-i", tmp_path / "i.db", "-q")["files"]
    assert [f["status"] for f in files if f["path"].endswith("deep.txt")] == ["indexed"]
    problems = [f for f in files if f["status"] != "indexed"]
    assert len(problems) == 1 and problems[0]["status"] == "corrupt"
    assert problems[0]["message"].startswith("cannot list this folder (File name too long)")
    check_index(tmp_path / "i.db")


def _index_many_small_files(tmp_path: Path, count: int) -> tuple[float, int]:
    folder = tmp_path / "many"
    for n in range(count):
        sub = folder / f"d{n // 1000:03}"
        if n % 1000 == 0:
            sub.mkdir(parents=True)
        (sub / f"note-{n}.txt").write_text(f"Note {n} says the crate number {n} left port.", encoding="utf-8")
    # Peak memory of the docqa process tree, read by a wrapper so nothing else is counted.
    measure = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
               "sys.exit(r.returncode)")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", measure, *docqa("index", folder, "-i", tmp_path / "i.db", "-q")],
                          capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{count} added, 0 updated, 0 unchanged, 0 removed, 0 failed")
    rss_mb = int(proc.stderr.strip().splitlines()[-1]) // 1024
    unchanged = run_docqa("index", folder, "-i", tmp_path / "i.db", "-q", timeout=600)
    assert unchanged.stdout.startswith(f"0 added, 0 updated, {count} unchanged")
    return elapsed, rss_mb


def test_5000_small_files_stream(tmp_path: Path, record_property: Record) -> None:
    elapsed, rss_mb = _index_many_small_files(tmp_path, 5000)
    record_property("seconds_and_peak_mb", (round(elapsed, 1), rss_mb))
    assert elapsed < 90 and rss_mb < 250, (elapsed, rss_mb)


@pytest.mark.slow
def test_50000_small_files_stream(tmp_path: Path, record_property: Record) -> None:
    elapsed, rss_mb = _index_many_small_files(tmp_path, 50_000)
    record_property("seconds_and_peak_mb", (round(elapsed, 1), rss_mb))
    assert elapsed < 600 and rss_mb < 300, (elapsed, rss_mb)


# -- the index file -------------------------------------------------------------------------


def _small_index(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    for n in range(3):
        (folder / f"n{n}.txt").write_text(essay(n, 60), encoding="utf-8")
    index = tmp_path / "small.db"
    with DocQA(index) as qa:
        qa.index([folder])
    return index


def _damage(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.db"
    if kind == "garbage":
        path.write_bytes(hostile.random_bytes(50_000))
    elif kind == "truncated":
        data = _small_index(tmp_path).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "scribbled":  # the documents table's pages overwritten, the rest intact
        source = _small_index(tmp_path)
        with sqlite3.connect(source) as conn:
            size = conn.execute("PRAGMA page_size").fetchone()[0]
            pages = [r[0] for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'documents'")]
        conn.close()
        data = bytearray(source.read_bytes())
        for page in pages:
            offset = (page - 1) * size
            data[offset : offset + 200] = hostile.random_bytes(200, seed=page)
        path.write_bytes(bytes(data))
    else:  # a SQLite database that is not docqa's
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
            conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
        conn.close()
    return path


@pytest.mark.parametrize("kind", ["garbage", "truncated", "scribbled", "foreign"])
def test_damaged_or_foreign_index_is_one_clear_line(kind: str, tmp_path: Path) -> None:
    index = _damage(kind, tmp_path)
    before = index.read_bytes()
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "x.txt").write_text("Extra words about egrets.", encoding="utf-8")
    for args in (["index", folder], ["search", "river"], ["info"]):
        result = invoke(*args, "-i", index)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (args, result.output)
        assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1, result.stderr
        if kind == "foreign":
            assert "not a docqa index" in result.stderr
        else:
            assert "delete it and re-run `docqa index`" in result.stderr or "rebuild it" in result.stderr
    if kind == "foreign":
        assert index.read_bytes() == before  # docqa never touches someone else's database


def test_read_only_index_still_answers(tmp_path: Path, tiny_model_dir: Path) -> None:
    index = _small_index(tmp_path)
    before = index.read_bytes()
    index.chmod(0o444)
    tmp_path.chmod(0o555)  # no -wal or -shm can be created beside it either
    try:
        as_user = unprivileged()
        found = run_docqa("search", "river", "-i", index, "--json", preexec_fn=as_user)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["hits"]
        info = run_docqa("info", "-i", index, "--json", preexec_fn=as_user)
        assert info.returncode == 0 and json.loads(info.stdout)["documents"] == 3
        asked = run_docqa("ask", "Which river?", "-i", index, "--json", "--model", tiny_model_dir,
                          preexec_fn=as_user)
        assert asked.returncode == 0, asked.stderr
        assert json.loads(asked.stdout)["question"] == "Which river?"
        refused = run_docqa("index", tmp_path / "docs", "-i", index, preexec_fn=as_user)
        assert refused.returncode == 1
        assert refused.stderr.startswith("Error: ") and len(refused.stderr.strip().splitlines()) == 1
        assert "Traceback" not in refused.stderr
    finally:
        tmp_path.chmod(0o755)
        index.chmod(0o644)
    assert index.read_bytes() == before


def _limit_file_size(limit: int):
    def apply() -> None:
        # A write past the limit then fails with EFBIG instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.fixture(params=["file-size-limit", "full-tmpfs"])
def small_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, object]]:
    """Where the index lives and how the indexer is confined: RLIMIT_FSIZE (works anywhere)
    or a real 2 MB filesystem (needs root with CAP_SYS_ADMIN)."""
    if request.param == "file-size-limit":
        yield tmp_path / "i.db", lambda index: _limit_file_size(index.stat().st_size + (512 << 10))
        return
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        yield mount / "i.db", lambda index: None
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_mid_run_keeps_the_index_as_it_was(small_disk: tuple[Path, object], tmp_path: Path) -> None:
    index, confine = small_disk
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(3):
        (folder / f"small-{n}.txt").write_text(essay(n, 50), encoding="utf-8")
    invoke_json("index", folder, "-i", index, "-q")
    before = content(index)
    (folder / "big.txt").write_text(essay(99, 15_000), encoding="utf-8")  # 1 MB of text, 3 MB indexed
    (folder / "small-0.txt").write_text(essay(50, 50), encoding="utf-8")
    proc = run_docqa("index", folder, "-i", index, "-q", preexec_fn=confine(index))  # type: ignore[operator]
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"Error: cannot write {index} (")
    assert proc.stderr.rstrip().endswith("the disk is full or failing; free some space and re-run "
                                         "(everything indexed before this document is kept)")
    check_index(index)
    after = content(index)
    assert "big.txt" not in after
    del after["small-0.txt"], before["small-0.txt"]  # either version is whole (checked above)
    assert after == before
    moved = tmp_path / "moved.db"  # space is back: the run finishes
    with sqlite3.connect(index) as source, sqlite3.connect(moved) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    invoke_json("index", folder, "-i", moved, "-q")
    fresh = tmp_path / "fresh.db"
    invoke_json("index", folder, "-i", fresh, "-q")
    assert content(moved) == content(fresh)


# -- questions ------------------------------------------------------------------------------

HOSTILE_QUESTIONS = [
    'what "is', "river AND mountain OR NOT harbour", "NEAR(river mountain, 2)", "AND", "OR NOT",
    "river*", "^river", "text: river", "passages_fts: river", "{text}: river", "(((river", "river)))",
    "- river", "+river", "river\x00mountain", "\x07\x1b[31mred\x1b[0m river", "🏔️ river 🌊", "川はどこ",
    "'; DROP TABLE passages; --", "rank MATCH bm25(passages_fts)", "river " * 2000, "x" * 10_000,
]
EMPTY_QUESTIONS = ["", "   ", '"""', "*", "?!?", "🌊", "\x00"]


@pytest.fixture(scope="module")
def question_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _small_index(tmp_path_factory.mktemp("questions"))


@pytest.mark.parametrize("command", ["search", "ask"])
def test_hostile_questions_through_the_cli(command: str, question_index: Path, tiny_model_dir: Path) -> None:
    model = ["--model", str(tiny_model_dir)] if command == "ask" else []
    for question in HOSTILE_QUESTIONS:
        # "--" ends the options: "- river" is a question, not an option.
        result = invoke(command, "-i", question_index, "--json", *model, "--", question)
        assert result.exit_code == 0 and result.exception is None, (question, result.output)
        assert json.loads(result.stdout)["question"] == question
    for question in EMPTY_QUESTIONS:
        result = invoke(command, "-i", question_index, *model, "--", question)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (question, result.output)
        assert result.output.startswith("Error: ") and "question" in result.output
        assert len(result.output.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def tiny_qa(question_index: Path, tiny_model_dir: Path) -> Iterator[DocQA]:
    with DocQA(question_index, model=str(tiny_model_dir)) as qa:
        yield qa


@settings(max_examples=60, deadline=None)
@given(question=st.text(max_size=300) | st.sampled_from(HOSTILE_QUESTIONS + EMPTY_QUESTIONS))
def test_ask_answers_any_string_or_says_bad_question(tiny_qa: DocQA, question: str) -> None:
    try:
        result = tiny_qa.ask(question, passages=3)
    except BadQuestion as err:
        assert str(err)
        return
    assert isinstance(result, AskResult) and result.question == question
    assert len(result.answers) <= 3


# -- crashes and interruptions --------------------------------------------------------------


def _reset(index: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)


def _assert_whole(index: Path, corpus: dict[str, object]) -> None:
    """Valid, and every document it holds is exactly what an uninterrupted run makes of one
    version of its file: never a partial or mixed document."""
    check_index(index)
    for path, stored in content(index).items():
        assert stored in (corpus["a"].get(path), corpus["b"].get(path)), path  # type: ignore[union-attr]


def kill_rounds(corpus: dict[str, object], index: Path, rounds: int, seed: int) -> int:
    """kill -9 ``docqa index`` at random moments, ``rounds`` times, while the folder changes
    between rounds (files switch versions, disappear, come back); returns how many of the
    rounds killed it mid-run (the others let it finish first)."""
    rng = random.Random(seed)
    killed = 0
    folder: Path = corpus["folder"]  # type: ignore[assignment]
    seconds: float = corpus["seconds"]  # type: ignore[assignment]
    for n in range(rounds):
        write_corpus(folder, rng.choice("ab"))
        gone = rng.sample(range(10, 30), 3)
        for g in gone:
            (folder / f"essay-{g:02}.txt").unlink()
        proc = subprocess.Popen(docqa("index", folder, "-i", index, "-q"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + rng.uniform(0.1, seconds)
        workers: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= descendants(proc.pid)
            time.sleep(0.01)
        proc.kill()
        _, err = proc.communicate()
        if proc.returncode == 0:  # finished first: start over so the next round has work
            _reset(index)
        else:
            assert proc.returncode == -signal.SIGKILL, err
            killed += 1
        assert wait_gone(workers) == set(), f"round {n}: workers outlived the indexer"
        _assert_whole(index, corpus)
    write_corpus(folder, "a")
    invoke_json("index", folder, "-i", index, "-q")
    assert content(index) == corpus["a"]
    return killed


def test_kill_9_at_random_moments_short(corpus: dict[str, object], tmp_path: Path, record_property: Record) -> None:
    record_property("killed_mid_run", kill_rounds(corpus, tmp_path / "i.db", rounds=4, seed=7))


@pytest.mark.slow
def test_kill_9_at_random_moments_100_rounds(corpus: dict[str, object], tmp_path: Path,
                                             record_property: Record) -> None:
    record_property("killed_mid_run", kill_rounds(corpus, tmp_path / "i.db", rounds=100, seed=2026))


@pytest.mark.parametrize("group", [True, False], ids=["terminal-ctrl-c", "kill-int-pid"])
def test_ctrl_c_stops_cleanly_with_a_summary(group: bool, corpus: dict[str, object], tmp_path: Path) -> None:
    index = tmp_path / "i.db"
    proc = subprocess.Popen(docqa("index", corpus["folder"], "-i", index, "-q"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: indexed_count(index) >= 3 or proc.poll() is not None, what="3 documents")
    workers = descendants(proc.pid)
    interrupt(proc, group)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    lines = out.splitlines()
    assert lines[0].endswith(f"-> {index}") and " added, " in lines[0]
    assert lines[-1] == "interrupted: every document listed above is complete; re-run to finish"
    assert int(lines[0].split(" added")[0]) == indexed_count(index)  # the summary is the truth
    assert "Traceback" not in err
    assert wait_gone(workers) == set()
    _assert_whole(index, corpus)
    invoke_json("index", corpus["folder"], "-i", index, "-q")
    assert content(index) == corpus["a"]


# -- concurrency ----------------------------------------------------------------------------

READER = r"""
import json, os, sqlite3, sys
from docqa.api import DocQA

index, model, stop = sys.argv[1], sys.argv[2], sys.argv[3]
ops, asks, errors = 0, 0, []
conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=30, isolation_level=None)
shape = None
with DocQA(index, model=model) as qa:
    qa.ask("warm up the model")
    print("ready", flush=True)
    while not os.path.exists(stop) or ops < 30:
        try:
            conn.execute("BEGIN")  # one snapshot: a document is all there or not at all
            rows = conn.execute(
                "SELECT d.path, d.page_count, (SELECT count(*) FROM pages WHERE document_id = d.id),"
                " (SELECT count(*) FROM passages WHERE document_id = d.id) FROM documents d").fetchall()
            conn.execute("COMMIT")
            for path, page_count, pages, passages in rows:
                shape = shape or (page_count, pages, passages)
                if (page_count, pages, passages) != shape:
                    errors.append(f"partial document {path}: {(page_count, pages, passages)} != {shape}")
            assert qa.search("river mountain harbour", k=5).hits
            ops += 2
            if ops % 10 == 0:  # the reader model is the slow part: ask every fifth round
                qa.ask("Which river crosses the mountain?", passages=3)
                asks += 1
        except Exception as err:
            errors.append(repr(err))
print(json.dumps({"ops": ops + asks, "asks": asks, "errors": errors[:5], "error_count": len(errors)}))
"""


@pytest.mark.parametrize("rounds", [10, pytest.param(100, marks=pytest.mark.slow)])
def test_searches_and_asks_never_fail_while_indexing(rounds: int, tmp_path: Path, tiny_model_dir: Path,
                                                     record_property: Record) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(20):
        (folder / f"e{n:03}.txt").write_text(essay(n, 200), encoding="utf-8")
    index, stop = tmp_path / "i.db", tmp_path / "stop"
    with DocQA(index) as qa:  # this process writes; the readers are other processes
        qa.index([folder])
        reader = subprocess.Popen([sys.executable, "-c", READER, str(index), str(tiny_model_dir), str(stop)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
        cli_ops, cli_errors = 0, []

        def cli_searches() -> None:
            nonlocal cli_ops
            while not stop.exists():
                proc = run_docqa("search", "river mountain", "-i", index, "--json")
                if proc.returncode != 0 or not json.loads(proc.stdout)["hits"]:
                    cli_errors.append(proc.stderr)
                cli_ops += 1

        searcher = threading.Thread(target=cli_searches)
        searcher.start()
        try:
            for n in range(20, 20 + 4 * rounds, 4):
                for new in range(n, n + 4):
                    (folder / f"e{new:03}.txt").write_text(essay(new, 200), encoding="utf-8")
                for old in sorted(folder.iterdir())[:4]:
                    old.unlink()
                report = qa.index([folder])
                assert (report.added, report.updated, report.unchanged, report.removed) == (4, 0, 16, 4)
        finally:  # a failed run must not leave the reader and the searches looping forever
            stop.touch()
            try:
                out, err = reader.communicate(timeout=120)
            finally:
                reader.kill()
                searcher.join()
    assert reader.returncode == 0, err
    result = json.loads(out)
    assert result["error_count"] == 0, result["errors"]
    assert cli_errors == []
    assert result["ops"] >= 30 and result["asks"] >= 3 and cli_ops >= 1
    record_property("concurrent_reads", result["ops"] + cli_ops)
    check_index(index)


def _lock_held(index: Path) -> bool:
    try:
        fd = os.open(f"{index}.lock", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        assert err.errno in (errno.EAGAIN, errno.EACCES)
        return True
    finally:
        os.close(fd)  # closing releases a lock this probe took
    return False


def test_second_index_run_refuses_at_once(corpus: dict[str, object], tmp_path: Path) -> None:
    index = tmp_path / "i.db"
    hostile.write(tmp_path / "slow" / "slow.pdf", hostile.slow_pdf(60_000))  # keeps the first run busy
    first = subprocess.Popen(docqa("index", corpus["folder"], tmp_path / "slow", "-i", index, "-q"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _lock_held(index) or first.poll() is not None, what="the writer lock")
    attempts = [["index", corpus["folder"]], ["remove", "essay-00.txt"]]
    results: list[tuple[float, subprocess.CompletedProcess[str]]] = []

    def attempt(args: list[object]) -> None:
        started = time.monotonic()
        proc = run_docqa(*args, "-i", index)
        results.append((time.monotonic() - started, proc))

    threads = [threading.Thread(target=attempt, args=(args,)) for args in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.poll() is None, "the first run ended before the others tried"
    for seconds, second in results:
        assert seconds < 10 and second.returncode == 1, second
        assert second.stderr == (f"Error: another `docqa index` (pid {first.pid}) is writing {index}; "
                                 "wait for it to finish, then run again\n")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    # two indexed folders: paths are shown relative to their common parent
    folder = os.path.relpath(corpus["folder"], os.path.commonpath([corpus["folder"], tmp_path / "slow"]))
    assert {os.path.relpath(p, folder): c for p, c in content(index).items() if not p.endswith("slow.pdf")} == corpus["a"]
