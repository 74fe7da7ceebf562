"""Levers beyond the fusion rule (issue 17): do any of them lift recall@k with all-MiniLM-L6-v2?

    python bench/levers.py --set policyqa                      # PolicyQA dev, whole corpus
    python bench/levers.py --set policyqa --scope document     # each question within its policy
    python bench/levers.py --set squad --articles 0:40         # SQuAD dev tuning articles

Every lever re-ranks the same scores: BM25 (FTS5, top 100, divided by the best) and the cosine of
the question with every passage vector (int8 passages, as ``docqa index`` stores them, from
``bench/.cache``). A hit is a gold answer (SQuAD-normalised) in the passage, as in
``bench/fusion.py``. The levers:

- sentence max-sim: each passage also scored by its best sentence's cosine (sentences embedded
  on their own, or late: pooled from the passage's own token vectors), mixed with the passage cosine;
- dense pseudo-relevance feedback: the question vector moved toward its top-m passages' mean;
- neighbours: a passage gains part of its better neighbour's score (same document);
- document prior: a passage gains part of its document's best passage score;
- title: passages embedded with their document's title on a first line;
- question phrases: the share of the question's word pairs the passage holds as phrases, added to
  the fused score of the top 100 (shipped since, gain 0.8: ``docqa.retrieve.with_phrases``).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from retrieval import CACHE, DATASETS, KS, PORTER, answerable, cached_vectors, dataset_index  # noqa: E402

from docqa.datasets import load_squad  # noqa: E402
from docqa.dense import Embedder  # noqa: E402
from docqa.normalize import normalize_answer  # noqa: E402
from docqa.retrieve import DENSE_WEIGHT, FTS5Retriever, word_pairs  # noqa: E402
from docqa.store import Store  # noqa: E402

SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+[\"')\]]*|\n|$)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("policyqa", "squad"), default="policyqa")
    parser.add_argument("--articles", default="0:10000", help="A:B, SQuAD-style article range")
    parser.add_argument("--scope", choices=("corpus", "document"), default="corpus")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-retrieval")
    args = parser.parse_args(argv)
    dataset = {"policyqa": "policyqa-dev", "squad": "squad-dev"}[args.set]
    lo, hi = map(int, args.articles.split(":"))
    questions = [q for q in answerable(load_squad(DATASETS[dataset])) if lo <= q.article < hi]
    passages, questioner = Embedder(precision="int8"), Embedder(precision="fp32")  # questions: as onnxruntime's fp32
    with Store(dataset_index(dataset, PORTER, args.work), readonly=True) as store:
        rows = store.conn.execute("SELECT p.id, p.document_id, p.text, d.path FROM passages p "
                                  "JOIN documents d ON d.id = p.document_id ORDER BY p.id").fetchall()
        row_of = {r[0]: i for i, r in enumerate(rows)}
        doc_of_article = {t: d for d, t in store.conn.execute("SELECT id, substr(path, 1, 3) FROM documents")}
        own_doc = [doc_of_article[f"{q.article:03d}"] if args.scope == "document" else None for q in questions]
        bm25 = FTS5Retriever(store)
        lexical = [[(row_of[p], s) for p, s in bm25.scores(bm25.query(q.question), 100, None if d is None else [d])]
                   for q, d in zip(questions, own_doc)]
    docs = np.array([r[1] for r in rows])
    matrix = cached_vectors(passages, [r[2] for r in rows])
    qvectors = cached_vectors(questioner, [q.question for q in questions], query=True)
    cos = qvectors @ matrix.T
    hay = [f" {normalize_answer(r[2])} " for r in rows]
    hits = [{i for i, h in enumerate(hay) if any(f" {a} " in h for a in map(normalize_answer, q.answers) if a)}
            for q in questions]
    allowed = [docs == d if d is not None else np.ones(len(rows), bool) for d in own_doc]

    def bm(qi: int) -> np.ndarray:
        out = np.zeros(len(rows))
        if lexical[qi]:
            best = lexical[qi][0][1] if lexical[qi][0][1] > 0 else 1.0
            for i, s in lexical[qi]:
                out[i] = s / best
        return out

    print(f"| {dataset} {args.articles} {args.scope} | lever | " + " | ".join(f"R@{k}" for k in KS) + " |")
    print("|---|---|" + "---:|" * len(KS))

    def report(name: str, score: Callable[[int], np.ndarray]) -> None:
        firsts = []
        for qi in range(len(questions)):
            scores = np.where(allowed[qi], score(qi), -np.inf)
            order = [i for i in np.argsort(-scores, kind="stable")[: max(KS)] if scores[i] > -np.inf]
            firsts.append(next((n + 1 for n, i in enumerate(order) if i in hits[qi]), None))
        cells = " | ".join(f"{100 * sum(f is not None and f <= k for f in firsts) / len(firsts):.1f}" for k in KS)
        print(f"| | {name} | {cells} |", flush=True)

    w = DENSE_WEIGHT
    report("BM25 alone", lambda qi: np.where(bm(qi) > 0, bm(qi), -np.inf))  # only what FTS5 matched
    report("cosine alone", lambda qi: cos[qi])
    report(f"shipped: bm25/best + {w:g} x cosine", lambda qi: bm(qi) + w * cos[qi])

    # Question phrases: the share of the question's word pairs (docqa.retrieve.word_pairs) that
    # the passage holds as a phrase, for the fused top 100 only.
    pairs = [word_pairs(q.question) for q in questions]

    def phrases(qi: int, gain: float) -> np.ndarray:
        fused = bm(qi) + w * cos[qi]
        if not pairs[qi]:
            return fused
        for i in np.argsort(-np.where(allowed[qi], fused, -np.inf))[:100]:
            fused[i] += gain * sum(p in hay[i] for p in pairs[qi]) / len(pairs[qi])
        return fused
    for gain in (0.2, 0.4, 0.8, 1.2, 1.6, 2.4):
        report(f"shipped + {gain:g} x share of the question's word pairs in the passage",
               lambda qi, gain=gain: phrases(qi, gain))

    # Sentence max-sim: each passage's best sentence (sentences of 3+ words, embedded once each).
    owner, sentences = [], []
    for i, r in enumerate(rows):
        for m in SENTENCE.finditer(r[2]):
            if len(m.group().split()) >= 3:
                owner.append(i)
                sentences.append(m.group().strip())
    unique = sorted(set(sentences))
    position = {s: j for j, s in enumerate(unique)}
    svectors = cached_vectors(passages, unique)[[position[s] for s in sentences]]
    owners = np.array(owner)
    order = np.argsort(owners, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(owners[order])) + 1]
    best_sentence = np.full(cos.shape, -1.0)
    best_sentence[:, owners[order][starts]] = np.maximum.reduceat((qvectors @ svectors.T)[:, order], starts, axis=1)
    report("best sentence alone", lambda qi: best_sentence[qi])
    for mix in (0.3, 0.5):
        for weight in (w, 3.0):
            report(f"bm25/best + {weight:g} x ({1 - mix:g} cosine + {mix:g} best sentence)",
                   lambda qi, mix=mix, weight=weight: bm(qi) + weight * ((1 - mix) * cos[qi] + mix * best_sentence[qi]))

    # Late sentences: each sentence's vector pooled from its tokens in the passage's own pass
    # (no extra model run; the tokens saw the whole passage).
    late = np.full(cos.shape, -1.0)
    for i, vectors in enumerate(late_sentence_vectors(passages, [r[2] for r in rows])):
        if len(vectors):
            late[:, i] = (qvectors @ vectors.T).max(axis=1)
    report("late best sentence alone", lambda qi: late[qi])
    for mix in (0.3, 0.5):
        for weight in (w, 3.0):
            report(f"bm25/best + {weight:g} x ({1 - mix:g} cosine + {mix:g} late best sentence)",
                   lambda qi, mix=mix, weight=weight: bm(qi) + weight * ((1 - mix) * cos[qi] + mix * late[qi]))

    for m, beta in ((3, 0.5), (5, 0.5), (5, 1.0), (10, 0.5)):
        def feedback(qi: int, m: int = m, beta: float = beta) -> np.ndarray:
            top = np.argsort(-np.where(allowed[qi], cos[qi], -np.inf))[:m]
            moved = qvectors[qi] + beta * matrix[top].mean(axis=0)
            return bm(qi) + w * (matrix @ (moved / np.linalg.norm(moved)))
        report(f"shipped, question moved {beta:g} toward its top {m} (dense PRF)", feedback)

    before = np.array([i - 1 if i and docs[i - 1] == docs[i] else i for i in range(len(rows))])
    after = np.array([i + 1 if i + 1 < len(rows) and docs[i + 1] == docs[i] else i for i in range(len(rows))])
    for gain in (0.1, 0.2, 0.3):
        report(f"shipped + {gain:g} x better neighbour's",
               lambda qi, gain=gain: (lambda s: s + gain * np.maximum(s[before], s[after]))(bm(qi) + w * cos[qi]))

    _, index_of_doc = np.unique(docs, return_inverse=True)
    for gain in (0.1, 0.25, 0.5):
        def prior(qi: int, gain: float = gain) -> np.ndarray:
            fused = bm(qi) + w * cos[qi]
            best = np.full(index_of_doc.max() + 1, -np.inf)
            np.maximum.at(best, index_of_doc, fused)
            return fused + gain * best[index_of_doc]
        report(f"shipped + {gain:g} x document's best passage", prior)

    titled = cached_vectors(passages, [f"{re.sub(r'^[0-9]+-', '', Path(r[3]).stem).replace('_', ' ')}\n{r[2]}"
                                       for r in rows])
    tcos = qvectors @ titled.T
    report("shipped, passages embedded with their title", lambda qi: bm(qi) + w * tcos[qi])


def late_sentence_vectors(embedder: Embedder, texts: list[str]) -> list[np.ndarray]:
    """Per passage, its sentences' unit vectors, mean-pooled from the passage's token vectors
    (int8 ONNX pass); cached like ``cached_vectors``."""
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"minilm-late-{key}.npz"
    if path.exists():
        saved = np.load(path)
        return np.split(saved["vectors"], saved["bounds"])
    session, tokenizer, names = embedder._passage_session()
    out: list[np.ndarray] = []
    for start in range(0, len(texts), 32):
        encs = tokenizer.encode_batch(texts[start : start + 32])
        feeds = {"input_ids": [e.ids for e in encs], "attention_mask": [e.attention_mask for e in encs],
                 "token_type_ids": [e.type_ids for e in encs]}
        hidden = session.run(None, {n: np.asarray(feeds[n], dtype=np.int64) for n in names})[0]
        for text, enc, h in zip(texts[start : start + 32], encs, hidden):
            ends = np.array([e for _, e in enc.offsets])
            starts = np.array([s for s, _ in enc.offsets])
            real = (np.asarray(enc.special_tokens_mask) == 0) & (np.asarray(enc.attention_mask) == 1)
            vectors = []
            for m in SENTENCE.finditer(text):
                if len(m.group().split()) < 3:
                    continue
                inside = real & (starts >= m.start()) & (ends <= m.end())
                if inside.any():
                    v = h[inside].mean(axis=0)
                    vectors.append(v / np.linalg.norm(v))
            out.append(np.array(vectors, dtype=np.float32).reshape(-1, h.shape[-1]))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, vectors=np.concatenate(out), bounds=np.cumsum([len(v) for v in out])[:-1])
    return out


if __name__ == "__main__":
    main()
