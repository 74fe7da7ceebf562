"""Answer-quality metrics (official SQuAD v1.1 definitions) and ``docqa eval``.

``evaluate()`` indexes a SQuAD-format file with each article as one document (always the whole
corpus, so retrieval is realistic), asks the selected questions through the full pipeline
(``DocQA.read_batch`` + ``DocQA.rank``: ``ask_batch`` reading every passage), and also gives the same reader each
question's gold paragraph alone. ``scope="document"`` asks each question within its own
article only (the ``--path`` case: a user asking about one document). the ratio open/gold F1 is what retrieval and cross-passage
ranking cost. Per question, EM is 0 or 1 and F1 is in [0, 1]; summaries are percentages, as in
the official script. Answer metrics count answerable questions only; SQuAD v2.0 unanswerable
questions are counted apart (how often docqa abstains on them).
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from docqa.datasets import Article, Question, load_squad, parse_range, questions_of
from docqa.errors import BadQuestion, DatasetError
from docqa.normalize import normalize_answer
from docqa.types import BATCH_QUESTIONS, AskResult, BatchQuestion, Context, Hit, Reading

if TYPE_CHECKING:
    from docqa.api import DocQA

RECALL_KS = (1, 5, 10, 20)
SCOPES = ("open", "document")
CALIBRATION_BINS = 10


# -- metrics (official SQuAD v1.1) -------------------------------------------------------------


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred = normalize_answer(prediction).split()
    truth = normalize_answer(gold).split()
    common = Counter(pred) & Counter(truth)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(truth)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric, prediction: str, golds: Iterable[str]) -> float:
    """SQuAD scores a prediction against its best-matching gold answer."""
    return max((metric(prediction, g) for g in golds), default=0.0)


def has_answer(answers: Iterable[str], text: str) -> bool:
    """Retrieval hit: a normalised gold answer occurs in the normalised passage text (DrQA)."""
    haystack = f" {normalize_answer(text)} "
    return any(f" {a} " in haystack for a in map(normalize_answer, answers) if a)


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionEval:
    """One question: one line of ``predictions.jsonl`` (answer fields stay empty when only
    retrieval was evaluated)."""

    id: str
    question: str
    article: int
    answers: tuple[str, ...]  # gold; empty for a v2.0 unanswerable question
    hit_rank: int | None  # first retrieved passage holding a gold answer (None: not in the top 20)
    prediction: str = ""  # what docqa shows: "" when it abstained
    candidate: str = ""  # the top-ranked answer, shown or not ("" when nothing was read)
    score: float = 0.0  # the candidate's score
    confidence: float = 0.0  # the candidate's confidence (compared with the threshold)
    abstained: bool = False
    em: float = 0.0
    f1: float = 0.0
    gold_prediction: str = ""  # the reader's best span in the gold paragraph alone
    gold_em: float = 0.0
    gold_f1: float = 0.0
    read_hit: bool = False  # a gold answer is inside the (possibly widened) contexts read
    path: str = ""  # document cited first by the shown answer
    retrieve_s: float = 0.0
    read_s: float = 0.0


@dataclass(frozen=True)
class MuPoint:
    """Answer quality at one ``mu`` when every question is answered: the threshold is left out,
    since the fused scores it cuts move with ``mu``."""

    mu: float
    em: float
    f1: float


@dataclass(frozen=True)
class CalibrationBin:
    """Shown answers whose confidence is in [lo, hi): mean confidence vs how many were right."""

    lo: float
    hi: float
    count: int
    confidence: float
    accuracy: float  # % exact matches


@dataclass(frozen=True)
class EvalReport:
    """Summary of a run; rates are % of answerable questions. Answer metrics are None when only
    retrieval was evaluated."""

    dataset: str
    dataset_sha256: str
    index: str
    model: str
    settings: dict[str, object]  # the index's splitter/tokenizer settings
    k: int
    mu: float
    threshold: float
    widen: int
    questions: int
    answerable: int
    unanswerable: int
    recall: dict[int, float]  # a gold answer is in the top-k passages, for k in RECALL_KS
    retrieve_ms: float  # per question
    read_recall: float | None = None  # a gold answer is inside what the reader read
    open_em: float | None = None
    open_f1: float | None = None
    gold_em: float | None = None  # the reader given only the gold paragraph
    gold_f1: float | None = None
    open_gold_ratio: float | None = None  # open F1 / gold-paragraph F1
    abstain_rate: float | None = None  # answerable questions docqa abstained on (all wrong)
    unanswerable_abstain_rate: float | None = None  # % of unanswerable ones abstained on (right)
    below_threshold_em: float | None = None  # EM of top candidates less confident than the threshold
    above_threshold_em: float | None = None  # ... and at or above it
    ece: float | None = None  # expected calibration error of shown answers' confidence, % points
    read_ms: float | None = None  # per question
    mu_sweep: tuple[MuPoint, ...] = ()
    calibration: tuple[CalibrationBin, ...] = ()
    files: tuple[str, ...] = ()
    retriever: str = "fts5"
    scope: str = "open"


# -- the evaluation index ----------------------------------------------------------------------


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def index_settings(passage_words: int | None = None, overlap_words: int | None = None) -> dict[str, object]:
    from docqa.store import DEFAULT_SETTINGS

    settings = dict(DEFAULT_SETTINGS)
    if passage_words is not None:
        settings["passage_words"] = passage_words
    if overlap_words is not None:
        settings["overlap_words"] = overlap_words
    words, overlap = settings["passage_words"], settings["overlap_words"]
    if not 0 <= overlap < words:  # type: ignore[operator]
        raise DatasetError(f"--overlap-words must be below --passage-words (got {overlap} and {words})")
    return settings


def eval_key(dataset_sha: str, settings: dict[str, object]) -> str:
    """What an evaluation index is built from. The splitter's source is part of it, so an index
    cut by an older splitter is never reused by mistake."""
    import docqa.split

    splitter = hashlib.sha256(Path(docqa.split.__file__).read_bytes()).hexdigest()
    blob = json.dumps([dataset_sha, settings, splitter], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def document_path(article: Article) -> str:
    return f"{article.index:03d}-{article.title.replace('/', '_')}.txt"


def ensure_index(
    dataset: str | os.PathLike[str],
    articles: Sequence[Article],
    settings: dict[str, object],
    index: str | os.PathLike[str] | None = None,
) -> Path:
    """The index of the whole dataset for ``settings``: reused when it was built from the same
    file and settings, else (re)built. Default home: ``indexes/eval-<key>.db``."""
    from docqa.store import INDEX_DIR, Store, resolve_index_path

    key = eval_key(file_sha256(dataset), settings)
    path = resolve_index_path(index) if index is not None else INDEX_DIR / f"eval-{key}.db"
    if path.exists() and path.stat().st_size > 0:
        with Store(path, readonly=True) as store:
            found = store.settings.get("eval_key")
        if found == key:
            return path
        if found is None:
            raise DatasetError(
                f"{path} is not an evaluation index (docqa eval will not overwrite it); "
                "choose another --index or leave it out"
            )
    _build_index(dataset, articles, {**settings, "eval_key": key}, path)
    return path


def _build_index(dataset: str | os.PathLike[str], articles: Sequence[Article],
                 settings: dict[str, object], path: Path) -> None:
    """Written beside ``path`` and renamed into place: an interrupted build is never reused."""
    from docqa.split import split_pages
    from docqa.store import DocumentRow, Store

    root = str(Path(dataset).resolve())
    tmp = path.with_name(f"{path.name}.building")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    with Store(tmp, create=True, settings=settings) as store:
        words, overlap = int(settings["passage_words"]), int(settings["overlap_words"])  # type: ignore[call-overload]
        for article in articles:
            rel = document_path(article)
            row = DocumentRow(
                path=rel, abs_path=f"{root}#{rel}", root=root, size=len(article.text.encode()),
                mtime=0.0, sha256=hashlib.sha256(article.text.encode()).hexdigest(), kind="txt",
                page_count=1, status="indexed", message="",
            )
            store.put_document(row, [article.text], split_pages([article.text], words=words, overlap=overlap))
    os.replace(tmp, path)


# -- evaluation --------------------------------------------------------------------------------


def parse_sweep(text: str) -> tuple[float, ...]:
    """``"0:1:0.1"`` -> 0.0, 0.1, ..., 1.0 (both ends included); ``"0.3,0.5"`` lists values."""
    try:
        if "," in text or ":" not in text:
            values = [float(v) for v in text.split(",")]
        else:
            lo, hi, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError("step must be positive")
            values = [round(lo + i * step, 10) for i in range(int(math.floor((hi - lo) / step + 1e-9)) + 1)]
    except ValueError as err:
        raise DatasetError(f"--mu-sweep takes LO:HI:STEP (e.g. 0:1:0.1) or a list (0.3,0.5): {err}") from err
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise DatasetError(f"--mu-sweep values must lie in [0, 1], got {text!r}")
    return tuple(values)


def select_questions(articles: Sequence[Article], selection: slice | str | None, limit: int | None) -> list[Question]:
    chosen = articles if selection is None else articles[parse_range(selection) if isinstance(selection, str) else selection]
    questions = questions_of(chosen)
    return questions if limit is None else questions[:limit]


def evaluate(
    dataset_path: str | os.PathLike[str],
    *,
    model: str | None = None,
    tokenizer: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    k: int = 10,
    index: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    articles: slice | str | None = None,
    mu: float | None = None,
    mu_sweep: Sequence[float] | None = None,
    threshold: float | None = None,
    widen: int | None = None,
    passage_words: int | None = None,
    overlap_words: int | None = None,
    retrieval_only: bool = False,
    retriever: str = "fts5",
    scope: str = "open",
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    ray: bool | str = False,
    actors: int | None = None,
    gpus_per_actor: float = 0,
) -> EvalReport:
    """Evaluate docqa on a SQuAD-format file (see the module docstring).

    ``articles`` picks the questions (``slice(40, 48)`` or ``"40:48"``), never the corpus;
    ``limit`` caps them. ``retrieval_only`` needs no model: recall and timing only.
    ``retriever="hybrid"`` first embeds the index's passages (once; the vectors stay in it);
    ``"auto"`` (what users get) does so where a default embedding model is installed.
    ``scope="document"`` retrieves and reads within each question's own article only.
    ``progress(done, total)`` is called after each batch. ``ray``: read the questions on a Ray
    cluster (see ``DocQA.ask_many``); the gold paragraphs are read here. With ``out``,
    writes ``report.json``, ``predictions.jsonl``, ``predictions.json`` (the official
    ``{id: answer}`` format) and, when matplotlib is installed, PNG plots.
    """
    from docqa.api import DEFAULT_WIDEN, DocQA
    from docqa.rank import DEFAULT_MU, DEFAULT_THRESHOLD

    if scope not in SCOPES:
        raise DatasetError(f"--scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    corpus = load_squad(dataset_path)
    questions = select_questions(corpus, articles, limit)
    if not questions:
        raise DatasetError(f"{dataset_path}: no questions selected (check --articles and --limit)")
    settings = index_settings(passage_words, overlap_words)
    path = ensure_index(dataset_path, corpus, settings, index)
    mu = DEFAULT_MU if mu is None else mu
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    widen = DEFAULT_WIDEN if widen is None else widen
    sweep = tuple(mu_sweep or ())
    titles = {a.index: document_path(a) for a in corpus}
    within = scope_paths(scope, titles)

    rows: list[QuestionEval] = []
    sweep_scores: list[list[tuple[float, float]]] = []  # per question: (em, f1) at each swept mu, no threshold
    with DocQA(path, model=model, tokenizer=tokenizer, device=device, precision=precision,
               threads=threads, threshold=threshold, widen=widen, retriever=retriever) as qa:
        if retriever in ("hybrid", "auto") and qa.embedder_for(retriever == "hybrid"):
            qa.embed()
        retriever = qa.retriever().name  # what "auto" became
        # Read lazily, in the same batches, here or on Ray; recall and ranking stay here.
        readings = None if retrieval_only else qa.read_many(
            (batch_question(q, within) for q in questions), passages=k, ray=ray, actors=actors,
            gpus_per_actor=gpus_per_actor)
        for start in range(0, len(questions), BATCH_QUESTIONS):
            batch = questions[start:start + BATCH_QUESTIONS]
            t0 = time.perf_counter()
            found = [recall_hits(qa, q, within(q)) for q in batch]
            if retrieval_only:
                retrieve_s = (time.perf_counter() - t0) / len(batch)
                rows.extend(QuestionEval(id=q.id, question=q.question, article=q.article, answers=q.answers,
                                         hit_rank=_hit_rank(q, hits or ()), retrieve_s=retrieve_s)
                            for q, hits in zip(batch, found))
            else:
                for q, reading, hits, gold in read_questions(qa, batch, found, k, titles, readings, within):
                    rows.append(_question_eval(qa, q, reading, hits, gold, mu))
                    sweep_scores.append([_scores(q, qa.rank(reading, mu=m, threshold=-math.inf)) for m in sweep])
            if progress is not None:
                progress(len(rows), len(questions))
        model_name = "" if retrieval_only else qa.reader.model_name

    report = summarize(
        rows, dataset=str(dataset_path), dataset_sha256=file_sha256(dataset_path), index=str(path),
        model=model_name, settings=settings, k=k, mu=mu, threshold=threshold, widen=widen,
        mu_sweep=_sweep_points(sweep, rows, sweep_scores), read=not retrieval_only, retriever=retriever,
        scope=scope,
    )
    return write_outputs(report, rows, Path(out)) if out is not None else report


def scope_paths(scope: str, titles: dict[int, str]) -> Callable[[Question], list[str] | None]:
    """What each question is asked within: its own article's document (``"document"``), or the
    whole index (``"open"``: None)."""
    if scope == "document":
        return lambda q: [glob.escape(titles[q.article])]
    return lambda q: None


def read_questions(qa: DocQA, batch: Sequence[Question], found: Sequence[tuple[Hit, ...] | None], k: int,
                   titles: dict[int, str], readings: Iterator[tuple[BatchQuestion, Reading | str]] | None = None,
                   within: Callable[[Question], list[str] | None] = lambda q: None,
                   ) -> Iterable[tuple[Question, Reading, tuple[Hit, ...], str]]:
    """Each question with its reading of ``k`` passages (empty when it had nothing to search),
    its ``found`` passages (``recall_hits``) and the reader's answer from its gold paragraph
    alone: the raw material of a run, which sweeps re-rank without re-reading. ``readings``:
    the batch's next items of a ``DocQA.read_many`` over all questions (e.g. on Ray).
    ``within(q)``: the path patterns that question is asked within (None: the whole index)."""
    if readings is None:
        readings = qa.read_many([batch_question(q, within) for q in batch], passages=k)
    golds = _read_gold(qa, batch, titles)
    for q, hits, gold, (_, reading) in zip(batch, found, golds, readings):
        yield q, reading if isinstance(reading, Reading) else Reading(q.question, (), (), ()), hits or (), gold


def batch_question(q: Question, within: Callable[[Question], list[str] | None]) -> BatchQuestion:
    paths = within(q)
    return BatchQuestion(q.id, q.question, tuple(paths) if paths else None)


def recall_hits(qa: DocQA, q: Question, paths: list[str] | None = None) -> tuple[Hit, ...] | None:
    """The top ``max(RECALL_KS)`` passages (within ``paths``); None for a question with nothing
    searchable in it (docqa refuses it: counted as abstained)."""
    try:
        return qa.search(q.question, k=max(RECALL_KS), paths=paths).hits
    except BadQuestion:
        return None


def _read_gold(qa: DocQA, batch: Sequence[Question], titles: dict[int, str]) -> list[str]:
    """The reader's best span in each answerable question's gold paragraph alone."""
    answerable = [q for q in batch if q.answerable]
    contexts: list[list[Context]] = []
    for q in answerable:
        hit = Hit(rank=1, score=1.0, passage_id=0, path=titles[q.article], page=1, last_page=1,
                  start=q.paragraph_start, end=q.paragraph_start + len(q.paragraph), text=q.paragraph)
        contexts.append([Context(hit=hit, text=q.paragraph, start=q.paragraph_start)])
    spans = qa.reader.read([q.question for q in answerable], contexts) if answerable else []
    best = {q.id: max(s, key=lambda sp: sp.score).text if s else "" for q, s in zip(answerable, spans)}
    return [best.get(q.id, "") for q in batch]


def _question_eval(qa: DocQA, q: Question, reading: Reading, recall_hits: Sequence[Hit], gold: str,
                   mu: float) -> QuestionEval:
    shown = qa.rank(reading, mu=mu)
    # The same ranking with no threshold: the top candidate and its score even when abstaining.
    top = qa.rank(reading, mu=mu, threshold=-math.inf)
    candidate = top.answers[0] if top.answers else None
    prediction = "" if shown.abstained else shown.answers[0].text
    em, f1_ = _scores(q, shown)
    return QuestionEval(
        id=q.id, question=q.question, article=q.article, answers=q.answers,
        prediction=prediction, candidate=candidate.text if candidate else "",
        score=candidate.score if candidate else 0.0,
        confidence=candidate.confidence if candidate else 0.0,
        abstained=shown.abstained, em=em, f1=f1_, gold_prediction=gold,
        gold_em=best_over_golds(exact_match, gold, q.answers),
        gold_f1=best_over_golds(f1, gold, q.answers),
        hit_rank=_hit_rank(q, recall_hits), read_hit=any(has_answer(q.answers, c.text) for c in reading.contexts),
        path="" if shown.abstained else shown.answers[0].citations[0].path,
        retrieve_s=reading.timings.retrieve_s, read_s=reading.timings.read_s,
    )


def _hit_rank(q: Question, hits: Sequence[Hit]) -> int | None:
    return next((h.rank for h in hits if has_answer(q.answers, h.text)), None)


def _scores(q: Question, result: AskResult) -> tuple[float, float]:
    prediction = "" if result.abstained else result.answers[0].text
    return best_over_golds(exact_match, prediction, q.answers), best_over_golds(f1, prediction, q.answers)


def _sweep_points(sweep: Sequence[float], rows: Sequence[QuestionEval],
                  scores: Sequence[Sequence[tuple[float, float]]]) -> tuple[MuPoint, ...]:
    answerable = [s for r, s in zip(rows, scores) if r.answers]
    return tuple(
        MuPoint(mu=m, em=_pct(s[i][0] for s in answerable), f1=_pct(s[i][1] for s in answerable))
        for i, m in enumerate(sweep)
    )


# -- summaries ---------------------------------------------------------------------------------


def _pct(values: Iterable[float]) -> float:
    items = list(values)
    return 100.0 * sum(items) / len(items) if items else 0.0


def summarize(rows: Sequence[QuestionEval], *, dataset: str, dataset_sha256: str, index: str, model: str,
              settings: dict[str, object], k: int, mu: float, threshold: float, widen: int,
              mu_sweep: tuple[MuPoint, ...] = (), read: bool = True, retriever: str = "fts5",
              scope: str = "open") -> EvalReport:
    """The report of per-question results (public so sweeps can re-summarise saved rows);
    ``read=False``: the rows hold retrieval results only."""
    answerable = [r for r in rows if r.answers]
    unanswerable = [r for r in rows if not r.answers]
    report = EvalReport(
        dataset=dataset, dataset_sha256=dataset_sha256, index=index, model=model, settings=settings,
        k=k, mu=mu, threshold=threshold, widen=widen, questions=len(rows),
        answerable=len(answerable), unanswerable=len(unanswerable),
        recall={n: recall_at(answerable, n) for n in RECALL_KS},
        retrieve_ms=_mean_ms(r.retrieve_s for r in rows), retriever=retriever, scope=scope,
    )
    if not read:
        return report
    below = [_candidate_em(r) for r in answerable if r.candidate and r.confidence < threshold]
    above = [_candidate_em(r) for r in answerable if r.candidate and r.confidence >= threshold]
    open_f1 = _pct(r.f1 for r in answerable)
    gold_f1 = _pct(r.gold_f1 for r in answerable)
    bins = calibration_bins(answerable)
    return replace(
        report,
        read_recall=_pct(r.read_hit for r in answerable),
        open_em=_pct(r.em for r in answerable), open_f1=open_f1,
        gold_em=_pct(r.gold_em for r in answerable), gold_f1=gold_f1,
        open_gold_ratio=open_f1 / gold_f1 if gold_f1 else 0.0,
        abstain_rate=_pct(r.abstained for r in answerable),
        unanswerable_abstain_rate=_pct(r.abstained for r in unanswerable) if unanswerable else None,
        below_threshold_em=_pct(below) if below else None,
        above_threshold_em=_pct(above) if above else None,
        ece=sum(b.count * abs(b.accuracy - 100 * b.confidence) for b in bins) / max(1, sum(b.count for b in bins)),
        read_ms=_mean_ms(r.read_s for r in rows),
        mu_sweep=mu_sweep, calibration=bins,
    )


def _mean_ms(seconds: Iterable[float]) -> float:
    items = list(seconds)
    return 1000 * sum(items) / len(items) if items else 0.0


def recall_at(rows: Sequence[QuestionEval], n: int) -> float:
    return _pct(r.hit_rank is not None and r.hit_rank <= n for r in rows)


def _candidate_em(row: QuestionEval) -> float:
    return best_over_golds(exact_match, row.candidate, row.answers)


def calibration_bins(rows: Sequence[QuestionEval], n: int = CALIBRATION_BINS) -> tuple[CalibrationBin, ...]:
    """Shown answers of answerable questions in ``n`` equal-width confidence bins (empty ones left out)."""
    shown = [r for r in rows if not r.abstained and r.answers]
    out = []
    for i in range(n):
        lo, hi = i / n, (i + 1) / n
        inside = [r for r in shown if lo <= r.confidence < hi or (i == n - 1 and r.confidence == 1.0)]
        if inside:
            out.append(CalibrationBin(lo=lo, hi=hi, count=len(inside),
                                      confidence=sum(r.confidence for r in inside) / len(inside),
                                      accuracy=_pct(r.em for r in inside)))
    return tuple(out)


# -- outputs -----------------------------------------------------------------------------------


def write_outputs(report: EvalReport, rows: Sequence[QuestionEval], out: Path) -> EvalReport:
    """Writes the files into ``out`` and returns ``report`` listing them."""
    from docqa.plots import write_plots

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "predictions.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    (out / "predictions.json").write_text(
        json.dumps({r.id: r.prediction for r in rows}, ensure_ascii=False, indent=1), encoding="utf-8")
    answerable = [r for r in rows if r.answers]
    curve = [recall_at(answerable, k) for k in range(1, max(RECALL_KS) + 1)]
    files = [out / "predictions.jsonl", out / "predictions.json", *write_plots(report, curve, out)]
    report = replace(report, files=tuple(str(p) for p in [out / "report.json", *files]))
    (out / "report.json").write_text(json.dumps(asdict(report), ensure_ascii=False, indent=2), encoding="utf-8")
    return report
