"""Answer ranking: spans from many passages -> merged, scored, cited answers.

1. Each span is trimmed (``docqa.spans.trim``: edge punctuation, unbalanced brackets/quotes).
2. Spans that overlap in the same document are one *place*: its best-scored span is shown, the
   others are its evidence (they add nothing to the score: they are the same reading).
3. Scores, both in [0, 1] so ``mu`` weighs like with like, and neither depending on the scale
   of the reader's logits (readers differ: a model with sharper logits must rank and abstain
   the same way):
   - reader: ``exp((score - best) / (READER_SPREAD * spread))``: 1 for the question's best raw
     span score, and how far below it the others are in units of ``spread``, the standard
     deviation of the question's raw span scores (the reader's own scale, measured on this
     question). Multiplying every score by a constant (or adding one) changes nothing.
   - retriever: ``(1 - SENTENCE_WEIGHT) * passage + SENTENCE_WEIGHT * sentence``. ``passage``
     is the hit's score divided by the best hit's score for this question; ``sentence`` is how
     much of the question the rest of the answer's sentence holds: the question's words found
     there, each weighted by its inverse document frequency over the passages read for the
     question (a word every passage has tells nothing), divided by all the question words'
     weight. The passage score judges 120 words at once; the sentence is where a reader's
     answer must be supported, and the reader alone compares its logits across passages
     poorly (it was trained on one paragraph at a time; docs/evaluation.md section 9).
   ``fused = mu * reader + (1 - mu) * retriever`` for each place.
4. Places whose shown text normalises the same are one answer, citing each place (best first).
   Its score is its best place's fused score plus ``EVIDENCE_WEIGHT`` times the others' (an
   answer found in several passages is stronger than its best single span), capped at 1.
5. ``confidence`` is a softmax of the answers' scores (temperature ``CONFIDENCE_TEMPERATURE``).
   The question abstains when the top answer's confidence is below ``threshold``: the
   confidence is scale-free too, and it is low exactly when several different answers score
   alike, which is when the top one is most often wrong (docs/evaluation.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from docqa.normalize import normalize_answer
from docqa.spans import sentence_around, shown, trim
from docqa.types import Answer, Citation, Context, Hit, Span

# Defaults chosen with `docqa eval` (see docs/evaluation.md).
DEFAULT_MU = 0.3
DEFAULT_THRESHOLD = 0.25  # the top answers it withholds are mostly wrong (docs/evaluation.md)
CONFIDENCE_TEMPERATURE = 0.1
READER_SPREAD = 2.0
EVIDENCE_WEIGHT = 0.1
SENTENCE_WEIGHT = 0.4  # of the retriever part
CONTEXT_CHARS = 120  # shown around an answer on each side


@dataclass(frozen=True)
class Ranked:
    answers: tuple[Answer, ...]
    abstained: bool


@dataclass(frozen=True)
class _Place:
    """Overlapping spans of one document: ``spans[0]`` (the best) is what is shown."""

    spans: tuple[Span, ...]
    reader: float
    retriever: float
    fused: float


def reader_parts(scores: Sequence[float]) -> list[float]:
    """Each raw span score as a part in (0, 1], relative to the question's best score and spread."""
    if not scores:
        return []
    top = max(scores)
    mean = sum(scores) / len(scores)
    spread = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    if spread <= 0:
        return [1.0] * len(scores)
    return [math.exp((s - top) / (READER_SPREAD * spread)) for s in scores]


def rank_answers(
    spans: Sequence[Span],
    hits: Sequence[Hit],
    *,
    page_of: Callable[[int, int], int],
    question: str = "",
    top_n: int = 3,
    mu: float = DEFAULT_MU,
    threshold: float = DEFAULT_THRESHOLD,
    temperature: float = CONFIDENCE_TEMPERATURE,
) -> Ranked:
    """``page_of(document_id, offset)`` is the 1-based page holding that character. Without a
    ``question`` (or one with no words) the retriever part is the passage score alone."""
    match = _sentence_match(question, _texts(spans))
    spans = [t for t in map(_trimmed, spans) if t is not None]
    if not spans:
        return Ranked((), True)
    best_hit = max((h.score for h in hits), default=0.0)
    scored = sorted(zip(spans, reader_parts([s.score for s in spans])), key=lambda p: (-p[0].score, p[0].start))
    groups: dict[str, list[_Place]] = {}
    for place in _places(scored, best_hit, mu, match):
        groups.setdefault(normalize_answer(place.spans[0].text) or place.spans[0].text.strip(), []).append(place)
    merged = sorted((sorted(g, key=lambda p: -p.fused) for g in groups.values()), key=lambda g: -_score(g))
    weights = _softmax([_score(g) for g in merged], temperature)
    if weights[0] < threshold:
        return Ranked((), True)
    answers = tuple(
        Answer(
            text=shown(group[0].spans[0].text),
            score=_score(group),
            confidence=confidence,
            citations=tuple(_citation(p.spans[0], page_of) for p in group),
            reader_score=group[0].reader,
            retriever_score=group[0].retriever,
        )
        for group, confidence in zip(merged[:top_n], weights)
    )
    return Ranked(answers, False)


def _trimmed(span: Span) -> Span | None:
    ctx = span.context
    start, end = trim(ctx.text, span.start - ctx.start, span.end - ctx.start)
    if not ctx.text[start:end].strip():
        return None
    return replace(span, start=ctx.start + start, end=ctx.start + end)


