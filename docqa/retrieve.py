"""Question -> hits: SQLite FTS5 ``bm25()`` (the default), rank-bm25's ``BM25Okapi``, or a hybrid
of FTS5 and dense passage vectors (``docqa.dense``) fused by reciprocal rank.

Both retrievers see the same terms. A question is tokenized by FTS5 itself, with the tokenizer
recorded in the index's meta (an in-memory FTS5 table does the work, so the query side can never
drift from the index side); stop-words are dropped; terms that are in more than half of the
passages are dropped too (FTS5 gives them no weight, so they only cost time); a very long
question keeps its ``MAX_TERMS`` rarest terms. Each term is queried through a word of the
question that FTS5 tokenizes into it, quoted, and the words are OR-joined, so no user input ever
reaches FTS5 as syntax.

rank-bm25 reads each passage's terms out of the same FTS5 index (``fts5vocab``), so its corpus is
tokenized exactly like FTS5's. Systematic differences that remain (see docs/bench-retrieval.md):
``BM25Okapi``'s default ``k1`` is 1.5 where FTS5 fixes 1.2 (``b`` is 0.75 in both), and ties are
broken by passage id in rank-bm25 but in FTS5's own order.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import os
import pickle
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from docqa.errors import BadIndex, BadQuestion
from docqa.normalize import normalize_answer
from docqa.store import Store
from docqa.types import Hit, SearchResult

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

RETRIEVERS = ("auto", "fts5", "rank-bm25", "hybrid")

# A pasted paragraph still makes a fast query: keep its rarest terms (SQuAD questions have ~6).
MAX_TERMS = 32

EMPTY_HINT = "ask something like 'who founded the company?'"

# NLTK's English stop-word list (as lowercase, diacritic-free unicode61 tokens: "don't" is
# "don" + "t"). Chosen over no list and Lucene's 33 words by recall and speed
# (docs/bench-retrieval.md): question words and auxiliaries only match everywhere.
STOPWORDS = frozenset(
    """
    a about above after again against ain all am an and any are aren as at be because been
    before being below between both but by can couldn d did didn do does doesn doing don down
    during each few for from further had hadn has hasn have haven having he her here hers
    herself him himself his how i if in into is isn it its itself just ll m ma me mightn more
    most mustn my myself needn no nor not now o of off on once only or other our ours ourselves
    out over own re s same shan she should shouldn so some such t than that the their theirs
    them themselves then there these they this those through to too under until up ve very was
    wasn we were weren what when where which while who whom why will with won wouldn y you your
    yours yourself yourselves
    """.split()
)

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # controls, NUL, lone surrogates


class Retriever(Protocol):
    name: str

    def search(self, question: str, k: int = 10, paths: Sequence[str] | None = None) -> SearchResult: ...


# -- tokenization ------------------------------------------------------------------------------


class _FTSTokenizer:
    """Tokenizes like an FTS5 index with ``settings``, using FTS5 itself.

    Two in-memory tables: one with the index's tokenizer (the terms), one without its ``porter``
    wrapper (the words, to test against the stop-word list). Porter maps one token to one token,
    so both give the same positions.
    """

    def __init__(self, settings: str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            for table, tokenizer in (("terms", settings), ("words", _unstemmed(settings))):
                self._conn.execute(
                    f"CREATE VIRTUAL TABLE {table} USING fts5(text, tokenize={_sql_string(tokenizer)})"
                )
                self._conn.execute(f"CREATE VIRTUAL TABLE {table}_v USING fts5vocab({table}, instance)")
        except sqlite3.Error as err:
            raise BadIndex(
                f"the index's FTS5 tokenizer {settings!r} is not available here ({err}); "
                "rebuild the index with this docqa"
            ) from err

    def pairs(self, text: str) -> list[tuple[str, str]]:
        """(word, term) for each token of ``text``, in order."""
        clean = _UNSAFE.sub(" ", text)
        with self._lock:
            out: list[list[str]] = []
            for table in ("terms", "words"):
                self._conn.execute(f"INSERT INTO {table}(rowid, text) VALUES (1, ?)", (clean,))
                out.append([t for (t,) in self._conn.execute(f"SELECT term FROM {table}_v ORDER BY offset")])
                self._conn.execute(f"DELETE FROM {table} WHERE rowid = 1")
        terms, words = out
        return list(zip(words, terms)) if len(words) == len(terms) else [(t, t) for t in terms]


def _unstemmed(settings: str) -> str:
    words = settings.split()
    if words and words[0] == "porter":
        return " ".join(words[1:]) or "unicode61"
    return settings


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@lru_cache(maxsize=8)
def _tokenizer(settings: str) -> _FTSTokenizer:
    return _FTSTokenizer(settings)


def tokenize(text: str, tokenizer_settings: str) -> list[str]:
    """The index terms of ``text``, exactly as FTS5 with ``tokenizer_settings`` makes them."""
    return [term for _, term in _tokenizer(tokenizer_settings).pairs(text)]


def question_terms(
    question: str, tokenizer_settings: str, stopwords: frozenset[str] = STOPWORDS
) -> dict[str, str]:
    """Distinct index terms of a question -> the word each came from, without stop-words (all of
    them if only stop-words). A MATCH expression must quote the word, not the term: FTS5
    tokenizes query strings again, and stemming a stem can change it ("defens" -> "defen")."""
    pairs = _tokenizer(tokenizer_settings).pairs(question)
    kept = [(term, word) for word, term in pairs if word not in stopwords] or [(t, w) for w, t in pairs]
    words: dict[str, str] = {}
    for term, word in kept:
        words.setdefault(term, word)
    return words


def quote(term: str) -> str:
    """An FTS5 string: whatever ``term`` holds is matched as text, never read as syntax."""
    return '"' + term.replace('"', '""') + '"'


def or_query(terms: Iterable[str]) -> str:
    return " OR ".join(quote(t) for t in terms)


def fts_query(question: str, tokenizer_settings: str) -> str | None:
    """A safe FTS5 MATCH expression for ``question``; ``None`` if nothing in it is searchable."""
    words = list(question_terms(question, tokenizer_settings).values())[:MAX_TERMS]
    return or_query(words) if words else None


# -- term statistics from the index ------------------------------------------------------------


class _IndexStats:
    """Passage count, mean length, document frequencies and passage lengths, read from the FTS5
    index's own records: cheap at any size (``count(*)`` is not)."""

    def __init__(self, store: Store) -> None:
        self.conn = store.conn
        self.conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.docqa_fts_row USING fts5vocab(main, passages_fts, row)"
        )
        self._totals: tuple[int, tuple[int, float]] | None = None  # (generation, (rows, avgdl))

    def totals(self, generation: int) -> tuple[int, float]:
        """(passages, mean passage length in tokens), as FTS5's bm25() sees them."""
        if self._totals is None or self._totals[0] != generation:
            # FTS5's "averages" record: the row count, then the token count per column.
            row = self.conn.execute("SELECT block FROM passages_fts_data WHERE id = 1").fetchone()
            rows, tokens = _varints(bytes(row[0]), 2) if row is not None and row[0] else (0, 0)
            self._totals = (generation, (rows, tokens / rows if rows else 0.0))
        return self._totals[1]

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        marks = ",".join("?" * len(terms))
        found = self.conn.execute(f"SELECT term, doc FROM temp.docqa_fts_row WHERE term IN ({marks})", terms)
        return {t: 0 for t in terms} | dict(found)


