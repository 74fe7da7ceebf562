"""Retrieval: FTS5 against rank-bm25 as the oracle, filters, offsets, hostile questions, caching."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docqa.datasets import Article, load_squad
from docqa.errors import BadQuestion
from docqa.retrieve import (
    MAX_TERMS,
    BM25Retriever,
    FTS5Retriever,
    Retriever,
    fts_query,
    glob_regex,
    make_retriever,
    question_terms,
    tokenize,
)
from docqa.store import DEFAULT_SETTINGS, Store
from conftest import SQUAD, put_text

TOKENIZER = str(DEFAULT_SETTINGS["fts_tokenizer"])
# Folders for the path filters: the first three articles in one, the rest in another.
FOLDERS = ("history", "history", "history", "science", "science", "science", "science", "science")


@pytest.fixture(scope="module")
def articles(shared_data: Path) -> list[Article]:
    return load_squad(SQUAD, articles=slice(0, len(FOLDERS)))


def _build(path: Path, articles: list[Article]) -> Path:
    with Store(path, create=True) as store:
        for folder, a in zip(FOLDERS, articles):
            put_text(store, f"{folder}/{a.index:02d}-{a.title}.txt", a.text)
    return path


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, articles: list[Article]) -> Path:
    return _build(tmp_path_factory.mktemp("index") / "squad.db", articles)


@pytest.fixture(scope="module")
def store(index: Path) -> Store:
    with Store(index, readonly=True) as s:
        yield s


@pytest.fixture(scope="module")
def fts(store: Store) -> FTS5Retriever:
    return FTS5Retriever(store)


@pytest.fixture(scope="module")
def bm25(store: Store, tmp_path_factory: pytest.TempPathFactory) -> BM25Retriever:
    return BM25Retriever(store, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def questions(articles: list[Article]) -> list[str]:
    return [q.question for a in articles for q in a.questions[::8]]


# -- the oracle ------------------------------------------------------------------------------


def test_fts5_and_rank_bm25_agree_on_the_top_10(fts: FTS5Retriever, bm25: BM25Retriever, questions: list[str]) -> None:
    overlaps, same_top = [], 0
    for q in questions:
        a = [h.passage_id for h in fts.search(q).hits]
        b = [h.passage_id for h in bm25.search(q).hits]
        overlaps.append(len(set(a) & set(b)) / max(1, min(len(a), len(b))))
        same_top += a[:1] == b[:1]
    assert len(questions) >= 100
    assert sum(overlaps) / len(overlaps) >= 0.85
    # Same best passage almost always (k1 1.2 vs 1.5 reorders near-ties only).
    assert same_top / len(questions) >= 0.9


def _plain_top(store: Store, fts: FTS5Retriever, question: str, k: int) -> list[tuple[int, float]]:
    """The top k of one plain FTS5 OR query over all the question's terms: what must come back."""
    rows = store.conn.execute(
        "SELECT rowid, -bm25(passages_fts) AS s FROM passages_fts WHERE passages_fts MATCH ? ORDER BY s DESC LIMIT ?",
        (fts.query(question).match(), k),
    )
    return [(pid, s) for pid, s in rows]


@pytest.mark.parametrize("k", [1, 10])
def test_scoring_the_rarest_terms_first_is_exact(store: Store, fts: FTS5Retriever, questions: list[str],
                                                  k: int) -> None:
    """Forced to start from the single rarest term, the search widens until no passage without the
    scored terms can make the top k, and returns exactly the plain query's top k."""
    staged = FTS5Retriever(store, first_rows=1)
    widened = 0
    for q in questions:
        query = fts.query(q)
        got = [(h.passage_id, h.score) for h in staged.search(q, k=k).hits]
        want = _plain_top(store, fts, q, k)
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-12)
        assert {pid for pid, _ in got} == {pid for pid, _ in want} or len({s for _, s in want}) < len(want)
        widened += len(query.terms) > 1
    assert widened >= len(questions) // 2  # the staged path was really taken


def test_row_budget_keeps_bm25_exact(store: Store, fts: FTS5Retriever, questions: list[str]) -> None:
    # A budget of one row: only passages with the rarest term are scored, each exactly as before.
    budgeted = FTS5Retriever(store, row_budget=1)
    for q in questions:
        query = fts.query(q)
        rarest = min(query.terms, key=lambda t: query.df[t])
        exact = {h.passage_id: h.score for h in fts.search(q, k=1000).hits}
        hits = budgeted.search(q, k=1000).hits
        assert len(hits) == query.df[rarest]
        for h in hits:
            assert h.score == pytest.approx(exact[h.passage_id], rel=1e-12)


