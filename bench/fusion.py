"""How to fuse BM25 with dense vectors (issue 17): recall@k of fusion rules, offline.

    python bench/fusion.py                            # tuning sets: PolicyQA dev, SQuAD dev articles 0-39
    python bench/fusion.py --sets heldout --rules shipped   # SQuAD dev articles 40-47, held out
    python bench/fusion.py --sets policyqa --precisions bf16,fp32,static --rules bm25,dense,shipped

Each question's candidates are computed once (FTS5 BM25 top ``--depth`` and the vectors' top
``--depth`` over every passage, or over its own article's with ``--scope document``); every
rule then ranks the same candidates, so the table compares rules, not noise. Passage vectors
come from ``bench/.cache`` (``bench.retrieval.cached_vectors``: computed once per model,
precision and passages); question vectors too. The indexes are ``bench/retrieval.py``'s.
A hit is a gold answer (SQuAD-normalised) in the passage, as in ``bench/retrieval.py recall``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from retrieval import DATASETS, KS, PORTER, StaticEmbedder, answerable, cached_vectors, dataset_index  # noqa: E402

from docqa.datasets import Question, load_squad  # noqa: E402
from docqa.dense import Embedder  # noqa: E402
from docqa.evaluate import normalize_answer  # noqa: E402
from docqa.retrieve import DENSE_WEIGHT, HYBRID_CANDIDATES, FTS5Retriever, fuse  # noqa: E402
from docqa.store import Store  # noqa: E402

Ranking = list[int]


@dataclass
class Candidates:
    """One question's two candidate lists."""

    lexical: list[tuple[int, float]]  # BM25 (row, score), best first
    cosines: dict[int, float]  # row -> cosine, for the dense top ``depth`` and every BM25 row
    hits: set[int]  # candidate rows that hold a gold answer


def linear(c: Candidates, w: float, depth: int) -> Ranking:
    """The shipped rule: bm25 / best bm25 + w x cosine (``docqa.retrieve.fuse``)."""
    lexical = c.lexical[:depth]
    dense = dict(sorted(c.cosines.items(), key=lambda kv: -kv[1])[:depth])
    dense.update({r: c.cosines[r] for r, _ in lexical if r in c.cosines})
    return [r for r, _ in fuse(lexical, dense, max(KS), w)]


def minmax(c: Candidates, w: float, depth: int) -> Ranking:
    """Both scores min-max normalised over their own top ``depth``; absent = 0."""
    lexical = c.lexical[:depth]
    dense = sorted(c.cosines.items(), key=lambda kv: -kv[1])[:depth]
    fused: dict[int, float] = {}
    for items, weight in ((lexical, 1.0), (dense, w)):
        if not items:
            continue
        hi, lo = items[0][1], items[-1][1]
        for r, s in items:
            fused[r] = fused.get(r, 0.0) + weight * ((s - lo) / (hi - lo) if hi > lo else 1.0)
    return [r for r, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[: max(KS)]]


def rrf(c: Candidates, k: float, depth: int) -> Ranking:
    dense = sorted(c.cosines.items(), key=lambda kv: -kv[1])[:depth]
    fused: dict[int, float] = {}
    for items in (c.lexical[:depth], dense):
        for rank, (r, _) in enumerate(items):
            fused[r] = fused.get(r, 0.0) + 1 / (k + rank + 1)
    return [r for r, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[: max(KS)]]


def dense_only(c: Candidates, _: float, depth: int) -> Ranking:
    return [r for r, _ in sorted(c.cosines.items(), key=lambda kv: -kv[1])[: max(KS)]]


def bm25_only(c: Candidates, _: float, depth: int) -> Ranking:
    return [r for r, _ in c.lexical[: max(KS)]]


RULES: dict[str, tuple[Callable[[Candidates, float, int], Ranking], list[float]]] = {
    "bm25": (bm25_only, [0]),
    "dense": (dense_only, [0]),
    "linear": (linear, [1, 1.5, 2, 3, 4, 6]),
    "minmax": (minmax, [0.5, 1, 1.5, 2, 3]),
    "rrf": (rrf, [10, 60]),
}