def _varints(buf: bytes, count: int) -> list[int]:
    """The first ``count`` SQLite varints (big-endian, 7 bits a byte, 9th byte whole) of ``buf``."""
    out, i = [], 0
    for _ in range(count):
        value = 0
        for n in range(9):
            byte = buf[i]
            i += 1
            if n == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        out.append(value)
    return out


def select_terms(terms: list[str], df: dict[str, int], passages: int, max_terms: int = MAX_TERMS) -> list[str]:
    """Drop terms that no passage has or that more than half have (BM25 idf <= 0: no weight,
    much work); keep the ``max_terms`` rarest. Falls back to all present terms if none is left."""
    present = [t for t in terms if df[t] > 0]
    informative = [t for t in present if df[t] < passages / 2] or present
    if len(informative) <= max_terms:
        return informative
    rarest = set(sorted(informative, key=lambda t: (df[t], t))[:max_terms])
    return [t for t in informative if t in rarest]


# -- documents by path -------------------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """fnmatch-style glob (``*`` crosses ``/``), where ``**/`` also matches no folder and a
    pattern that names a folder matches everything in it."""
    pattern = os.path.expanduser(pattern.strip())
    pattern = pattern[2:] if pattern.startswith("./") else pattern
    pattern = pattern + "**" if pattern.endswith("/") else pattern
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern[i] == "*":
            out.append(".*")
            while i < len(pattern) and pattern[i] == "*":
                i += 1
        elif pattern[i] == "?":
            out.append(".")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            body = "^" + body[1:] if body.startswith("!") else body.replace("^", "\\^", 1)
            out.append(f"[{body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"(?:/.*)?\Z", re.DOTALL)


def matching_documents(store: Store, patterns: Sequence[str]) -> list[int]:
    """Ids of the documents whose relative or absolute path matches any of ``patterns``."""
    regexes = [glob_regex(p) for p in patterns]
    return [
        doc_id
        for doc_id, path, abs_path in store.conn.execute("SELECT id, path, abs_path FROM documents")
        if any(rx.match(path) or rx.match(abs_path) for rx in regexes)
    ]


# -- hits --------------------------------------------------------------------------------------


def _hits(store: Store, scored: Sequence[tuple[int, float]]) -> tuple[Hit, ...]:
    """Hits for (passage id, score) pairs, best first."""
    if not scored:
        return ()
    ids = [pid for pid, _ in scored]
    rows = {
        r[0]: r
        for r in store.conn.execute(
            "SELECT p.id, p.document_id, d.path, p.page, p.last_page, p.start, p.end, p.text "
            "FROM passages p JOIN documents d ON d.id = p.document_id "
            f"WHERE p.id IN ({','.join('?' * len(ids))})",
            ids,
        )
    }
    hits = []
    # Equal scores (the same text in two files) in path and position order, not in the order the
    # passages were written, which differs between runs (Ray workers finish files in any order).
    kept = [(pid, score) for pid, score in scored if pid in rows]  # not deleted since scored
    for pid, score in sorted(kept, key=lambda ps: (-ps[1], rows[ps[0]][2], rows[ps[0]][5])):
        _, doc_id, path, page, last_page, start, end, text = rows[pid]
        hits.append(
            Hit(rank=len(hits) + 1, score=score, passage_id=pid, path=path, page=page,
                last_page=last_page, start=start, end=end, text=text, document_id=doc_id)
        )
    return tuple(hits)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number of passages, at least 1 (got {k!r})")
    return k


def _tokenizer_of(store: Store) -> str:
    return str(store.settings.get("fts_tokenizer", "porter unicode61 remove_diacritics 2"))


@dataclass(frozen=True)
class Query:
    """What both retrievers search for: the selected terms and the index statistics BM25 uses."""

    terms: tuple[str, ...]
    words: dict[str, str]  # term -> a word of the question that FTS5 tokenizes into it
    df: dict[str, int]
    passages: int
    avgdl: float
    question: str = ""

    def match(self, terms: Sequence[str] | None = None) -> str:
        """The FTS5 MATCH expression for ``terms`` (default: all)."""
        return or_query(self.words[t] for t in (self.terms if terms is None else terms))


class _Queries:
    """The question -> ``Query`` pipeline both retrievers share."""

    def __init__(self, store: Store, stopwords: frozenset[str], max_terms: int) -> None:
        self.store = store
        self.settings = _tokenizer_of(store)
        self.stopwords = stopwords
        self.max_terms = max_terms
        self._stats: _IndexStats | None = None

    @property
    def stats(self) -> _IndexStats:
        if self._stats is None:
            self._stats = _IndexStats(self.store)
        return self._stats

    def __call__(self, question: str) -> Query:
        if not isinstance(question, str):
            raise BadQuestion(f"the question must be text, not {type(question).__name__}")
        words = question_terms(question, self.settings, self.stopwords)
        if not words:
            raise BadQuestion(f"the question is empty (nothing searchable in it); {EMPTY_HINT}")
        df = self.stats.document_frequencies(list(words))
        passages, avgdl = self.stats.totals(self.store.generation)
        kept = select_terms(list(words), df, passages, self.max_terms)
        return Query(tuple(kept), {t: words[t] for t in kept}, {t: df[t] for t in kept}, passages, avgdl, question)


@contextmanager
def _sqlite_errors(store: Store) -> Iterator[None]:
    """Turns SQLite failures while searching into ``BadIndex`` with a hint."""
    try:
        yield
    except sqlite3.DatabaseError as err:
        raise BadIndex(f"cannot search {store.path} ({err}); rebuild it with `docqa index` if this persists") from err


# -- FTS5 --------------------------------------------------------------------------------------


# FTS5's bm25() costs ~1.2 us per matching row and first counts every row of every term for its
# idf, so an OR over common terms at 1M passages takes 100s of ms. ``FTS5Retriever`` therefore
# scores the rows holding the question's rarest terms first (about FIRST_ROWS of them) and widens
# only while a passage without them could still make the top k; it never widens past ROW_BUDGET
# rows (then: the best passages holding one of the rarest terms). With SQuAD dev inside 1M
# passages that budget cost no recall@10/@20 (docs/bench-retrieval.md).
FIRST_ROWS = 10_000
ROW_BUDGET = 50_000
K1 = 1.2  # FTS5 bm25()'s k1


def fts5_idf(df: int, passages: int) -> float:
    """The idf FTS5's bm25() gives a term in ``df`` of ``passages`` rows."""
    return max(math.log((passages - df + 0.5) / (df + 0.5)), 1e-6)


