"""The Python API: ``DocQA`` wires store, indexer, retriever, reader and ranking together.

    with DocQA("indexes/papers.db") as qa:
        qa.index(["~/papers"])
        for a in qa.ask("Who proposed span boundary objectives?"):
            print(a.text, a.confidence, a.citations[0].path, a.citations[0].page)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, replace
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

from docqa.errors import DocQAError
from docqa.rank import DEFAULT_MU, DEFAULT_THRESHOLD, could_change, rank_answers
from docqa.retrieve import Retriever, make_retriever
from docqa.store import DocumentRow, Store, page_of, resolve_index_path, writer_lock
from docqa.types import (
    BATCH_QUESTIONS, Answer, AskResult, BatchAnswer, BatchQuestion, Context, FileResult, Hit, IndexInfo, IndexReport,
    Limits, OcrOptions, PageText, Reading, SearchResult, Span, Timings,
)

if TYPE_CHECKING:
    from docqa.reader import Reader

# Characters of neighbouring text added on each side of a hit before reading, so an answer cut
# at a passage edge survives (chosen with `docqa eval`, see docs/evaluation.md).
DEFAULT_WIDEN = 0
# ``ask`` reads a question's passages in retrieval order, stopping after these many when the rest
# cannot change the top answer (``DocQA.read_batch``; measured in bench/reader.py).
READ_STAGES = (4,)
T = TypeVar("T")


class DocumentNotFound(DocQAError):
    pass


def document_json(d: DocumentRow) -> dict[str, object]:
    """One document as `docqa serve` and `docqa mcp` list it."""
    return {"id": d.id, "path": d.path, "kind": d.kind, "status": d.status, "message": d.message,
            "pages": d.page_count, "size": d.size, "indexed_at": d.indexed_at}


class AmbiguousPath(DocQAError):
    """A name that several indexed documents answer to."""


class DocQA:
    """A docqa index plus (lazily) a reader. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        index: str | os.PathLike[str] | None = None,
        model: str | None = None,
        tokenizer: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        *,
        retriever: str = "auto",
        max_answer_len: int = 30,
        threshold: float = DEFAULT_THRESHOLD,
        widen: int = DEFAULT_WIDEN,
        settings: dict[str, object] | None = None,
    ) -> None:
        self.index_path = resolve_index_path(index)
        self.retriever_name = retriever
        self.threshold = threshold
        self.widen = widen
        self.settings = settings  # splitter/tokenizer settings for a new index
        self._reader_args = dict(
            model=model, tokenizer=tokenizer, device=device, precision=precision,
            threads=threads, max_answer_len=max_answer_len,
        )
        self._reader: Reader | None = None
        self._store: Store | None = None
        self._retrievers: dict[str, Retriever] = {}
        # Per-instance caches of what citations need; cleared whenever the index changes.
        self._text = lru_cache(maxsize=64)(self._document_text)
        self._page_starts = lru_cache(maxsize=64)(self._document_page_starts)
        self._ocr_pages = lru_cache(maxsize=64)(self._document_ocr_pages)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self._invalidate()

    def __enter__(self) -> DocQA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """The index opened for reading (read-only: searches never write)."""
        if self._store is None:
            self._store = Store(self.index_path, readonly=True)
        return self._store

    def reading_args(self) -> dict[str, object]:
        """What a copy of this ``DocQA`` needs to retrieve and read the same way (Ray actors)."""
        return dict(self._reader_args, retriever=self.retriever_name, widen=self.widen, threshold=self.threshold)

    @property
    def reader_settings(self) -> dict[str, object]:
        """The reader options this instance was made with (model, tokenizer, device, ...)."""
        return dict(self._reader_args)

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            from docqa.reader import Reader

            self._reader = Reader(**self._reader_args)  # type: ignore[arg-type]
        return self._reader

    # -- indexing ----------------------------------------------------------------------------

    def index(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        passwords: Sequence[str] = (),
        workers: int | None = None,
        limits: Limits = Limits(),
        ocr: OcrOptions = OcrOptions(),
        progress: Callable[[FileResult], None] | None = None,
        ray: bool | str = False,
        ship_mb: float | None = None,
        embed: bool | None = None,
    ) -> IndexReport:
        """Index ``paths`` (folders, files, or object-store URIs such as ``s3://bucket/prefix``,
        see ``docqa.objectstore``); ``ocr`` says when PDF pages are read with Tesseract (changing it
        re-extracts the PDFs it affects on the next run). ``ray``: extract on a Ray cluster
        (True: ``$RAY_ADDRESS`` or a new local instance; a string: that cluster's address); this
        process still plans and writes. ``ship_mb``: with ``ray``, files up to this size go with
        their tasks. Then the new passages are embedded (``embed``; None: as ``embedder_for``)."""
        from docqa.indexer import Executor, Indexer  # extraction libraries load only when indexing

        with writer_lock(self.index_path), Store(self.index_path, create=True, settings=self.settings) as store:
            executor: Executor | None = None
            if ray is not False:
                from docqa.distributed import DEFAULT_SHIP_MB, RayExecutor

                executor = RayExecutor(_ray_address(ray), limits=limits,
                                       ship_mb=DEFAULT_SHIP_MB if ship_mb is None else ship_mb)
            report = Indexer(store, passwords=passwords, workers=workers, limits=limits, ocr=ocr,
                             progress=progress, executor=executor).run(paths)
        self._invalidate()
        model = self.embedder_for(embed)
        if model is not None and not report.interrupted:
            self.embed(model)
        return report

    def embedder_for(self, embed: bool | None, embedder: str | None = None) -> str | None:
        """The model ``index`` embeds new passages with, None for none. ``embed=None`` (the
        default) embeds where it can: with ``embedder``, else the index's own model, else
        ``dense.default_embedder()`` (all-MiniLM-L6-v2 where the dense extra is installed), when
        that model is present here. ``embed=True`` insists (and fails on a missing model)."""
        from docqa.dense import DEFAULT_EMBEDDER, available, default_embedder

        if embed is False:
            return None
        if embedder is None:
            # Opened as ``index`` opens it, so closing it tidies the -wal/-shm files as indexing
            # does (a read-only connection would leave them beside the index).
            with Store(self.index_path) as store:
                embedder = store.embedding_model
        model = embedder or default_embedder() or (DEFAULT_EMBEDDER if embed else None)
        return model if embed or (model is not None and available(model)) else None

    def embed(self, embedder: str | None = None, *, threads: int | None = None,
              progress: Callable[[int, int], None] | None = None) -> int:
        """Store a dense vector for every passage that lacks one (for ``retriever="hybrid"``);
        ``embedder`` defaults to the index's model, else all-MiniLM-L6-v2. Returns how many."""
        from docqa.dense import DEFAULT_EMBEDDER, Embedder, embed_index

        with writer_lock(self.index_path), Store(self.index_path) as store:
            model = embedder or store.embedding_model or DEFAULT_EMBEDDER
            done = embed_index(store, Embedder(model, threads=threads), progress=progress)
        self._invalidate()
        return done

    def remove(self, paths: Sequence[str]) -> list[str]:
        """Drop documents by relative or absolute path; returns the paths removed."""
        with writer_lock(self.index_path), Store(self.index_path) as store:
            found = [_one_document(store, p, self.index_path) for p in paths]
            store.remove([d.abs_path for d in found])
        self._invalidate()
        return [d.path for d in found]

    def _invalidate(self) -> None:
        self._retrievers.clear()
        self._text.cache_clear()
        self._page_starts.cache_clear()
        self._ocr_pages.cache_clear()

    # -- reading the index -------------------------------------------------------------------

    def info(self) -> IndexInfo:
        return self.store.info()

    def document_text(self, path: str) -> str:
        """The stored text that citation offsets index into."""
        return self._text(_one_document(self.store, path, self.index_path).id)

    def read_page(self, document: int | str, number: int) -> PageText:
        """Page ``number`` of a document given by id or by (indexed or absolute) path, from the
        index: the file itself is never read."""
        store = self.store
        if isinstance(document, int):
            doc = store.document_by_id(document)
        else:
            found = store.find_documents(document)
            doc = _one_document(store, document, self.index_path) if found else None
        if doc is None:
            raise DocumentNotFound(f"no document {document} in {self.index_path}")
        found = store.page(doc.id, number)
        if found is None:
            raise DocumentNotFound(f"{doc.path} has no page {number}; it has {doc.page_count}")
        return PageText(document_id=doc.id, path=doc.path, kind=doc.kind, page=number,
                        pages=doc.page_count, start=found[0], text=found[1],
                        ocr=number in store.ocr_pages(doc.id))

    def _document_text(self, document_id: int) -> str:
        return self.store.document_text(document_id)

    def _document_page_starts(self, document_id: int) -> tuple[int, ...]:
        return tuple(r[0] for r in self.store.conn.execute(
            "SELECT start FROM pages WHERE document_id = ? ORDER BY number", (document_id,)))

    def _document_ocr_pages(self, document_id: int) -> frozenset[int]:
        return self.store.ocr_pages(document_id)

    def retriever(self, name: str | None = None) -> Retriever:
        name = name or self.retriever_name
        if name not in self._retrievers:
            self._retrievers[name] = make_retriever(self.store, name)
        return self._retrievers[name]

    def search(self, question: str, k: int = 10, paths: Sequence[str] | None = None,
               retriever: str | None = None) -> SearchResult:
        return self.retriever(retriever).search(question, k=k, paths=paths)

    # -- asking ------------------------------------------------------------------------------

    def ask(self, question: str, top_k: int = 3, passages: int = 10,
            paths: Sequence[str] | None = None, mu: float | None = None) -> AskResult:
        return self.ask_batch([question], top_k=top_k, passages=passages, paths=paths, mu=mu)[0]

    def ask_batch(self, questions: Sequence[str], top_k: int = 3, passages: int = 10,
                  paths: Sequence[str] | None = None, mu: float | None = None) -> list[AskResult]:
        """Answer several questions; all their windows go through the reader together, each
        question's only as far as they could change its top answer (``read_batch``'s ``mu``)."""
        mu = DEFAULT_MU if mu is None else mu
        return [self.rank(r, top_k=top_k, mu=mu) for r in self.read_batch(questions, passages, paths, mu=mu)]

    def ask_many(self, questions: Iterable[BatchQuestion | str], top_k: int = 3, passages: int = 10,
                 mu: float | None = None, *, ray: bool | str = False, actors: int | None = None,
                 gpus_per_actor: float = 0) -> Iterator[BatchAnswer]:
        """Answer a stream of questions, in their order, ``BATCH_QUESTIONS`` at a time; a bad
        question gets its error and the rest go on. ``ray``: read on a Ray cluster (True:
        ``$RAY_ADDRESS`` or a new local instance; a string: that address) with an actor pool
        of ``actors`` readers (each loads the model once); ranking stays here."""
        for q, r in self.read_many(questions, passages, ray=ray, actors=actors, gpus_per_actor=gpus_per_actor):
            yield BatchAnswer(q.id, self.rank(r, top_k=top_k, mu=mu)) if isinstance(r, Reading) else BatchAnswer(q.id, error=r)

    def read_many(self, questions: Iterable[BatchQuestion | str], passages: int = 10, *, ray: bool | str = False,
                  actors: int | None = None, gpus_per_actor: float = 0
                  ) -> Iterator[tuple[BatchQuestion, Reading | str]]:
        """``ask_many`` before ranking: each question with its reading or its error, in order."""
        items = (BatchQuestion(n, q) if isinstance(q, str) else q for n, q in enumerate(questions, 1))
        chunks = _chunks(items, BATCH_QUESTIONS)
        if ray is False:
            readings = ((chunk, self.read_each(chunk, passages)) for chunk in chunks)
        else:
            from docqa.distributed import read_on_ray

            readings = read_on_ray(self, chunks, passages, address=_ray_address(ray),
                                   actors=actors, gpus_per_actor=gpus_per_actor)
        for chunk, read in readings:
            yield from zip(chunk, read)

    def read_batch(self, questions: Sequence[str], passages: int = 10,
                   paths: Sequence[str] | None = None, *, mu: float | None = None) -> list[Reading]:
        """Retrieve and read without ranking (``ask_batch`` = ``rank`` of each). Without ``mu``
        every passage is read (``docqa eval`` reads once and re-ranks with many ``mu``); with it,
        a question's passages are read in retrieval order in stages (``READ_STAGES``) and the
        rest is skipped once it cannot change the top answer ranked with that ``mu``
        (``rank.could_change``). A reading keeps all its contexts either way."""
        t0 = time.perf_counter()
        results = [self.search(q, k=passages, paths=paths) for q in questions]
        return self._read(list(questions), results, t0, mu)

    def read_each(self, questions: Sequence[BatchQuestion], passages: int = 10) -> list[Reading | str]:
        """``read_batch`` for questions that each have their own paths and may be bad: a bad
        one gets its error message, the others are read together."""
        t0 = time.perf_counter()
        found: list[SearchResult | str] = []
        for q in questions:
            try:
                found.append(self.search(q.question, k=passages, paths=q.paths))
            except DocQAError as err:
                found.append(str(err))
        good = [(q.question, r) for q, r in zip(questions, found) if isinstance(r, SearchResult)]
        readings = iter(self._read([q for q, _ in good], [r for _, r in good], t0))
        return [next(readings) if isinstance(r, SearchResult) else r for r in found]

    def _read(self, questions: list[str], results: list[SearchResult], t0: float,
              mu: float | None = None) -> list[Reading]:
        retrieve_s = (time.perf_counter() - t0) / max(1, len(questions))
        contexts = [[self._context(h) for h in r.hits] for r in results]
        # ask's staged reading does not read a question the threshold withholds anyway.
        unread = {q for q, r in enumerate(results) if mu is not None and r.off_topic and self.threshold > 0}
        reader = self.reader
        load_s = 0.0
        if not reader.loaded and any(c for q, c in enumerate(contexts) if q not in unread):
            t1 = time.perf_counter()
            reader.load()
            load_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        spans = self._spans(questions, results, contexts, mu, unread) if any(contexts) else [[] for _ in questions]
        read_s = (time.perf_counter() - t2) / max(1, len(questions))
        timings = Timings(retrieve_s=retrieve_s, read_s=read_s, load_s=load_s)
        return [
            Reading(question=q, hits=r.hits, contexts=tuple(c), spans=tuple(s), timings=timings, off_topic=r.off_topic)
            for q, r, c, s in zip(questions, results, contexts, spans)
        ]

    def _spans(self, questions: list[str], results: list[SearchResult], contexts: list[list[Context]],
               mu: float | None, unread: set[int]) -> list[list[Span]]:
        """Each question's spans: from all its contexts, or (given ``mu``) as ``read_batch`` says,
        none for the questions in ``unread``."""
        from docqa.reader import best_per_location

        if mu is None:
            return self.reader.read(questions, contexts)
        spans: list[list[Span]] = [[] for _ in questions]
        open_, done = [q for q in range(len(questions)) if q not in unread], 0
        for upto in (*READ_STAGES, max(map(len, contexts))):
            if not open_:
                break
            read = self.reader.read([questions[q] for q in open_], [contexts[q][done:upto] for q in open_])
            for q, found in zip(open_, read):
                spans[q] = best_per_location([*spans[q], *found])
            open_ = [q for q in open_ if could_change(questions[q], spans[q], results[q].hits, contexts[q][upto:], mu)]
            done = upto
        return spans

    def rank(self, reading: Reading, top_k: int = 3, mu: float | None = None,
             threshold: float | None = None) -> AskResult:
        """Answers from a ``read_batch`` result; ``mu``/``threshold`` default to the tuned ones.
        An off-topic question abstains wherever a threshold applies (``threshold`` > 0)."""
        threshold = self.threshold if threshold is None else threshold
        if reading.off_topic and threshold > 0:
            return AskResult(question=reading.question, answers=(), timings=reading.timings, abstained=True,
                             passages=reading.hits[:3], off_topic=True)
        ranked = rank_answers(
            reading.spans, reading.hits, page_of=self._page_of, question=reading.question, top_n=top_k,
            mu=DEFAULT_MU if mu is None else mu, threshold=threshold,
        )
        return AskResult(
            question=reading.question,
            answers=tuple(self._mark_ocr(a) for a in ranked.answers),
            timings=reading.timings,
            abstained=ranked.abstained,
            passages=reading.hits[:3] if ranked.abstained else (),
            off_topic=reading.off_topic,
        )

    def _context(self, hit: Hit) -> Context:
        if self.widen <= 0:
            return Context(hit=hit, text=hit.text, start=hit.start)
        text = self._text(hit.document_id)
        start = max(0, hit.start - self.widen)
        end = min(len(text), hit.end + self.widen)
        return Context(hit=hit, text=text[start:end], start=start)

    def _mark_ocr(self, answer: Answer) -> Answer:
        """Flag the citations from pages read by OCR: their text may hold recognition errors."""
        if not any(c.page in self._ocr_pages(c.document_id) for c in answer.citations):
            return answer
        return replace(answer, citations=tuple(
            replace(c, ocr=c.page in self._ocr_pages(c.document_id)) for c in answer.citations))

    def _page_of(self, document_id: int, offset: int) -> int:
        return page_of(self._page_starts(document_id), offset)


