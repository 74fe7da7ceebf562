"""docqa on a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``).

One cluster for the module (1 CPU per node, small object stores): the indexes built through it
equal the local index row for row, also after its worker node is killed mid-run or the driver
is killed with kill -9 and re-run; batch answers read by its actor pool equal the local batch.
The processes are ended by the cluster's own pids (never ``ray stop``: other Ray instances may
share the machine). Without Ray installed, ``--ray`` is one line saying how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PDFS
from hostile import cyclic_pdf, nested_pdf, random_bytes, slow_pdf, write
from indexcheck import (
    ROOT, check_index, docqa, essay, indexed_count, invoke, invoke_json, run_docqa, statuses, stored, wait_for,
)

from docqa.api import DocQA

STORE_MB = 100  # each node's object store: the machine is small and shared


# -- without Ray ----------------------------------------------------------------------------


def test_without_ray_installed_ray_is_one_line_and_nothing_else_imports_it(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(essay(1, 20), encoding="utf-8")
    blocker = tmp_path / "blocked"  # a `ray` package that cannot be imported, first on the path
    (blocker / "ray").mkdir(parents=True)
    (blocker / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    for args in (["index", folder, "-i", tmp_path / "i.db", "--ray"],
                 ["ask", "--batch", "-", "-i", tmp_path / "i.db", "--ray"]):
        proc = subprocess.run(docqa(*args), capture_output=True, text=True, env=env, cwd=ROOT, input="q\n",
                              timeout=120)
        assert (proc.returncode, proc.stderr) == (1, "Error: --ray needs Ray: pip install 'docqa[ray]'\n")
    plain = (
        "import sys; from click.testing import CliRunner; from docqa.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['index', {str(folder)!r}, '-i', {str(tmp_path / 'j.db')!r}, '-q'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"r = CliRunner().invoke(cli, ['search', 'river', '-i', {str(tmp_path / 'j.db')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr


# -- the cluster ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'docqa[ray]')")
    from ray.cluster_utils import Cluster

    saved = os.environ.get("RAY_AUTH_MODE")
    # The same for the cluster and every docqa process joining it (recent Ray turns tokens on).
    os.environ["RAY_AUTH_MODE"] = "disabled"
    # A fresh, short temp folder: no stale cluster file, and socket paths within 107 bytes.
    temp = tempfile.mkdtemp(prefix="dq", dir="/tmp")
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": STORE_MB * 2**20, "include_dashboard": False, "temp_dir": temp})
    try:
        c.add_node(num_cpus=1, object_store_memory=STORE_MB * 2**20)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()  # kills the processes it started, by pid
        shutil.rmtree(temp, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shared real PDFs plus hostile files, and the local index of them (the reference)."""
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copytree(PDFS, folder / "pdfs")
    write(folder / "hostile" / "random.pdf", random_bytes(50_000))
    write(folder / "hostile" / "nested.pdf", nested_pdf(100_000))
    write(folder / "hostile" / "cyclic.pdf", cyclic_pdf())
    (folder / "notes").mkdir()
    for n in range(3):
        (folder / "notes" / f"essay-{n}.md").write_text(essay(n), encoding="utf-8")
    reference = folder.parent / "reference.db"
    assert invoke_json("index", folder, "-i", reference, "-q")["added"] >= 20
    return folder, reference