def max_term_score(df: int, passages: int) -> float:
    """The most one term can add to a passage's bm25(): its idf times (k1 + 1), as tf grows."""
    return fts5_idf(df, passages) * (K1 + 1)


class _Scorer:
    """What both retrievers share: question -> query -> top-k scores -> hits."""

    name: str
    store: Store
    query: _Queries

    def scores(self, query: Query, k: int, doc_ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        raise NotImplementedError

    def judged(self, query: Query, k: int, doc_ids: Sequence[int] | None) -> tuple[list[tuple[int, float]], bool]:
        """``scores``, and whether the question is off topic (only a dense retriever can tell)."""
        return self.scores(query, k, doc_ids), False

    def search(self, question: str, k: int = 10, paths: Sequence[str] | None = None) -> SearchResult:
        k = _check_k(k)
        with _sqlite_errors(self.store):
            query = self.query(question)
            doc_ids = matching_documents(self.store, paths) if paths else None
            scored, off_topic = self.judged(query, k, doc_ids) if doc_ids != [] else ([], False)
            return SearchResult(question=question, retriever=self.name, hits=_hits(self.store, scored),
                                off_topic=off_topic)


class FTS5Retriever(_Scorer):
    """SQLite FTS5 ``bm25()`` (k1 = 1.2, b = 0.75) over the index's passages: the default.

    Exact BM25 over all the question's terms, computed on as few rows as possible (MaxScore-style):
    the terms are split into the rarest (the "rare" set, whose rows are scored) and the rest. A
    passage holding no rare term scores at most the sum of the rest's ``max_term_score``; once the
    k-th best passage holding a rare term scores above that, the top k is final. Otherwise the rare
    set grows, up to ``row_budget`` rows.
    """

    name = "fts5"

    def __init__(
        self,
        store: Store,
        *,
        stopwords: frozenset[str] = STOPWORDS,
        max_terms: int = MAX_TERMS,
        first_rows: int = FIRST_ROWS,
        row_budget: int = ROW_BUDGET,
    ) -> None:
        self.store = store
        self.query = _Queries(store, stopwords, max_terms)
        self.first_rows = min(first_rows, row_budget)
        self.row_budget = row_budget

    def scores(self, query: Query, k: int, doc_ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """Top ``k`` (passage id, score), best first."""
        if not query.terms:
            return []
        order = sorted(query.terms, key=lambda t: (query.df[t], t))  # rarest first
        rows = list(itertools.accumulate(query.df[t] for t in order))  # rows[i]: rows of order[:i + 1]
        n = max(1, bisect.bisect_right(rows, self.first_rows))
        while True:
            rare, rest = order[:n], order[n:]
            top = self._top_holding(query, rare, rest, k, doc_ids)
            if not rest:
                return top
            bound = sum(max_term_score(query.df[t], query.passages) for t in rest)
            if len(top) == k and top[-1][1] > bound:
                return top  # no passage without a rare term can reach the top k
            if rows[n] > self.row_budget:
                return top
            # Grow the scored rows about 4x a round: the wasted rounds cost a third at most.
            n = max(n + 1, bisect.bisect_right(rows, min(4 * rows[n - 1], self.row_budget)))

    def _top_holding(self, query: Query, rare: Sequence[str], rest: Sequence[str], k: int,
                     doc_ids: Sequence[int] | None) -> list[tuple[int, float]]:
        """Exact top ``k`` by bm25() over all terms among the passages holding a ``rare`` term.

        ``rare`` alone scores exactly the passages without any ``rest`` term; ``rare AND rest``
        scores the others over all terms (bm25() sums over the phrases present in a row, so AND
        and OR score a row alike) while calling bm25() on the rows with a rare term only. A
        passage in the first top k with a ``rest`` term but outside the second scores below k
        others there, so merging the two top-k lists is exact.
        """
        best = dict(self._fts_top(query.match(rare), k, doc_ids))
        if rest:
            best.update(self._fts_top(f"({query.match(rare)}) AND ({query.match(rest)})", k, doc_ids))
        return sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]

    def _fts_top(self, match: str, k: int, doc_ids: Sequence[int] | None) -> list[tuple[int, float]]:
        # bm25() is negative-is-better; ORDER BY an alias of it is faster than ORDER BY rank.
        if doc_ids is None:
            sql = (
                "SELECT rowid, bm25(passages_fts) AS s FROM passages_fts WHERE passages_fts MATCH ? "
                "ORDER BY s LIMIT ?"
            )
            args: tuple[object, ...] = (match, k)
        else:
            sql = (
                "SELECT f.rowid, bm25(passages_fts) AS s FROM passages_fts f JOIN passages p ON p.id = f.rowid "
                "WHERE passages_fts MATCH ? AND p.document_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY s LIMIT ?"
            )
            args = (match, "[" + ",".join(map(str, doc_ids)) + "]", k)
        return [(int(pid), -float(s)) for pid, s in self.store.conn.execute(sql, args)]


# -- rank-bm25 ---------------------------------------------------------------------------------

CACHE_FORMAT = 1


@dataclass
class _BM25Model:
    key: tuple[object, ...]
    bm25: Any  # rank_bm25.BM25Okapi
    passage_ids: np.ndarray
    document_ids: np.ndarray


class BM25Retriever(_Scorer):
    """rank-bm25's ``BM25Okapi`` (its default parameters) over every passage in the index.

    Built from the FTS5 index's own terms, so it tokenizes exactly like ``FTS5Retriever``; the
    built model is cached beside the index (``<index>.bm25``) and rebuilt when the index changes.
    Meant for small collections and as the oracle the FTS5 path is tested against.
    """

    name = "rank-bm25"

    def __init__(
        self,
        store: Store,
        cache_dir: Path | None = None,
        *,
        stopwords: frozenset[str] = STOPWORDS,
        max_terms: int = MAX_TERMS,
    ) -> None:
        self.store = store
        self.cache_path = Path(cache_dir or store.path.parent) / f"{store.path.name}.bm25"
        self.query = _Queries(store, stopwords, max_terms)
        self._model: _BM25Model | None = None

    def scores(self, query: Query, k: int, doc_ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """Top ``k`` (passage id, score) among passages with a positive score."""
        import numpy as np

        if not query.terms:
            return []
        terms = list(query.terms)
        model = self.model()
        if doc_ids is None:
            rows = np.arange(len(model.passage_ids))
            scores = model.bm25.get_scores(terms)
        else:
            rows = np.flatnonzero(np.isin(model.document_ids, np.asarray(doc_ids, dtype=np.int64)))
            scores = np.asarray(model.bm25.get_batch_scores(terms, rows), dtype=float)
        matched = np.flatnonzero(scores > 0)  # a passage without any term scores 0: not a match
        top = matched[np.argsort(-scores[matched], kind="stable")[:k]]  # rows are in passage-id order
        return [(int(model.passage_ids[rows[i]]), float(scores[i])) for i in top]

    def model(self) -> _BM25Model:
        """The built model for the index as it is now: from memory, the cache, or built."""
        key = (CACHE_FORMAT, self.store.generation, self.query.settings, _rank_bm25_version())
        if self._model is None or self._model.key != key:
            self._model = self._load(key) or self._build(key)
        return self._model

    def _load(self, key: tuple[object, ...]) -> _BM25Model | None:
        try:
            with open(self.cache_path, "rb") as fh:
                if pickle.load(fh) != key:  # the key comes first: a stale cache is not unpickled whole
                    return None
                model = pickle.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as err:
            log.debug("ignoring unreadable rank-bm25 cache %s: %s", self.cache_path, err)
            return None
        return model if isinstance(model, _BM25Model) else None

    def _build(self, key: tuple[object, ...]) -> _BM25Model:
        import numpy as np
        from rank_bm25 import BM25Okapi

        with _sqlite_errors(self.store):
            passage_ids, document_ids, corpus = _corpus(self.store)
        if not corpus:
            raise BadIndex(f"{self.store.path} holds no passages yet; add documents with `docqa index FOLDER`")
        model = _BM25Model(
            key=key,
            bm25=BM25Okapi(corpus),
            passage_ids=np.asarray(passage_ids, dtype=np.int64),
            document_ids=np.asarray(document_ids, dtype=np.int64),
        )
        self._save(model)
        return model

    def _save(self, model: _BM25Model) -> None:
        """Write the cache atomically; an unwritable folder just means no cache."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.cache_path.parent, prefix=f".{self.cache_path.name}.")
        except OSError as err:
            log.debug("not caching rank-bm25 beside %s: %s", self.store.path, err)
            return
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(model.key, fh, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.cache_path)
        except OSError as err:
            log.debug("not caching rank-bm25 at %s: %s", self.cache_path, err)
            Path(tmp).unlink(missing_ok=True)


def _corpus(store: Store) -> tuple[list[int], list[int], list[list[str]]]:
    """Every passage's terms, read from the FTS5 index (so tokenized exactly as FTS5 did)."""
    conn = store.conn
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.docqa_fts_instance USING fts5vocab(main, passages_fts, instance)"
    )
    ids = conn.execute("SELECT id, document_id FROM passages ORDER BY id").fetchall()
    terms: dict[int, list[str]] = {pid: [] for pid, _ in ids}
    last = ""
    for term, pid in conn.execute("SELECT term, doc FROM temp.docqa_fts_instance"):
        last = last if term == last else term  # rows come sorted by term: share one str object
        terms.setdefault(pid, []).append(last)
    return [p for p, _ in ids], [d for _, d in ids], [terms[p] for p, _ in ids]


@lru_cache(maxsize=1)
def _rank_bm25_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rank-bm25")
    except PackageNotFoundError:
        return "?"


# -- choosing ----------------------------------------------------------------------------------


# -- hybrid: BM25 + dense vectors -------------------------------------------------------------

HYBRID_CANDIDATES = 100  # taken from each of the two rankings
# Weight of the cosine against BM25 / best BM25. Chosen on SQuAD and PolicyQA dev (1.5-2 best on
# both; reciprocal-rank fusion lost 4 points of recall@1): docs/bench-retrieval.md.
DENSE_WEIGHT = 1.5


# The fused score of each of the top PHRASE_DEPTH passages also gains PHRASE_WEIGHT x the share
# of the question's word pairs the passage holds as phrases: a question often reuses a phrase of
# the answer's sentence ("the Super Bowl 50 halftime show"), which bags of words do not see.
# Chosen on SQuAD dev 0-39 and PolicyQA dev (recall@1 +1.9 / +1.3 points, recall@10 within 0.1;
# held out, SQuAD 40-47: recall@1 +2.3, recall@10 unchanged): docs/bench-retrieval.md.
PHRASE_WEIGHT = 0.8
PHRASE_DEPTH = 100


def word_pairs(question: str) -> list[str]:
    """The question's neighbouring word pairs as " a b " (SQuAD-normalised words: lowercase, no
    punctuation or articles), leaving out pairs of two stop-words ("of it")."""
    words = normalize_answer(question).split()
    return [f" {a} {b} " for a, b in itertools.pairwise(words) if not (a in STOPWORDS and b in STOPWORDS)]


def with_phrases(store: Store, question: str, fused: Sequence[tuple[int, float]],
                 weight: float = PHRASE_WEIGHT) -> list[tuple[int, float]]:
    """``fused`` (id, score), best first, re-scored by ``word_pairs`` (see ``PHRASE_WEIGHT``)."""
    pairs = word_pairs(question)
    head = list(fused[:PHRASE_DEPTH])
    if not pairs or not weight or not head:
        return list(fused)
    ids = [pid for pid, _ in head]
    texts = dict(store.conn.execute(f"SELECT id, text FROM passages WHERE id IN ({','.join('?' * len(ids))})", ids))
    rescored = []
    for pid, score in head:
        hay = _phrase_text(texts.get(pid, ""))
        rescored.append((pid, score + weight * sum(pair in hay for pair in pairs) / len(pairs)))
    return sorted(rescored, key=lambda item: (-item[1], item[0])) + list(fused[PHRASE_DEPTH:])


@lru_cache(maxsize=20_000)  # a server or a batch meets the same passages again (~5 ms a search)
def _phrase_text(text: str) -> str:
    return f" {normalize_answer(text)} "


def fuse(lexical: Sequence[tuple[int, float]], cosines: dict[int, float], k: int,
         weight: float = DENSE_WEIGHT) -> list[tuple[int, float]]:
    """Top ``k`` (id, bm25 / best bm25 + weight * cosine) over both candidate lists: ``lexical``
    is BM25's (id, score), best first; ``cosines`` holds every candidate's cosine. A passage
    outside BM25's list counts 0 there."""
    best = lexical[0][1] if lexical and lexical[0][1] > 0 else 1.0
    fused = {pid: weight * cos for pid, cos in cosines.items()}
    for pid, score in lexical:
        fused[pid] = fused.get(pid, 0.0) + score / best
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]


