"""Indexing an object-store URI (``docqa index s3://bucket/prefix``) against a real local S3
server (moto, the ``s3`` fixture): the same index as the same files on disk, re-runs that read
nothing, gone objects removed, one clear line for what cannot be reached."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import PDFS
from indexcheck import ROOT, check_index, docqa, essay, invoke, invoke_json, statuses, stored

from docqa import objectstore

URI = "s3://docs/archive"


def upload(folder: Path, uri: str) -> None:
    """Copy ``folder`` to ``uri`` (creating the bucket), with pyarrow like any S3 client."""
    import pyarrow.fs

    s3 = pyarrow.fs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], allow_bucket_creation=True)
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3.create_dir(bucket)
    pyarrow.fs.copy_files(str(folder), f"{bucket}/{prefix}", destination_filesystem=s3)


@contextmanager
def s3_requests(endpoint: str) -> Iterator[list[str]]:
    """The requests the S3 server received inside the block ("METHOD /path?query", sorted), as
    moto's request recorder logged them."""
    def recorder(action: str) -> str:
        with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/recorder/{action}",
                                                           method="POST")) as response:
            return str(response.read().decode())

    recorder("reset-recording")
    recorder("start-recording")
    received: list[str] = []
    try:
        yield received
    finally:
        recorder("stop-recording")
    for line in recorder("download-recording").splitlines():
        entry = json.loads(line)
        parts = urllib.parse.urlsplit(entry["url"])
        received.append(f"{entry['method']} {parts.path}?{parts.query}")
    received.sort()


def archive(root: Path) -> Path:
    """Real PDFs (one of them broken), notes, an unsupported file and a hidden one."""
    folder = root / "archive"
    (folder / "pdfs").mkdir(parents=True)
    for name in ("non_latin/multilang.pdf", "non_latin/jo.pdf", "malformed/simple1.pdf"):
        shutil.copy(PDFS / name, folder / "pdfs")
    (folder / "notes" / ".drafts").mkdir(parents=True)
    for n in range(3):
        (folder / "notes" / f"essay-{n}.md").write_text(essay(n, 60), encoding="utf-8")
    (folder / "notes" / ".drafts" / "draft.md").write_text("not indexed", encoding="utf-8")
    (folder / "data.bin").write_bytes(b"\0" * 10)
    return folder


def test_an_s3_prefix_indexes_like_its_files_on_disk_and_reruns_read_only_what_changed(
        s3: str, shared_data: Path, tmp_path: Path) -> None:
    import pyarrow.fs

    folder = archive(tmp_path)
    upload(folder, URI)
    local, remote = tmp_path / "local.db", tmp_path / "s3.db"
    first = invoke_json("index", folder, "-i", local, "-q")
    report = invoke_json("index", URI, "-i", remote, "-q")
    assert statuses(report) == statuses(first)
    assert statuses(report)["pdfs/simple1.pdf"] == "corrupt"
    assert (report["added"], report["failed"], report["skipped"]) == (5, 1, 1)
    check_index(remote)
    assert stored(remote) == stored(local)
    hits = [invoke_json("search", "river harbour", "-i", db, "-k", "5")["hits"] for db in (local, remote)]
    assert [(h["path"], h["page"], h["start"], h["text"]) for h in hits[0]] == \
           [(h["path"], h["page"], h["start"], h["text"]) for h in hits[1]]
    show = invoke_json("search", "river", "-i", remote, "-k", "1")["hits"][0]
    assert show["path"].startswith("notes/essay-")

    # A re-run over an unchanged prefix reads nothing but one listing: the same requests as
    # opening and listing the URI once (not once to check it, once to walk, once to prune).
    with s3_requests(s3) as listing:
        list(objectstore.files(objectstore.open_uri(URI)))
    with s3_requests(s3) as rerun:
        again = invoke_json("index", URI, "-i", remote, "-q")
    assert listing and rerun == listing
    assert statuses(again) == {p: "unchanged" if s == "indexed" else s for p, s in statuses(report).items()}

    s3fs = pyarrow.fs.S3FileSystem(endpoint_override=s3)
    with s3fs.open_output_stream("docs/archive/notes/essay-0.md") as f:
        f.write(essay(7, 30).encode())
    s3fs.delete_file("docs/archive/notes/essay-1.md")
    changed = invoke_json("index", URI, "-i", remote, "-q")
    assert {p: s for p, s in statuses(changed).items() if s not in ("unchanged", "corrupt", "unsupported")} == {
        "notes/essay-0.md": "updated", "notes/essay-1.md": "removed"}
    check_index(remote)
    after = stored(remote)
    assert "notes/essay-1.md" not in after
    assert after["notes/essay-0.md"][1][0][2] == essay(7, 30)


def test_an_unreachable_or_bad_uri_is_one_line_and_watch_refuses_uris(
        s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "i.db"
    for uri, line in (
        ("s3://docs/no-such-prefix", "Error: no such file or folder: s3://docs/no-such-prefix\n"),
        ("nope://x/y", "Error: nope://x/y: pyarrow cannot open this URI (Unrecognized filesystem type in URI: "
                       "nope://x/y); check it (docqa reads s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, file:///PATH)\n"),
    ):
        result = invoke("index", uri, "-i", db)
        assert (result.exit_code, result.output) == (1, line)
    result = invoke("watch", URI, "-i", db)
    assert result.exit_code == 2 and "watch follows local folders" in result.output
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    result = invoke("index", URI, "-i", db)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: cannot read {URI} (")
    assert "AWS_ENDPOINT_URL" in result.output and "AWS_ACCESS_KEY_ID" in result.output


def test_a_file_uri_is_its_local_path_and_without_pyarrow_a_uri_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text(essay(1, 20), encoding="utf-8")
    report = invoke_json("index", f"file://{tmp_path / 'docs'}", "-i", tmp_path / "f.db", "-q")
    assert statuses(report) == {"a.txt": "indexed"}
    assert invoke_json("index", tmp_path / "docs", "-i", tmp_path / "f.db", "-q")["unchanged"] == 1
    blocker = tmp_path / "blocked"  # a `pyarrow` that cannot be imported, first on the path
    (blocker / "pyarrow").mkdir(parents=True)
    (blocker / "pyarrow" / "__init__.py").write_text("raise ImportError('No module named pyarrow')\n")
    proc = subprocess.run(docqa("index", URI, "-i", tmp_path / "i.db"), capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}, timeout=120)
    assert (proc.returncode, proc.stderr) == (
        1, f"Error: {URI}: reading object-store URIs needs pyarrow: pip install 'docqa[cloud]'\n")