def test_optimize_merges_the_fts_index_and_keeps_every_score(tmp_path: Path, articles: list[Article],
                                                              questions: list[str]) -> None:
    path = _build(tmp_path / "merged.db", articles)  # one transaction per document: many segments
    with Store(path) as store:
        before = [FTS5Retriever(store).search(q).hits for q in questions]
        rows = store.conn.execute("SELECT count(*) FROM passages_fts_data").fetchone()[0]
        store.optimize()
        assert store.conn.execute("SELECT count(*) FROM passages_fts_data").fetchone()[0] < rows
        assert [FTS5Retriever(store).search(q).hits for q in questions] == before


def test_passages_in_small_inserts_and_lazy_merging_keep_every_passage_and_score(
        tmp_path: Path, index: Path, articles: list[Article], questions: list[str]) -> None:
    """``put_document`` sends a document's passages in as few INSERTs as SQLite's variable limit
    allows (here forced down to two passages each), and indexing runs let FTS5 merge lazily: the
    same passages, ids and scores as the module's index (one INSERT per document, FTS5's merging)."""
    if not hasattr(sqlite3.Connection, "setlimit"):
        pytest.skip("sqlite3.Connection.setlimit needs Python 3.11")
    path = tmp_path / "small-inserts.db"
    with Store(path, create=True) as store:
        store.merge_lazily()
        store.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)
        for folder, a in zip(FOLDERS, articles):
            put_text(store, f"{folder}/{a.index:02d}-{a.title}.txt", a.text)
        assert dict(store.conn.execute("SELECT k, v FROM passages_fts_config WHERE k != 'version'")) == {
            "automerge": 0, "crisismerge": 64}
    with Store(index, readonly=True) as reference, Store(path, readonly=True) as small:
        every = 'SELECT id, document_id, ordinal, page, last_page, start, "end", text FROM passages ORDER BY id'
        assert small.conn.execute(every).fetchall() == reference.conn.execute(every).fetchall()
        assert [FTS5Retriever(small).search(q).hits for q in questions] == \
               [FTS5Retriever(reference).search(q).hits for q in questions]


def test_tokenize_matches_the_index(store: Store) -> None:
    store.conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.t_inst USING fts5vocab(main, passages_fts, instance)")
    for pid, text in store.conn.execute("SELECT id, text FROM passages ORDER BY id LIMIT 20").fetchall():
        indexed = [t for (t,) in store.conn.execute("SELECT term FROM temp.t_inst WHERE doc = ? ORDER BY offset", (pid,))]
        assert tokenize(text, TOKENIZER) == indexed


# -- hits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fts5", "rank-bm25"])
def test_hits_are_ranked_and_slice_the_document(name: str, fts: FTS5Retriever, bm25: BM25Retriever,
                                                store: Store, questions: list[str]) -> None:
    retriever: Retriever = fts if name == "fts5" else bm25
    for q in questions[:20]:
        result = retriever.search(q, k=7)
        assert result.question == q and result.retriever == name
        assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
        assert len(result.hits) == 7
        scores = [h.score for h in result.hits]
        assert scores == sorted(scores, reverse=True) and scores[-1] > 0
        for h in result.hits:
            assert store.document_text(h.document_id)[h.start : h.end] == h.text
            assert h.page == 1 and h.last_page == 1 and h.path.endswith(".txt")


def test_answers_a_squad_question(fts: FTS5Retriever) -> None:
    hits = fts.search("Which NFL team represented the AFC at Super Bowl 50?", k=3).hits
    assert any("Denver Broncos" in h.text for h in hits)


def test_fewer_matches_than_k(fts: FTS5Retriever, bm25: BM25Retriever) -> None:
    for r in (fts, bm25):
        hits = r.search("Levi's", k=1000).hits
        assert 0 < len(hits) < 1000
        assert all("levi" in h.text.lower() for h in hits)


def test_no_match_is_an_empty_result(fts: FTS5Retriever, bm25: BM25Retriever) -> None:
    for r in (fts, bm25):
        assert r.search("zzyzx qwertyuiop").hits == ()


# -- path filters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "folders"),
    [
        (["history/*"], {"history"}),
        (["science"], {"science"}),  # a folder matches what is in it
        (["science/"], {"science"}),
        (["**/*.txt"], {"history", "science"}),
        (["*.txt"], {"history", "science"}),  # fnmatch: * crosses folders
        (["/corpus/history/**"], {"history"}),  # absolute paths match too
        (["**/history/*.txt"], {"history"}),  # **/ also matches no folder
        (["nothing/*", "science/*"], {"science"}),  # any pattern
    ],
)
def test_path_filters(patterns: list[str], folders: set[str], fts: FTS5Retriever, bm25: BM25Retriever) -> None:
    question = "Who was the first to build the new city in 1900?"
    for r in (fts, bm25):
        hits = r.search(question, k=20, paths=patterns).hits
        # k hits from the matching documents, not the top k filtered afterwards
        expected = [h for h in r.search(question, k=10_000).hits if h.path.split("/")[0] in folders][:20]
        assert len(hits) == 20
        assert [h.passage_id for h in hits] == [h.passage_id for h in expected]
        assert {h.path.split("/")[0] for h in hits} == folders


