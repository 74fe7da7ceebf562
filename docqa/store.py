"""Storage: one SQLite file (sqlite-utils) holding documents, pages, passages and an FTS5 index.

Every document is written in one transaction (its row, pages and passages together), so a
crash never leaves half a document. WAL mode lets searches read while an indexer writes.
The ``meta`` table describes the index (schema version, splitter and tokenizer settings) so the
query side always matches the index side and an index from another schema is caught on open.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import errno
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import sqlite_utils

from docqa.errors import BadIndex, DiskFull, DocQAError, IndexLocked, IndexNotFound, IndexReadOnly, SchemaMismatch
from docqa.types import PAGE_BREAK, PROBLEM_STATUSES, IndexInfo, Passage, Problem, page_starts

SCHEMA_VERSION = 3
# Older schemas this docqa upgrades in place when it opens an index for writing (read-only
# opens read them as they are): version -> the SQL that brings it to the next version.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: which pages were read by OCR, and the OCR settings a PDF's text depends on. A PDF
    # indexed before OCR existed with a textless page (or none at all) was read with OCR off.
    1: (
        "ALTER TABLE documents ADD COLUMN ocr TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE pages ADD COLUMN ocr INTEGER NOT NULL DEFAULT 0",
        "UPDATE documents SET ocr = 'off' WHERE kind = 'pdf' AND (status = 'empty' OR EXISTS "
        "(SELECT 1 FROM pages WHERE pages.document_id = documents.id AND pages.text = ''))",
    ),
    # 2 -> 3: the version of docqa's extraction each document was read with
    # (``docqa.extract.extraction_version``); everything indexed before was version 1.
    2: ("ALTER TABLE documents ADD COLUMN extractor INTEGER NOT NULL DEFAULT 1",),
}
# PRAGMA application_id: marks the file as docqa's ("dqa1").
APPLICATION_ID = 0x64716131
BUSY_TIMEOUT_MS = 30_000
LOCK_GRACE_S = 1.0  # writer_lock: how long a released lock may lag (forked children)

DEFAULT_SETTINGS: dict[str, object] = {
    "passage_words": 120,
    "overlap_words": 30,
    "fts_tokenizer": "porter unicode61 remove_diacritics 2",
}

INDEX_DIR = Path("indexes")
DEFAULT_INDEX = "docqa"


def resolve_index_path(index: str | os.PathLike[str] | None) -> Path:
    """``None`` -> ``$DOCQA_INDEX`` or ``./indexes/docqa.db``; a bare name ``papers`` ->
    ``./indexes/papers.db``; anything with a slash or a suffix is a path."""
    if index is None or str(index) == "":
        index = os.environ.get("DOCQA_INDEX") or DEFAULT_INDEX
    text = os.fspath(index)
    if os.sep not in text and "/" not in text and not Path(text).suffix:
        return INDEX_DIR / f"{text}.db"
    return Path(text).expanduser()


@dataclass(frozen=True)
class DocumentRow:
    """What the documents table holds about one file."""

    path: str  # relative to the indexed root
    abs_path: str
    root: str
    size: int
    mtime: float
    sha256: str
    kind: str
    page_count: int
    status: str
    message: str
    id: int = 0
    indexed_at: str = ""
    ocr: str = ""  # the OCR settings the text depends on (``docqa.ocr.key``); "" when none
    extractor: int = 1  # the version of docqa's extraction that read it (``docqa.extract``)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _is_disk_full(err: sqlite3.Error) -> bool:
    text = str(err).lower()
    return "disk is full" in text or "database or disk is full" in text or "disk i/o error" in text


def index_error(path: Path, err: sqlite3.Error) -> DocQAError:
    """The typed error, with what to do, for a SQLite failure on the index at ``path``."""
    text = str(err).lower()
    if _is_disk_full(err):
        return DiskFull(
            f"cannot write {path} ({err}): the disk is full or failing; free some space and "
            "re-run (everything indexed before this document is kept)"
        )
    if "readonly" in text or "read-only" in text:
        return IndexReadOnly(f"cannot write {path} ({err}); check the permissions of it and its folder")
    if "locked" in text or "busy" in text:
        return IndexLocked(f"{path} is busy ({err}): another program holds it; try again when it is done")
    return BadIndex(f"{path} is damaged ({err}); delete it and re-run `docqa index`")


class Store:
    """An open index. Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        readonly: bool = False,
        settings: dict[str, object] | None = None,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        exists = self.path.exists() and self.path.stat().st_size > 0
        if not exists and not create:
            raise IndexNotFound(
                f"no index at {self.path}; build one with `docqa index FOLDER -i {self.path}`"
            )
        if self.path.is_dir():
            raise BadIndex(f"{self.path} is a folder, not an index file; pass a file path with -i")
        if create and not exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise IndexReadOnly(f"cannot create {self.path.parent}: {err.strerror}") from err
        self.conn = self._connect(readonly)
        try:
            self._check_or_init(create=create, settings=settings)
            self.settings: dict[str, object] = json.loads(self._meta("settings") or "{}")
            self.schema_version = int(self._meta("schema_version") or 0)
        except sqlite3.DatabaseError as err:
            self.conn.close()
            raise BadIndex(
                f"{self.path} is not a usable SQLite database ({err}); "
                "delete it and re-run `docqa index`, or choose another --index"
            ) from err
        except BaseException:
            self.conn.close()
            raise

    # -- opening -----------------------------------------------------------------------------

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        try:
            if readonly:
                uri = f"file:{self.path.resolve()}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                try:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                except sqlite3.OperationalError:
                    # A WAL database in a read-only folder cannot create its -shm file;
                    # immutable=1 reads it as a plain file (safe: nobody can write there).
                    conn.close()
                    uri = f"file:{self.path.resolve()}?mode=ro&immutable=1"
                    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                conn = sqlite3.connect(str(self.path), check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as err:
            raise BadIndex(
                f"cannot open {self.path} ({err}); if it is damaged, delete it and re-run `docqa index`"
            ) from err
        return conn

    def _check_or_init(self, *, create: bool, settings: dict[str, object] | None) -> None:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        tables = self._tables()
        if app_id == APPLICATION_ID:
            version = int(self._meta("schema_version") or 0)
            if version in MIGRATIONS and not self.readonly:
                self._migrate(version)
            elif version != SCHEMA_VERSION and not (self.readonly and version in MIGRATIONS):
                raise SchemaMismatch(
                    f"{self.path} uses index schema {version}, this docqa reads schema "
                    f"{SCHEMA_VERSION}; rebuild it: delete the file and re-run `docqa index`"
                )
            if not self.readonly:
                self._use_wal()
            return
        if tables:
            raise BadIndex(
                f"{self.path} is a SQLite database but not a docqa index; "
                "choose another --index (docqa will not touch it)"
            )
        if not create:
            raise IndexNotFound(
                f"{self.path} is empty; build an index with `docqa index FOLDER -i {self.path}`"
            )
        if self.readonly:
            raise IndexReadOnly(f"{self.path} is read-only and holds no index yet")
        self._create_schema({**DEFAULT_SETTINGS, **(settings or {})})

    def _migrate(self, version: int) -> None:
        try:
            with self.db.atomic() as db:
                while version in MIGRATIONS:
                    for sql in MIGRATIONS[version]:
                        db.execute(sql)
                    version += 1
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        except sqlite3.Error as err:
            raise index_error(self.path, err) from err

    def _use_wal(self) -> None:
        # WAL lets searches read while the indexer writes. NORMAL sync is WAL's intended
        # partner: a commit survives docqa being killed, and a power cut can lose only the
        # last commits, never consistency; it saves an fsync per document.
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")

    def _create_schema(self, settings: dict[str, object]) -> None:
        try:
            self._use_wal()
        except sqlite3.OperationalError as err:
            raise IndexReadOnly(f"cannot write {self.path}: {err}") from err
        db = self.db
        with db.atomic():
            db["meta"].create({"key": str, "value": str}, pk="key")
            db["documents"].create(
                {
                    "id": int,
                    "path": str,
                    "abs_path": str,
                    "root": str,
                    "size": int,
                    "mtime": float,
                    "sha256": str,
                    "kind": str,
                    "page_count": int,
                    "status": str,
                    "message": str,
                    "indexed_at": str,
                    "ocr": str,
                    "extractor": int,
                },
                pk="id",
                not_null={"path", "abs_path", "status"},
            )
            db["documents"].create_index(["abs_path"], unique=True)
            db["documents"].create_index(["sha256"])
            db["pages"].create(
                {"document_id": int, "number": int, "start": int, "text": str, "ocr": int},
                pk=("document_id", "number"),
                foreign_keys=[("document_id", "documents", "id")],
            )
            db["passages"].create(
                {
                    "id": int,
                    "document_id": int,
                    "ordinal": int,
                    "page": int,
                    "last_page": int,
                    "start": int,
                    "end": int,
                    "text": str,
                },
                pk="id",
                foreign_keys=[("document_id", "documents", "id")],
            )
            db["passages"].create_index(["document_id", "ordinal"], unique=True)
            db["passages"].enable_fts(
                ["text"], tokenize=str(settings["fts_tokenizer"]), create_triggers=True
            )
            db["meta"].insert_all(
                [
                    {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                    {"key": "settings", "value": json.dumps(settings, sort_keys=True)},
                    {"key": "generation", "value": "0"},
                ]
            )
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for schema and bulk writes. Imported on
        first write only: it pulls in numpy, which would slow `docqa search`'s cold start."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def _tables(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _meta(self, key: str) -> str | None:
        if "meta" not in self._tables():
            return None
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (one transaction per document) ----------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        if self.readonly:
            raise IndexReadOnly(f"{self.path} was opened read-only")
        try:
            with self.db.atomic() as db:
                yield db
                # Bumped with every change: caches built from the passages (rank-bm25) key on it.
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        except sqlite3.Error as err:
            raise index_error(self.path, err) from err

    def put_document(
        self, row: DocumentRow, pages: Sequence[str] = (), passages: Sequence[Passage] = (),
        *, ocr_pages: Collection[int] = (),
    ) -> int:
        """Replace whatever the index holds for ``row.abs_path`` with this document;
        ``ocr_pages`` are the 1-based numbers of the pages read by OCR."""
        starts = page_starts(pages)
        with self._write() as db:
            self._delete(db, row.abs_path)
            doc_id = self._insert_document(row)
            # Plain SQL, not sqlite-utils' insert_all (its per-value checks cost ~3% of the writer's
            # CPU). No full-text index on pages, so one statement per row costs nothing extra.
            self.conn.executemany(
                "INSERT INTO pages (document_id, number, start, text, ocr) VALUES (?, ?, ?, ?, ?)",
                [(doc_id, i + 1, starts[i], text, int(i + 1 in ocr_pages)) for i, text in enumerate(pages)])
            self._insert_passages(doc_id, passages)
        return doc_id

    def _insert_document(self, row: DocumentRow) -> int:
        record = {k: v for k, v in row.__dict__.items() if k != "id"}
        record["indexed_at"] = _now()
        cursor = self.conn.execute(
            f"INSERT INTO documents ({', '.join(record)}) VALUES ({', '.join('?' * len(record))})",
            list(record.values()))
        return int(cursor.lastrowid)  # type: ignore[arg-type]  # an INSERT into a rowid table sets it

    def _insert_passages(self, doc_id: int, passages: Sequence[Passage]) -> None:
        # As few statements as SQLite's variable limit allows (usually one per document): FTS5
        # writes its pending terms as a new segment at the end of every statement, and sqlite-utils'
        # 142-row statements made several per document to merge (bench/scale.py, writer).
        rows = [(doc_id, p.ordinal, p.page, p.last_page, p.start, p.end, p.text) for p in passages]
        limit = self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if hasattr(self.conn, "getlimit") else 999
        per = max(1, limit // 7)
        for first in range(0, len(rows), per):
            chunk = rows[first:first + per]
            self.conn.execute(
                'INSERT INTO passages (document_id, ordinal, page, last_page, start, "end", text) VALUES '
                + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)), [v for row in chunk for v in row])

    def copy_document(self, source_id: int, row: DocumentRow) -> int:
        """Index ``row`` with the pages and passages of ``source_id`` (same content, new path)."""
        with self._write() as db:
            self._delete(db, row.abs_path)
            doc_id = self._insert_document(row)
            db.execute(
                "INSERT INTO pages (document_id, number, start, text, ocr) "
                "SELECT ?, number, start, text, ocr FROM pages WHERE document_id = ?",
                (doc_id, source_id),
            )
            db.execute(
                "INSERT INTO passages (document_id, ordinal, page, last_page, start, end, text) "
                "SELECT ?, ordinal, page, last_page, start, end, text FROM passages "
                "WHERE document_id = ?",
                (doc_id, source_id),
            )
        return doc_id

    def touch(self, abs_path: str, *, size: int, mtime: float) -> None:
        """The file's content is unchanged but its stat changed (e.g. ``touch``)."""
        with self._write() as db:
            db.execute(
                "UPDATE documents SET size = ?, mtime = ? WHERE abs_path = ?", (size, mtime, abs_path)
            )

    def merge_lazily(self) -> None:
        """Let FTS5 merge its segments rarely while documents arrive (an indexing run merges them
        all at its end, ``optimize``): no incremental merging, a level merged at 64 segments
        instead of 4 and 16. The same index for less CPU; persists in the index's FTS5 config."""
        wanted = {"automerge": 0, "crisismerge": 64}
        found = dict(self.conn.execute("SELECT k, v FROM passages_fts_config WHERE k IN ('automerge', 'crisismerge')"))
        if found == wanted:
            return
        try:
            with self.db.atomic() as db:  # not ``_write``: the passages stay the same
                for key, value in wanted.items():
                    db.execute("INSERT INTO passages_fts(passages_fts, rank) VALUES (?, ?)", (key, value))
        except sqlite3.Error as err:
            raise index_error(self.path, err) from err

    def optimize(self) -> None:
        """Merge the full-text index into one b-tree. Queries on an index built document by
        document then run ~20% faster (1M passages: p50 144 -> 112 ms); the merge took 6 s there."""
        if self.readonly:
            raise IndexReadOnly(f"{self.path} was opened read-only")
        try:
            with self.db.atomic() as db:  # not ``_write``: the passages stay the same
                db.execute("INSERT INTO passages_fts(passages_fts) VALUES ('optimize')")
        except sqlite3.Error as err:
            raise index_error(self.path, err) from err

    # -- dense vectors (optional: docqa.dense) -----------------------------------------------

    @property
    def embedding_model(self) -> str | None:
        """The model the stored passage vectors come from; None if there are none."""
        return self._meta("embedding_model")

    def start_vectors(self, model: str) -> None:
        """Make room for ``model``'s passage vectors; vectors of another model are dropped. A
        trigger drops a passage's vector with the passage, so none outlives what it encodes."""
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS passage_vectors (passage_id INTEGER PRIMARY KEY, vector BLOB NOT NULL)")
            db.execute(
                "CREATE TRIGGER IF NOT EXISTS passage_vectors_gone AFTER DELETE ON passages "
                "BEGIN DELETE FROM passage_vectors WHERE passage_id = old.id; END"
            )
            if self.embedding_model != model:
                db.execute("DELETE FROM passage_vectors")
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('embedding_model', ?)", (model,))

    def count_without_vectors(self) -> int:
        return int(self.conn.execute(
            "SELECT count(*) FROM passages p LEFT JOIN passage_vectors v ON v.passage_id = p.id "
            "WHERE v.passage_id IS NULL"
        ).fetchone()[0])

    def passages_without_vectors(self, after: int, limit: int) -> list[tuple[int, str]]:
        """(id, text) of up to ``limit`` passages past id ``after`` that have no vector."""
        return self.conn.execute(
            "SELECT p.id, p.text FROM passages p LEFT JOIN passage_vectors v ON v.passage_id = p.id "
            "WHERE p.id > ? AND v.passage_id IS NULL ORDER BY p.id LIMIT ?",
            (after, limit),
        ).fetchall()

    def put_vectors(self, rows: Sequence[tuple[int, bytes]]) -> None:
        with self._write() as db:
            db.conn.executemany("INSERT OR REPLACE INTO passage_vectors (passage_id, vector) VALUES (?, ?)", rows)

    def has_vectors(self) -> bool:
        """Whether any passage has a vector (what makes ``search`` hybrid by default)."""
        return self.embedding_model is not None and self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM passage_vectors)").fetchone()[0] == 1

    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Passage ids, their document ids (int64) and their vectors (float32, one row each), in
        id order; the vectors are read as one buffer."""
        import numpy as np

        rows = self.conn.execute(
            "SELECT v.passage_id, p.document_id, v.vector FROM passage_vectors v "
            "JOIN passages p ON p.id = v.passage_id ORDER BY v.passage_id"
        ).fetchall() if self.embedding_model is not None else []
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        documents = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        dim = len(rows[0][2]) // 4 if rows else 0
        matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, documents, matrix

    def remove(self, abs_paths: Sequence[str]) -> int:
        removed = 0
        for abs_path in abs_paths:
            with self._write() as db:
                removed += self._delete(db, abs_path)
        self.name_documents()
        return removed

    def name_documents(self) -> None:
        """Give every document a shown ``path`` that tells it apart from the others: relative to
        its root while one root holds them all, else relative to the roots' common parent (two
        indexed folders that both hold ``notes.txt`` show ``a/notes.txt`` and ``b/notes.txt``)."""
        roots = [r for (r,) in self.conn.execute("SELECT DISTINCT root FROM documents")]
        try:
            base = _common_root(roots) if len(roots) > 1 else roots[0] if roots else ""
        except ValueError:  # roots on different drives or stores: nothing shorter tells them apart
            base = ""
        prefix = base if base.endswith(os.sep) else base + os.sep
        renamed = [(abs_path[len(prefix):], doc_id) for doc_id, path, abs_path in
                   self.conn.execute("SELECT id, path, abs_path FROM documents")
                   if base and abs_path.startswith(prefix) and abs_path[len(prefix):] != path]
        if renamed:
            with self._write() as db:
                db.conn.executemany("UPDATE documents SET path = ? WHERE id = ?", renamed)

    def find_documents(self, name: str) -> list[DocumentRow]:
        """The documents ``name`` means: the one with that shown or absolute path, else every one
        whose shown path ends with it (``notes.txt`` for ``a/notes.txt``): more than one is
        ambiguous, and the caller says so."""
        for column in ("path", "abs_path"):
            found = list(self._documents(f"{column} = ?", (name,)))
            if found:
                return found
        resolved = self.document(str(Path(name).expanduser().resolve()))
        if resolved is not None:
            return [resolved]
        tail = os.sep + name.strip(os.sep)
        return list(self._documents("substr(path, -?) = ?", (len(tail), tail)))

    @staticmethod
    def _delete(db: sqlite_utils.Database, abs_path: str) -> int:
        row = db.execute("SELECT id FROM documents WHERE abs_path = ?", (abs_path,)).fetchone()
        if row is None:
            return 0
        db.execute("DELETE FROM passages WHERE document_id = ?", (row[0],))
        db.execute("DELETE FROM pages WHERE document_id = ?", (row[0],))
        db.execute("DELETE FROM documents WHERE id = ?", (row[0],))
        return 1

    # -- reading -----------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """A counter bumped by every write: changes whenever the indexed content changes."""
        return int(self._meta("generation") or 0)

    def document(self, abs_path: str) -> DocumentRow | None:
        return next(self._documents("abs_path = ?", (abs_path,)), None)

    def document_by_id(self, doc_id: int) -> DocumentRow | None:
        return next(self._documents("id = ?", (doc_id,)), None)

    def documents_with_sha(self, sha256: str) -> list[DocumentRow]:
        return list(self._documents("sha256 = ? AND status IN ('indexed', 'updated')", (sha256,)))

    def documents(self, under: str | None = None) -> Iterator[DocumentRow]:
        if under is None:
            return self._documents("1")
        prefix = under.rstrip(os.sep) + os.sep
        return self._documents("abs_path = ? OR substr(abs_path, 1, ?) = ?", (under, len(prefix), prefix))

    def _documents(self, where: str, params: Sequence[object] = ()) -> Iterator[DocumentRow]:
        cursor = self.conn.execute(f"SELECT * FROM documents WHERE {where} ORDER BY path", params)
        columns = [d[0] for d in cursor.description]
        for row in cursor:
            yield DocumentRow(**dict(zip(columns, row)))

    def pages(self, doc_id: int) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT text FROM pages WHERE document_id = ? ORDER BY number", (doc_id,)
            )
        ]

    def page_text(self, doc_id: int, number: int) -> str | None:
        row = self.conn.execute(
            "SELECT text FROM pages WHERE document_id = ? AND number = ?", (doc_id, number)
        ).fetchone()
        return None if row is None else str(row[0])

    def page(self, doc_id: int, number: int) -> tuple[int, str] | None:
        """Page ``number``'s offset in the document text, and its text."""
        row = self.conn.execute(
            "SELECT start, text FROM pages WHERE document_id = ? AND number = ?", (doc_id, number)
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def ocr_pages(self, doc_id: int) -> frozenset[int]:
        """The numbers of the document's pages whose text was read by OCR."""
        if self.schema_version < 2:
            return frozenset()
        return frozenset(r[0] for r in self.conn.execute(
            "SELECT number FROM pages WHERE document_id = ? AND ocr", (doc_id,)))

    def ocr_page_count(self, abs_path: str) -> int:
        return int(self.conn.execute(
            "SELECT count(*) FROM pages JOIN documents ON documents.id = pages.document_id "
            "WHERE documents.abs_path = ? AND pages.ocr", (abs_path,)).fetchone()[0])

    def document_text(self, doc_id: int) -> str:
        """The text that passage and citation offsets index into."""
        return PAGE_BREAK.join(self.pages(doc_id))

    def info(self) -> IndexInfo:
        try:
            return self._info()
        except sqlite3.Error as err:
            raise index_error(self.path, err) from err

    def _info(self) -> IndexInfo:
        def count(sql: str) -> int:
            return int(self.conn.execute(sql).fetchone()[0])

        by_status = {
            status: n
            for status, n in self.conn.execute(
                "SELECT status, count(*) FROM documents GROUP BY status ORDER BY status"
            )
        }
        problems = tuple(
            Problem(path=r[0], status=r[1], message=r[2] or "")
            for r in self.conn.execute(
                "SELECT path, status, message FROM documents WHERE status IN (%s) ORDER BY path"
                % ",".join("?" * len(PROBLEM_STATUSES)),
                PROBLEM_STATUSES,
            )
        )
        size = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"))
            if p.exists()
        )
        return IndexInfo(
            index=str(self.path),
            documents=count("SELECT count(*) FROM documents"),
            pages=count("SELECT count(*) FROM pages"),
            passages=count("SELECT count(*) FROM passages"),
            by_status=by_status,
            problems=problems,
            schema_version=self.schema_version,
            settings=dict(self.settings),
            size_bytes=size,
            embedding_model=self.embedding_model,
            vectors=count("SELECT count(*) FROM passage_vectors") if "passage_vectors" in self._tables() else 0,
            ocr_pages=count("SELECT count(*) FROM pages WHERE ocr") if self.schema_version >= 2 else 0,
            pages_by_kind=dict(self.conn.execute(
                "SELECT kind, count(*) FROM pages JOIN documents ON documents.id = pages.document_id "
                "GROUP BY kind ORDER BY kind").fetchall()),
        )




