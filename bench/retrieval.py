"""Retrieval benchmark (issue 3): recall@k on SQuAD-format sets, latency at 10k-1M passages.

    python bench/retrieval.py recall            # SQuAD v1.1 dev + PolicyQA dev, every choice
    python bench/retrieval.py latency --sizes 10000,100000,1000000

Recall: each article is one document (paragraphs joined with blank lines) indexed with
``docqa.split`` at the default passage size; a question counts as found at k when a gold answer
(SQuAD-normalised) occurs in one of its top-k passages (DrQA's ``has_answer``).
Latency: synthetic English passages resampled from the sentences of both datasets, questions of
5-12 words from the real ones; query time in-process and whole-process ``docqa search``.
Indexes and results go to ``--work`` (default ``out/bench-retrieval``); tables print as markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docqa.datasets import Article, Question, load_squad, questions_of  # noqa: E402
from docqa.evaluate import has_answer  # noqa: E402
from docqa.dense import DEFAULT_EMBEDDER, INT8_FILE, Embedder  # noqa: E402
from docqa.retrieve import STOPWORDS, BM25Retriever, FTS5Retriever, HybridRetriever, Retriever  # noqa: E402
from docqa.split import split_pages  # noqa: E402
from docqa.store import DEFAULT_SETTINGS, DocumentRow, Store  # noqa: E402
from docqa.types import Passage  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DATASETS = {
    "squad-dev": DATA / "squad" / "dev-v1.1.json",
    "policyqa-dev": DATA / "qa_datasets" / "policyqa" / "dev.json",
}
KS = (1, 5, 10, 20)
PORTER = "porter unicode61 remove_diacritics 2"
PLAIN = "unicode61 remove_diacritics 2"
LUCENE_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)
STOPWORD_LISTS = {"none": frozenset(), "lucene": LUCENE_STOPWORDS, "nltk": STOPWORDS}


# -- indexes -----------------------------------------------------------------------------------


def _row(path: str, size: int, pages: int) -> DocumentRow:
    return DocumentRow(
        path=path, abs_path=f"/bench/{path}", root="/bench", size=size, mtime=0.0,
        sha256=path, kind="txt", page_count=pages, status="indexed", message="",
    )


def dataset_index(dataset: str, tokenizer: str, work: Path) -> Path:
    """An index of one SQuAD-format set (built once per tokenizer)."""
    slug = "porter" if tokenizer == PORTER else re.sub(r"\W+", "-", tokenizer)
    path = work / f"{dataset}-{slug}.db"
    if path.exists():
        return path
    words, overlap = int(DEFAULT_SETTINGS["passage_words"]), int(DEFAULT_SETTINGS["overlap_words"])
    tmp = path.with_suffix(".tmp.db")
    tmp.unlink(missing_ok=True)
    with Store(tmp, create=True, settings={"fts_tokenizer": tokenizer}) as store:
        for article in load_squad(DATASETS[dataset]):
            passages = split_pages([article.text], words=words, overlap=overlap)
            store.put_document(_row(f"{article.index:03d}-{article.title}.txt", len(article.text), 1),
                               [article.text], passages)
    tmp.rename(path)
    return path


# -- recall ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recall:
    dataset: str
    retriever: str
    tokenizer: str
    stopwords: str
    questions: int
    at: dict[int, float]
    ms_per_question: float


def first_hit(retriever: Retriever, question: str, answers: Sequence[str], k: int,
              paths: Sequence[str] | None = None) -> int | None:
    for hit in retriever.search(question, k=k, paths=paths).hits:
        if has_answer(answers, hit.text):
            return hit.rank
    return None


def answerable(articles: list[Article]) -> list[Question]:
    return [q for q in questions_of(articles) if q.answerable]


DEFAULT_LABEL = {"tokenizer": PORTER, "stopwords": "nltk"}


def recall(dataset: str, retriever: Retriever, questions: Sequence[Question],
           label: dict[str, str] = DEFAULT_LABEL, name: str | None = None, scope: str = "corpus") -> Recall:
    """Recall@k of ``retriever`` (listed as ``name``, default its own), also logged to stderr.
    ``scope="document"`` searches only each question's own article (``--path``)."""
    t0 = time.perf_counter()
    ranks = [first_hit(retriever, q.question, q.answers, max(KS),
                       [f"{q.article:03d}-*"] if scope == "document" else None) for q in questions]
    elapsed = time.perf_counter() - t0
    at = {k: sum(r is not None and r <= k for r in ranks) / len(ranks) for k in KS}
    if scope == "document":
        dataset += ", per document"
    result = Recall(dataset, name or retriever.name, label["tokenizer"], label["stopwords"], len(ranks), at,
                    1000 * elapsed / len(ranks))
    print(json.dumps(result.__dict__), file=sys.stderr, flush=True)
    return result


