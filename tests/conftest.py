"""Shared fixtures. Real parts: real SQLite files, real PDFs from ../shared/data, tiny real models."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
PDFS = DATA / "pdfs"
SQUAD = DATA / "squad" / "dev-v1.1.json"
CASED_VOCAB = DATA / "tokenizers" / "bert-base-cased"
PROXY_MODEL = SHARED / "models" / "minilm-squad-proxy"


# Tests run as if the dense extra were absent (no default embedding, also in subprocesses) unless
# they say otherwise, and never write an ONNX export outside their temporary folders.
os.environ["DOCQA_EMBEDDER"] = "none"
os.environ["DOCQA_CACHE"] = tempfile.mkdtemp(prefix="docqa-test-cache-")
# S3 in tests is the `s3` fixture's local server, with credentials it accepts (never a real
# account); Ray nodes the tests start inherit them, as a real cluster's nodes have their own.
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true")


def put_text(store: object, path: str, text: str) -> int:
    """Write ``text`` into ``store`` as a one-page .txt document under /corpus, split as docqa does."""
    from docqa.split import split_pages
    from docqa.store import DocumentRow

    row = DocumentRow(path=path, abs_path=f"/corpus/{path}", root="/corpus", size=len(text), mtime=0.0,
                      sha256=path, kind="txt", page_count=1, status="indexed", message="")
    return store.put_document(row, [text], split_pages([text]))  # type: ignore[attr-defined]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run the long loops marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent (the shared test material sits beside the project)")
    return DATA


@pytest.fixture(scope="session")
def cased_vocab() -> Path:
    """The cased BERT vocabulary every tiny model is built with."""
    if not CASED_VOCAB.is_dir():
        pytest.skip(f"{CASED_VOCAB} is absent (the shared test material sits beside the project)")
    return CASED_VOCAB


# --- tiny QA models (tests/tinymodels.py): built once per session, loaded via from_pretrained ---


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, cased_vocab: Path) -> Path:
    """A random-weight tiny BertForQuestionAnswering + cased tokenizer saved in a folder."""
    from tinymodels import build_tiny_random

    return build_tiny_random(tmp_path_factory.mktemp("tiny-random"))


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, cased_vocab: Path) -> Path:
    """A tiny QA model trained here on templated facts (see tests.tinymodels.FactGenerator)."""
    from tinymodels import train_tiny_qa

    return train_tiny_qa(tmp_path_factory.mktemp("tiny-trained"))


@pytest.fixture(scope="session")
def s3() -> Iterator[str]:
    """A local S3 server (moto, in a subprocess on a free port) that this process and the
    commands it starts reach through ``AWS_ENDPOINT_URL``; yields its endpoint."""
    pytest.importorskip("moto", reason="moto is not installed (pip install 'moto[server]')")
    pytest.importorskip("pyarrow.fs", reason="pyarrow is not installed (pip install 'docqa[cloud]')")
    # moto's request recorder (off until a test starts it: test_objectstore.s3_requests) writes here.
    recorder = tempfile.TemporaryDirectory(prefix="docqa-moto-")
    recording = os.path.join(recorder.name, "requests.jsonl")
    for _ in range(3):  # a port taken between picking and binding: pick another
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "MOTO_RECORDER_FILEPATH": recording})
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            proc.kill()
            proc.wait()
            continue
        break
    else:
        pytest.fail("the moto S3 server did not start")
    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint = f"http://127.0.0.1:{port}"
    try:
        yield endpoint
    finally:
        os.environ.pop("AWS_ENDPOINT_URL") if saved is None else os.environ.update(AWS_ENDPOINT_URL=saved)
        proc.kill()
        proc.wait()
        recorder.cleanup()