def rows(db: Path) -> dict[str, tuple[tuple, list, list]]:
    """Everything the index says about each file, except ids and write times."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        docs = conn.execute("SELECT id, path, abs_path, root, size, mtime, sha256, kind, page_count, status, "
                            "message FROM documents").fetchall()
        return {d[1]: (d[1:], conn.execute("SELECT number, start, text FROM pages WHERE document_id = ? "
                                           "ORDER BY number", (d[0],)).fetchall(),
                       conn.execute('SELECT ordinal, page, last_page, start, "end", text FROM passages '
                                    "WHERE document_id = ? ORDER BY ordinal", (d[0],)).fetchall())
                for d in docs}


def assert_same_index(db: Path, reference: Path) -> None:
    check_index(db)
    assert rows(db) == rows(reference)
    for question in ("income tax credit", "crazy ones misfits", "river mountain harbour", "данные"):
        ray_hits, local_hits = (hits(invoke_json("search", question, "-i", index, "-k", "5")["hits"])
                                for index in (db, reference))
        assert ray_hits == local_hits


def hits(found: list[dict]) -> list[dict]:
    """Search hits without ids. Hits with the same score (the same text in two files) come in the
    order their files were written, which the workers' timing decides (in a local run too): those
    are compared in path order."""
    drop = ("passage_id", "document_id", "rank")
    return sorted(({k: v for k, v in h.items() if k not in drop} for h in found),
                  key=lambda h: (-h["score"], h["path"], h["page"], h["start"]))


def index_on_ray(folder: Path, db: Path, address: str) -> subprocess.Popen[str]:
    return subprocess.Popen(docqa("index", folder, "-i", db, "-q", "--json", "--ray", address),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_ray_index_equals_the_local_index_even_when_a_node_dies_and_a_rerun_sends_nothing(
        cluster, corpus, tmp_path: Path) -> None:
    folder, reference = corpus
    db = tmp_path / "ray.db"
    worker = next(iter(cluster.worker_nodes))
    proc = index_on_ray(folder, db, cluster.address)
    try:
        wait_for(lambda: indexed_count(db) >= 3 or proc.poll() is not None, what="3 documents")
        cluster.remove_node(worker, allow_graceful=False)  # SIGKILL: its tasks die with it
        out, err = proc.communicate(timeout=300)
    finally:
        cluster.add_node(num_cpus=1, object_store_memory=STORE_MB * 2**20)
        cluster.wait_for_nodes()
    assert proc.returncode == 0 and out, err
    assert_same_index(db, reference)
    first = {f["path"]: f["status"] for f in json.loads(out)["files"]}
    again = run_docqa("index", folder, "-i", db, "-q", "--json", "--ray", cluster.address)
    assert again.returncode == 0, again.stderr
    # Nothing re-extracted: indexed files are unchanged, problem files keep their status.
    assert {f["path"]: f["status"] for f in json.loads(again.stdout)["files"]} == {
        path: "unchanged" if status == "indexed" else status for path, status in first.items()}
    assert_same_index(db, reference)


def test_a_file_that_hangs_its_ray_task_times_out_and_the_run_goes_on(cluster, tmp_path: Path) -> None:
    write(tmp_path / "docs" / "slow.pdf", slow_pdf())  # pypdf needs about a minute for it
    (tmp_path / "docs" / "fine.txt").write_text(essay(3, 20), encoding="utf-8")
    proc = run_docqa("index", tmp_path / "docs", "-i", tmp_path / "i.db", "--json", "--timeout", "1",
                     "--ray", cluster.address)
    assert proc.returncode == 0, proc.stderr
    assert {f["path"]: f["status"] for f in json.loads(proc.stdout)["files"]} == {
        "slow.pdf": "timeout", "fine.txt": "indexed"}


def test_ray_with_no_address_starts_its_own_instance_and_leaves_no_process_behind(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'docqa[ray]')")
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(3):
        (folder / f"essay-{n}.md").write_text(essay(n, 20), encoding="utf-8")
    # Every process the command starts (the instance's, their workers, the sandboxes) inherits it.
    run = f"{os.getpid()}-{tmp_path.name}"
    mark = f"DOCQA_TEST_RUN={run}".encode()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", DOCQA_TEST_RUN=run)
    proc = subprocess.run(docqa("index", folder, "-i", tmp_path / "i.db", "--json", "--ray"), capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert {f["path"]: f["status"] for f in json.loads(proc.stdout)["files"]} == {
        f"essay-{n}.md": "indexed" for n in range(3)}

    def started() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if mark in f.read().split(b"\0"):
                        found.append(pid)
            except OSError:  # ended meanwhile, or not ours to read
                pass
        return found

    # Killed processes may take a moment to go; none may stay.
    wait_for(lambda: not started(), timeout=10, what="the processes of the Ray instance to end")


def test_driver_killed_mid_run_then_rerun_gives_the_whole_index(cluster, corpus, tmp_path: Path) -> None:
    folder, reference = corpus
    db = tmp_path / "ray.db"
    proc = index_on_ray(folder, db, cluster.address)
    wait_for(lambda: indexed_count(db) >= 3 or proc.poll() is not None, what="3 documents")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert 3 <= indexed_count(db) < len(rows(reference))
    check_index(db)
    killed = rows(db)
    assert all(killed[path] == stored for path, stored in rows(reference).items() if path in killed)
    proc = index_on_ray(folder, db, cluster.address)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["unchanged"] >= len([r for r in killed.values() if r[0][8] == "indexed"])
    assert_same_index(db, reference)


def test_an_s3_prefix_read_by_the_ray_workers_indexes_like_its_files_on_disk(
        cluster, s3: str, shared_data: Path, tmp_path: Path) -> None:
    from test_objectstore import archive, upload

    folder = archive(tmp_path)
    upload(folder, "s3://docs/on-ray")
    local = invoke_json("index", folder, "-i", tmp_path / "local.db", "-q")
    # --ship-max 0: every node reads its objects from the store (the driver only hashes them).
    proc = run_docqa("index", "s3://docs/on-ray", "-i", tmp_path / "ray.db", "-q", "--json", "--ship-max", "0",
                     "--ray", cluster.address, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert statuses(json.loads(proc.stdout)) == statuses(local)
    check_index(tmp_path / "ray.db")
    assert stored(tmp_path / "ray.db") == stored(tmp_path / "local.db")


# -- batch answering ------------------------------------------------------------------------


def close(a: object, b: object) -> bool:
    """Equal, floats up to rounding (the actors may run torch with another thread count)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-4, abs=1e-6)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a if k != "timings")
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(close, a, b))
    return a == b


