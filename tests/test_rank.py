"""Answer ranking across passages: fusion, merging, confidence, abstaining."""

from __future__ import annotations

import math

import pytest

from docqa.rank import CONFIDENCE_TEMPERATURE, READER_CENTER, READER_SCALE, rank_answers, reader_scale
from docqa.types import Context, Hit, Span

DOC_A = "Paris is the capital of France. Lyon is a large city in France, smaller than Paris."
DOC_B = "Berlin is the capital of Germany. Many say the capital of France is Paris."


def _hit(path: str, text: str, score: float, rank: int, doc_id: int) -> Hit:
    return Hit(rank=rank, score=score, passage_id=rank * 10, path=path, page=1, last_page=1,
               start=0, end=len(text), text=text, document_id=doc_id)


HIT_A = _hit("a.txt", DOC_A, 8.0, 1, 1)
HIT_B = _hit("b.txt", DOC_B, 4.0, 2, 2)


def _span(hit: Hit, answer: str, score: float, nth: int = 0) -> Span:
    start = -1
    for _ in range(nth + 1):
        start = hit.text.index(answer, start + 1)
    return Span(context=Context(hit=hit, text=hit.text, start=hit.start), start=start,
                end=start + len(answer), score=score)


def rank(spans: list[Span], threshold: float = 0.0, **kw: float):
    return rank_answers(spans, [HIT_A, HIT_B], page_of=lambda s: 1, threshold=threshold, **kw)


def test_fused_score_is_mu_weighted_sum_of_normalised_parts() -> None:
    ranked = rank([_span(HIT_B, "Berlin", 6.0)], mu=0.7)
    (answer,) = ranked.answers
    assert answer.reader_score == pytest.approx(1 / (1 + math.exp(-(6.0 - READER_CENTER) / READER_SCALE)))
    assert answer.retriever_score == pytest.approx(4.0 / 8.0)
    assert answer.score == pytest.approx(0.7 * answer.reader_score + 0.3 * 0.5)


def test_same_answer_from_two_documents_is_merged_with_best_citation_first() -> None:
    spans = [_span(HIT_A, "Paris", 5.0), _span(HIT_B, "Paris", 9.0), _span(HIT_A, "Lyon", 2.0)]
    ranked = rank(spans, mu=1.0)
    assert [a.text for a in ranked.answers] == ["Paris", "Lyon"]
    paris = ranked.answers[0]
    assert [c.path for c in paris.citations] == ["b.txt", "a.txt"]
    assert paris.score == pytest.approx(reader_scale(9.0))
    for c in paris.citations:
        source = DOC_A if c.path == "a.txt" else DOC_B
        assert source[c.start:c.end] == "Paris"
        assert source[c.context_start:c.context_start + len(c.context)] == c.context
        assert "Paris" in c.context


def test_normalised_duplicates_merge_but_text_keeps_the_document_form() -> None:
    hit = _hit("c.txt", "The Eiffel Tower. the eiffel tower!", 3.0, 1, 3)
    ranked = rank_answers([_span(hit, "The Eiffel Tower", 4.0), _span(hit, "eiffel tower", 3.0)],
                          [hit], page_of=lambda s: 1, mu=1.0, threshold=0.0)
    (answer,) = ranked.answers
    assert answer.text == "The Eiffel Tower"
    assert len(answer.citations) == 2


def test_mu_decides_between_reader_and_retriever() -> None:
    spans = [_span(HIT_A, "Lyon", 1.0), _span(HIT_B, "Berlin", 3.0)]
    assert rank(spans, mu=1.0).answers[0].text == "Berlin"
    assert rank(spans, mu=0.0).answers[0].text == "Lyon"


def test_confidence_is_softmax_over_candidates_and_top_n_cuts() -> None:
    spans = [_span(HIT_A, "Paris", 6.0), _span(HIT_A, "Lyon", 2.0), _span(HIT_B, "Berlin", 1.0)]
    ranked = rank(spans, mu=1.0, top_n=2)
    assert [a.text for a in ranked.answers] == ["Paris", "Lyon"]
    fused = [reader_scale(s) for s in (6.0, 2.0, 1.0)]
    exps = [math.exp((f - fused[0]) / CONFIDENCE_TEMPERATURE) for f in fused]
    assert ranked.answers[0].confidence == pytest.approx(exps[0] / sum(exps))
    assert ranked.answers[0].confidence > ranked.answers[1].confidence


def test_abstains_below_threshold_and_without_spans() -> None:
    spans = [_span(HIT_A, "Paris", -8.0)]
    assert rank(spans, mu=1.0, threshold=0.5).abstained
    assert rank(spans, mu=1.0, threshold=0.5).answers == ()
    assert rank([], mu=1.0).abstained
    assert not rank(spans, mu=1.0, threshold=0.0).abstained
