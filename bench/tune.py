"""Tuning docqa's defaults with `docqa eval`'s machinery (issue 5); results in docs/evaluation.md.

    python bench/tune.py passages                       # retrieval: passage words x overlap
    python bench/tune.py read --passage-words 120 --overlap-words 30 --widen 0 --model DIR
    python bench/tune.py analyse out/tune/read-120-30-w0.pkl [more.pkl ...]

``passages``: recall@k on SQuAD v1.1 dev articles 40-47 and PolicyQA dev (whole corpora indexed,
one document per article), also at an equal reading budget (k = BUDGET_WORDS / passage words).
``read``: reads the top ``MAX_K`` passages of every question once (plus its gold paragraph) and
pickles the raw spans. ``analyse`` re-ranks them with ``docqa.rank.rank_answers``: open F1 at
k < MAX_K keeps only the spans of the top-k passages, for every mu, threshold, confidence
temperature, ranking constant and reader logit scale (raw scores times a factor), without
re-reading.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docqa.datasets import Question, load_squad  # noqa: E402
from docqa.evaluate import (  # noqa: E402
    BATCH_QUESTIONS,
    SCOPES,
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
    scope_paths,
    select_questions,
)
from docqa import rank  # noqa: E402
from docqa.retrieve import RETRIEVERS  # noqa: E402
from docqa.rank import DEFAULT_THRESHOLD, Ranked, rank_answers  # noqa: E402
from docqa.types import Reading, Span  # noqa: E402

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

    dataset = POLICYQA if args.dataset == "policyqa" else SQUAD
    corpus = load_squad(dataset)
    questions = select_questions(corpus, HELD_OUT if dataset == SQUAD else None, None)[args.offset::args.every]
    path = ensure_index(dataset, corpus, index_settings(args.passage_words, args.overlap_words))
    titles = {a.index: document_path(a) for a in corpus}
    within = scope_paths(args.scope, titles)
    records: list[Record] = []
    t0 = time.perf_counter()
    with DocQA(path, model=args.model, widen=args.widen, threads=args.threads, retriever=args.retriever) as qa:
        if args.retriever in ("hybrid", "auto") and qa.embedder_for(args.retriever == "hybrid"):
            qa.embed(threads=args.threads)  # as docqa eval does: "auto" is what a user gets
        retriever = qa.retriever().name
        for start in range(0, len(questions), BATCH_QUESTIONS):
            batch = questions[start:start + BATCH_QUESTIONS]
            found = [recall_hits(qa, q, within(q)) for q in batch]
            records += [Record(q, r, g) for q, r, _, g in read_questions(qa, batch, found, args.k, titles, within=within)]
            print(f"\r{len(records)}/{len(questions)} {time.perf_counter() - t0:.0f}s", end="", file=sys.stderr)
    name = f"{args.passage_words}-{args.overlap_words}-w{args.widen}-k{args.k}-e{args.every}{f'o{args.offset}' if args.offset else ''}-{retriever}"
    out = WORK / f"read-{'' if dataset == SQUAD else 'policyqa-'}{name}{'-document' if args.scope == 'document' else ''}.pkl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        pickle.dump({"words": args.passage_words, "overlap": args.overlap_words, "widen": args.widen, "k": args.k,
                     "retriever": retriever,
                     "seconds": time.perf_counter() - t0, "records": records}, f)
    print(f"\nwrote {out}", file=sys.stderr)


# -- analyse: re-rank without re-reading ---------------------------------------------------------

FACTORS = (0.5, 1.0, 1.5, 2.0, 3.0)  # logit scales of "other readers" (docs/evaluation.md)


def ranked(rec: Record, k: int, mu: float, *, factor: float = 1.0, threshold: float = -math.inf,
           temperature: float | None = None) -> Ranked:
    """``rank_answers`` on the spans of the top-``k`` passages (the reader reads each passage on
    its own, so this is what reading k passages gives), raw scores multiplied by ``factor``."""
    spans = [replace(s, score=s.score * factor) for s in rec.reading.spans if s.context.hit.rank <= k]
    extra = {} if temperature is None else {"temperature": temperature}
    return rank_answers(spans, rec.reading.hits[:k], page_of=lambda d, o: 1, question=rec.question.question, mu=mu,
                        threshold=threshold, **extra)


def scores(rec: Record, r: Ranked) -> tuple[float, float]:
    text = r.answers[0].text if r.answers else ""
    return best_over_golds(exact_match, text, rec.question.answers), best_over_golds(f1, text, rec.question.answers)


def load(path: Path) -> dict:
    with open(path, "rb") as f:
        data = pickle.load(f)
    data["records"] = [r for r in data["records"] if r.question.answerable]
    return data


def gold_f1(records: Sequence[Record]) -> float:
    return 100 * sum(best_over_golds(f1, r.gold, r.question.answers) for r in records) / len(records)


def open_scores(data: dict, k: int, mu: float, **kw: float) -> tuple[float, float]:
    pairs = [scores(r, ranked(r, k, mu, **kw)) for r in data["records"]]
    return 100 * sum(p[0] for p in pairs) / len(pairs), 100 * sum(p[1] for p in pairs) / len(pairs)


def read_recall(data: dict, k: int) -> float:
    rs = data["records"]
    return 100 * sum(any(has_answer(r.question.answers, c.text) for c in r.reading.contexts[:k]) for r in rs) / len(rs)


@contextmanager
def constants(**values: float) -> Iterator[None]:
    """docqa.rank's module constants set to ``values`` for a sweep."""
    saved = {name: getattr(rank, name) for name in values}
    for name, value in values.items():
        setattr(rank, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(rank, name, value)


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
    if args.mu is not None:
        _versus_section_8(data, args.k, gold)
        _ranking_tables(data, args.k, args.mu, gold)
        _threshold_table(data, args.k, args.mu)
        _temperature_table(data, args.k, args.mu)
        _scale_table(data, args.k, args.mu, gold)
        if args.semantic:
            _semantic_table(data, args.k, args.mu, gold)
        if args.off_topic:
            _off_topic_table(data, args.k, args.mu, gold, args.off_topic)


def _versus_section_8(data: dict, k: int, gold: float) -> None:
    """The default ranking beside section 8's of docs/evaluation.md (no sentence part, mu 0.5,
    temperature 0.15, threshold 0.22), on the same reading."""
    print(f"\nranking at k={k} (open F1 with the threshold: withheld = 0)")
    print("| ranking | open EM | open F1 | open/gold | F1 with threshold | open/gold | abstained |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    n = len(data["records"])
    for name, mu, sentence, temperature, threshold in (
            ("section 8", 0.5, 0.0, 0.15, 0.22),
            ("default", rank.DEFAULT_MU, rank.SENTENCE_WEIGHT, rank.CONFIDENCE_TEMPERATURE, DEFAULT_THRESHOLD)):
        with constants(SENTENCE_WEIGHT=sentence):
            pairs = [(r, ranked(r, k, mu, temperature=temperature)) for r in data["records"]]
        em = 100 * sum(scores(r, x)[0] for r, x in pairs) / n
        all_f1 = 100 * sum(scores(r, x)[1] for r, x in pairs) / n
        kept = [(r, x) for r, x in pairs if x.answers and x.answers[0].confidence >= threshold]
        kept_f1 = 100 * sum(scores(r, x)[1] for r, x in kept) / n
        print(f"| {name} | {em:.1f} | {all_f1:.1f} | {all_f1 / gold:.1%} | {kept_f1:.1f} | {kept_f1 / gold:.1%} | "
              f"{100 * (n - len(kept)) / n:.1f}% |")


def _ranking_tables(data: dict, k: int, mu: float, gold: float) -> None:
    print(f"\nopen F1 (every question answered) at k={k}: READER_SPREAD x mu")
    mus = (0.2, 0.3, 0.4, 0.5, 0.6)
    print("| READER_SPREAD | " + " | ".join(f"mu {m}" for m in mus) + " |")
    print("|---:|" + "---:|" * len(mus))
    for spread in (0.75, 1.0, 1.5, 2.0, 3.0):
        with constants(READER_SPREAD=spread):
            print(f"| {spread} | " + " | ".join(f"{open_scores(data, k, m)[1]:.1f}" for m in mus) + " |")
    print(f"\nopen F1 (every question answered) at k={k}: SENTENCE_WEIGHT x mu")
    print("| SENTENCE_WEIGHT | " + " | ".join(f"mu {m}" for m in mus) + " |")
    print("|---:|" + "---:|" * len(mus))
    for weight in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6):
        with constants(SENTENCE_WEIGHT=weight):
            print(f"| {weight} | " + " | ".join(f"{open_scores(data, k, m)[1]:.1f}" for m in mus) + " |")
    print(f"\nevidence: EVIDENCE_WEIGHT at k={k}, mu={mu}")
    print("| EVIDENCE_WEIGHT | open EM | open F1 | open/gold |")
    print("|---:|---:|---:|---:|")
    for weight in (0.0, 0.1, 0.25, 0.5):
        with constants(EVIDENCE_WEIGHT=weight):
            em, f = open_scores(data, k, mu)
        print(f"| {weight} | {em:.1f} | {f:.1f} | {f / gold:.1%} |")


def _threshold_table(data: dict, k: int, mu: float) -> None:
    rows = [(r.answers[0].confidence, scores(rec, r)) for rec in data["records"]
            if (r := ranked(rec, k, mu)).answers]
    n = len(data["records"])
    print(f"\nthreshold (on the top answer's confidence) at k={k}, mu={mu}")
    print("| threshold | withheld | EM of withheld | EM of shown | F1 of shown | open F1 (withheld = 0) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for cut in (0.0, 0.15, 0.2, 0.22, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6):
        below = [s for c, s in rows if c < cut]
        above = [s for c, s in rows if c >= cut]
        em_below = f"{100 * sum(s[0] for s in below) / len(below):.1f}" if below else "-"
        em_above = f"{100 * sum(s[0] for s in above) / len(above):.1f}" if above else "-"
        f1_above = f"{100 * sum(s[1] for s in above) / len(above):.1f}" if above else "-"
        print(f"| {cut:.2f} | {100 * len(below) / n:.1f}% | {em_below} | {em_above} | {f1_above} | "
              f"{100 * sum(s[1] for s in above) / n:.1f} |")


def _temperature_table(data: dict, k: int, mu: float) -> None:
    print(f"\nconfidence temperature at k={k}, mu={mu} (top answers; right = exact match)")
    print("| temperature | mean confidence | EM | ECE (points) | Brier |")
    print("|---:|---:|---:|---:|---:|")
    for temp in (0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2):
        pairs = [(r.answers[0].confidence, scores(rec, r)[0]) for rec in data["records"]
                 if (r := ranked(rec, k, mu, temperature=temp)).answers]
        ece = 0.0
        for i in range(10):
            inside = [(p, y) for p, y in pairs if i / 10 <= p < (i + 1) / 10 or (i == 9 and p == 1.0)]
            if inside:
                ece += abs(sum(p for p, _ in inside) - sum(y for _, y in inside)) / len(pairs)
        brier = sum((p - y) ** 2 for p, y in pairs) / len(pairs)
        print(f"| {temp} | {sum(p for p, _ in pairs) / len(pairs):.3f} | "
              f"{100 * sum(y for _, y in pairs) / len(pairs):.1f} | {100 * ece:.1f} | {brier:.3f} |")


def _scale_table(data: dict, k: int, mu: float, gold: float) -> None:
    """Other readers: every raw span score multiplied by a factor (sharper or flatter logits)."""
    print(f"\nreader logit scale at k={k}, mu={mu}, default threshold {DEFAULT_THRESHOLD}")
    print("| logit factor | open F1 answering all | with the default threshold | abstained |")
    print("|---|---:|---:|---:|")
    n = len(data["records"])
    for factor in FACTORS:
        all_f1 = sum(scores(r, ranked(r, k, mu, factor=factor))[1] for r in data["records"])
        shown = [ranked(r, k, mu, factor=factor, threshold=DEFAULT_THRESHOLD) for r in data["records"]]
        kept_f1 = sum(scores(r, s)[1] for r, s in zip(data["records"], shown))
        print(f"| {factor} | {100 * all_f1 / n:.1f} | {100 * kept_f1 / n:.1f} | "
              f"{100 * sum(s.abstained for s in shown) / n:.1f}% |")


def _semantic_table(data: dict, k: int, mu: float, gold: float) -> None:
    """A semantic stand-in for rank.py's sentence part: the share ``a`` of it taken by the cosine
    (the bundled embedder, passages' int8 encoder) of the question with the answer's whole
    sentence. Measured in docs/evaluation.md's caveats; not kept."""
    from docqa.dense import Embedder
    from docqa.spans import sentence_bounds

    records = data["records"]

    def sentence(span: Span) -> str:
        ctx = span.context
        lo, hi = sentence_bounds(ctx.text, span.start - ctx.start, span.end - ctx.start)
        return ctx.text[lo:hi]

    texts = sorted({sentence(t) for r in records for s in r.reading.spans  # the spans rank.py scores: trimmed
                    if s.context.hit.rank <= k and (t := rank._trimmed(s)) is not None})
    embedder = Embedder()
    row = {t: i for i, t in enumerate(texts)}
    vectors = embedder.encode(texts)
    questions = {r.question.question: embedder.encode_query(r.question.question) for r in records}
    words = rank._sentence_match
    share = 0.0

    def mixed(question: str, read: dict[int, str]) -> Callable[[Span], float] | None:
        lexical, q = words(question, read), questions.get(question)

        def match(span: Span) -> float:
            cosine = max(0.0, float(vectors[row[sentence(span)]] @ q)) if q is not None else 0.0
            return (1 - share) * (lexical(span) if lexical else 0.0) + share * cosine
        return match

    print(f"\nsemantic sentence part at k={k}, mu={mu}: share a of the cosine (question, answer's sentence)")
    print("| a | open F1 answering all | open/gold | F1 with threshold | open/gold | abstained |")
    print("|---:|---:|---:|---:|---:|---:|")
    rank._sentence_match = mixed
    try:
        for share in (0.0, 0.3, 0.5, 1.0):
            shown = [ranked(rec, k, mu, threshold=DEFAULT_THRESHOLD) for rec in records]
            f_all = open_scores(data, k, mu)[1]
            f_thr = 100 * sum(scores(rec, r)[1] for rec, r in zip(records, shown)) / len(records)
            withheld = 100 * sum(not r.answers for r in shown) / len(records)
            print(f"| {share} | {f_all:.1f} | {f_all / gold:.1%} | {f_thr:.1f} | {f_thr / gold:.1%} | {withheld:.1f}% |")
    finally:
        rank._sentence_match = words


def _off_topic_table(data: dict, k: int, mu: float, gold: float, index: Path) -> None:
    """What calling questions off topic (their closest passage in ``index``, the one they were
    read from, below a percentile of the probe pairs' unrelated cosines) costs these questions,
    all about the collection: the off-topic ones abstain on top of the threshold's."""
    import numpy as np

    from docqa.dense import UNRELATED_QUANTILE
    from docqa.retrieve import HybridRetriever
    from docqa.store import Store

    records = data["records"]
    with Store(index, readonly=True) as store:
        retriever = HybridRetriever(store)
        unrelated = retriever.embedder.unrelated_cosines()
        closest = np.array([max(retriever.cosines(r.question.question, None, []).values()) for r in records])
    answered = np.array([scores(r, ranked(r, k, mu))[1] for r in records])
    shown = [ranked(r, k, mu, threshold=DEFAULT_THRESHOLD) for r in records]
    kept = np.array([scores(r, s)[1] for r, s in zip(records, shown)])
    withheld = np.array([s.abstained for s in shown])
    print(f"\noff topic at k={k}, mu={mu}: questions whose closest passage is below the percentile of unrelated cosines")
    print("| percentile | cosine | off topic | their F1 answering all | F1 with threshold + off topic | open/gold | abstained |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for percentile in sorted({99.0, UNRELATED_QUANTILE, 99.8, 100.0}):
        ceiling = float(np.percentile(unrelated, percentile))
        off = closest < ceiling
        f_thr = 100 * np.where(off, 0.0, kept).mean()
        their = f"{100 * answered[off].mean():.1f}" if off.any() else "-"
        print(f"| {percentile:g} | {ceiling:.3f} | {100 * off.mean():.1f}% | {their} | {f_thr:.1f} | "
              f"{f_thr / gold:.1%} | {100 * (withheld | off).mean():.1f}% |")


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
    r.add_argument("--offset", type=int, default=0, help="... starting at this one (another sample)")
    r.add_argument("--dataset", choices=("squad", "policyqa"), default="squad",
                   help="squad: held-out articles 40-47; policyqa: all of PolicyQA dev (the proxy trained on it)")
    r.add_argument("--scope", choices=SCOPES, default="open", help="document: each question within its own article")
    r.add_argument("--retriever", choices=RETRIEVERS, default="auto", help="as docqa eval's --retriever")
    a = sub.add_parser("analyse")
    a.add_argument("caches", type=Path, nargs="+")
    a.add_argument("-k", type=int, default=10, help="passages read, for the mu/threshold/temperature tables")
    a.add_argument("--mu", type=float, default=None, help="with it: threshold and temperature tables")
    a.add_argument("--semantic", action="store_true", help="with --mu: the semantic sentence part's table")
    a.add_argument("--off-topic", type=Path, metavar="INDEX",
                   help="with --mu: what calling questions off topic costs, with the embedded index they were read from")
    args = parser.parse_args(argv)
    {"passages": passages, "read": read, "analyse": analyse}[args.command](args)


if __name__ == "__main__":
    main()
