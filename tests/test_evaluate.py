"""`docqa eval`: official SQuAD metrics, the evaluation index, a tiny end-to-end run, the CLI."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path

import pytest

from docqa.errors import DatasetError
from docqa.normalize import normalize_answer
from docqa.evaluate import (
    QuestionEval,
    best_over_golds,
    calibration_bins,
    evaluate,
    exact_match,
    f1,
    has_answer,
    parse_sweep,
)

# -- metrics: values the official SQuAD v1.1 script (evaluate-v1.1.py) gives ----------------------


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The Denver Broncos!", "denver broncos"),
        ("  A  cat, an apple & THE  end.", "cat apple end"),
        ("Levi's Stadium", "levis stadium"),
        ("state-of-the-art", "stateoftheart"),  # punctuation goes first: "the" is no longer a word
        ("theatre", "theatre"),  # articles only as whole words
        ("\u201cquoted\u201d", "\u201cquoted\u201d"),  # only ASCII punctuation is removed
        ("", ""),
    ],
)
def test_normalize_answer_matches_official_script(text: str, normal: str) -> None:
    assert normalize_answer(text) == normal


@pytest.mark.parametrize(
    ("prediction", "gold", "em", "f1_"),
    [
        ("the Broncos", "Broncos", 1.0, 1.0),
        ("Denver Broncos", "the Denver Broncos team", 0.0, 0.8),  # P 1, R 2/3
        ("x x y", "x y y", 0.0, 2 / 3),  # token counts are clipped (multiset overlap)
        ("Levis", "Levi's", 1.0, 1.0),
        ("state of the art", "state-of-the-art", 0.0, 0.0),
        ("", "Broncos", 0.0, 0.0),
        ("", "", 1.0, 0.0),  # v1.1: no common token means F1 0, even for two empty strings
        ("a", "the", 1.0, 0.0),  # both normalise to ""
    ],
)
def test_em_and_f1_match_official_script(prediction: str, gold: str, em: float, f1_: float) -> None:
    assert exact_match(prediction, gold) == em
    assert f1(prediction, gold) == pytest.approx(f1_)


def test_multiple_golds_score_against_the_best_one() -> None:
    golds = ["Santa Clara, California", "Levi's Stadium", "Levi's Stadium in the San Francisco Bay Area"]
    assert best_over_golds(exact_match, "Levi's Stadium", golds) == 1.0
    assert best_over_golds(f1, "Santa Clara", golds) == pytest.approx(0.8)
    assert best_over_golds(f1, "the stadium", golds) == pytest.approx(2 / 3)  # best: "levis stadium"
    assert best_over_golds(f1, "anything", []) == 0.0


def test_dataset_level_scores_are_means_times_100_like_the_official_script() -> None:
    cases = [("Broncos", ["Denver Broncos", "Broncos"]), ("Santa Clara", ["Santa Clara, California"]),
             ("1998", ["2016"])]
    em = 100 * sum(best_over_golds(exact_match, p, g) for p, g in cases) / len(cases)
    f = 100 * sum(best_over_golds(f1, p, g) for p, g in cases) / len(cases)
    assert em == pytest.approx(33.333333)
    assert f == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("answers", "text", "found"),
    [
        (["Denver Broncos"], "In 2016 the Denver  Broncos won.", True),
        (["The Broncos"], "broncos, again", True),
        (["cat"], "concatenate", False),  # whole tokens only
        (["x", "Paris"], "Paris is nice.", True),
        ([""], "anything", False),
        ([], "anything", False),
    ],
)
def test_has_answer_is_normalised_token_containment(answers: list[str], text: str, found: bool) -> None:
    assert has_answer(answers, text) is found


# -- small pieces ----------------------------------------------------------------------------------


def test_parse_sweep() -> None:
    assert parse_sweep("0:1:0.1") == tuple(i / 10 for i in range(11))
    assert parse_sweep("0.2:0.5:0.15") == (0.2, 0.35, 0.5)
    assert parse_sweep("0.3,0.7") == (0.3, 0.7)
    for bad in ("0:2:0.5", "0:1:0", "a:b:c", "1:0:-1"):
        with pytest.raises(DatasetError):
            parse_sweep(bad)


def _row(confidence: float, em: float, abstained: bool = False) -> QuestionEval:
    return QuestionEval(
        id="q", question="?", article=0, answers=("x",), prediction="" if abstained else "x", candidate="x",
        score=confidence, confidence=confidence, abstained=abstained, em=em, f1=em, gold_prediction="x",
        gold_em=1.0, gold_f1=1.0, hit_rank=1, read_hit=True, path="a.txt", retrieve_s=0.0, read_s=0.0,
    )


def test_calibration_bins_count_shown_answers_only() -> None:
    rows = [_row(0.05, 0.0), _row(0.15, 1.0), _row(0.95, 1.0), _row(1.0, 0.0), _row(0.5, 1.0, abstained=True)]
    bins = calibration_bins(rows)
    assert [(b.lo, b.count) for b in bins] == [(0.0, 1), (0.1, 1), (0.9, 2)]
    assert bins[-1].accuracy == 50.0
    assert bins[-1].confidence == pytest.approx(0.975)


# -- end to end: a 3-article SQuAD-format file and the tiny model trained in the tests -------------

EVAL_SETTINGS = dict(passage_words=40, overlap_words=10)
K, MU = 3, 0.5


def official_normalize(s: str) -> str:
    """The official evaluate-v1.1.py, written out again as an independent oracle."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def official_f1(prediction: str, gold: str) -> float:
    pred, truth = official_normalize(prediction).split(), official_normalize(gold).split()
    same = sum((Counter(pred) & Counter(truth)).values())
    return 0.0 if same == 0 else 2 * same / (len(pred) + len(truth))  # = 2PR / (P + R)