def test_path_filter_keeps_order_and_scores(fts: FTS5Retriever) -> None:
    q = "What did the steam engine do?"
    everything = [h for h in fts.search(q, k=200).hits if h.path.startswith("science/")][:10]
    filtered = fts.search(q, k=10, paths=["science/*"]).hits
    assert [h.passage_id for h in filtered] == [h.passage_id for h in everything]
    assert [h.score for h in filtered] == pytest.approx([h.score for h in everything])


def test_path_filter_matching_nothing(fts: FTS5Retriever, bm25: BM25Retriever) -> None:
    for r in (fts, bm25):
        assert r.search("Super Bowl", paths=["nope/**"]).hits == ()


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("docs/**/*.pdf", "docs/a.pdf", True),
        ("docs/**/*.pdf", "docs/x/y/a.pdf", True),
        ("docs/**/*.pdf", "other/docs/a.pdf", False),
        ("*.pdf", "a/b/c.pdf", True),
        ("*.pdf", "a/b/c.pdfx", False),
        ("report-200?.md", "report-2009.md", True),
        ("report-[0-9].md", "report-7.md", True),
        ("report-[!0-9].md", "report-7.md", False),
        ("./notes", "notes/a.txt", True),
        ("notes", "notesx/a.txt", False),
        ("a+b (1).txt", "a+b (1).txt", True),  # regex characters are literal
        ("[", "[", True),
    ],
)
def test_glob(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is matches


# -- hostile questions -----------------------------------------------------------------------

HOSTILE = [
    'who "wrote',
    '"""',
    'NEAR(super bowl, 2)',
    "super AND bowl OR NOT broncos",
    "AND",
    "OR OR OR",
    "NOT",
    "broncos*",
    "*",
    "^super",
    "text: broncos",
    "passages_fts: broncos",
    "{text} : broncos",
    "(((broncos",
    "broncos)))",
    "- broncos",
    "+broncos",
    "super\x00bowl",
    "\x00",
    "\x07\x1b[31mred\x1b[0m bowl",
    "Super Bowl 🏈 🏆",
    "🏈",
    "\ud800 lone surrogate \udfff",
    "Zürich café naïve ﬁnance",
    "東京 はどこ",
    "'; DROP TABLE passages; --",
    "rank MATCH bm25(passages_fts)",
    "broncos" * 2000,
    ("super bowl " * 1000)[:10_000],
    " ".join(f"word{i}" for i in range(3000)),
    "what is the",  # only stop-words: searched as is
    "a",
]


@pytest.mark.parametrize("question", HOSTILE)
@pytest.mark.parametrize("name", ["fts5", "rank-bm25"])
def test_hostile_questions(question: str, name: str, fts: FTS5Retriever, bm25: BM25Retriever) -> None:
    r: Retriever = fts if name == "fts5" else bm25
    try:
        result = r.search(question)
    except BadQuestion as err:
        assert "question" in str(err)
        return
    assert result.question == question and len(result.hits) <= 10


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "?!?", "🏈", "\x00\x01", "\ud800", "...---...", '""'])
def test_nothing_searchable_is_a_bad_question(question: str, fts: FTS5Retriever, bm25: BM25Retriever) -> None:
    for r in (fts, bm25):
        with pytest.raises(BadQuestion, match="empty"):
            r.search(question)


def test_stopwords_only_still_searches(fts: FTS5Retriever) -> None:
    assert question_terms("what is the", TOKENIZER) == {"what": "what", "is": "is", "the": "the"}
    assert question_terms("What is the Super Bowl?", TOKENIZER) == {"super": "super", "bowl": "bowl"}


def test_queries_quote_words_not_stems(fts: FTS5Retriever) -> None:
    # FTS5 stems the query again: the stem "defens" would become "defen" and match nothing.
    assert question_terms("The defenses' defense", TOKENIZER) == {"defens": "defenses"}
    assert fts_query("Denver's defense?", TOKENIZER) == '"denver" OR "defense"'
    query = fts.query("defense")
    assert query.terms == ("defens",) and query.df["defens"] > 0
    assert len(fts.search("defense", k=1000).hits) == query.df["defens"]


def test_long_question_is_capped(fts: FTS5Retriever) -> None:
    long = " ".join(a for a in ["broncos panthers stadium"] * 10) + " " + " ".join(f"w{i}" for i in range(500))
    assert len(fts.query(long).terms) <= MAX_TERMS
    assert fts.search(long).hits


