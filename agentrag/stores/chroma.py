"""Chroma: embedded (persistent folder, the default) and client/server (``chroma run``).

Vectors always come with the records: Chroma is never handed text to embed itself (it would
fetch its own ONNX model from the internet). Collections use the cosine metric; Chroma
reports cosine *distance*, turned into similarity here (``1 - d``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from agentrag.errors import StoreError
from agentrag.stores.base import StoreHit, VectorRecord, as_matrix, check_dim
from agentrag.stores.filters import And, Eq, In, Or, Range

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.settings import HnswSettings
    from agentrag.stores.filters import Filter

__all__ = ["ChromaStore", "to_chroma_where"]

log = logging.getLogger(__name__)

_PAGE = 5000


def to_chroma_where(node: Filter) -> dict[str, Any]:
    """A filter in Chroma's ``where`` syntax."""
    if isinstance(node, Eq):
        return {node.field: {"$eq": node.value}}
    if isinstance(node, In):
        return {node.field: {"$in": list(node.values)}}
    if isinstance(node, Range):
        # Chroma allows one operator per field clause: several bounds become an $and.
        parts = [{node.field: {f"${op}": value}} for op, value in node.bounds()]
        return parts[0] if len(parts) == 1 else {"$and": parts}
    if isinstance(node, And | Or):
        key = "$and" if isinstance(node, And) else "$or"
        parts = [to_chroma_where(f) for f in node.filters]
        return parts[0] if len(parts) == 1 else {key: parts}
    raise TypeError(f"unknown filter node {node!r}")


_FIXED = ("space", "ef_construction", "max_neighbors")
"""HNSW parameters Chroma sets once, when the collection is created."""

_TUNABLE = ("ef_search", "num_threads", "batch_size", "sync_threshold")
"""HNSW parameters an existing collection accepts through ``modify``."""


def hnsw_config(hnsw: HnswSettings | None) -> dict[str, Any]:
    """Chroma's ``configuration={"hnsw": ...}`` table for ``hnsw`` (cosine defaults when None)."""
    if hnsw is None:
        return {"space": "cosine"}
    cfg: dict[str, Any] = hnsw.model_dump(exclude_none=True)
    return cfg


def _clean_metadata(meta: Any) -> dict[str, Any] | None:
    # Chroma rejects an empty metadata dict; None stands for "none".
    return dict(meta) if meta else None