def official_em(prediction: str, gold: str) -> float:
    return float(official_normalize(prediction) == official_normalize(gold))


def oracle_max(metric, prediction: str, golds: list[str]) -> float:
    return max(metric(prediction, g) for g in golds)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 articles x 2 paragraphs of templated facts, 2 questions per paragraph, plus a question
    whose gold answer is mislabelled (in no passage: a retrieval miss by construction) and a
    v2.0 unanswerable one."""
    from tinymodels import FactGenerator

    gen = FactGenerator(seed=11)
    data = []
    for a in range(3):
        paragraphs = []
        for p in range(2):
            passage = gen.passage(n_facts=4)
            qas = [{"id": f"q{a}{p}{i}", "question": f.question,
                    "answers": [{"text": f.value, "answer_start": passage.answer_start(f)}]}
                   for i, f in enumerate(passage.facts[:2])]
            paragraphs.append({"context": passage.text, "qas": qas})
        data.append({"title": f"Land {a}", "paragraphs": paragraphs})
    first = data[0]["paragraphs"][0]
    mislabelled = dict(first["qas"][0], id="mislabelled",
                       answers=[{"text": first["qas"][0]["answers"][0]["text"] + " Vale", "answer_start": 0}])
    unanswerable = {"id": "unanswerable", "question": f"What is the code of {gen.name()}?", "answers": [],
                    "is_impossible": True}
    first["qas"] += [mislabelled, unanswerable]
    path = tmp_path_factory.mktemp("data") / "tiny-squad.json"
    path.write_text(json.dumps({"version": "v2.0", "data": data}), encoding="utf-8")
    return path


def _questions(dataset: Path) -> list[dict]:
    """(id, question, gold texts, paragraph) read straight from the file."""
    data = json.loads(dataset.read_text())["data"]
    return [{"id": qa["id"], "question": qa["question"], "answers": [a["text"] for a in qa["answers"]],
             "paragraph": p["context"]} for article in data for p in article["paragraphs"] for qa in p["qas"]]


@pytest.fixture(scope="module")
def run(dataset: Path, trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("eval-out")
    report = evaluate(dataset, model=str(trained_model_dir), index=out / "eval.db", k=K, mu=MU,
                      mu_sweep=(0.0, 1.0), threshold=0.0, out=out, **EVAL_SETTINGS)
    rows = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    return report, rows, out


def test_report_equals_an_independent_computation(run, dataset: Path, trained_model_dir: Path) -> None:
    """Recall from plain searches, open answers from plain `ask`, all scored by the oracle."""
    from docqa import DocQA

    report, rows, _ = run
    answerable = [q for q in _questions(dataset) if q["answers"]]
    with DocQA(report.index, model=str(trained_model_dir), threshold=0.0) as qa:
        ranks = [next((h.rank for h in qa.search(q["question"], k=20).hits
                       if any(f" {official_normalize(a)} " in f" {official_normalize(h.text)} " for a in q["answers"])),
                      None) for q in answerable]
        answers = [r.answers[0].text for r in qa.ask_batch([q["question"] for q in answerable], passages=K, mu=MU)]
    for k in (1, 5, 10, 20):
        assert report.recall[k] == pytest.approx(100 * sum(r is not None and r <= k for r in ranks) / len(ranks))
    assert [rows[q["id"]]["prediction"] for q in answerable] == answers
    assert report.open_em == pytest.approx(100 * sum(oracle_max(official_em, a, q["answers"])
                                                     for a, q in zip(answers, answerable)) / len(answerable))
    assert report.open_f1 == pytest.approx(100 * sum(oracle_max(official_f1, a, q["answers"])
                                                     for a, q in zip(answers, answerable)) / len(answerable))
    golds = [rows[q["id"]]["gold_prediction"] for q in answerable]
    assert all(g and g in q["paragraph"] for g, q in zip(golds, answerable))
    assert report.gold_em == pytest.approx(100 * sum(oracle_max(official_em, g, q["answers"])
                                                     for g, q in zip(golds, answerable)) / len(answerable))
    assert report.gold_f1 == pytest.approx(100 * sum(oracle_max(official_f1, g, q["answers"])
                                                     for g, q in zip(golds, answerable)) / len(answerable))
    assert report.open_gold_ratio == pytest.approx(report.open_f1 / report.gold_f1)
    assert report.open_em > 0  # the trained model does find facts


def test_counts_and_the_questions_built_to_fail(run) -> None:
    report, rows, _ = run
    assert (report.questions, report.answerable, report.unanswerable) == (14, 13, 1)
    assert report.recall[20] <= 100 * 12 / 13  # the mislabelled answer is in no passage
    bad = rows["mislabelled"]
    assert bad["hit_rank"] is None and bad["em"] == 0.0 and not bad["read_hit"]
    assert bad["f1"] == pytest.approx(official_f1(bad["prediction"], bad["answers"][0]))
    assert rows["unanswerable"]["answers"] == [] and report.unanswerable_abstain_rate == 0.0  # threshold 0
    assert report.abstain_rate == 0.0 and report.below_threshold_em is None
    assert (report.k, report.mu, report.threshold, report.settings["passage_words"]) == (K, MU, 0.0, 40)
    assert report.retrieve_ms > 0 and report.read_ms > 0


def test_mu_sweep_and_threshold_agree_with_separate_runs(run, dataset: Path, trained_model_dir: Path) -> None:
    """A run at mu=1 whose threshold is above every fused score (<= 1) abstains on everything; its
    withheld top answers are exactly the sweep's mu=1 answers, and its own sweep ignores it."""
    report, _, out = run
    index_mtime = Path(report.index).stat().st_mtime_ns
    strict = evaluate(dataset, model=str(trained_model_dir), index=report.index, k=K, mu=1.0, threshold=2.0,
                      mu_sweep=(1.0,), **EVAL_SETTINGS)
    assert Path(strict.index).stat().st_mtime_ns == index_mtime  # same dataset and settings: reused
    assert (strict.abstain_rate, strict.unanswerable_abstain_rate, strict.open_em, strict.open_f1) == (100, 100, 0, 0)
    assert strict.calibration == () and strict.above_threshold_em is None
    assert [p.mu for p in report.mu_sweep] == [0.0, 1.0]
    assert strict.below_threshold_em == pytest.approx(report.mu_sweep[1].em)
    assert strict.mu_sweep == report.mu_sweep[1:]  # sweeps answer everything, whatever the threshold
    assert (strict.gold_em, strict.gold_f1, strict.recall) == (report.gold_em, report.gold_f1, report.recall)


