"""Qdrant: local mode (a folder, no server; qdrant-client's own engine) or a server URL.

Needs the ``qdrant`` extra (``qdrant-client``). Qdrant point ids must be integers or UUIDs, so a
chunk id maps to ``uuid5(namespace, id)`` and the original id travels in the payload. The
collection (cosine) is created on the first write, when the vector size is known.

Local mode is qdrant-client's pure-Python engine: exact search, good for tests and small
collections; for large ones run a Qdrant server and set ``url``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrag.errors import StoreError
from agentrag.stores.base import StoreHit, VectorRecord, as_matrix, check_dim
from agentrag.stores.filters import And, Eq, In, Or, Range

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.stores.filters import Filter

__all__ = ["QdrantStore", "point_id", "to_qdrant_filter"]

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("5b0c8f53-4a8e-4d59-9a53-1f7a4f0d2b11")
_ID_KEY = "_agentrag_id"
_TEXT_KEY = "_agentrag_text"
_PAGE = 2048


def point_id(chunk_id: str) -> str:
    """The Qdrant point id (a UUID) of a chunk id."""
    return str(uuid.uuid5(_NAMESPACE, chunk_id))


def _condition(node: Filter) -> Any:
    from qdrant_client import models

    if isinstance(node, Eq):
        if isinstance(node.value, float) and not node.value.is_integer():
            # MatchValue takes str/int/bool only; a float equality is a closed range.
            return models.FieldCondition(key=node.field, range=models.Range(gte=node.value, lte=node.value))
        value = int(node.value) if isinstance(node.value, float) else node.value
        return models.FieldCondition(key=node.field, match=models.MatchValue(value=value))
    if isinstance(node, In):
        return models.Filter(should=[_condition(Eq(field=node.field, value=v)) for v in node.values])
    if isinstance(node, Range):
        return models.FieldCondition(key=node.field, range=models.Range(**dict(node.bounds())))
    if isinstance(node, And):
        return models.Filter(must=[_condition(f) for f in node.filters])
    if isinstance(node, Or):
        return models.Filter(should=[_condition(f) for f in node.filters])
    raise TypeError(f"unknown filter node {node!r}")


def to_qdrant_filter(node: Filter) -> Any:
    """A filter as a ``qdrant_client.models.Filter``."""
    from qdrant_client import models

    cond = _condition(node)
    return cond if isinstance(cond, models.Filter) else models.Filter(must=[cond])


class QdrantStore:
    """A Qdrant collection behind the :class:`~agentrag.stores.base.VectorStore` protocol.

    Example:
        >>> store = QdrantStore.local("/tmp/kb/qdrant", "docs")  # doctest: +SKIP
        >>> store = QdrantStore.server("http://127.0.0.1:6333", "docs")  # doctest: +SKIP
    """

    def __init__(self, client: Any, collection: str, *, backend: str, batch_size: int = 512) -> None:
        self._client = client
        self._name = collection
        self._backend = backend
        self._batch = batch_size
        self._lock = threading.RLock()
        self._dim: int | None = None
        try:
            if client.collection_exists(collection):
                info = client.get_collection(collection)
                vectors = info.config.params.vectors
                self._dim = int(vectors.size) if hasattr(vectors, "size") else None
        except Exception as exc:
            raise StoreError(f"cannot open Qdrant collection {collection!r}: {exc}") from exc

    @classmethod
    def local(cls, path: str | Path, collection: str, *, batch_size: int = 512) -> QdrantStore:
        """qdrant-client local mode persisting under ``path`` (one process at a time)."""
        try:
            from qdrant_client import QdrantClient
        except ImportError as exc:
            raise StoreError("qdrant-client is not installed", hint="pip install 'agentrag[qdrant]'") from exc
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError as exc:  # the folder is locked by another client
            raise StoreError(f"cannot open Qdrant folder {path}: {exc}") from exc
        return cls(client, collection, backend="qdrant", batch_size=batch_size)

    @classmethod
    def server(
        cls,
        url: str,
        collection: str,
        *,
        api_key: str | None = None,
        batch_size: int = 512,
        timeout_s: float = 30.0,
    ) -> QdrantStore:
        """A Qdrant server at ``url`` (REST, e.g. ``http://127.0.0.1:6333``)."""
        try:
            from qdrant_client import QdrantClient
        except ImportError as exc:
            raise StoreError("qdrant-client is not installed", hint="pip install 'agentrag[qdrant]'") from exc
        client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s), prefer_grpc=False)
        try:
            client.get_collections()
        except Exception as exc:
            raise StoreError(
                f"cannot reach the Qdrant server at {url}: {exc}",
                hint="check [kb.store] url and that the server is running",
            ) from exc
        return cls(client, collection, backend="qdrant-http", batch_size=batch_size)

    @property
    def backend(self) -> str:
        """``qdrant`` (local mode) or ``qdrant-http``."""
        return self._backend

    def _ensure_collection(self, dim: int) -> None:
        if self._dim is not None:
            check_dim(dim, self._dim)
            return
        from qdrant_client import models

        if not self._client.collection_exists(self._name):
            self._client.create_collection(
                self._name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
            )
        self._dim = dim

    def _exists(self) -> bool:
        return self._dim is not None or bool(self._client.collection_exists(self._name))

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        from qdrant_client import models

        matrix = as_matrix(records)
        with self._lock:
            self._ensure_collection(matrix.shape[1])
            for start in range(0, len(records), self._batch):
                part = records[start : start + self._batch]
                points = [
                    models.PointStruct(
                        id=point_id(r.id),
                        vector=matrix[start + i].tolist(),
                        payload={**r.metadata, _ID_KEY: r.id, _TEXT_KEY: r.text},
                    )
                    for i, r in enumerate(part)
                ]
                self._client.upsert(self._name, points=points, wait=True)

    @staticmethod
    def _record(point: Any, with_vectors: bool) -> VectorRecord:
        payload = dict(point.payload or {})
        rid = payload.pop(_ID_KEY, str(point.id))
        text = payload.pop(_TEXT_KEY, "")
        vec = (
            np.asarray(point.vector, dtype=np.float32) if with_vectors and point.vector is not None else None
        )
        return VectorRecord(id=rid, vector=vec, text=text, metadata=payload)

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[VectorRecord]:
        if not ids:
            return []
        with self._lock:
            if not self._exists():
                return []
            found: dict[str, VectorRecord] = {}
            for start in range(0, len(ids), self._batch):
                points = self._client.retrieve(
                    self._name,
                    ids=[point_id(i) for i in ids[start : start + self._batch]],
                    with_payload=True,
                    with_vectors=with_vectors,
                )
                for p in points:
                    rec = self._record(p, with_vectors)
                    found[rec.id] = rec
        return [found[i] for i in ids if i in found]

    def delete(self, ids: Sequence[str]) -> None:
        from qdrant_client import models

        with self._lock:
            if not ids or not self._exists():
                return
            for start in range(0, len(ids), self._batch):
                part = [point_id(i) for i in ids[start : start + self._batch]]
                self._client.delete(self._name, points_selector=models.PointIdsList(points=part), wait=True)

    def search(self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None) -> list[StoreHit]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            if k <= 0 or not self._exists():
                return []
            if self._dim is not None:
                check_dim(query.shape[0], self._dim)
            res = self._client.query_points(
                self._name,
                query=query.tolist(),
                limit=k,
                query_filter=to_qdrant_filter(filters) if filters is not None else None,
                with_payload=True,
            )
        hits = []
        for p in res.points:
            rec = self._record(p, False)
            hits.append(StoreHit(id=rec.id, score=float(p.score), text=rec.text, metadata=rec.metadata))
        return hits

    def candidates(
        self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None
    ) -> list[tuple[str, float]]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            if k <= 0 or not self._exists():
                return []
            if self._dim is not None:
                check_dim(query.shape[0], self._dim)
            # Only the payload key holding our id (Qdrant point ids are UUIDs derived from it).
            res = self._client.query_points(
                self._name,
                query=query.tolist(),
                limit=k,
                query_filter=to_qdrant_filter(filters) if filters is not None else None,
                with_payload=[_ID_KEY],
            )
        return [(str((p.payload or {}).get(_ID_KEY, p.id)), float(p.score)) for p in res.points]

    def count(self) -> int:
        with self._lock:
            if not self._exists():
                return 0
            return int(self._client.count(self._name, exact=True).count)

    def ids(self) -> Iterator[str]:
        offset = None
        while True:
            with self._lock:
                if not self._exists():
                    return
                points, offset = self._client.scroll(
                    self._name, limit=_PAGE, offset=offset, with_payload=[_ID_KEY], with_vectors=False
                )
            for p in points:
                yield str((p.payload or {}).get(_ID_KEY, p.id))
            if offset is None:
                return

    def flush(self) -> None:
        # Local mode persists each write before returning; server writes use wait=True.
        return None

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def destroy(self) -> None:
        with self._lock:
            if self._client.collection_exists(self._name):
                self._client.delete_collection(self._name)
            self._dim = None
            self._client.close()
