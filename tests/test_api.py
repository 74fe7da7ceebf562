"""End to end with a tiny model trained in-test: index files, search, read, rank, cite.

A random model cannot show that the right answer comes back from the right file and page; the
model trained on templated facts ("The code of Zorbia is Quelm.") can.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from pdfgen import write_pdf
from tinymodels import Fact, FactGenerator

from docqa import DocQA
from docqa.cli import cli
from docqa.types import AskResult


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[Fact, str, int]]]:
    """Six text files and a 3-page PDF, each fact in exactly one place: {question: (fact, path, page)}."""
    folder = tmp_path_factory.mktemp("corpus")
    gen = FactGenerator(seed=42)
    where: dict[str, tuple[Fact, str, int]] = {}
    for n in range(6):
        passage = gen.passage(n_facts=4)
        name = f"notes-{n}.txt"
        (folder / name).write_text(passage.text, encoding="utf-8")
        for fact in passage.facts:
            where[fact.question] = (fact, name, 1)
    pages = [gen.passage(n_facts=3) for _ in range(3)]
    write_pdf(folder / "atlas.pdf", [p.text for p in pages])
    for number, passage in enumerate(pages, 1):
        for fact in passage.facts:
            where[fact.question] = (fact, "atlas.pdf", number)
    return folder, where


@pytest.fixture(scope="module")
def qa(corpus, trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    folder, _ = corpus
    with DocQA(tmp_path_factory.mktemp("idx") / "facts.db", model=str(trained_model_dir)) as qa:
        report = qa.index([folder])
        assert report.added == 7 and report.failed == 0
        yield qa


def test_answers_come_from_the_right_file_page_and_offsets(qa: DocQA, corpus) -> None:
    _, where = corpus
    right = 0
    for question, (fact, path, page) in where.items():
        result = qa.ask(question, top_k=3, passages=5)
        assert isinstance(result, AskResult)
        top = result.answers[0]
        citation = top.citations[0]
        # Whatever the model picks, offsets must slice the stored text back to the answer.
        text = qa.document_text(citation.path)
        assert text[citation.start:citation.end] == top.text
        assert text[citation.context_start:citation.context_start + len(citation.context)] == citation.context
        if (top.text, citation.path, citation.page) == (fact.value, path, page):
            right += 1
    assert right / len(where) >= 0.9, f"{right}/{len(where)} right"


def test_iterating_an_ask_result_iterates_answers(qa: DocQA, corpus) -> None:
    _, where = corpus
    question = next(iter(where))
    result = qa.ask(question, top_k=2)
    assert list(result) == list(result.answers) and len(result) == len(result.answers) <= 2
    assert 0 < sum(a.confidence for a in result) <= 1.0 + 1e-9
    assert result.timings.read_s > 0 and result.timings.retrieve_s > 0


def test_ask_is_ask_batch_of_one(qa: DocQA, corpus) -> None:
    _, where = corpus
    questions = list(where)[:6]
    batch = qa.ask_batch(questions, top_k=3, passages=5)
    for q, b in zip(questions, batch):
        one = qa.ask(q, top_k=3, passages=5)
        assert [a.text for a in one] == [a.text for a in b]
        assert [a.score for a in one] == pytest.approx([a.score for a in b], abs=1e-4)


def test_ask_reads_passages_in_order_and_stops_when_the_rest_cannot_win(qa: DocQA, corpus) -> None:
    """``ask`` reads the top passages first and the others only while they could overtake its top
    answer; here that skips passages, and every top answer is the one reading all of them gives
    (``read_batch`` without ``mu``, what ``docqa eval`` ranks)."""
    from docqa.api import READ_STAGES
    from docqa.rank import DEFAULT_MU

    _, where = corpus
    questions = sorted(where)
    everything = qa.read_batch(questions)
    staged = qa.read_batch(questions, mu=DEFAULT_MU)
    skipped = 0
    for full, part in zip(everything, staged):
        assert part.contexts == full.contexts
        read = {s.context.hit.passage_id for s in part.spans}
        first = [h.passage_id for h in part.hits[:READ_STAGES[0]]]
        assert read == {h.passage_id for h in part.hits} or read <= set(first)
        skipped += len(read) < len(part.hits)
        assert qa.rank(part, threshold=-math.inf).answers[0].text == qa.rank(full, threshold=-math.inf).answers[0].text
    assert {s.context.hit.passage_id for r in everything for s in r.spans} == \
           {h.passage_id for r in everything for h in r.hits}
    assert skipped > 0
    assert [a.text for a in qa.ask(questions[0])] == [a.text for a in qa.rank(staged[0])]


def test_path_filter_limits_answers(qa: DocQA, corpus) -> None:
    _, where = corpus
    question, (fact, path, _) = next((q, v) for q, v in where.items() if v[1] == "atlas.pdf")
    result = qa.ask(question, paths=["notes-*"])
    assert all(c.path.startswith("notes-") for a in result for c in a.citations)


def test_same_fact_in_two_files_is_one_answer_with_two_citations(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    gen = FactGenerator(seed=5)
    passage = gen.passage(n_facts=3)
    for name in ("a.txt", "b.md"):
        (tmp_path / name).write_text(passage.text, encoding="utf-8")
    for n in range(4):  # BM25 needs a few documents
        (tmp_path / f"other-{n}.txt").write_text(gen.passage(n_facts=3).text, encoding="utf-8")
    fact = passage.facts[0]
    with DocQA(tmp_path / "i.db", model=str(trained_model_dir)) as qa:
        qa.index([tmp_path])
        top = qa.ask(fact.question).answers[0]
    assert top.text == fact.value
    assert sorted(c.path for c in top.citations[:2]) == ["a.txt", "b.md"]


def test_abstains_with_closest_passages_when_below_threshold(trained_model_dir: Path, corpus, tmp_path: Path) -> None:
    folder, where = corpus
    with DocQA(tmp_path / "i.db", model=str(trained_model_dir), threshold=1.01) as qa:
        qa.index([folder])
        result = qa.ask(next(iter(where)))
    assert result.abstained and result.answers == ()
    assert result.passages and result.passages[0].rank == 1


def test_cli_ask_json_shape_explain_and_stdin(qa: DocQA, corpus, trained_model_dir: Path) -> None:
    _, where = corpus
    question, (fact, path, page) = next(iter(where.items()))
    args = ["ask", "-i", str(qa.index_path), "--model", str(trained_model_dir), "-n", "2"]
    result = CliRunner().invoke(cli, [*args, question, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {"question", "answers", "timings"}
    assert set(data["timings"]) >= {"retrieve_s", "read_s", "load_s"}
    answer = data["answers"][0]
    assert set(answer) >= {"text", "score", "confidence", "citations"}
    assert set(answer["citations"][0]) >= {"path", "page", "start", "end", "passage_id", "context", "context_start"}
    assert answer["text"] == fact.value

    piped = CliRunner().invoke(cli, [*args, "--json"], input=question + "\n", catch_exceptions=False)
    assert json.loads(piped.output)["question"] == question

    human = CliRunner().invoke(cli, [*args, "--explain", question], catch_exceptions=False)
    assert fact.value in human.output and f"{path}, page {page}" in human.output
    assert "reader" in human.output and "retriever" in human.output


@pytest.mark.parametrize("factor", [0.5, 3.0])
def test_a_reader_with_scaled_logits_ranks_and_abstains_the_same(qa: DocQA, corpus, trained_model_dir: Path,
                                                                tmp_path: Path, factor: float) -> None:
    """A model whose logits are ``factor`` times sharper (its span head scaled) gives the same
    answers, confidences and abstentions: nothing in ranking depends on a reader's logit scale."""
    import shutil

    import torch
    from transformers import AutoModelForQuestionAnswering

    shutil.copytree(trained_model_dir, tmp_path / "scaled")
    model = AutoModelForQuestionAnswering.from_pretrained(str(trained_model_dir), dtype=torch.float32)
    with torch.no_grad():
        model.qa_outputs.weight.mul_(factor)
        model.qa_outputs.bias.mul_(factor)
    model.save_pretrained(str(tmp_path / "scaled"))
    _, where = corpus
    questions = sorted(where)[:10]
    base = qa.read_batch(questions)
    with DocQA(qa.index_path, model=str(tmp_path / "scaled")) as other:
        scaled = other.read_batch(questions)
    confidences = sorted(qa.rank(r, threshold=0.0).answers[0].confidence for r in base)
    cut = (confidences[4] + confidences[5]) / 2  # abstains on about half of them
    for threshold in (0.0, cut):
        a = [qa.rank(r, threshold=threshold) for r in base]
        b = [qa.rank(r, threshold=threshold) for r in scaled]
        assert [x.abstained for x in a] == [x.abstained for x in b]
        assert [[(y.text, round(y.confidence, 4), round(y.score, 4)) for y in x] for x in a] == \
               [[(y.text, round(y.confidence, 4), round(y.score, 4)) for y in x] for x in b]
    assert 0 < sum(x.abstained for x in (qa.rank(r, threshold=cut) for r in base)) < len(questions)