class HybridRetriever(_Scorer):
    """FTS5 BM25 fused with the cosine similarity of dense passage vectors (``docqa.dense``):
    also finds passages that paraphrase the question. The index must hold vectors (``docqa
    index`` stores them where the dense extra is installed); they are all held in memory (1.5 KB
    a passage) and compared exactly with the question's (docs/bench-retrieval.md: fast enough up
    to ~1M passages)."""

    name = "hybrid"

    def __init__(self, store: Store, embedder: Any = None, *, candidates: int = HYBRID_CANDIDATES,
                 weight: float = DENSE_WEIGHT) -> None:
        from docqa.dense import INSTALL_HINT, Embedder

        model = store.embedding_model
        if model is None:
            raise BadIndex(
                f"{store.path} holds no passage vectors for the hybrid retriever: run "
                f"`docqa index FOLDER -i {store.path} --embed` first ({INSTALL_HINT})"
            )
        self.embedder = embedder or Embedder(model)
        if self.embedder.model_name != model:
            raise BadIndex(f"{store.path} holds vectors of {model}, not {self.embedder.model_name}: re-run `--embed`")
        self.store = store
        self.lexical = FTS5Retriever(store)
        self.query = self.lexical.query
        self.candidates = candidates
        self.weight = weight
        self._vectors: tuple[int, Any, Any, Any] | None = None  # (generation, ids, documents, matrix)

    def scores(self, query: Query, k: int, doc_ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        return self._fused(query, k, doc_ids)[0]

    def judged(self, query: Query, k: int, doc_ids: Sequence[int] | None) -> tuple[list[tuple[int, float]], bool]:
        """Off topic: no passage searched is closer to the question than unrelated texts are
        to each other (``Embedder.unrelated_ceiling``), however many words they share."""
        scored, cosines = self._fused(query, k, doc_ids)
        return scored, bool(cosines) and max(cosines.values()) < self.embedder.unrelated_ceiling()

    def _fused(self, query: Query, k: int, doc_ids: Sequence[int] | None) -> tuple[list[tuple[int, float]], dict[int, float]]:
        lexical = self.lexical.scores(query, self.candidates, doc_ids)
        cosines = self.cosines(query.question, doc_ids, [pid for pid, _ in lexical])
        fused = fuse(lexical, cosines, max(k, PHRASE_DEPTH), self.weight)
        return with_phrases(self.store, query.question, fused)[:k], cosines

    def cosines(self, question: str, doc_ids: Sequence[int] | None, also: Sequence[int]) -> dict[int, float]:
        """Cosine of the question with its ``candidates`` nearest passages (the nearest of all
        those searched among them) and with ``also``."""
        import numpy as np

        _, ids, documents, matrix = self._load()
        if not len(ids):
            return {}
        sims = matrix @ self.embedder.encode_query(question)
        if doc_ids is not None:
            sims[~np.isin(documents, np.asarray(list(doc_ids), dtype=np.int64))] = -np.inf
        n = min(self.candidates, len(sims))
        top = np.argpartition(-sims, n - 1)[:n]
        wanted = np.asarray(list(also), dtype=np.int64)
        rows = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
        rows = rows[ids[rows] == wanted]  # BM25 hits without a vector yet have no cosine
        return {int(ids[i]): float(sims[i]) for i in np.concatenate([top, rows]) if sims[i] > -np.inf}

    def _load(self) -> tuple[int, Any, Any, Any]:
        generation = self.store.generation
        if self._vectors is None or self._vectors[0] != generation:
            self._vectors = (generation, *self.store.vectors())  # in passage id order: searchsorted works
        return self._vectors


def default_retriever(store: Store) -> str:
    """What ``auto`` means for ``store``: hybrid where it holds passage vectors this machine can
    use (the dense extra installed, or the index's own model folder present), else fts5."""
    from docqa.dense import available

    model = store.embedding_model
    return "hybrid" if model is not None and available(model) and store.has_vectors() else "fts5"


def make_retriever(store: Store, name: str = "auto") -> Retriever:
    if name == "auto":
        name = default_retriever(store)
    if name == "fts5":
        return FTS5Retriever(store)
    if name == "rank-bm25":
        return BM25Retriever(store)
    if name == "hybrid":
        return HybridRetriever(store)
    raise ValueError(f"unknown retriever {name!r}; choose one of {', '.join(RETRIEVERS)}")
