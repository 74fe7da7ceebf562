"""Answer ranking across passages: fusion, merging, clean spans, confidence, abstaining."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from docqa.rank import (
    CONFIDENCE_TEMPERATURE, DEFAULT_MU, READER_SPREAD, SENTENCE_WEIGHT, could_change, rank_answers, reader_parts,
)
from docqa.types import PAGE_BREAK, Context, Hit, Span

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


def rank(spans: list[Span], threshold: float = 0.0, hits: tuple[Hit, ...] = (HIT_A, HIT_B), **kw: float):
    return rank_answers(spans, hits, page_of=lambda doc, offset: 1, threshold=threshold, **kw)


def test_fused_score_is_mu_weighted_sum_of_per_question_parts() -> None:
    spans = [_span(HIT_B, "Berlin", 6.0), _span(HIT_A, "Lyon", 2.0)]
    parts = reader_parts([6.0, 2.0])
    assert parts[0] == 1.0 and parts[1] == pytest.approx(math.exp(-4.0 / (READER_SPREAD * 2.0)))  # std of (6, 2): 2
    berlin, lyon = rank(spans, mu=0.7).answers
    assert (berlin.reader_score, berlin.retriever_score) == (1.0, pytest.approx(4.0 / 8.0))
    assert berlin.score == pytest.approx(0.7 * 1.0 + 0.3 * 0.5)
    assert lyon.score == pytest.approx(0.7 * parts[1] + 0.3 * 1.0)


@pytest.mark.parametrize("factor, offset", [(0.5, 0.0), (1.5, 0.0), (3.0, 0.0), (2.0, -4.0)])
def test_ranking_and_abstaining_do_not_depend_on_the_reader_logit_scale(factor: float, offset: float) -> None:
    spans = [_span(HIT_A, "Paris", 6.0), _span(HIT_A, "Lyon", 5.5), _span(HIT_B, "Berlin", 1.0),
             _span(HIT_B, "Germany", 5.9)]
    scaled = [replace(s, score=s.score * factor + offset) for s in spans]
    for threshold in (0.0, 0.5, 0.95):
        a, b = rank(spans, threshold, question=QUESTION), rank(scaled, threshold, question=QUESTION)
        assert a.abstained == b.abstained
        assert [(x.text, round(x.score, 9), round(x.confidence, 9)) for x in a.answers] == \
               [(x.text, round(x.score, 9), round(x.confidence, 9)) for x in b.answers]
    assert rank(spans, 0.95, question=QUESTION).abstained and not rank(spans, 0.0, question=QUESTION).abstained


QUESTION = "Which city is the capital of Germany?"


def test_the_answer_whose_sentence_holds_the_question_wins_close_calls() -> None:
    even_b = replace(HIT_B, score=HIT_A.score)  # both passages retrieved alike
    spans = [_span(HIT_A, "Lyon", 5.1), _span(even_b, "Berlin", 5.0), _span(HIT_A, "Paris", 0.0)]
    assert rank(spans, hits=(HIT_A, even_b)).answers[0].text == "Lyon"  # the reader's best, passages equal
    lyon, berlin = (rank(spans, hits=(HIT_A, even_b), question=QUESTION).answers[i] for i in (1, 0))
    assert berlin.text == "Berlin" and lyon.text == "Lyon"
    # Question words (normalised, "the" dropped), weighted by inverse document frequency over the
    # two passages read: "which" is in neither, "city" and "germany" in one, the rest in both.
    idf = {"which": math.log(3 / 0.5), "city": math.log(3 / 1.5), "germany": math.log(3 / 1.5),
           "is": math.log(3 / 2.5), "capital": math.log(3 / 2.5), "of": math.log(3 / 2.5)}
    total = sum(idf.values())
    # "Berlin [is the capital of Germany.]"; "Lyon [is a large city in France, smaller than Paris.]"
    berlin_sentence = (idf["is"] + idf["capital"] + idf["of"] + idf["germany"]) / total
    lyon_sentence = (idf["is"] + idf["city"]) / total
    assert berlin.retriever_score == pytest.approx((1 - SENTENCE_WEIGHT) + SENTENCE_WEIGHT * berlin_sentence)
    assert lyon.retriever_score == pytest.approx((1 - SENTENCE_WEIGHT) + SENTENCE_WEIGHT * lyon_sentence)


def test_same_answer_from_two_documents_is_merged_with_best_citation_first() -> None:
    spans = [_span(HIT_A, "Paris", 5.0), _span(HIT_B, "Paris", 9.0), _span(HIT_A, "Lyon", 2.0)]
    ranked = rank(spans, mu=1.0)
    assert [a.text for a in ranked.answers] == ["Paris", "Lyon"]
    paris = ranked.answers[0]
    assert [c.path for c in paris.citations] == ["b.txt", "a.txt"]
    for c in paris.citations:
        source = DOC_A if c.path == "a.txt" else DOC_B
        assert source[c.start:c.end] == c.text == "Paris"
        assert source[c.context_start:c.context_start + len(c.context)] == c.context
        assert "Paris" in c.context


def test_overlapping_spans_in_one_document_are_one_candidate() -> None:
    hit = _hit("c.txt", "The probe ended its mission on 15 September 2017 after thirteen years.", 5.0, 1, 3)
    spans = [_span(hit, "15 September 2017", 9.0), _span(hit, "on 15 September 2017", 6.0),
             _span(hit, "its mission on 15 September", 5.0), _span(hit, "thirteen years", 4.0)]
    ranked = rank(spans, hits=(hit,), mu=1.0)
    assert [a.text for a in ranked.answers] == ["15 September 2017", "thirteen years"]
    assert len(ranked.answers[0].citations) == 1


def test_citations_carry_their_own_surface_form() -> None:
    hit = _hit("c.txt", "The Fermat primality test. Later, the Fermat primality test failed.", 3.0, 1, 3)
    far = Span(context=Context(hit=hit, text=hit.text, start=0), start=hit.text.index("the Fermat"),
               end=hit.text.index("the Fermat") + len("the Fermat primality test"), score=3.0)
    (answer,) = rank([_span(hit, "Fermat primality test", 4.0), far], hits=(hit,), mu=1.0).answers
    assert answer.text == "Fermat primality test"
    assert [c.text for c in answer.citations] == ["Fermat primality test", "the Fermat primality test"]
    assert all(hit.text[c.start:c.end] == c.text for c in answer.citations)


@pytest.mark.parametrize("read, shown", [
    ("Chebyshev)", "Chebyshev"),
    ("fact (Fermat's little theorem", "Fermat's little theorem"),
    ("trial division.", "trial division"),
    ("(1823)", "1823"),
    ("Washington, D.C.", "Washington, D.C."),
])
def test_shown_spans_are_trimmed_and_offsets_stay_exact(read: str, shown: str) -> None:
    text = f"We know it: {read} And more."
    hit = _hit("t.txt", text, 1.0, 1, 4)
    (answer,) = rank([_span(hit, read, 5.0)], hits=(hit,)).answers
    (c,) = answer.citations
    assert answer.text == shown == c.text == text[c.start:c.end]


def test_an_answer_across_a_page_break_shows_a_space_and_names_both_pages() -> None:
    text = f"They saw conscription as incompatible with the teaching of{PAGE_BREAK}Scripture, it said."
    hit = _hit("p.pdf", text, 1.0, 1, 5)
    page_of = lambda doc, offset: 1 + text.count(PAGE_BREAK, 0, offset)  # noqa: E731
    answer = rank_answers([_span(hit, f"the teaching of{PAGE_BREAK}Scripture", 5.0)], [hit], page_of=page_of,
                          threshold=0.0).answers[0]
    (c,) = answer.citations
    assert answer.text == "the teaching of Scripture"
    assert c.text == text[c.start:c.end] == f"the teaching of{PAGE_BREAK}Scripture"
    assert (c.page, c.last_page) == (1, 2)


def test_mu_decides_between_reader_and_retriever() -> None:
    spans = [_span(HIT_A, "Lyon", 1.0), _span(HIT_B, "Berlin", 3.0)]
    assert rank(spans, mu=1.0).answers[0].text == "Berlin"
    assert rank(spans, mu=0.0).answers[0].text == "Lyon"


def test_confidence_is_softmax_over_candidates_and_top_n_cuts() -> None:
    spans = [_span(HIT_A, "Paris", 6.0), _span(HIT_A, "Lyon", 2.0), _span(HIT_B, "Berlin", 1.0)]
    ranked = rank(spans, mu=1.0, top_n=2)
    assert [a.text for a in ranked.answers] == ["Paris", "Lyon"]
    fused = reader_parts([6.0, 2.0, 1.0])
    exps = [math.exp((f - fused[0]) / CONFIDENCE_TEMPERATURE) for f in fused]
    assert ranked.answers[0].confidence == pytest.approx(exps[0] / sum(exps))
    assert ranked.answers[0].confidence > ranked.answers[1].confidence


def test_abstains_when_the_top_answer_is_not_confident_and_without_spans() -> None:
    close = [_span(HIT_A, "Paris", 5.0), _span(HIT_A, "Lyon", 4.99), _span(HIT_B, "Berlin", 1.0),
             _span(HIT_B, "Germany", 0.0)]  # two answers alike: about 50/50
    assert rank(close, mu=1.0, threshold=0.6).abstained
    assert rank(close, mu=1.0, threshold=0.6).answers == ()
    assert not rank(close, mu=1.0, threshold=0.4).abstained
    assert rank([], mu=1.0).abstained


@pytest.mark.parametrize("text, score, can_win", [
    ("The city which is the capital of Germany is Bonn.", 3.9, True),  # all the question's words
    ("Rain fell on the hills for days.", 0.5, False),  # none, and a low passage score
])
def test_passages_left_unread_are_those_that_cannot_win(text: str, score: float, can_win: bool) -> None:
    """``could_change`` (after reading two passages, may the third change the top answer?) says
    yes for a passage whose answer wins the full ranking for some reader score, and no for one
    whose answer loses whatever the reader gives it."""
    read = [_span(HIT_A, "Paris", 6.0), _span(HIT_B, "Berlin", 5.0)]
    third = _hit("c.txt", text, score, 3, 3)
    hits = (HIT_A, HIT_B, third)
    wins = set()
    for word in (text.split()[0], text.split()[-1].strip(".")):
        for raw in range(-10, 60, 2):
            top = rank([*read, _span(third, word, float(raw))], -math.inf, hits, question=QUESTION).answers[0]
            wins.add(top.citations[0].path == "c.txt")
    assert (True in wins) == can_win
    unread = [Context(hit=third, text=third.text, start=third.start)]
    assert could_change(QUESTION, read, hits, unread, DEFAULT_MU) == can_win
    assert not could_change(QUESTION, [*read, _span(third, word, 0.0)], hits, [], DEFAULT_MU)


def test_answers_read_must_keep_their_order_whatever_the_reader_parts_become() -> None:
    """New spans renormalise the reader parts: a runner-up with a lower raw score but a higher
    retriever part (its sentence holds the question's words) could then pass the top answer,
    so the passages left are read, however weak."""
    weak = _hit("d.txt", "Rain fell on the hills for days.", 0.1, 3, 4)
    read = [_span(HIT_A, "Paris", 9.0), _span(HIT_A, "Lyon", 1.0), _span(HIT_B, "Berlin", 0.0)]
    hits = (HIT_A, HIT_B, weak)
    unread = [Context(hit=weak, text=weak.text, start=weak.start)]
    ranked = rank(read, -math.inf, hits, question=QUESTION).answers
    assert ranked[0].text == "Paris" and ranked[0].retriever_score < max(a.retriever_score for a in ranked[1:])
    assert could_change(QUESTION, read, hits, unread, DEFAULT_MU)
    assert not could_change(QUESTION, read[:2], hits, unread, DEFAULT_MU)