def test_batch_answers_on_ray_equal_the_local_batch_in_order(cluster, trained_model_dir: Path, tmp_path: Path) -> None:
    from tinymodels import FactGenerator

    gen = FactGenerator(seed=12)
    folder = tmp_path / "facts"
    folder.mkdir()
    facts = []
    for n in range(8):
        passage = gen.passage(6)
        (folder / f"facts-{n}.txt").write_text(passage.text, encoding="utf-8")
        facts += [(n, f) for f in passage.facts]
    db = tmp_path / "facts.db"
    with DocQA(db) as qa:
        assert qa.index([folder]).added == 8
    lines = [f.question for _, f in facts[:36]]
    lines.insert(5, "{not json")
    lines.insert(9, json.dumps({"id": "empty", "question": "?!?"}))
    lines.append(json.dumps({"id": "only-3", "question": facts[0][1].question, "paths": ["facts-3.txt"]}))
    batch = tmp_path / "questions.txt"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")

    local = invoke("ask", "--batch", batch, "-i", db, "--model", trained_model_dir, "-q")
    assert local.exit_code == 0, local.output
    ray_out = tmp_path / "ray.jsonl"
    proc = run_docqa("ask", "--batch", batch, "-i", db, "--model", trained_model_dir, "--out", ray_out,
                     "--ray", cluster.address, "--actors", "2", timeout=300)
    assert proc.returncode == 0, proc.stderr
    mine = [json.loads(line) for line in local.stdout.splitlines()]
    theirs = [json.loads(line) for line in ray_out.read_text(encoding="utf-8").splitlines()]
    assert close(mine, theirs)
    ids = [r["id"] for r in mine]
    assert ids == [*range(1, 10), "empty", *range(11, len(lines)), "only-3"]
    assert mine[5]["error"].startswith("line 6: not valid JSON")
    assert mine[9]["error"].startswith("the question is empty")
    right = sum(r["answers"][0]["text"] == f.value for r, (_, f) in zip(
        (r for r in mine if r["id"] not in ("empty",) and "error" not in r), facts) if r["answers"])
    assert right >= 20, f"{right} of 36 facts answered"
    assert all(c["path"] == "facts-3.txt" for a in mine[-1]["answers"] for c in a["citations"])