def _ray_address(ray: bool | str) -> str | None:
    """The cluster a ``ray=`` argument names: None for ``$RAY_ADDRESS`` or a new local instance."""
    return ray or None if isinstance(ray, str) else None


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def batch_questions(lines: Iterable[str], paths: Sequence[str] | None = None) -> Iterator[BatchQuestion | BatchAnswer]:
    """The questions of a ``docqa ask --batch`` file: one per line, or JSON Lines
    ``{"id", "question", "paths"?}`` (``paths`` defaults to ``paths``). A line that cannot be
    a question becomes its error record; blank lines are skipped. Ids default to line numbers."""
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            yield BatchQuestion(number, line, tuple(paths) if paths else None)
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            yield BatchAnswer(number, error=f"line {number}: not valid JSON ({err}); give a question or "
                              '{"id": ..., "question": ...}')
            continue
        if not isinstance(record, dict):
            record = {}
        item_id, question, given = record.get("id", number), record.get("question"), record.get("paths", paths)
        if not isinstance(question, str) or not (
            given is None or isinstance(given, (list, tuple)) and all(isinstance(g, str) for g in given)
        ):
            yield BatchAnswer(item_id, error=f'line {number}: needs {{"question": "..."}} with an optional '
                              '"id" and "paths" (a list of globs)')
            continue
        yield BatchQuestion(item_id, question, tuple(given) if given else None)


def batch_record(answer: BatchAnswer) -> dict[str, object]:
    """One output line of ``docqa ask --batch``: the ``AskResult`` as ``ask --json`` prints it
    plus its ``id``, or the ``id`` and the ``error``."""
    if answer.result is None:
        return {"id": answer.id, "error": answer.error}
    return {"id": answer.id, **asdict(answer.result)}


def _one_document(store: Store, name: str, index: object) -> DocumentRow:
    """The one document ``name`` means; refuses a name several documents answer to."""
    found = store.find_documents(name)
    if not found:
        raise DocumentNotFound(f"{name} is not in {index}; see `docqa info`")
    if len(found) > 1:
        raise AmbiguousPath(f"{name} could be any of {len(found)} documents: "
                            f"{', '.join(d.path for d in found)}; give one of these paths")
    return found[0]