def run_recall(args: argparse.Namespace) -> list[Recall]:
    results = []
    for dataset in args.datasets.split(","):
        articles = load_squad(DATASETS[dataset])
        if args.articles:  # the questions of these articles; the index still holds every article
            start, end = map(int, args.articles.split(":"))
            questions = [q for q in answerable(articles) if start <= q.article < end]
        else:
            questions = answerable(articles)
        label = f"{dataset} {args.articles}" if args.articles else dataset
        for tokenizer in args.tokenizers.split(";"):
            path = dataset_index(dataset, tokenizer, args.work)
            if "hybrid" in args.retrievers.split(","):
                embed(path)
            for stop_name in args.stopwords.split(","):
                stop = STOPWORD_LISTS[stop_name]
                with Store(path, readonly=True) as store:
                    makers: dict[str, Callable[[], Retriever]] = {
                        "fts5": lambda: FTS5Retriever(store, stopwords=stop),
                        "rank-bm25": lambda: BM25Retriever(store, cache_dir=args.work, stopwords=stop),
                        "hybrid": lambda: HybridRetriever(store),
                    }
                    for name in args.retrievers.split(","):
                        results.append(recall(label, makers[name](), questions,
                                              {"tokenizer": tokenizer, "stopwords": stop_name}, scope=args.scope))
        results += budget_sweep(dataset, articles, args)
        results += weight_sweep(label, dataset, questions, args)
    return results


def weight_sweep(label: str, dataset: str, questions: list[Question], args: argparse.Namespace) -> list[Recall]:
    """Recall of the hybrid retriever at other weights of the cosine."""
    weights = [float(w) for w in args.dense_weights.split(",") if w]
    if not weights:
        return []
    path = dataset_index(dataset, PORTER, args.work)
    embed(path)
    with Store(path, readonly=True) as store:
        return [recall(label, HybridRetriever(store, weight=w), questions, name=f"hybrid, {w:g} x cosine",
                       scope=args.scope) for w in weights]


CACHE = ROOT / "bench" / ".cache"