def test_output_files(run) -> None:
    report, rows, out = run
    official = json.loads((out / "predictions.json").read_text())
    assert official == {i: r["prediction"] for i, r in rows.items()}
    assert json.loads((out / "report.json").read_text())["open_f1"] == pytest.approx(report.open_f1)
    for name in ("recall_at_k.png", "f1_vs_mu.png", "reliability.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(Path(f).name for f in report.files) == sorted(
        ["report.json", "predictions.jsonl", "predictions.json", "recall_at_k.png", "f1_vs_mu.png", "reliability.png"])
    assert sum(b.count for b in report.calibration) == 13  # every answerable question was answered


# -- the evaluation index ----------------------------------------------------------------------------


def test_articles_select_questions_but_the_whole_corpus_is_indexed(dataset: Path, tmp_path: Path) -> None:
    from docqa.store import Store

    report = evaluate(dataset, index=tmp_path / "e.db", articles="1:2", retrieval_only=True, **EVAL_SETTINGS)
    assert (report.questions, report.answerable, report.open_f1, report.model) == (4, 4, None, "")
    with Store(tmp_path / "e.db", readonly=True) as store:
        assert store.info().documents == 3
        assert sorted(d.path for d in store.documents()) == ["000-Land 0.txt", "001-Land 1.txt", "002-Land 2.txt"]
    assert evaluate(dataset, index=tmp_path / "e.db", limit=2, retrieval_only=True, **EVAL_SETTINGS).questions == 2


