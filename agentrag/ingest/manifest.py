"""The manifest: a SQLite file that is the source of truth of a knowledge base.

It lists every document (source, content hash, state) and every chunk (id, text, span,
metadata, state). The vector store and the BM25 index are derived from it and reconciled
against it when the knowledge base is opened.

Writes follow a two-phase protocol per batch of documents, each phase one SQLite transaction:

1. *prepare*: new chunks go in as ``adding``, chunks a changed document no longer has are
   marked ``deleting``, the document becomes ``pending``;
2. the vector store is written (upsert the ``adding`` vectors, delete the ``deleting`` ids) and
   flushed;
3. *commit*: ``adding`` -> ``live``, ``deleting`` rows go, the document is ``committed`` and
   the manifest version goes up (the BM25 index is rebuilt when it lags that version).

A process killed anywhere leaves documents in ``pending`` (or ``deleting``) state at worst.
Recovery removes such documents from the store and the manifest entirely; re-running the ingest
adds them again (their vectors come from the embedding cache). Only committed, complete
documents are ever visible to search: hydration reads ``live`` chunks only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrag.stores.filters import And, Eq, In, Or, Range
from agentrag.types import Chunk

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.stores.filters import Filter

__all__ = ["DocRow", "Manifest", "filter_to_sql", "store_metadata"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL,
    n_chunks INTEGER NOT NULL DEFAULT 0,
    chars INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'deleting')),
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('adding', 'live', 'deleting'))
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
CREATE INDEX IF NOT EXISTS chunks_unsettled ON chunks (state) WHERE state != 'live';
CREATE INDEX IF NOT EXISTS documents_unsettled ON documents (state) WHERE state != 'committed';
CREATE TABLE IF NOT EXISTS roots (
    path TEXT PRIMARY KEY,
    include TEXT NOT NULL,
    exclude TEXT NOT NULL,
    added_at REAL NOT NULL
);
"""


def store_metadata(chunk: Chunk) -> dict[str, Any]:
    """What a chunk carries into the vector store and filters see.

    Its metadata plus ``source``, ``doc_id`` and ``title``.
    """
    return {**chunk.metadata, "source": chunk.source, "doc_id": chunk.doc_id, "title": chunk.title}


@dataclass(frozen=True, kw_only=True, slots=True)
class DocRow:
    """A document as the manifest knows it."""

    doc_id: str
    """Hash of the source."""

    source: str
    """File path or ``file#row``."""

    title: str
    """Title."""

    content_hash: str
    """Hash of what decided its chunks."""

    n_chunks: int
    """Chunks it has."""

    chars: int
    """Length of its extracted text."""

    state: str
    """``committed``, ``pending`` or ``deleting``."""

    updated_at: float
    """Unix time of the last change."""


def _json_path(field: str) -> str:
    return '$."' + field.replace('"', '""') + '"'


def filter_to_sql(node: Filter) -> tuple[str, list[Any]]:
    """A filter as a SQL condition over ``chunks.metadata`` (JSON), with its parameters."""
    if isinstance(node, Eq):
        path = _json_path(node.field)
        value = node.value
        if isinstance(value, bool):
            return "json_type(metadata, ?) = ?", [path, "true" if value else "false"]
        if isinstance(value, str):
            return "(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?)", [path, path, value]
        return (
            "(json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?)",
            [path, path, value],
        )
    if isinstance(node, In):
        parts = [filter_to_sql(Eq(field=node.field, value=v)) for v in node.values]
        return "(" + " OR ".join(p for p, _ in parts) + ")", [x for _, ps in parts for x in ps]
    if isinstance(node, Range):
        path = _json_path(node.field)
        ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        conds = ["json_type(metadata, ?) IN ('integer', 'real')"]
        params: list[Any] = [path]
        for op, value in node.bounds():
            conds.append(f"json_extract(metadata, ?) {ops[op]} ?")
            params += [path, value]
        return "(" + " AND ".join(conds) + ")", params
    if isinstance(node, And | Or):
        joiner = " AND " if isinstance(node, And) else " OR "
        parts = [filter_to_sql(f) for f in node.filters]
        return "(" + joiner.join(p for p, _ in parts) + ")", [x for _, ps in parts for x in ps]
    raise TypeError(f"unknown filter node {node!r}")


