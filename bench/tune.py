"""Tuning docqa's defaults with `docqa eval`'s machinery (issue 5); results in docs/evaluation.md.

    python bench/tune.py passages                       # retrieval: passage words x overlap
    python bench/tune.py read --passage-words 120 --overlap-words 30 --widen 0 --model DIR
    python bench/tune.py analyse out/tune/read-120-30-w0.pkl [more.pkl ...]

``passages``: recall@k on SQuAD v1.1 dev articles 40-47 and PolicyQA dev (whole corpora indexed,
one document per article), also at an equal reading budget (k = BUDGET_WORDS / passage words).
``read``: reads the top ``MAX_K`` passages of every question once (plus its gold paragraph) and
pickles the raw spans. ``analyse`` re-ranks them: open F1 at k < MAX_K keeps only the spans of
the top-k passages (the reader reads each passage on its own, so this is what reading k
passages gives), for every mu, threshold and confidence temperature, without re-reading. The
re-ranking here is a fast copy of ``docqa.rank.rank_answers``; ``analyse`` checks it agrees.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docqa.datasets import Question, load_squad  # noqa: E402
from docqa.evaluate import (  # noqa: E402
    BATCH_QUESTIONS,
    best_over_golds,
    document_path,
    ensure_index,
    evaluate,
    exact_match,
    f1,
    has_answer,
    index_settings,
    read_questions,
    recall_hits,
    select_questions,
)
from docqa.normalize import normalize_answer  # noqa: E402
from docqa.rank import rank_answers, reader_scale  # noqa: E402
from docqa.types import Reading  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SQUAD = DATA / "squad" / "dev-v1.1.json"
POLICYQA = DATA / "qa_datasets" / "policyqa" / "dev.json"
HELD_OUT = "40:48"  # the proxy model was trained on articles 0-39
MAX_K = 20
KS = (1, 3, 5, 10, 15, 20)
MUS = tuple(i / 10 for i in range(11))
BUDGET_WORDS = 1200  # 10 passages of 120 words
WORK = ROOT / "out" / "tune"


# -- passages: retrieval only ------------------------------------------------------------------


def passages(args: argparse.Namespace) -> None:
    print(f"| words/overlap | SQuAD R@1 | R@5 | R@10 | R@20 | R@{BUDGET_WORDS}w (k) | "
          f"PolicyQA R@1 | R@5 | R@10 | R@20 | R@{BUDGET_WORDS}w |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for words in args.words:
        for overlap in args.overlaps:
            k = round(BUDGET_WORDS / words)
            cells = []
            for dataset, articles in ((SQUAD, HELD_OUT), (POLICYQA, None)):
                report = evaluate(dataset, articles=articles, passage_words=words, overlap_words=overlap,
                                  retrieval_only=True, out=WORK / "passages" / f"{dataset.stem}-{words}-{overlap}")
                ranks = _hit_ranks(WORK / "passages" / f"{dataset.stem}-{words}-{overlap}" / "predictions.jsonl")
                budget = 100 * sum(r is not None and r <= k for r in ranks) / len(ranks)
                cells += [f"{v:.1f}" for v in report.recall.values()] + [f"{budget:.1f}"]
            cells[4] += f" ({k})"
            print(f"| {words}/{overlap} | " + " | ".join(cells) + " |", flush=True)


def _hit_ranks(path: Path) -> list[int | None]:
    import json

    return [row["hit_rank"] for row in map(json.loads, path.read_text().splitlines()) if row["answers"]]


# -- read: the raw spans of every question, once -------------------------------------------------


@dataclass(frozen=True)
class Record:
    question: Question
    reading: Reading  # the top MAX_K passages, read
    gold: str  # the reader's answer from the gold paragraph alone


def read(args: argparse.Namespace) -> None:
    from docqa.api import DocQA

    corpus = load_squad(SQUAD)
    questions = select_questions(corpus, HELD_OUT, None)[::args.every]
    path = ensure_index(SQUAD, corpus, index_settings(args.passage_words, args.overlap_words))
    titles = {a.index: document_path(a) for a in corpus}
    records: list[Record] = []
    t0 = time.perf_counter()
    with DocQA(path, model=args.model, widen=args.widen, threads=args.threads) as qa:
        for start in range(0, len(questions), BATCH_QUESTIONS):
            batch = questions[start:start + BATCH_QUESTIONS]
            found = [recall_hits(qa, q) for q in batch]
            records += [Record(q, r, g) for q, r, _, g in read_questions(qa, batch, found, args.k, titles)]
            print(f"\r{len(records)}/{len(questions)} {time.perf_counter() - t0:.0f}s", end="", file=sys.stderr)
    out = WORK / f"read-{args.passage_words}-{args.overlap_words}-w{args.widen}-k{args.k}-e{args.every}.pkl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        pickle.dump({"words": args.passage_words, "overlap": args.overlap_words, "widen": args.widen, "k": args.k,
                     "seconds": time.perf_counter() - t0, "records": records}, f)
    print(f"\nwrote {out}", file=sys.stderr)


# -- analyse: re-rank without re-reading ---------------------------------------------------------


@dataclass(frozen=True)
class Cand:
    key: str  # normalised text: candidates with the same key are one answer
    text: str
    start: int
    raw: float  # the reader's raw start+end logit sum
    retriever: float  # hit score / best hit score
    rank: int  # rank of the passage it was read from


@dataclass(frozen=True)
class Top:
    text: str
    fused: float
    confidence: float


def candidates(reading: Reading) -> list[Cand]:
    best = max((h.score for h in reading.hits), default=0.0)
    out = []
    for s in reading.spans:
        key = normalize_answer(s.text) or s.text.strip()
        if key:
            hit = s.context.hit
            out.append(Cand(key, s.text, s.start, s.score,
                            hit.score / best if best > 0 else 0.0, hit.rank))
    return out


def top(cands: Sequence[Cand], k: int, mu: float, temperature: float,
        scale: Callable[[float], float] = reader_scale) -> Top | None:
    """What ``rank_answers`` puts first, from the spans of the top-``k`` passages (``scale``: the
    reader-score normalisation)."""
    groups: dict[str, tuple[float, int, str]] = {}  # key -> (best fused, -start, text)
    for c in cands:
        if c.rank > k:
            continue
        fused = mu * scale(c.raw) + (1 - mu) * c.retriever
        if c.key not in groups or (fused, -c.start) > groups[c.key][:2]:
            groups[c.key] = (fused, -c.start, c.text)
    if not groups:
        return None
    scores = [g[0] for g in groups.values()]
    first = max(groups.values(), key=lambda g: g[0])
    peak = first[0]
    confidence = 1.0 / sum(math.exp((s - peak) / temperature) for s in scores)
    return Top(first[2], first[0], confidence)


def _check_against_rank_answers(records: Sequence[Record], cands: Sequence[list[Cand]]) -> None:
    for rec, cs in list(zip(records, cands))[:200]:
        for k, mu in ((MAX_K, 0.7), (5, 0.3)):
            hits = rec.reading.hits[:k]
            spans = [s for s in rec.reading.spans if s.context.hit.rank <= k]
            ranked = rank_answers(spans, hits, page_of=lambda s: 1, mu=mu, threshold=-math.inf)
            mine = top(cs, k, mu, 0.1)
            if ranked.answers and mine is not None:
                assert normalize_answer(ranked.answers[0].text) == normalize_answer(mine.text), (rec.question.id, k, mu)
                assert abs(ranked.answers[0].score - mine.fused) < 1e-9


def scores(rec: Record, t: Top | None) -> tuple[float, float]:
    text = t.text if t else ""
    return best_over_golds(exact_match, text, rec.question.answers), best_over_golds(f1, text, rec.question.answers)


def load(path: Path) -> dict:
    with open(path, "rb") as f:
        data = pickle.load(f)
    data["records"] = [r for r in data["records"] if r.question.answerable]
    data["cands"] = [candidates(r.reading) for r in data["records"]]
    _check_against_rank_answers(data["records"], data["cands"])
    return data


def gold_f1(records: Sequence[Record]) -> float:
    return 100 * sum(best_over_golds(f1, r.gold, r.question.answers) for r in records) / len(records)


def open_scores(data: dict, k: int, mu: float) -> tuple[float, float]:
    pairs = [scores(r, top(c, k, mu, 0.1)) for r, c in zip(data["records"], data["cands"])]
    return 100 * sum(p[0] for p in pairs) / len(pairs), 100 * sum(p[1] for p in pairs) / len(pairs)


def read_recall(data: dict, k: int) -> float:
    rs = data["records"]
    return 100 * sum(any(has_answer(r.question.answers, c.text) for c in r.reading.contexts[:k]) for r in rs) / len(rs)


def analyse(args: argparse.Namespace) -> None:
    for path in args.caches:
        data = load(path)
        gold = gold_f1(data["records"])
        print(f"\n### {path.name}: {data['words']} words, overlap {data['overlap']}, widen {data['widen']}, "
              f"{len(data['records'])} questions, gold-paragraph F1 {gold:.1f}, "
              f"read k={data['k']} in {data['seconds']:.0f} s\n")
        print("| k | answer in what was read | best mu | open EM | open F1 | open/gold |")
        print("|---:|---:|---:|---:|---:|---:|")
        for k in sorted({*(k for k in KS if k <= data["k"]), min(data["k"], round(BUDGET_WORDS / data["words"]))}):
            best = max(MUS, key=lambda m: open_scores(data, k, m)[1])
            em, f = open_scores(data, k, best)
            print(f"| {k} | {read_recall(data, k):.1f} | {best:.1f} | {em:.1f} | {f:.1f} | {f / gold:.1%} |")
        print(f"\nmu at k={args.k}: " + ", ".join(f"{m:.1f}: {open_scores(data, args.k, m)[1]:.1f}" for m in MUS))
        center, scale = platt(data, args.k)
        print(f"\nPlatt fit at k={args.k} (reader's best span exactly right vs its raw score): "
              f"READER_CENTER {center:.2f}, READER_SCALE {scale:.2f}")
    if args.mu is not None:
        _threshold_table(data, args.k, args.mu)
        _temperature_table(data, args.k, args.mu)


def platt(data: dict, k: int) -> tuple[float, float]:
    """Logistic fit P(EM) = sigmoid((raw - center) / scale) over each question's best span by
    raw score (the order ``mu = 1`` gives, whatever the scale), by Newton's method."""
    import numpy as np

    x, y = [], []
    for r, cs in zip(data["records"], data["cands"]):
        best = max((c for c in cs if c.rank <= k), key=lambda c: c.raw, default=None)
        if best is not None:
            x.append(best.raw)
            y.append(best_over_golds(exact_match, best.text, r.question.answers))
    xs, ys, w = np.array(x), np.array(y), np.zeros(2)
    design = np.stack([xs, np.ones_like(xs)], axis=1)
    for _ in range(50):
        p = 1 / (1 + np.exp(-design @ w))
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        w -= np.linalg.solve(hessian, design.T @ (p - ys))
    return -w[1] / w[0], 1 / w[0]