class ChromaStore:
    """A Chroma collection behind the :class:`~agentrag.stores.base.VectorStore` protocol.

    Build one with :meth:`persistent` (embedded, a folder on disk) or :meth:`http` (a server
    started with ``chroma run``).

    Example:
        >>> store = ChromaStore.persistent("/tmp/kb/chroma", "docs")  # doctest: +SKIP
        >>> store.count()  # doctest: +SKIP
        0
    """

    def __init__(
        self,
        client: Any,
        collection: str,
        *,
        backend: str,
        batch_size: int = 512,
        hnsw: HnswSettings | None = None,
    ) -> None:
        self._client = client
        self._name = collection
        self._backend = backend
        self._lock = threading.RLock()
        want = hnsw_config(hnsw)
        try:
            self._collection = client.get_or_create_collection(
                collection, embedding_function=None, configuration={"hnsw": want}
            )
        except Exception as exc:
            raise StoreError(
                f"cannot open Chroma collection {collection!r}: {exc}",
                hint="collection names are 3-63 characters of letters, digits, '.', '_' or '-'",
            ) from exc
        self._space = str(want.get("space", "cosine"))
        if hnsw is not None:
            self._sync_hnsw(want)
        self._batch = max(1, min(batch_size, int(client.get_max_batch_size())))
        self._dim: int | None = None

    def _sync_hnsw(self, want: dict[str, Any]) -> None:
        """Apply the tunable HNSW settings to an existing collection; warn on fixed ones."""
        have = (getattr(self._collection, "configuration", None) or {}).get("hnsw") or {}
        self._space = str(have.get("space", self._space))
        fixed = {k: (have[k], want[k]) for k in _FIXED if k in have and k in want and have[k] != want[k]}
        if fixed:
            log.warning(
                "Chroma collection %s was built with %s; the settings ask for %s (fixed at creation: "
                "delete and re-ingest the knowledge base to change them)",
                self._name,
                {k: v[0] for k, v in fixed.items()},
                {k: v[1] for k, v in fixed.items()},
            )
        # Only what Chroma reports back can be compared: it does not report batch_size or
        # num_threads, and "changing" them on every open was a write to Chroma's system database
        # on every open, search-only ones included (and it failed now and then under load).
        change = {k: want[k] for k in _TUNABLE if k in want and k in have and have[k] != want[k]}
        if change:
            try:
                self._collection.modify(configuration={"hnsw": change})
            except Exception as exc:
                raise StoreError(
                    f"cannot set HNSW parameters {change} on Chroma collection {self._name!r}: {exc}",
                    hint="check [kb.store.hnsw] against Chroma's limits",
                ) from exc

    @classmethod
    def persistent(
        cls, path: str | Path, collection: str, *, batch_size: int = 512, hnsw: HnswSettings | None = None
    ) -> ChromaStore:
        """Embedded Chroma persisting under ``path``."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        Path(path).mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(
            path=str(path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        )
        return cls(client, collection, backend="chroma", batch_size=batch_size, hnsw=hnsw)

    @classmethod
    def http(
        cls,
        url: str,
        collection: str,
        *,
        batch_size: int = 512,
        timeout_s: float = 5.0,
        hnsw: HnswSettings | None = None,
    ) -> ChromaStore:
        """Chroma server at ``url`` (``http://127.0.0.1:8000``), e.g. from ``chroma run``."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        parsed = urlparse(url)
        if not parsed.hostname:
            raise StoreError(f"cannot read a host from {url!r}", hint="e.g. http://127.0.0.1:8000")
        try:
            client = chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=ChromaSettings(anonymized_telemetry=False, chroma_server_http_timeout=timeout_s),
            )
            client.heartbeat()
        except Exception as exc:
            raise StoreError(
                f"cannot reach the Chroma server at {url}: {exc}",
                hint="start one with `chroma run --path DIR --host 127.0.0.1 --port PORT`",
            ) from exc
        return cls(client, collection, backend="chroma-http", batch_size=batch_size, hnsw=hnsw)

    @property
    def backend(self) -> str:
        """``chroma`` or ``chroma-http``."""
        return self._backend

    def _expected_dim(self, got: int, *, writing: bool = True) -> None:
        if self._dim is None:
            peek = self._collection.get(limit=1, include=["embeddings"])
            embs = peek.get("embeddings")
            if embs is not None and len(embs):
                self._dim = len(embs[0])
            elif writing:
                self._dim = got  # the first write decides
            else:
                return  # a query on an empty collection decides nothing
        check_dim(got, self._dim)

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        matrix = as_matrix(records)
        with self._lock:
            self._expected_dim(matrix.shape[1])
            for start in range(0, len(records), self._batch):
                part = records[start : start + self._batch]
                ids = [r.id for r in part]
                # Chroma's upsert merges metadata into an existing record's (old keys survive):
                # replace by deleting the ids that exist, then adding.
                existing = self._collection.get(ids=ids, include=[])["ids"]
                if existing:
                    self._collection.delete(ids=existing)
                self._collection.add(
                    ids=ids,
                    embeddings=matrix[start : start + self._batch],
                    documents=[r.text for r in part],
                    metadatas=[_clean_metadata(r.metadata) for r in part],
                )

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[VectorRecord]:
        if not ids:
            return []
        include = ["documents", "metadatas", *(["embeddings"] if with_vectors else [])]
        found: dict[str, VectorRecord] = {}
        with self._lock:
            for start in range(0, len(ids), self._batch):
                res = self._collection.get(ids=list(ids[start : start + self._batch]), include=include)
                got = res["ids"]
                embs = res.get("embeddings")
                docs = res.get("documents") or [""] * len(got)
                metas = res.get("metadatas") or [None] * len(got)
                for i, rid in enumerate(got):
                    vec = np.asarray(embs[i], dtype=np.float32) if with_vectors and embs is not None else None
                    found[rid] = VectorRecord(id=rid, vector=vec, text=docs[i] or "", metadata=metas[i] or {})
        return [found[i] for i in ids if i in found]

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            for start in range(0, len(ids), self._batch):
                part = list(ids[start : start + self._batch])
                if part:
                    self._collection.delete(ids=part)

    def search(self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None) -> list[StoreHit]:
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if k <= 0:
            return []
        with self._lock:
            self._expected_dim(query.shape[1], writing=False)
            # No count() first: Chroma (1.5) returns fewer hits when the collection holds fewer
            # than k, and none when it is empty; the count is a SQLite query that holds the GIL
            # (~0.9 ms at 20k records, more than half a 100-candidate HNSW query).
            res = self._collection.query(
                query_embeddings=query,
                n_results=k,
                where=to_chroma_where(filters) if filters is not None else None,
                include=["documents", "metadatas", "distances"],
            )
        ids = res["ids"][0]
        dists = (res.get("distances") or [[]])[0]
        docs = (res.get("documents") or [[""] * len(ids)])[0]
        metas = (res.get("metadatas") or [[None] * len(ids)])[0]
        return [
            StoreHit(id=i, score=1.0 - float(d), text=t or "", metadata=m or {})
            for i, d, t, m in zip(ids, dists, docs, metas, strict=True)
        ]

    def candidates(
        self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None
    ) -> list[tuple[str, float]]:
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if k <= 0:
            return []
        with self._lock:
            self._expected_dim(query.shape[1], writing=False)
            # Distances only: Chroma reads documents and metadata from SQLite per result, which
            # at 1M records costs several times the HNSW search itself. No count() first (see
            # search()).
            res = self._collection.query(
                query_embeddings=query,
                n_results=k,
                where=to_chroma_where(filters) if filters is not None else None,
                include=["distances"],
            )
        ids = res["ids"][0]
        dists = (res.get("distances") or [[]])[0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, dists, strict=True)]

    def count(self) -> int:
        with self._lock:
            return int(self._collection.count())

    def ids(self) -> Iterator[str]:
        offset = 0
        while True:
            with self._lock:
                res = self._collection.get(include=[], limit=_PAGE, offset=offset)
            batch = res["ids"]
            yield from batch
            if len(batch) < _PAGE:
                return
            offset += len(batch)

    def flush(self) -> None:
        # Chroma writes through its SQLite log before an upsert returns: already durable.
        return None

    def close(self) -> None:
        with self._lock:
            close = getattr(self._client, "close", None)
            if close is not None:
                close()

    def destroy(self) -> None:
        with self._lock:
            try:
                self._client.delete_collection(self._name)
            except Exception as exc:  # already gone is fine
                log.debug("delete_collection(%s): %s", self._name, exc)
            self.close()