def test_terms_in_most_passages_are_dropped(fts: FTS5Retriever, store: Store) -> None:
    # A rare term is kept and the question still works when every term is common.
    assert fts.query("Broncos").terms == ("bronco",)
    assert fts.search("year").hits


@pytest.mark.parametrize("question", HOSTILE)
def test_fts_query_is_always_valid_fts5(question: str) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{TOKENIZER}')")
    conn.execute("INSERT INTO t(text) VALUES ('super bowl broncos')")
    query = fts_query(question, TOKENIZER)
    if query is not None:
        conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.text(st.characters(exclude_categories=()), max_size=30),
            st.sampled_from(['"', "'", "AND", "OR", "NOT", "NEAR", "*", "^", ":", "(", ")", "{", "}", "-", "+",
                             "text:", "broncos", "super bowl", "\x00", "\ud800", "🏈"]),
        ),
        max_size=12,
    ).map(" ".join)
)
def test_any_string_gives_hits_or_bad_question(fts: FTS5Retriever, bm25: BM25Retriever, question: str) -> None:
    for r in (fts, bm25):
        try:
            result = r.search(question, k=5)
        except BadQuestion:
            continue
        assert len(result.hits) <= 5


def test_bad_k_and_name(fts: FTS5Retriever, store: Store) -> None:
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            fts.search("broncos", k=k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fts5, rank-bm25"):
        make_retriever(store, "bm26")
    assert isinstance(make_retriever(store), FTS5Retriever)
    assert isinstance(make_retriever(store, "rank-bm25"), BM25Retriever)


# -- rank-bm25 cache -------------------------------------------------------------------------


def test_bm25_cache_is_reused_and_invalidated(tmp_path: Path, articles: list[Article],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    index = _build(tmp_path / "idx.db", articles[:6])
    with Store(index, readonly=True) as store:
        first = BM25Retriever(store).search("Super Bowl 50 halftime show")
    cache = tmp_path / "idx.db.bm25"
    assert cache.exists()

    built = []
    original = BM25Retriever._build
    monkeypatch.setattr(BM25Retriever, "_build", lambda self, key: built.append(key) or original(self, key))
    with Store(index, readonly=True) as store:
        again = BM25Retriever(store).search("Super Bowl 50 halftime show")
    assert built == [] and again == first  # loaded from the cache

    with Store(index) as store:  # the index changes: the cache is stale
        put_text(store, "new/zzz.txt", "The zebra quagga lived in South Africa. " * 20)
    with Store(index, readonly=True) as store:
        hits = BM25Retriever(store).search("quagga").hits
    assert len(built) == 1 and hits[0].path == "new/zzz.txt"


def test_bm25_in_memory_model_follows_the_index(tmp_path: Path, articles: list[Article]) -> None:
    index = _build(tmp_path / "idx.db", articles[:6])
    with Store(index) as store:
        r = BM25Retriever(store)
        assert r.search("quagga").hits == ()
        put_text(store, "new/zzz.txt", "The zebra quagga lived in South Africa. " * 20)
        assert r.search("quagga").hits[0].path == "new/zzz.txt"


def test_unreadable_cache_is_rebuilt(tmp_path: Path, articles: list[Article]) -> None:
    index = _build(tmp_path / "idx.db", articles[:6])
    (tmp_path / "idx.db.bm25").write_bytes(b"not a pickle")
    with Store(index, readonly=True) as store:
        assert BM25Retriever(store).search("Super Bowl").hits


def test_unwritable_cache_folder_is_skipped(index: Path, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with Store(index, readonly=True) as store:
        r = BM25Retriever(store, cache_dir=not_a_folder)
        assert r.search("Super Bowl").hits
    assert not_a_folder.read_text() == "x"


def test_read_only_index(index: Path, questions: list[str]) -> None:
    with Store(index, readonly=True) as store:
        for name in ("fts5", "rank-bm25"):
            assert make_retriever(store, name).search(questions[0]).hits


def test_equal_scores_come_in_path_order_whatever_order_the_files_were_written(tmp_path: Path) -> None:
    text = "The pump must be primed before the first start. Open the bleed valve and fill the housing."
    orders = (["b/manual.txt", "a/manual.txt", "c.txt"], ["c.txt", "a/manual.txt", "b/manual.txt"])
    found = []
    for n, paths in enumerate(orders):
        with Store(tmp_path / f"{n}.db", create=True) as s:
            for path in paths:
                put_text(s, path, text)
            hits = make_retriever(s, "fts5").search("How do I prime the pump?").hits  # every retriever's hits go through _hits
            assert len({h.score for h in hits}) == 1  # a three-way tie
            found.append([(h.rank, h.path) for h in hits])
    assert all(f == [(1, "a/manual.txt"), (2, "b/manual.txt"), (3, "c.txt")] for f in found)