def _threshold_table(data: dict, k: int, mu: float) -> None:
    rows = [(t, scores(r, t)) for r, c in zip(data["records"], data["cands"]) if (t := top(c, k, mu, 0.1))]
    n = len(data["records"])
    print(f"\nthreshold at k={k}, mu={mu}: top answers with fused score below/above it")
    print("| threshold | withheld | EM of withheld | EM of shown | F1 of shown | open F1 (withheld = 0) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for cut in sorted({0.0} | {math.ceil(t.fused * 20) / 20 for t, _ in rows}):  # where something changes
        below = [s for t, s in rows if t.fused < cut]
        above = [s for t, s in rows if t.fused >= cut]
        em_below = f"{100 * sum(s[0] for s in below) / len(below):.1f}" if below else "-"
        em_above = f"{100 * sum(s[0] for s in above) / len(above):.1f}" if above else "-"
        f1_above = f"{100 * sum(s[1] for s in above) / len(above):.1f}" if above else "-"
        print(f"| {cut:.2f} | {100 * len(below) / n:.1f}% | {em_below} | {em_above} | {f1_above} | "
              f"{100 * sum(s[1] for s in above) / n:.1f} |")
    print("\nEM of top answers by fused-score band (local precision):")
    print("| band | answers | EM | F1 |")
    print("|---|---:|---:|---:|")
    for i in range(20):
        lo, hi = i / 20, (i + 1) / 20
        band = [s for t, s in rows if lo <= t.fused < hi]
        if band:
            print(f"| {lo:.2f}-{hi:.2f} | {len(band)} | {100 * sum(s[0] for s in band) / len(band):.1f} | "
                  f"{100 * sum(s[1] for s in band) / len(band):.1f} |")


def _temperature_table(data: dict, k: int, mu: float) -> None:
    print(f"\nconfidence temperature at k={k}, mu={mu} (top answers; right = exact match)")
    print("| temperature | mean confidence | EM | ECE (points) | Brier |")
    print("|---:|---:|---:|---:|---:|")
    for temp in (0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.2):
        pairs = [(t.confidence, scores(r, t)[0]) for r, c in zip(data["records"], data["cands"])
                 if (t := top(c, k, mu, temp))]
        ece = 0.0
        for i in range(10):
            inside = [(p, y) for p, y in pairs if i / 10 <= p < (i + 1) / 10 or (i == 9 and p == 1.0)]
            if inside:
                ece += abs(sum(p for p, _ in inside) - sum(y for _, y in inside)) / len(pairs)
        brier = sum((p - y) ** 2 for p, y in pairs) / len(pairs)
        print(f"| {temp} | {sum(p for p, _ in pairs) / len(pairs):.3f} | "
              f"{100 * sum(y for _, y in pairs) / len(pairs):.1f} | {100 * ece:.1f} | {brier:.3f} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("passages")
    p.add_argument("--words", type=int, nargs="+", default=[80, 100, 120, 150])
    p.add_argument("--overlaps", type=int, nargs="+", default=[20, 30, 40])
    r = sub.add_parser("read")
    r.add_argument("--model", default=str(ROOT.parent / "shared" / "models" / "minilm-squad-proxy"))
    r.add_argument("--passage-words", type=int, default=120)
    r.add_argument("--overlap-words", type=int, default=30)
    r.add_argument("--widen", type=int, default=0)
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("-k", type=int, default=MAX_K, help="passages read per question")
    r.add_argument("--every", type=int, default=1, help="read every N-th question only (a faster sample)")
    a = sub.add_parser("analyse")
    a.add_argument("caches", type=Path, nargs="+")
    a.add_argument("-k", type=int, default=10, help="passages read, for the mu/threshold/temperature tables")
    a.add_argument("--mu", type=float, default=None, help="with it: threshold and temperature tables")
    args = parser.parse_args(argv)
    {"passages": passages, "read": read, "analyse": analyse}[args.command](args)


if __name__ == "__main__":
    main()
