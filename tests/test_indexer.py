"""The indexer's normal behaviour: statuses, incremental runs, the JSON contract, crash safety.

Real parts throughout: real PDFs from ../shared/data/pdfs, real SQLite files, real worker
processes, a real ``docqa`` subprocess killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PDFS
from indexcheck import (
    SHARED_PDF_STATUS, check_index, content, docqa, essay, indexed_count, invoke_json, statuses, wait_for,
)
from pdfgen import write_pdf

from docqa.api import DocQA
from docqa.cli import cli
from docqa.types import PROBLEM_STATUSES, STATUSES, Limits

PASSWORDS = ("foo", "asdfzxcv", "openpassword", "test")


@pytest.fixture(scope="module")
def shared_index(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The whole shared PDF folder indexed in one run through the CLI."""
    index = tmp_path_factory.mktemp("shared") / "pdfs.db"
    return index, invoke_json("index", str(PDFS), "-i", str(index), "-q")


def test_every_shared_pdf_ends_with_its_status_in_one_run(shared_index: tuple[Path, dict]) -> None:
    index, report = shared_index
    assert statuses(report) == SHARED_PDF_STATUS
    assert (report["added"], report["failed"], report["skipped"]) == (17, 9, 0)
    for f in report["files"]:
        if f["status"] in PROBLEM_STATUSES:
            assert f["message"] and "\n" not in f["message"], f
            assert (f["pages"], f["passages"]) == (0, 0)
        else:
            assert f["pages"] > 0 and f["passages"] > 0, f
    check_index(index)


def test_passwords_unlock_on_the_next_run_and_problems_are_named_again(
    shared_index: tuple[Path, dict], tmp_path: Path
) -> None:
    index = tmp_path / "pdfs.db"
    shutil.copy(shared_index[0], index)
    first = {f["path"]: f for f in shared_index[1]["files"]}
    again = invoke_json("index", str(PDFS), "-i", str(index), "-q", *[f"--password={p}" for p in PASSWORDS])
    encrypted = {p for p, s in SHARED_PDF_STATUS.items() if s == "encrypted"}
    assert {p: s for p, s in statuses(again).items()} == {
        p: "indexed" if p in encrypted else "unchanged" if s == "indexed" else s
        for p, s in SHARED_PDF_STATUS.items()
    }
    for f in again["files"]:
        if f["status"] in PROBLEM_STATUSES:  # every run names its failures, the same way
            assert f["message"] == first[f["path"]]["message"]
    assert (again["added"], again["updated"], again["failed"]) == (5, 0, 4)
    check_index(index)


def test_json_contract_and_exit_code_when_files_fail(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ok.txt").write_text("Otters hold hands while they sleep.", encoding="utf-8")
    (folder / "bad.pdf").write_bytes(b"%PDF-1.4 and then nothing")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    result = CliRunner().invoke(cli, ["index", str(folder), "-i", str(tmp_path / "i.db"), "--json"])
    assert result.exit_code == 0  # the run completed: failed files are reported, not fatal
    report = json.loads(result.stdout)
    assert set(report) == {"index", "added", "updated", "unchanged", "removed", "failed", "skipped",
                           "files", "interrupted"}
    assert report["index"] == str(tmp_path / "i.db")
    assert all(set(f) == {"path", "status", "message", "pages", "passages", "ocr_pages"} for f in report["files"])
    assert statuses(report) == {"ok.txt": "indexed", "bad.pdf": "corrupt", "photo.jpg": "unsupported"}
    assert (report["added"], report["failed"], report["skipped"], report["interrupted"]) == (1, 1, 1, False)
    assert all(f["status"] in STATUSES for f in report["files"])


def test_run_that_cannot_proceed_exits_1_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ok.txt").write_text("Otters.", encoding="utf-8")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    result = subprocess.run(docqa("index", folder, "-i", not_a_folder / "i.db"), capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot write beside {not_a_folder / 'i.db'}: ")
    assert len(result.stderr.splitlines()) == 1