def test_a_users_index_is_never_overwritten(dataset: Path, tmp_path: Path) -> None:
    from docqa.store import Store

    Store(tmp_path / "mine.db", create=True).close()
    with pytest.raises(DatasetError, match="not an evaluation index"):
        evaluate(dataset, index=tmp_path / "mine.db", retrieval_only=True)


def test_other_settings_rebuild_the_index(dataset: Path, tmp_path: Path) -> None:
    from docqa.store import Store

    evaluate(dataset, index=tmp_path / "e.db", retrieval_only=True, **EVAL_SETTINGS)
    evaluate(dataset, index=tmp_path / "e.db", retrieval_only=True, passage_words=20, overlap_words=5)
    with Store(tmp_path / "e.db", readonly=True) as store:
        assert (store.settings["passage_words"], store.settings["overlap_words"]) == (20, 5)


def test_hybrid_retrieval_reuses_the_indexs_vectors(dataset: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    from docqa import DocQA

    index = tmp_path / "e.db"
    plain = evaluate(dataset, index=index, retrieval_only=True, **EVAL_SETTINGS)
    with DocQA(index) as qa:
        embedded = qa.embed(str(tiny_model_dir))  # a tiny stand-in for all-MiniLM-L6-v2
        assert embedded == qa.info().passages
    hybrid = evaluate(dataset, index=index, retrieval_only=True, retriever="hybrid", **EVAL_SETTINGS)
    assert (plain.retriever, hybrid.retriever, hybrid.questions) == ("fts5", "hybrid", plain.questions)
    assert hybrid.index == plain.index  # the same evaluation index, not rebuilt
    with DocQA(index) as qa:
        assert qa.embed() == 0  # and its vectors kept


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_eval_json_and_files(run, dataset: Path, trained_model_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from docqa.cli import cli

    report, _, _ = run
    args = ["eval", str(dataset), "--model", str(trained_model_dir), "-i", report.index, "-k", str(K),
            "--mu", str(MU), "--threshold", "0", "--mu-sweep", "0:1:0.5", "--passage-words", "40",
            "--overlap-words", "10", "-o", str(tmp_path / "o"), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["open_f1"] == pytest.approx(report.open_f1) and data["recall"]["10"] == report.recall[10]
    assert [p["mu"] for p in data["mu_sweep"]] == [0.0, 0.5, 1.0]
    assert data["mu_sweep"][1]["f1"] == pytest.approx(report.open_f1)
    assert {"questions", "answerable", "unanswerable", "gold_em", "gold_f1", "open_gold_ratio", "abstain_rate",
            "unanswerable_abstain_rate", "retrieve_ms", "read_ms", "calibration", "files"} <= set(data)
    assert (tmp_path / "o" / "predictions.jsonl").is_file() and (tmp_path / "o" / "f1_vs_mu.png").is_file()

    human = CliRunner().invoke(cli, args[:-1], catch_exceptions=False)
    assert "gold paragraph" in human.output and "recall@k" in human.output and "wrote" in human.output


def test_cli_eval_usage_errors(dataset: Path) -> None:
    from click.testing import CliRunner

    from docqa.cli import cli

    bad_sweep = CliRunner().invoke(cli, ["eval", str(dataset), "--mu-sweep", "0:2:1"])
    assert bad_sweep.exit_code == 2 and "mu-sweep" in bad_sweep.output
    missing = CliRunner().invoke(cli, ["eval", "no-such.json"])
    assert missing.exit_code == 2
    empty = CliRunner().invoke(cli, ["eval", str(dataset), "--articles", "7:9", "--retrieval-only"])
    assert empty.exit_code == 1 and "no questions selected" in empty.output
    overlap = CliRunner().invoke(cli, ["eval", str(dataset), "--passage-words", "20", "--overlap-words", "20"])
    assert overlap.exit_code == 1 and "--overlap-words must be below --passage-words" in overlap.output
