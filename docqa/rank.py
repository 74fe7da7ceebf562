"""Answer ranking: spans from many passages -> merged, scored, cited answers.

Scales (both in [0, 1], so ``mu`` weighs like with like):
- reader: ``sigmoid((score - READER_CENTER) / READER_SCALE)`` of the raw start+end logit sum.
  It is monotone in the raw score, so it compares across windows and passages (a per-window
  softmax would not), and it is absolute, so a threshold means the same for every question.
  The constants are a Platt fit of "the reader's best span is exactly right" on held-out
  questions (docs/evaluation.md): the scale is then a probability, not saturated near 1.
- retriever: the hit's BM25 score divided by the best hit's score for this question.
``fused = mu * reader + (1 - mu) * retriever``. Candidates whose normalised text is the same are
one answer carrying all its citations (best first) and its best fused score. ``confidence`` is a
softmax of fused scores (temperature ``CONFIDENCE_TEMPERATURE``) over all candidates. An answer
whose fused score is below ``threshold`` is not shown: with none left the question abstains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from docqa.normalize import normalize_answer
from docqa.types import Answer, Citation, Hit, Span

# Defaults chosen with `docqa eval` (see docs/evaluation.md).
DEFAULT_MU = 0.5
DEFAULT_THRESHOLD = 0.55  # top answers below it were wrong 4 times in 5 (EM 18%)
CONFIDENCE_TEMPERATURE = 0.05  # expected calibration error 4 points (0.1: 19)
READER_CENTER = 10.6  # raw logit sum at which the reader's best span is right half the time
READER_SCALE = 1.9
CONTEXT_CHARS = 120  # shown around an answer on each side


@dataclass(frozen=True)
class Ranked:
    answers: tuple[Answer, ...]
    abstained: bool


def reader_scale(score: float) -> float:
    z = (score - READER_CENTER) / READER_SCALE
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def rank_answers(
    spans: Sequence[Span],
    hits: Sequence[Hit],
    *,
    page_of: Callable[[Span], int],
    top_n: int = 3,
    mu: float = DEFAULT_MU,
    threshold: float = DEFAULT_THRESHOLD,
) -> Ranked:
    """``page_of`` maps a span to the 1-based page holding its start."""
    best_hit = max((h.score for h in hits), default=0.0)
    groups: dict[str, list[tuple[float, float, float, Span]]] = {}
    for span in spans:
        key = normalize_answer(span.text) or span.text.strip()
        if not key:
            continue
        r = reader_scale(span.score)
        b = span.context.hit.score / best_hit if best_hit > 0 else 0.0
        groups.setdefault(key, []).append((mu * r + (1 - mu) * b, r, b, span))
    if not groups:
        return Ranked((), True)
    merged = sorted(
        (sorted(g, key=lambda t: (-t[0], t[3].start)) for g in groups.values()),
        key=lambda g: -g[0][0],
    )
    weights = _softmax([g[0][0] for g in merged], CONFIDENCE_TEMPERATURE)
    answers = []
    for group, confidence in zip(merged[:top_n], weights):
        fused, r, b, best = group[0]
        if fused < threshold:
            break
        answers.append(
            Answer(
                text=best.text,
                score=fused,
                confidence=confidence,
                citations=_citations(group, page_of),
                reader_score=r,
                retriever_score=b,
            )
        )
    return Ranked(tuple(answers), not answers)


def _citations(group: Sequence[tuple[float, float, float, Span]], page_of: Callable[[Span], int]) -> tuple[Citation, ...]:
    seen: set[tuple[str, int, int]] = set()
    out = []
    for _, _, _, span in group:
        hit = span.context.hit
        if (hit.path, span.start, span.end) in seen:  # overlapping passages find the same span
            continue
        seen.add((hit.path, span.start, span.end))
        context, context_start = _context(span)
        out.append(
            Citation(
                path=hit.path,
                page=page_of(span),
                start=span.start,
                end=span.end,
                passage_id=hit.passage_id,
                context=context,
                context_start=context_start,
                document_id=hit.document_id,
            )
        )
    return tuple(out)


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
