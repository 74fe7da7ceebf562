"""Shared fixtures. Real parts: real SQLite files, real PDFs from ../shared/data, tiny real models."""

from __future__ import annotations

import os
import tempfile
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