def test_incremental_add_modify_delete_rename_touch(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    texts = {
        "a.txt": "Alpha notes about apples and their orchards.",
        "b.md": "# Beta\n\nBees make honey in the summer months.",
        "sub/c.html": "<p>Gamma rays come from the sun.</p><script>var x = 1;</script>",
        "d.txt": "Delta wing aircraft fly fast.",
    }
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    write_pdf(folder / "e.pdf", ["Echo page one about canyons.", "Echo page two about caves."])
    index = tmp_path / "i.db"
    with DocQA(index) as qa:
        first = qa.index([folder])
        assert (first.added, first.updated, first.unchanged, first.removed, first.failed) == (5, 0, 0, 0, 0)
        before = content(index)

        (folder / "a.txt").write_text("Alpha notes, revised: pears now.", encoding="utf-8")
        (folder / "b.md").unlink()
        (folder / "sub/c.html").rename(folder / "c-moved.html")
        os.utime(folder / "d.txt", (time.time() + 10, time.time() + 10))  # touched, same bytes
        (folder / "f.txt").write_text("Foxtrot is a dance.", encoding="utf-8")
        second = qa.index([folder])
        assert statuses(second) == {"a.txt": "updated", "b.md": "removed", "sub/c.html": "removed",
                                    "c-moved.html": "indexed", "d.txt": "unchanged", "e.pdf": "unchanged",
                                    "f.txt": "indexed"}
        assert (second.added, second.updated, second.unchanged, second.removed) == (2, 1, 2, 2)
        after = content(index)
        assert after["c-moved.html"] == before["sub/c.html"]  # the moved file kept its passages
        assert after["e.pdf"] == before["e.pdf"] and after["d.txt"] == before["d.txt"]

        third = qa.index([folder])
        assert (third.added, third.updated, third.unchanged, third.removed) == (0, 0, 5, 0)
        assert content(index) == after
    check_index(index)


def test_each_file_gets_one_status_even_when_reached_twice(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.txt").write_text("Xylophones are loud.", encoding="utf-8")
    (folder / "y.txt").write_text("Yaks live in the mountains.", encoding="utf-8")
    (folder / ".hidden.txt").write_text("never indexed", encoding="utf-8")
    (folder / "link").symlink_to(folder / "sub")
    with DocQA(tmp_path / "i.db") as qa:
        report = qa.index([folder, folder / "sub", folder / "y.txt"])
    # link/ is a second way into sub/: the folder is read once, under its real name.
    assert statuses(report) == {"sub/x.txt": "indexed", "y.txt": "indexed"}


def test_size_cap_and_retry_when_raised(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "big.txt").write_text("Words about big things. " * 5000, encoding="utf-8")
    (folder / "small.txt").write_text("Small words.", encoding="utf-8")
    with DocQA(tmp_path / "i.db") as qa:
        capped = qa.index([folder], limits=Limits(max_bytes=50_000))
        assert statuses(capped) == {"big.txt": "too-large", "small.txt": "indexed"}
        message = next(f.message for f in capped.files if f.path == "big.txt")
        assert message == "0.114 MB is over the 0.0477 MB size cap; raise it with --max-size (in MB)"
        again = qa.index([folder], limits=Limits(max_bytes=50_000))
        assert statuses(again) == {"big.txt": "too-large", "small.txt": "unchanged"}
        raised = qa.index([folder])
        assert statuses(raised) == {"big.txt": "indexed", "small.txt": "unchanged"}


def test_kill_9_mid_run_leaves_a_valid_index_that_a_rerun_completes(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(40):
        (folder / f"essay-{n:02}.txt").write_text(essay(n), encoding="utf-8")
    reference = tmp_path / "reference.db"
    with DocQA(reference) as qa:
        qa.index([folder])
    index = tmp_path / "killed.db"
    proc = subprocess.Popen(docqa("index", folder, "-i", index, "-q"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: indexed_count(index) >= 3 or proc.poll() is not None, what="3 documents")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 3 <= indexed_count(index) < 40
    check_index(index)
    killed = content(index)
    assert all(killed[path] == stored for path, stored in content(reference).items() if path in killed)
    rerun = invoke_json("index", str(folder), "-i", str(index), "-q")
    assert rerun["added"] == 40 - len(killed) and rerun["unchanged"] == len(killed)
    assert content(index) == content(reference)


def test_indexing_from_a_plain_script_without_a_main_guard(tmp_path: Path) -> None:
    """Worker processes must not re-run the caller's script (it would index again in each)."""
    import sys

    (tmp_path / "docs").mkdir()
    for i in range(3):
        (tmp_path / "docs" / f"{i}.txt").write_text(f"Document {i} says the lighthouse was built in 18{i}0.")
    script = tmp_path / "script.py"
    script.write_text(
        "from docqa import DocQA\n"
        f"with DocQA({str(tmp_path / 'ix.db')!r}) as qa:\n"
        f"    report = qa.index([{str(tmp_path / 'docs')!r}], workers=2)\n"
        "    print('INDEXED', report.added, report.failed)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["INDEXED 3 0"] and "Traceback" not in proc.stderr


def test_files_read_by_an_older_extraction_are_read_again(tmp_path: Path) -> None:
    """An index built by an older docqa (schema 2, no extraction versions) keeps the text its
    PDFs were read with until docqa's PDF extraction is newer: then they are read again, even
    unchanged, and a moved copy is not copied from the outdated twin."""
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "manual.pdf", ["Filters are rinsed under warm water."])
    (folder / "notes.txt").write_text("Notes on the pump.", encoding="utf-8")
    index = tmp_path / "i.db"
    with DocQA(index) as qa:
        qa.index([folder])
    fresh = content(index)
    conn = sqlite3.connect(index)  # what an older docqa left: other text, no versions
    pdf = "document_id = (SELECT id FROM documents WHERE kind = 'pdf')"
    conn.executescript(f"UPDATE pages SET text = 'Old text.' WHERE {pdf}; "
                       f"UPDATE passages SET text = 'Old text.', start = 0, \"end\" = 9 WHERE {pdf}; "
                       "ALTER TABLE documents DROP COLUMN extractor; "
                       "UPDATE meta SET value = '2' WHERE key = 'schema_version';")
    conn.close()
    shutil.copy(folder / "manual.pdf", folder / "manual-copy.pdf")
    with DocQA(index) as qa:
        report = qa.index([folder])
        assert qa.info().schema_version == 3
    assert statuses(report) == {"manual.pdf": "updated", "manual-copy.pdf": "indexed", "notes.txt": "unchanged"}
    after = content(index)
    assert after["manual.pdf"][1] == after["manual-copy.pdf"][1] == fresh["manual.pdf"][1]  # passages
    with DocQA(index) as qa:
        assert qa.index([folder]).unchanged == 3
    check_index(index)
