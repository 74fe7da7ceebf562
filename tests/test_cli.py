"""The CLI contract: commands, options, JSON shapes, stdin, errors as one line, lazy imports."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from docqa.cli import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run(*args: str, input: str | None = None, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture()
def examples_index(tmp_path: Path) -> Path:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    index = tmp_path / "ex.db"
    run("index", str(folder), "-i", str(index), "-q")
    return index


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help(command: str) -> None:
    result = run(command, "--help")
    assert cli.commands[command].help, f"{command} has no docstring"
    assert "Usage:" in result.output


def test_help_and_search_do_not_import_torch(examples_index: Path) -> None:
    code = (
        "import sys\n"
        "from docqa.cli import cli\n"
        "try:\n"
        "    cli(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'torch', 'transformers', 'docqa.indexer', 'pypdf', 'bs4', 'sqlite_utils', 'numpy'}\n"
        "assert not heavy & set(sys.modules), sorted(heavy & set(sys.modules))\n"
    )
    for args in (["--help"], ["search", "honey", "-i", str(examples_index)], ["info", "-i", str(examples_index)]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_the_docqa_command_reads_without_loading_scikit_learn_or_scipy(examples_index: Path, tiny_model_dir: Path) -> None:
    if importlib.util.find_spec("sklearn") is None:
        pytest.skip("scikit-learn is not installed here (the dense extra brings it)")
    code = (
        "import sys\n"
        "from docqa.cli import main\n"
        "sys.argv = ['docqa', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "assert 'transformers' in sys.modules\n"
        "assert sys.modules['sklearn'] is None and sys.modules['scipy'] is None\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, "ask", "Where do bees live?", "-i", str(examples_index),
                           "--model", str(tiny_model_dir), "--no-server"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_python_dash_m_works() -> None:
    proc = subprocess.run([sys.executable, "-m", "docqa", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "index" in proc.stdout


def test_index_json_contract_and_incremental_counts(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(EXAMPLES, folder)
    (folder / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    index = tmp_path / "i.db"
    first = json.loads(run("index", str(folder), "-i", str(index), "--json").output)
    assert set(first) >= {"index", "added", "updated", "unchanged", "removed", "failed", "files"}
    assert (first["added"], first["updated"], first["unchanged"], first["removed"], first["failed"]) == (4, 0, 0, 0, 0)
    by_path = {f["path"]: f for f in first["files"]}
    assert by_path["sheet.xlsx"]["status"] == "unsupported"
    assert by_path["honeybees.pdf"] == {"path": "honeybees.pdf", "status": "indexed", "message": "",
                                        "pages": 2, "passages": by_path["honeybees.pdf"]["passages"],
                                        "ocr_pages": 0}
    assert by_path["honeybees.pdf"]["passages"] >= 2
    (folder / "tides.txt").write_text("The tide tables were revised in 2024.", encoding="utf-8")
    (folder / "coffee.html").unlink()
    second = json.loads(run("index", str(folder), "-i", str(index), "--json").output)
    assert (second["added"], second["updated"], second["unchanged"], second["removed"]) == (0, 1, 2, 1)


def test_index_human_summary_names_problem_files(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    (folder / "ok.txt").write_text("Plain words about otters.", encoding="utf-8")
    result = run("index", str(folder), "-i", str(tmp_path / "i.db"))
    assert "1 added" in result.output and "1 failed" in result.output
    assert "corrupt" in result.output and "broken.pdf" in result.output


def test_index_missing_path_is_one_line_error(tmp_path: Path) -> None:
    result = run("index", str(tmp_path / "nope"), "-i", str(tmp_path / "i.db"), ok=False)
    assert result.exit_code == 2  # a usage error: click checks the path exists
    assert "nope" in result.output
    assert "Traceback" not in result.output


def test_info_json_shape(examples_index: Path) -> None:
    data = json.loads(run("info", "-i", str(examples_index), "--json").output)
    assert {"documents", "pages", "passages", "by_status", "problems", "schema_version", "settings"} <= set(data)
    assert data["documents"] == 4 and data["pages"] == 5
    assert data["by_status"] == {"indexed": 4}
    assert data["settings"]["passage_words"] > 0


def test_search_json_shape_and_stdin(examples_index: Path) -> None:
    data = json.loads(run("search", "who decoded the waggle dance", "-i", str(examples_index), "--json").output)
    assert data["question"] == "who decoded the waggle dance" and data["retriever"] == "fts5"
    top = data["hits"][0]
    assert {"rank", "score", "passage_id", "path", "page", "last_page", "start", "end", "text"} <= set(top)
    assert top["path"] == "honeybees.pdf" and top["page"] == 1 and top["rank"] == 1
    piped = json.loads(run("search", "-i", str(examples_index), "--json", input="waggle dance\n").output)
    assert piped["question"] == "waggle dance" and piped["hits"][0]["path"] == "honeybees.pdf"


def test_search_path_filter(examples_index: Path) -> None:
    data = json.loads(run("search", "water", "-i", str(examples_index), "--path", "*.txt", "--json").output)
    assert data["hits"] and {h["path"] for h in data["hits"]} == {"tides.txt"}


def test_bare_index_name_means_indexes_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(EXAMPLES, tmp_path / "ex")
    run("index", "ex", "-i", "papers", "-q")
    assert (tmp_path / "indexes" / "papers.db").is_file()
    monkeypatch.setenv("DOCQA_INDEX", "papers")
    assert json.loads(run("info", "--json").output)["documents"] == 4


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "no index"),
        (b"garbage garbage garbage garbage" * 100, "file is not a database"),
    ],
)
def test_unusable_index_is_one_line_error(tmp_path: Path, content: bytes, expected: str) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    result = run("search", "anything", "-i", str(bad), ok=False)
    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output


def test_missing_index_says_how_to_build_one(tmp_path: Path) -> None:
    result = run("info", "-i", str(tmp_path / "none.db"), ok=False)
    assert result.exit_code == 1
    assert "docqa index" in result.output


def test_empty_question_is_a_clear_error(examples_index: Path) -> None:
    result = run("search", "   ", "-i", str(examples_index), ok=False)
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output


def test_remove(examples_index: Path) -> None:
    assert "removed tides.txt" in run("remove", "tides.txt", "-i", str(examples_index)).output
    assert json.loads(run("info", "-i", str(examples_index), "--json").output)["documents"] == 3
    result = run("remove", "tides.txt", "-i", str(examples_index), ok=False)
    assert result.exit_code == 1 and "not in" in result.output


def test_same_name_in_two_folders_is_told_apart_and_remove_refuses_the_bare_name(tmp_path: Path) -> None:
    for folder, text in (("a", "Alpha notes: the meeting is on Monday."), ("b", "Beta notes: the launch is on Friday.")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "notes.txt").write_text(text)
        run("index", str(tmp_path / folder), "-i", str(tmp_path / "ix.db"), "-q")
    hits = json.loads(run("search", "notes", "-i", str(tmp_path / "ix.db"), "--json").output)["hits"]
    assert sorted(h["path"] for h in hits) == ["a/notes.txt", "b/notes.txt"]
    result = run("remove", "notes.txt", "-i", str(tmp_path / "ix.db"), ok=False)
    assert result.exit_code == 1 and "a/notes.txt, b/notes.txt" in result.output
    assert json.loads(run("info", "-i", str(tmp_path / "ix.db"), "--json").output)["documents"] == 2
    assert "removed a/notes.txt" in run("remove", "a/notes.txt", "-i", str(tmp_path / "ix.db")).output
    hits = json.loads(run("search", "notes", "-i", str(tmp_path / "ix.db"), "--json").output)["hits"]
    assert [(h["path"], h["text"][:4]) for h in hits] == [("notes.txt", "Beta")]  # one root left: its own names


def test_question_starting_with_a_dash_and_one_question_per_stdin_line(examples_index: Path) -> None:
    data = json.loads(run("search", "-k", "1", "-waggle dance", "-i", str(examples_index), "--json").output)
    assert data["question"] == "-waggle dance" and data["hits"][0]["path"] == "honeybees.pdf"
    out = run("search", "-i", str(examples_index), "--json", "-k", "1", input="waggle dance\n\nhigh tide\n").output
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["question"], r["hits"][0]["path"]) for r in rows] == [("waggle dance", "honeybees.pdf"),
                                                                    ("high tide", "tides.txt")]


def test_abstaining_with_no_matching_passage_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    from docqa.cli import _print_answers
    from docqa.types import AskResult

    _print_answers(AskResult(question="zzz", answers=(), abstained=True), None)
    out = capsys.readouterr().out
    assert "not found" in out and "closest passages" not in out
