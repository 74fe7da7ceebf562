"""`docqa ask` hands its question to a running `docqa serve` on the same index and model.

A real server (in this process, on a free loopback port) and the real CLI: the output must be
exactly the local output, the client must not import torch, and a server on another index, one
that cannot prove it wrote the record, or a record whose pid is dead must never get the question.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'docqa[server]'")

from click.testing import CliRunner
from tinymodels import FactGenerator

from docqa import DocQA
from docqa.cli import cli
from docqa.handoff import published, record_path
from docqa.server import create_app, running

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """An index of two fact files, and its questions."""
    folder = tmp_path_factory.mktemp("facts")
    gen = FactGenerator(seed=16)
    questions = []
    for name in ("one.txt", "two.txt"):
        passage = gen.passage(n_facts=4)
        (folder / name).write_text(passage.text, encoding="utf-8")
        questions += [f.question for f in passage.facts]
    index = tmp_path_factory.mktemp("idx") / "facts.db"
    with DocQA(index) as qa:
        assert qa.index([folder]).failed == 0
    return index, questions


@contextmanager
def served(index: Path, model: Path) -> Iterator[tuple[object, Path]]:
    """A server on ``index`` and its record; yields (its batcher, the record path)."""
    with DocQA(index, model=str(model)) as qa:
        app = create_app(qa)
        with running(app) as url, published(app, qa, "127.0.0.1", int(url.rsplit(":", 1)[1])) as record:
            assert record is not None
            deadline = time.monotonic() + 60
            while app.state.batcher.state == "loading":
                assert time.monotonic() < deadline, "the model did not load"
                time.sleep(0.05)
            yield app.state.batcher, record
    assert not record.exists(), "the record outlives its server"


def ask(index: Path, model: Path, question: str, *extra: str) -> str:
    out = CliRunner().invoke(cli, ["ask", question, "-i", str(index), "--model", str(model), "-n", "2", *extra])
    assert out.exit_code == 0, out.output
    return out.output


def test_ask_hands_off_and_prints_exactly_the_local_output(facts, trained_model_dir: Path) -> None:
    index, questions = facts
    with served(index, trained_model_dir) as (batcher, record):
        assert record == Path(f"{index}.serve.json") and record.stat().st_mode & 0o777 == 0o600
        for question in questions[:3]:
            before = batcher.stats.questions
            handed = ask(index, trained_model_dir, question)
            assert batcher.stats.questions == before + 1, "the question did not go to the server"
            assert handed == ask(index, trained_model_dir, question, "--no-server")
            assert batcher.stats.questions == before + 1, "--no-server still asked the server"
        handed_json = json.loads(ask(index, trained_model_dir, questions[0], "--json"))
        local_json = json.loads(ask(index, trained_model_dir, questions[0], "--json", "--no-server"))
        assert handed_json.pop("timings")["load_s"] == 0.0
        local_json.pop("timings")
        assert handed_json == local_json and handed_json["answers"]
        # A bad question fails as it would locally, with the same one line.
        bad = CliRunner().invoke(cli, ["ask", "?!", "-i", str(index), "--model", str(trained_model_dir)])
        local = CliRunner().invoke(cli, ["ask", "?!", "-i", str(index), "--model", str(trained_model_dir),
                                         "--no-server"])
        assert bad.exit_code == local.exit_code == 1 and bad.output == local.output


def test_the_client_imports_no_torch(facts, trained_model_dir: Path) -> None:
    index, questions = facts
    code = ("import sys; from click.testing import CliRunner; from docqa.cli import cli; "
            f"out = CliRunner().invoke(cli, ['ask', {questions[0]!r}, '-i', {str(index)!r}, "
            f"'--model', {str(trained_model_dir)!r}]); assert out.exit_code == 0, out.output; "
            "print(sorted(m for m in ('torch', 'transformers', 'fastapi', 'numpy') if m in sys.modules))")
    with served(index, trained_model_dir) as (batcher, _):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert batcher.stats.questions == 1
    assert out.stdout.strip() == "[]"


def test_other_index_other_settings_and_forged_records_never_get_the_question(
        facts, trained_model_dir: Path, tmp_path: Path) -> None:
    index, questions = facts
    other = tmp_path / "copy.db"  # the same content, but another index file
    shutil.copyfile(index, other)
    with served(index, trained_model_dir) as (batcher, record):
        expected = ask(other, trained_model_dir, questions[0], "--no-server")
        # The record copied beside another index: the server says which index it serves.
        shutil.copy2(record, record_path(other))
        assert ask(other, trained_model_dir, questions[0]) == expected
        # Same index, other settings: read here.
        ask(index, trained_model_dir, questions[0], "--max-answer-len", "5")
        ask(index, trained_model_dir, questions[0], "--retriever", "rank-bm25")
        assert batcher.stats.questions == 0
        # A record with another token: the server cannot prove it wrote it.
        real = record.read_text()
        forged = json.loads(real) | {"token": "0" * 64}
        record.write_text(json.dumps(forged))
        assert ask(index, trained_model_dir, questions[0]) == ask(index, trained_model_dir, questions[0], "--no-server")
        assert batcher.stats.questions == 0
        record.write_text(real)
    # Readable by others: ignored (and left alone).
    record.write_text(json.dumps(forged))
    record.chmod(0o644)
    ask(index, trained_model_dir, questions[0])
    assert record.exists()
    record.unlink()


def test_a_record_whose_server_died_is_ignored_and_removed(facts, trained_model_dir: Path) -> None:
    index, questions = facts
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid is free
    record = record_path(index)
    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": dead.pid, "host": "127.0.0.1", "port": 9, "hostname": socket.gethostname(),
                   "token": "x" * 64}, f)
    assert ask(index, trained_model_dir, questions[0]) == ask(index, trained_model_dir, questions[0], "--no-server")
    assert not record.exists()


def test_docqa_serve_writes_the_record_and_removes_it_on_sigterm(facts, tiny_model_dir: Path) -> None:
    index, _ = facts
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "docqa", "serve", "-i", str(index), "--port", str(port),
                               "--model", str(tiny_model_dir)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not record_path(index).exists():
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.05)
        written = json.loads(record_path(index).read_text())
        assert (written["pid"], written["port"], written["host"]) == (server.pid, port, "127.0.0.1")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert not record_path(index).exists()