def could_change(question: str, spans: Sequence[Span], hits: Sequence[Hit], unread: Sequence[Context],
                 mu: float = DEFAULT_MU) -> bool:
    """Could reading the passages ``unread`` still change the top answer ranked from ``spans``
    (what the others were read into)?

    New spans move every reader part (each is relative to the best raw score and spread of all
    spans read), so the answers read so far must keep their order whatever those become: one
    with a lower raw score than the top answer's passes it only through a higher retriever
    part, one with a higher raw score needs a retriever part ``mu / (1 - mu)`` lower. A place
    from an unread passage scores at most ``mu * 1 + (1 - mu) * retriever``: its passage part is
    known and its sentence part is at most the weight of the question words its text holds
    anywhere; that bound is held against the top answer's score as it stands. What this leaves
    out is measured, not proven (bench/reader.py): new spans can lower the top answer's own
    score, the word weights are over the passages read, and the same answer found again adds
    evidence to an answer.
    """
    if not unread:
        return False
    answers = rank_answers(spans, hits, page_of=lambda _document, _offset: 1, question=question,
                           top_n=len(spans), mu=mu, threshold=-math.inf).answers
    if not answers:
        return True
    top = answers[0]
    for other in answers[1:]:
        if (other.retriever_score > top.retriever_score if other.reader_score <= top.reader_score
                else (1 - mu) * (top.retriever_score - other.retriever_score) <= mu):
            return True
    best_hit = max((h.score for h in hits), default=0.0)
    weights = _word_weights(question, _texts(spans) | {c.hit.passage_id: c.text for c in unread})
    total = sum(weights.values())
    for c in unread:
        retriever = c.hit.score / best_hit if best_hit > 0 else 0.0
        if weights:
            # Substrings, not words: a span edge inside a word leaves a fragment in its sentence.
            held = normalize_answer(c.text)
            retriever = ((1 - SENTENCE_WEIGHT) * retriever
                         + SENTENCE_WEIGHT * sum(v for w, v in weights.items() if w in held) / total)
        if mu + (1 - mu) * retriever >= top.score:
            return True
    return False


def _texts(spans: Sequence[Span]) -> dict[int, str]:
    """The text of each passage the spans were read from, by passage id."""
    return {s.context.hit.passage_id: s.context.text for s in spans}


def _word_weights(question: str, texts: dict[int, str]) -> dict[str, float]:
    """Each question word's inverse document frequency over ``texts`` (by passage id)."""
    read = [set(normalize_answer(t).split()) for t in texts.values()]
    return {w: math.log((len(read) + 1) / (sum(w in r for r in read) + 0.5))
            for w in set(normalize_answer(question).split())}


def _sentence_match(question: str, texts: dict[int, str]) -> Callable[[Span], float] | None:
    """``span -> sentence`` part (module docstring); None when the question has no words.
    ``texts``: the text read of each passage, by passage id."""
    idf = _word_weights(question, texts)
    if not idf:
        return None
    total = sum(idf.values())

    def match(span: Span) -> float:
        ctx = span.context
        around = set(normalize_answer(sentence_around(ctx.text, span.start - ctx.start, span.end - ctx.start)).split())
        return sum(v for w, v in idf.items() if w in around) / total

    return match


def _places(scored: Sequence[tuple[Span, float]], best_hit: float, mu: float,
            match: Callable[[Span], float] | None = None) -> list[_Place]:
    """Spans (best first) grouped by overlap within a document: each joins the first place it
    overlaps, else starts one (so a place is led by its best span)."""
    places: list[tuple[list[Span], float, float]] = []
    by_document: dict[tuple[int, str], list[int]] = {}
    for span, r in scored:
        key = (span.context.hit.document_id, span.context.hit.path)
        home = next((i for i in by_document.get(key, ()) if _overlaps(places[i][0], span)), None)
        if home is not None:
            places[home][0].append(span)
            continue
        hit = span.context.hit
        b = hit.score / best_hit if best_hit > 0 else 0.0
        if match is not None:
            b = (1 - SENTENCE_WEIGHT) * b + SENTENCE_WEIGHT * match(span)
        by_document.setdefault(key, []).append(len(places))
        places.append(([span], r, b))
    return [_Place(tuple(s), r, b, mu * r + (1 - mu) * b) for s, r, b in places]


def _overlaps(place: Sequence[Span], span: Span) -> bool:
    return any(s.start < span.end and span.start < s.end for s in place)


def _score(group: Sequence[_Place]) -> float:
    """The best place's fused score, plus ``EVIDENCE_WEIGHT`` times the others' (capped at 1)."""
    return min(1.0, group[0].fused + EVIDENCE_WEIGHT * sum(p.fused for p in group[1:]))


def _citation(span: Span, page_of: Callable[[int, int], int]) -> Citation:
    hit = span.context.hit
    context, context_start = _context(span)
    return Citation(
        path=hit.path,
        page=page_of(hit.document_id, span.start),
        start=span.start,
        end=span.end,
        passage_id=hit.passage_id,
        context=context,
        context_start=context_start,
        document_id=hit.document_id,
        text=span.text,
        last_page=page_of(hit.document_id, span.end - 1),
    )


def _context(span: Span) -> tuple[str, int]:
    """The text around the answer, cut at word boundaries, inside what was read."""
    ctx = span.context
    lo = max(0, span.start - ctx.start - CONTEXT_CHARS)
    hi = min(len(ctx.text), span.end - ctx.start + CONTEXT_CHARS)
    if lo > 0:
        space = ctx.text.find(" ", lo, span.start - ctx.start)
        lo = space + 1 if space >= 0 else lo
    if hi < len(ctx.text):
        space = ctx.text.rfind(" ", span.end - ctx.start, hi)
        hi = space if space >= 0 else hi
    return ctx.text[lo:hi], ctx.start + lo


def _softmax(values: Sequence[float], temperature: float) -> list[float]:
    top = max(values)
    exps = [math.exp((v - top) / temperature) for v in values]
    total = sum(exps)
    return [e / total for e in exps]