def test_ranking_weighs_the_sentence_each_answer_stands_in(qa: DocQA, corpus) -> None:
    """``rank`` gives the reading's question to the ranking: the right answer's sentence ("In
    Brelm, the colour is Truglur.") holds the question's words ("What colour is used in Brelm?"),
    which lifts its retriever part above the passage score alone (the ranking without a
    question), and above other candidates' ("Drepla's colour" does not match "Drepla": words
    are compared as SQuAD normalises answers)."""
    from dataclasses import replace

    from docqa.rank import SENTENCE_WEIGHT

    _, where = corpus
    beats_others = 0
    for reading in qa.read_batch(sorted(where)[:5]):
        ranked = qa.rank(reading, threshold=0.0, top_k=50).answers
        passage = {a.text: a.retriever_score for a in qa.rank(replace(reading, question=""), threshold=0.0,
                                                               top_k=50).answers}
        sentence = {a.text: (a.retriever_score - (1 - SENTENCE_WEIGHT) * passage[a.text]) / SENTENCE_WEIGHT
                    for a in ranked}
        right = where[reading.question][0].value
        assert ranked[0].text == right and 0 < sentence[right] <= 1
        assert ranked[0].retriever_score != pytest.approx(passage[right])  # the sentence counted
        beats_others += len(ranked) > 1 and all(sentence[right] > v for t, v in sentence.items() if t != right)
    assert beats_others >= 2