def _common_root(roots: Sequence[str]) -> str:
    """The longest folder or URI prefix (``s3://bucket/a``) the roots share."""
    schemes = {r.split("://", 1)[0] if "://" in r else "" for r in roots}
    if len(schemes) > 1:
        raise ValueError("local paths and URIs")
    head = f"{schemes.pop()}://" if "://" in roots[0] else ""
    return head + os.path.commonpath([r[len(head):] for r in roots])


def page_of(starts: Sequence[int], offset: int) -> int:
    """1-based page holding character ``offset`` of the document text."""
    return max(1, bisect.bisect_right(starts, offset))


@contextmanager
def writer_lock(index_path: Path) -> Iterator[None]:
    """Only one ``docqa index`` per index at a time: a second run refuses at once (within
    ``LOCK_GRACE_S``).

    An OS file lock is released by the kernel when its holder dies, even by kill -9. It belongs
    to the open file, so a child forked by this process (a subprocess started from another
    thread) holds it too until it closes its copies on exec: a release can lag by a moment,
    hence the grace before a run is refused.
    """
    lock_path = Path(f"{index_path}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise IndexReadOnly(f"cannot write beside {index_path}: {err.strerror}") from err
    try:
        try:
            _lock(fd)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise IndexLocked(
                f"another `docqa index` (pid {holder}) is writing {index_path}; "
                "wait for it to finish, then run again"
            ) from err
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _lock(fd: int) -> None:
    """Take the writer lock, retrying for ``LOCK_GRACE_S``; then the holder's ``OSError``."""
    deadline = time.monotonic() + LOCK_GRACE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                raise
        time.sleep(0.05)