def candidates(dataset: str, questions: Sequence[Question], precision: str, depth: int,
               scope: str, work: Path) -> list[Candidates]:
    """Every question's candidates in ``dataset``'s index (rows = passage ids)."""
    path = dataset_index(dataset, PORTER, work)
    # "static": model2vec distilled from the default model, for passages and questions alike.
    embedder: Any = StaticEmbedder() if precision == "static" else Embedder(precision=precision)
    # Questions as docqa encodes them: through the int8 copy with int8 passages, else fp32.
    questioner = embedder if precision in ("static", "int8", "auto") else Embedder(precision="fp32")
    with Store(path, readonly=True) as store:
        rows = store.conn.execute("SELECT id, document_id, text FROM passages ORDER BY id").fetchall()
        ids = np.array([r[0] for r in rows])
        docs = np.array([r[1] for r in rows])
        matrix = cached_vectors(embedder, [r[2] for r in rows])
        qvectors = cached_vectors(questioner, [q.question for q in questions], query=True)
        hay = {r[0]: f" {normalize_answer(r[2])} " for r in rows}
        doc_of_article = {title: did for did, title in store.conn.execute(
            "SELECT id, substr(path, 1, 3) FROM documents")}
        bm25 = FTS5Retriever(store)
        row_of = {int(p): i for i, p in enumerate(ids)}
        out = []
        for q, qv in zip(questions, qvectors):
            doc_ids = [doc_of_article[f"{q.article:03d}"]] if scope == "document" else None
            lexical = bm25.scores(bm25.query(q.question), depth, doc_ids)
            sims = matrix @ qv
            if doc_ids is not None:
                sims = np.where(docs == doc_ids[0], sims, -np.inf)
            top = np.argsort(-sims)[:depth]
            cosines = {int(ids[i]): float(sims[i]) for i in top if sims[i] > -np.inf}
            cosines.update({r: float(sims[row_of[r]]) for r, _ in lexical})
            answers = [a for a in map(normalize_answer, q.answers) if a]
            pool = set(cosines) | {r for r, _ in lexical}
            out.append(Candidates(lexical, cosines, {r for r in pool if any(f" {a} " in hay[r] for a in answers)}))
        return out


def recall_at(ranked: Sequence[Ranking], cands: Sequence[Candidates]) -> dict[int, float]:
    firsts = [next((i + 1 for i, r in enumerate(rank) if r in c.hits), None) for rank, c in zip(ranked, cands)]
    return {k: 100 * sum(f is not None and f <= k for f in firsts) / len(firsts) for k in KS}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-retrieval")
    parser.add_argument("--sets", default="policyqa,squad",
                        help="policyqa (dev), squad (dev articles 0-39), heldout (squad dev articles 40-47)")
    parser.add_argument("--precisions", default="auto", help="auto (int8 where onnxruntime is installed), int8, bf16, fp32, or static (model2vec)")
    parser.add_argument("--rules", default=",".join(RULES), help=f"of {', '.join(RULES)}, shipped (linear {DENSE_WEIGHT:g})")
    parser.add_argument("--depths", default=f"{HYBRID_CANDIDATES},300")
    parser.add_argument("--scopes", default="corpus,document")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    known = {"policyqa": ("policyqa-dev", "policyqa-dev", slice(None)),
             "squad": ("squad-dev 0-39", "squad-dev", slice(0, 40)),
             "heldout": ("squad-dev 40-47 (held out)", "squad-dev", slice(40, 48))}
    sets = [known[name] for name in args.sets.split(",")]
    depths = [int(d) for d in args.depths.split(",")]
    print("| set | scope | vectors | rule | depth | R@1 | R@5 | R@10 | R@20 |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for label, dataset, articles in sets:
        questions = [q for q in answerable(load_squad(DATASETS[dataset])) if q.article in
                     range(*articles.indices(10_000))]
        for scope in args.scopes.split(","):
            for precision in args.precisions.split(","):
                t0 = time.perf_counter()
                cands = candidates(dataset, questions, precision, max(depths), scope, args.work)
                print(f"{label} {scope} {precision}: candidates in {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
                rules = {n: (linear, [DENSE_WEIGHT]) if n == "shipped" else RULES[n] for n in args.rules.split(",")}
                for name, (rule, params) in rules.items():
                    for param in params:
                        for depth in depths if name not in ("bm25", "dense") else [max(depths)]:
                            at = recall_at([rule(c, param, depth) for c in cands], cands)
                            cells = " | ".join(f"{at[k]:.1f}" for k in KS)
                            print(f"| {label} | {scope} | {precision} | {name} {param:g} | {depth} | {cells} |",
                                  flush=True)


if __name__ == "__main__":
    main()