def cached_vectors(embedder: Embedder, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
    """``embedder``'s vectors of ``texts`` (questions with ``query``), computed once per model,
    precision and texts and kept in ``bench/.cache``: embedding a set takes minutes."""
    name = embedder.model_name
    slug = "minilm" if name == DEFAULT_EMBEDDER else hashlib.sha256(name.encode()).hexdigest()[:8]
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    precision = embedder.passage_precision()  # questions in a batch are encoded the same way
    path = CACHE / f"{slug}-{precision}{'-query' if query else ''}-{key}.npy"
    if path.exists():
        return np.load(path)
    t0 = time.perf_counter()
    vectors = embedder.encode(texts, query=query)
    seconds = time.perf_counter() - t0
    print(f"embedded {len(texts)} {'questions' if query else 'passages'} with {name} "
          f"({embedder.precision}) in {seconds:.0f} s ({1000 * seconds / max(1, len(texts)):.1f} ms each)",
          file=sys.stderr, flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def embed(path: Path) -> None:
    """Dense vectors for every passage of the index at ``path`` (from the cache when there)."""
    with Store(path) as store:
        embedder = Embedder()
        store.start_vectors(embedder.model_name)
        rows = store.passages_without_vectors(0, 10**9)
        if rows:
            vectors = cached_vectors(embedder, [text for _, text in rows])
            store.put_vectors([(pid, v.tobytes()) for (pid, _), v in zip(rows, vectors)])
        embedder.export_onnx()


def budget_sweep(dataset: str, articles: list[Article], args: argparse.Namespace) -> list[Recall]:
    """Recall of the default choice when the FTS5 row budget binds."""
    with Store(dataset_index(dataset, PORTER, args.work), readonly=True) as store:
        passages = store.info().passages
        return [recall(dataset, FTS5Retriever(store, row_budget=b), answerable(articles),
                       name=f"fts5, row budget {b} ({100 * b / passages:.1f}%)") for b in budgets(args)]


def recall_table(results: Sequence[Recall]) -> str:
    lines = [
        "| dataset | retriever | tokenizer | stop-words | questions | R@1 | R@5 | R@10 | R@20 | ms/q |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cells = " | ".join(f"{100 * r.at[k]:.1f}" for k in KS)
        lines.append(f"| {r.dataset} | {r.retriever} | `{r.tokenizer}` | {r.stopwords} | {r.questions} | "
                     f"{cells} | {r.ms_per_question:.1f} |")
    return "\n".join(lines)


def squad_in_synthetic(size: int, work: Path) -> Path:
    """The ``size``-passage synthetic index with SQuAD dev's 48 articles added as documents."""
    path = work / f"squad-dev-in-{size}.db"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp.db")
    shutil.copyfile(synthetic_index(size, work), tmp)
    words, overlap = int(DEFAULT_SETTINGS["passage_words"]), int(DEFAULT_SETTINGS["overlap_words"])
    with Store(tmp) as store:
        for article in load_squad(DATASETS["squad-dev"]):
            store.put_document(_row(f"squad/{article.index:03d}-{article.title}.txt", len(article.text), 1),
                               [article.text], split_pages([article.text], words=words, overlap=overlap))
        store.optimize()
    tmp.rename(path)
    return path


def run_scale(args: argparse.Namespace) -> list[Recall]:
    """What the staged query and row budgets cost in recall where they bind: SQuAD dev questions
    against SQuAD dev hidden among ``--size`` synthetic passages (which resample its sentences,
    so an answer also counts when found in a synthetic passage)."""
    index = squad_in_synthetic(args.size, args.work)
    questions = random.Random(2).sample(answerable(load_squad(DATASETS["squad-dev"])), args.questions)
    everything = 10 * args.size
    configs = {
        "fts5, one OR query scoring every matching row": dict(first_rows=everything, row_budget=everything),
        "fts5 default: rarest terms first, exact below the row budget": {},
        **{f"fts5, row budget {b:,}": dict(row_budget=b) for b in budgets(args)},
    }
    with Store(index, readonly=True) as store:
        return [recall(f"squad-dev in {args.size:,} synthetic", FTS5Retriever(store, **options), questions, name=name)
                for name, options in configs.items()]


def budgets(args: argparse.Namespace) -> list[int]:
    return [int(b) for b in args.row_budgets.split(",") if b]


# -- latency -----------------------------------------------------------------------------------

SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
PASSAGES_PER_DOCUMENT = 500  # a long report: 60k words


def corpus_sentences() -> list[str]:
    sentences = []
    for path in DATASETS.values():
        for article in load_squad(path):
            sentences.extend(s for s in SENTENCE.split(article.text.replace("\n\n", " ")) if len(s.split()) >= 4)
    return sentences


def real_questions(rng: random.Random, n: int) -> list[str]:
    pool = [
        q.question for path in DATASETS.values() for q in questions_of(load_squad(path))
        if 5 <= len(q.question.split()) <= 12
    ]
    return rng.sample(pool, n)


def synthetic_passage(rng: random.Random, sentences: list[str], words: int) -> str:
    out: list[str] = []
    count = 0
    while count < words:
        s = rng.choice(sentences)
        out.append(s)
        count += len(s.split())
    return " ".join(out)


def synthetic_index(size: int, work: Path, seed: int = 0) -> Path:
    """``size`` passages of ~120 words in documents of ``PASSAGES_PER_DOCUMENT`` passages,
    written one document (one transaction) at a time through ``Store.put_document``, then
    optimized as ``docqa index`` ends a run."""
    path = work / f"synthetic-{size}-v2.db"
    if path.exists():
        return path
    rng = random.Random(seed)
    sentences = corpus_sentences()
    words = int(DEFAULT_SETTINGS["passage_words"])
    tmp = path.with_suffix(".tmp.db")
    tmp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with Store(tmp, create=True) as store:
        for d in range(0, size, PASSAGES_PER_DOCUMENT):
            texts = [synthetic_passage(rng, sentences, words) for _ in range(min(PASSAGES_PER_DOCUMENT, size - d))]
            passages, start = [], 0
            for i, text in enumerate(texts):
                passages.append(Passage(ordinal=i, start=start, end=start + len(text), page=1, last_page=1, text=text))
                start += len(text) + 1
            doc = " ".join(texts)
            store.put_document(_row(f"synthetic/doc{d // PASSAGES_PER_DOCUMENT:05d}.txt", len(doc), 1), [doc], passages)
        store.optimize()
    tmp.rename(path)
    print(f"built {path.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return path


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def query_times(retriever: Retriever, questions: Sequence[str]) -> list[float]:
    retriever.search(questions[0])  # loads what a first query loads (rank-bm25's model)
    out = []
    for q in questions:
        t0 = time.perf_counter()
        retriever.search(q, k=10)
        out.append(1000 * (time.perf_counter() - t0))
    return out


def top_k(retriever: Retriever, question: str, k: int = 10) -> list[tuple[int, float]]:
    return sorted((h.passage_id, round(h.score, 9)) for h in retriever.search(question, k=k).hits)  # ties: any order


LIBRARY_SEARCH = (
    "import sys; from docqa.store import Store; from docqa.retrieve import make_retriever; "
    "print(make_retriever(Store(sys.argv[1], readonly=True), sys.argv[2]).search(sys.argv[3]).hits[0].path)"
)


def cold_process(index: Path, retriever: str, question: str, runs: int, *, cli: bool) -> float:
    """Median wall time of a whole process to first result: ``docqa search``, or just the
    retrieval library (``python -c``), in seconds."""
    if cli:
        command = [sys.executable, "-m", "docqa", "search", question, "-i", str(index), "--retriever", retriever, "--json"]
    else:
        command = [sys.executable, "-c", LIBRARY_SEARCH, str(index), retriever, question]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass(frozen=True)
class Latency:
    passages: int
    retriever: str
    p50_ms: float
    p90_ms: float
    cold_s: float  # ``docqa search``
    cold_library_s: float  # ``python -c`` importing only the retrieval path
    build_s: float  # rank-bm25: building its model (first search on a fresh index)
    plain_p50_ms: float = 0.0  # fts5: one OR query over all terms, every matching row scored
    plain_p90_ms: float = 0.0
    same_top_k: float = 0.0  # fts5: % of questions whose top 10 (ids and scores) equals the plain query's


def run_latency(args: argparse.Namespace) -> list[Latency]:
    rng = random.Random(1)
    questions = real_questions(rng, args.questions)
    results = []
    for size in map(int, args.sizes.split(",")):
        index = synthetic_index(size, args.work)
        for name in args.retrievers.split(","):
            if name == "rank-bm25" and size > args.bm25_max:
                continue
            build = 0.0
            with Store(index, readonly=True) as store:
                if name == "fts5":
                    r: Retriever = FTS5Retriever(store)
                else:
                    r = BM25Retriever(store, cache_dir=args.work)
                    r.cache_path.unlink(missing_ok=True)
                    t0 = time.perf_counter()
                    r.model()
                    build = time.perf_counter() - t0
                times = query_times(r, questions[: args.bm25_questions if name == "rank-bm25" else None])
                plain: list[float] = []
                same = 0.0
                if name == "fts5":
                    unstaged = FTS5Retriever(store, first_rows=size, row_budget=size)
                    plain = query_times(unstaged, questions)
                    same = 100 * statistics.mean(top_k(r, q) == top_k(unstaged, q) for q in questions)
            cold = cold_process(index, name, questions[0], args.cold_runs, cli=True)
            cold_lib = cold_process(index, name, questions[0], args.cold_runs, cli=False)
            lat = Latency(size, name, statistics.median(times), percentile(times, 0.9), cold, cold_lib, build,
                          statistics.median(plain) if plain else 0.0, percentile(plain, 0.9) if plain else 0.0, same)
            print(json.dumps(lat.__dict__), file=sys.stderr, flush=True)
            results.append(lat)
    return results


def latency_table(results: Sequence[Latency]) -> str:
    lines = [
        "| passages | retriever | p50 ms | p90 ms | cold `docqa search` s | cold library s | model build s "
        "| plain OR query p50 / p90 ms | top 10 = plain query's |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        build = f"{r.build_s:.1f}" if r.retriever == "rank-bm25" else "-"
        plain = f"{r.plain_p50_ms:.1f} / {r.plain_p90_ms:.1f} | {r.same_top_k:.1f}%" if r.retriever == "fts5" else "- | -"
        lines.append(f"| {r.passages:,} | {r.retriever} | {r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.cold_s:.2f} | "
                     f"{r.cold_library_s:.2f} | {build} | {plain} |")
    by = {(r.passages, r.retriever): r for r in results}
    ratios = [
        f"| {n:,} | {by[n, 'rank-bm25'].p50_ms / f.p50_ms:.0f}x | {by[n, 'rank-bm25'].cold_s / f.cold_s:.1f}x | "
        f"{by[n, 'rank-bm25'].cold_library_s / f.cold_library_s:.1f}x |"
        for (n, name), f in by.items() if name == "fts5" and (n, "rank-bm25") in by
    ]
    if ratios:
        lines += ["", "| passages | rank-bm25 / fts5, p50 query | whole `docqa search` | whole library process |",
                  "|---:|---:|---:|---:|"]
        lines += ratios
    return "\n".join(lines)


# -- embedding speed and cold start (issue 17) ----------------------------------------------------


class StaticEmbedder:
    """model2vec's static embedder distilled offline from the default model (no transformer at
    all: a token-vector lookup and a mean), behind ``Embedder``'s interface for the benchmarks."""

    precision = "static"

    def passage_precision(self) -> str:
        return self.precision

    def __init__(self, dims: int = 256) -> None:
        from model2vec.distill import distill

        self.model_name = f"model2vec-{dims}-of-{DEFAULT_EMBEDDER}"
        folder = Embedder().folder
        path = CACHE / self.model_name
        if not path.exists():
            distill(model_name=str(folder), pca_dims=dims).save_pretrained(str(path))
        from model2vec import StaticModel

        self.model = StaticModel.from_pretrained(str(path))

    def encode(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        vectors = self.model.encode(list(texts))
        return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def run_speed(args: argparse.Namespace) -> str:
    """ms a passage and fidelity (cosine with torch fp32's vectors) of each way to embed, on the
    passages of SQuAD dev articles 40-47, in one run (the machine is shared: compare ratios)."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    words, overlap = int(DEFAULT_SETTINGS["passage_words"]), int(DEFAULT_SETTINGS["overlap_words"])
    texts = [p.text for a in load_squad(DATASETS["squad-dev"], articles=slice(40, 48))
             for p in split_pages([a.text], words=words, overlap=overlap)][: args.passages]
    fp32 = Embedder(precision="fp32", threads=args.threads)
    fp32.export_onnx()
    onnx_dir = fp32.onnx_dir()
    int8 = CACHE / "minilm-int8.onnx"
    if not int8.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(onnx_dir / "model.onnx"), str(int8), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": 1})  # 1: float; the optimized graph hides types

    def onnx_encoder(model: Path) -> Callable[[Sequence[str]], np.ndarray]:
        from docqa.dense import pool

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

        def encode(batch_texts: Sequence[str]) -> np.ndarray:
            out = np.empty((len(batch_texts), 384), dtype=np.float32)
            order = sorted(range(len(batch_texts)), key=lambda i: len(batch_texts[i]))
            for start in range(0, len(order), 32):
                rows = order[start:start + 32]
                enc = fp32._tokenizer([batch_texts[i] for i in rows], padding=True, truncation=True,
                                      max_length=fp32.spec.max_tokens, return_tensors="np")
                hidden = session.run(None, {k: v.astype(np.int64) for k, v in enc.items()})[0]
                out[rows] = pool(hidden, enc["attention_mask"], fp32.spec.pooling)
            return out
        return encode

    ways: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
        "torch fp32": fp32.encode,
        "torch bf16": Embedder(precision="bf16", threads=args.threads).encode,
        "onnxruntime fp32": onnx_encoder(onnx_dir / "model.onnx"),
        "onnxruntime int8 per tensor (rejected)": onnx_encoder(int8),
        "onnxruntime int8 per channel, one batch at a time on all threads (before)": onnx_encoder(onnx_dir / INT8_FILE),
        "onnxruntime int8 per channel, a batch per thread at once (shipped: auto)":
            Embedder(precision="int8", threads=args.threads).encode,
        "model2vec static, 256 dims (distilled)": StaticEmbedder().encode,
    }
    reference = fp32.encode(texts)
    timed: dict[str, tuple[float, np.ndarray]] = {}
    for name, encode in ways.items():
        encode(texts[:8])  # warm up
        t0 = time.perf_counter()
        vectors = encode(texts)
        timed[name] = (1000 * (time.perf_counter() - t0) / len(texts), vectors)
        print(f"{name}: {timed[name][0]:.1f} ms a passage", file=sys.stderr, flush=True)
    lines = ["| embedder | ms / passage | x torch fp32 | mean / min cosine with fp32's vector |", "|---|---:|---:|---:|"]
    for name, (ms, vectors) in timed.items():
        same = (vectors * reference).sum(axis=1) if vectors.shape == reference.shape else None
        fidelity = f"{same.mean():.5f} / {same.min():.5f}" if same is not None else "- (another model)"
        lines.append(f"| {name} | {ms:.1f} | {timed['torch fp32'][0] / ms:.1f}x | {fidelity} |")
    return "\n".join(lines)


def run_cold(args: argparse.Namespace) -> str:
    """Whole-process ``docqa search`` on a real embedded index (SQuAD dev), BM25 vs hybrid: wall
    and CPU (user + system) seconds, medians; CPU is what a loaded machine cannot inflate."""
    import resource

    index = dataset_index("squad-dev", PORTER, args.work)
    embed(index)
    lines = ["| `docqa search --retriever` | wall s | CPU s | CPU x fts5 |", "|---|---:|---:|---:|"]
    cpu: dict[str, float] = {}
    for name in ("fts5", "hybrid"):
        command = [sys.executable, "-m", "docqa", "search", "jet airliner engine maker", "-i", str(index),
                   "--retriever", name, "--json"]
        walls, cpus = [], []
        for _ in range(args.runs):
            before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            walls.append(time.perf_counter() - t0)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        cpu[name] = statistics.median(cpus)
        lines.append(f"| {name} | {statistics.median(walls):.2f} | {cpu[name]:.2f} | {cpu[name] / cpu['fts5']:.1f}x |")
    return "\n".join(lines)


def run_vectors(args: argparse.Namespace) -> str:
    """Exact cosine top-100 over N synthetic unit vectors (384 dims), as ``HybridRetriever`` does.
    CPU ms too: on a shared machine wall time mostly measures the queue for a core."""
    rng = np.random.default_rng(0)
    lines = ["| vectors | memory MB | exact top-100 p50 wall ms | p50 CPU ms |", "|---:|---:|---:|---:|"]
    for size in map(int, args.sizes.split(",")):
        matrix = rng.standard_normal((size, 384), dtype=np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        times, cpu = [], []
        for _ in range(args.questions):
            q = rng.standard_normal(384).astype(np.float32)
            t0, c0 = time.perf_counter(), time.process_time()
            sims = matrix @ (q / np.linalg.norm(q))
            np.argpartition(-sims, 99)[:100]
            times.append(1000 * (time.perf_counter() - t0))
            cpu.append(1000 * (time.process_time() - c0))
        lines.append(f"| {size:,} | {matrix.nbytes / 1e6:.0f} | {statistics.median(times):.1f} | "
                     f"{statistics.median(cpu):.1f} |")
        del matrix
    return "\n".join(lines)


def run_offtopic(args: argparse.Namespace) -> str:
    """How often a question is called off topic (``SearchResult.off_topic``: its closest passage
    is below the embedder's ``unrelated_ceiling``), for questions about the indexed collection
    (SQuAD dev's held-out articles 40-47 against all 48 articles; PolicyQA dev's questions
    against its policies) and about another one (each set against the other's index), at the
    shipped percentile of the probe pairs' unrelated cosines and at others."""
    from docqa.dense import UNRELATED_QUANTILE

    squad = [q.question for q in answerable(load_squad(DATASETS["squad-dev"], articles=slice(40, 48)))]
    policy = sorted({q.question for q in answerable(load_squad(DATASETS["policyqa-dev"]))})
    sets = {"squad-dev": ("SQuAD 40-47", squad[:: args.every]), "policyqa-dev": ("PolicyQA", policy[:: args.every])}
    quantiles = sorted({99.0, UNRELATED_QUANTILE, 99.8, 100.0})
    lines = [f"| index | questions | n | closest cosine p10 / p50 / p90 | "
             + " | ".join(f"off topic, {q:g}th pct{' (shipped)' if q == UNRELATED_QUANTILE else ''}" for q in quantiles)
             + " |", "|---|---|---:|---|" + "---:|" * len(quantiles)]
    for index in sets:
        path = dataset_index(index, PORTER, args.work)
        embed(path)
        with Store(path) as store:
            retriever = HybridRetriever(store)
            embedder = retriever.embedder
            unrelated = embedder.unrelated_cosines()
            ceilings = [float(np.percentile(unrelated, q)) for q in quantiles]
            assert abs(embedder.unrelated_ceiling() - ceilings[quantiles.index(UNRELATED_QUANTILE)]) < 1e-6
            for label, questions in sets.values():
                closest = np.array([max(retriever.cosines(q, None, []).values()) for q in questions])
                shipped = 100 * np.mean([retriever.search(q).off_topic for q in questions])
                cells = [f"{100 * np.mean(closest < c):.1f}%" for c in ceilings]
                assert cells[quantiles.index(UNRELATED_QUANTILE)] == f"{shipped:.1f}%"
                p10, p50, p90 = np.percentile(closest, [10, 50, 90])
                lines.append(f"| {index} | {label}{'' if sets[index][0] == label else ' (another collection)'} | "
                             f"{len(questions)} | {p10:.2f} / {p50:.2f} / {p90:.2f} | " + " | ".join(cells) + " |")
    lines.append("\nunrelated cosines of the probe pairs at those percentiles: "
                 + ", ".join(f"{q:g}th {c:.3f}" for q, c in zip(quantiles, ceilings)))
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-retrieval")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recall", help="recall@k of each retriever and tokenizer choice")
    rec.add_argument("--datasets", default=",".join(DATASETS))
    rec.add_argument("--tokenizers", default=f"{PORTER};{PLAIN}", help="';'-separated FTS5 tokenizer settings")
    rec.add_argument("--stopwords", default=",".join(STOPWORD_LISTS))
    rec.add_argument("--retrievers", default="fts5,rank-bm25", help="fts5, rank-bm25 and/or hybrid")
    rec.add_argument("--row-budgets", default="", help="FTS5 row budgets to sweep, e.g. 300,100")
    rec.add_argument("--dense-weights", default="", help="hybrid cosine weights to sweep, e.g. 1,2")
    rec.add_argument("--articles", default="", help="only the questions of articles A:B, e.g. 40:48")
    rec.add_argument("--scope", choices=("corpus", "document"), default="corpus",
                     help="document: search only each question's own article")
    scale = sub.add_parser("scale", help="recall cost of the staged query and row budgets at 1M passages")
    scale.add_argument("--size", type=int, default=1_000_000)
    scale.add_argument("--questions", type=int, default=1000)
    scale.add_argument("--row-budgets", default="50000,20000")
    lat = sub.add_parser("latency", help="query and whole-process time at several index sizes")
    lat.add_argument("--sizes", default="10000,100000,1000000")
    lat.add_argument("--retrievers", default="fts5,rank-bm25")
    lat.add_argument("--bm25-max", type=int, default=100_000, help="largest index to try rank-bm25 on")
    lat.add_argument("--questions", type=int, default=500)
    lat.add_argument("--bm25-questions", type=int, default=100)
    lat.add_argument("--cold-runs", type=int, default=5)
    speed = sub.add_parser("speed", help="ms a passage of each way to embed (issue 17)")
    speed.add_argument("--passages", type=int, default=256)
    speed.add_argument("--threads", type=int, default=2)
    cold = sub.add_parser("cold", help="cold `docqa search`, fts5 vs hybrid, on SQuAD dev")
    cold.add_argument("--runs", type=int, default=5)
    vectors = sub.add_parser("vectors", help="exact cosine top-100 time at 100k-1M vectors")
    vectors.add_argument("--sizes", default="100000,1000000")
    vectors.add_argument("--questions", type=int, default=50)
    offtopic = sub.add_parser("offtopic", help="questions called off topic, about the collection and about another")
    offtopic.add_argument("--every", type=int, default=1, help="every n-th question of each set")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.command in ("speed", "cold", "vectors", "offtopic"):
        print({"speed": run_speed, "cold": run_cold, "vectors": run_vectors, "offtopic": run_offtopic}[args.command](args))
    elif args.command == "recall":
        print(recall_table(run_recall(args)))
    elif args.command == "scale":
        print(recall_table(run_scale(args)))
    else:
        print(latency_table(run_latency(args)))


if __name__ == "__main__":
    main()