class Manifest:
    """The SQLite manifest of one knowledge base (see the module docstring for the protocol).

    Thread-safe: each thread reads through its own connection (WAL mode lets readers run
    beside the writer); writes go through one connection under a lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._connections: list[sqlite3.Connection] = []
        self._conn_lock = threading.Lock()
        self._writer = self._connect()
        with self._writer:
            self._writer.executescript(_SCHEMA)
            self._writer.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?), ('version', '0')",
                [str(SCHEMA_VERSION)],
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction survives a power cut, not only a killed process.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=OFF")
        with self._conn_lock:
            self._connections.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection."""
        with self._conn_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value from the ``meta`` table."""
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set a ``meta`` value."""
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    @property
    def version(self) -> int:
        """Goes up with every committed change to the live chunks."""
        return int(self.get_meta("version") or 0)

    # -- documents --------------------------------------------------------------------------

    def document(self, source: str) -> DocRow | None:
        """The document with this source, if known."""
        row = self._reader().execute("SELECT * FROM documents WHERE source = ?", [source]).fetchone()
        return None if row is None else DocRow(**_row_dict(row, _DOC_COLS))

    def documents(self) -> list[DocRow]:
        """Every document, by source."""
        rows = self._reader().execute("SELECT * FROM documents ORDER BY source").fetchall()
        return [DocRow(**_row_dict(r, _DOC_COLS)) for r in rows]

    def document_hashes(self) -> dict[str, tuple[str, str]]:
        """``source -> (content_hash, state)`` for every document."""
        rows = self._reader().execute("SELECT source, content_hash, state FROM documents").fetchall()
        return {str(s): (str(h), str(st)) for s, h, st in rows}

    def chunk_ids_of(self, doc_id: str) -> list[str]:
        """Ids of a document's chunks (any state)."""
        rows = self._reader().execute("SELECT id FROM chunks WHERE doc_id = ?", [doc_id]).fetchall()
        return [str(r[0]) for r in rows]

    # -- the two-phase write ----------------------------------------------------------------

    def prepare(
        self, docs: Sequence[tuple[str, str, str, int, list[Chunk]]]
    ) -> tuple[list[Chunk], list[str]]:
        """Phase 1 for ``(doc_id, source, content_hash, chars, chunks)`` documents.

        Returns:
            The chunks to write to the store and the ids to delete from it.
        """
        to_add: list[Chunk] = []
        to_delete: list[str] = []
        now = time.time()
        with self._tx() as conn:
            existing: dict[str, set[str]] = {}
            dids = [d[0] for d in docs]
            for start in range(0, len(dids), 500):
                part = dids[start : start + 500]
                marks = ",".join("?" * len(part))
                for did, cid in conn.execute(
                    f"SELECT doc_id, id FROM chunks WHERE doc_id IN ({marks})", part
                ):
                    existing.setdefault(str(did), set()).add(str(cid))
            rows = []
            doc_rows = []
            for did, source, chash, chars, chunks in docs:
                had = existing.get(did, set())
                new_ids = {c.id for c in chunks}
                to_delete += sorted(had - new_ids)
                fresh = [c for c in chunks if c.id not in had]
                rows += [
                    [c.id, did, c.text, c.start, c.end, json.dumps(store_metadata(c), ensure_ascii=False)]
                    for c in fresh
                ]
                to_add += fresh
                doc_rows.append(
                    [did, source, chunks[0].title if chunks else "", chash, len(chunks), chars, now]
                )
            conn.executemany("UPDATE chunks SET state = 'deleting' WHERE id = ?", [[i] for i in to_delete])
            conn.executemany(
                'INSERT INTO chunks (id, doc_id, text, start, "end", metadata, state) '
                "VALUES (?, ?, ?, ?, ?, ?, 'adding')",
                rows,
            )
            conn.executemany(
                "INSERT INTO documents (doc_id, source, title, content_hash, n_chunks, chars, state, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT (doc_id) DO UPDATE "
                "SET title = excluded.title, content_hash = excluded.content_hash, "
                "n_chunks = excluded.n_chunks, chars = excluded.chars, state = 'pending', "
                "updated_at = excluded.updated_at",
                doc_rows,
            )
        return to_add, to_delete

    def commit(self, doc_ids: Sequence[str]) -> None:
        """Phase 3: the store has the batch; make it live."""
        params = [[d] for d in doc_ids]
        with self._tx() as conn:
            conn.executemany("UPDATE chunks SET state = 'live' WHERE doc_id = ? AND state = 'adding'", params)
            conn.executemany("DELETE FROM chunks WHERE doc_id = ? AND state = 'deleting'", params)
            conn.executemany("UPDATE documents SET state = 'committed' WHERE doc_id = ?", params)
            conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")

    def prepare_delete(self, doc_ids: Sequence[str]) -> list[str]:
        """Phase 1 of removing documents; returns the chunk ids to delete from the store."""
        ids: list[str] = []
        with self._tx() as conn:
            for did in doc_ids:
                conn.execute("UPDATE documents SET state = 'deleting' WHERE doc_id = ?", [did])
                conn.execute("UPDATE chunks SET state = 'deleting' WHERE doc_id = ?", [did])
                ids += [str(r[0]) for r in conn.execute("SELECT id FROM chunks WHERE doc_id = ?", [did])]
        return ids

    def commit_delete(self, doc_ids: Sequence[str]) -> None:
        """Phase 3 of removing documents: drop their rows."""
        with self._tx() as conn:
            for did in doc_ids:
                conn.execute("DELETE FROM chunks WHERE doc_id = ?", [did])
                conn.execute("DELETE FROM documents WHERE doc_id = ?", [did])
            conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")

    def unsettled(self) -> tuple[list[str], list[str]]:
        """Documents not committed, and all chunk ids they (or stray unsettled chunks) own."""
        conn = self._reader()
        docs = [str(r[0]) for r in conn.execute("SELECT doc_id FROM documents WHERE state != 'committed'")]
        ids: set[str] = set()
        for did in docs:
            ids.update(str(r[0]) for r in conn.execute("SELECT id FROM chunks WHERE doc_id = ?", [did]))
        stray = conn.execute("SELECT id, doc_id FROM chunks WHERE state != 'live'").fetchall()
        ids.update(str(i) for i, _ in stray)
        docs += sorted({str(d) for _, d in stray} - set(docs))
        return docs, sorted(ids)

    # -- roots (what `sync` re-reads) -------------------------------------------------------

    def add_root(self, path: str, include: Sequence[str], exclude: Sequence[str]) -> None:
        """Remember a path ingest was given (with its globs) for :meth:`roots`."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO roots (path, include, exclude, added_at) VALUES (?, ?, ?, ?)",
                [path, json.dumps(list(include)), json.dumps(list(exclude)), time.time()],
            )

    def roots(self) -> list[tuple[str, list[str], list[str]]]:
        """Every remembered ``(path, include, exclude)``."""
        rows = self._reader().execute("SELECT path, include, exclude FROM roots ORDER BY path").fetchall()
        return [(str(p), json.loads(i), json.loads(e)) for p, i, e in rows]

    # -- reading chunks ---------------------------------------------------------------------

    def _chunks(self, where: str, params: Sequence[Any]) -> list[tuple[int, Chunk]]:
        rows = (
            self._reader()
            .execute(
                f'SELECT c.rowid, c.id, c.doc_id, c.text, c.start, c."end", c.metadata FROM chunks c '
                f"WHERE c.state = 'live' AND {where}",
                list(params),
            )
            .fetchall()
        )
        out = []
        for rowid, cid, did, text, start, end, meta_json in rows:
            meta = json.loads(meta_json)
            source = meta.pop("source", "")
            title = meta.pop("title", "")
            meta.pop("doc_id", None)
            out.append(
                (
                    int(rowid),
                    Chunk(
                        id=cid,
                        text=text,
                        source=source,
                        title=title,
                        start=start,
                        end=end,
                        doc_id=did,
                        metadata=meta,
                    ),
                )
            )
        return out

    def live_by_ids(self, ids: Sequence[str]) -> dict[str, Chunk]:
        """Live chunks by id (unknown or unsettled ids are absent)."""
        out: dict[str, Chunk] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            out.update({c.id: c for _, c in self._chunks(f"c.id IN ({marks})", part)})
        return out

    def live_ids_by_rowids(self, rowids: Sequence[int]) -> dict[int, str]:
        """``rowid -> chunk id`` for live chunks."""
        out: dict[int, str] = {}
        conn = self._reader()
        for start in range(0, len(rowids), 500):
            part = [int(r) for r in rowids[start : start + 500]]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                f"SELECT rowid, id FROM chunks WHERE state = 'live' AND rowid IN ({marks})", part
            ).fetchall()
            out.update({int(r): str(i) for r, i in rows})
        return out

    def live_rowids(self, filters: Filter | None = None) -> NDArray[np.int64]:
        """Rowids of live chunks passing ``filters``, ascending."""
        where, params = ("1", []) if filters is None else filter_to_sql(filters)
        rows = (
            self._reader()
            .execute(f"SELECT rowid FROM chunks WHERE state = 'live' AND {where} ORDER BY rowid", params)
            .fetchall()
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def iter_live(self, batch: int = 10_000) -> Iterator[list[tuple[int, str, str, str]]]:
        """Live chunks as ``(rowid, id, title, text)`` batches, by rowid (for index builds)."""
        conn = self._connect()
        try:
            last = -1
            while True:
                rows = conn.execute(
                    "SELECT rowid, id, json_extract(metadata, '$.title'), text FROM chunks "
                    "WHERE state = 'live' AND rowid > ? ORDER BY rowid LIMIT ?",
                    [last, batch],
                ).fetchall()
                if not rows:
                    return
                yield [(int(r), str(i), str(t or ""), str(x)) for r, i, t, x in rows]
                last = int(rows[-1][0])
        finally:
            with self._conn_lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.close()

    def live_count(self) -> int:
        """Live chunks."""
        return int(self._reader().execute("SELECT COUNT(*) FROM chunks WHERE state = 'live'").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Documents and chunks by state (for stats)."""
        conn = self._reader()
        out = {
            f"documents_{s}": int(n)
            for s, n in conn.execute("SELECT state, COUNT(*) FROM documents GROUP BY state")
        }
        out |= {
            f"chunks_{s}": int(n)
            for s, n in conn.execute("SELECT state, COUNT(*) FROM chunks GROUP BY state")
        }
        return out


_DOC_COLS = ("doc_id", "source", "title", "content_hash", "n_chunks", "chars", "state", "updated_at")


def _row_dict(row: Sequence[Any], cols: Sequence[str]) -> dict[str, Any]:
    return dict(zip(cols, row, strict=True))
