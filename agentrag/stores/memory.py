"""An exact (brute-force) in-memory store on numpy, optionally saved to one file.

Exact search makes it the reference the approximate stores are compared against, and a fast
store for tests and small corpora. With a ``path`` it loads on open and :meth:`flush` writes
one ``.npz`` atomically (temp file + rename): a kill leaves the previous flush intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrag.stores.base import StoreHit, VectorRecord, as_matrix, check_dim

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.stores.filters import Filter

__all__ = ["MemoryStore"]


class MemoryStore:
    """Exact cosine search over a numpy matrix.

    Args:
        path: File to persist to (``.npz``); ``None`` keeps everything in memory only.

    Example:
        >>> import numpy as np
        >>> store = MemoryStore()
        >>> store.upsert([VectorRecord(id="a", vector=np.array([1.0, 0.0], dtype=np.float32))])
        >>> [h.id for h in store.search(np.array([1.0, 0.1], dtype=np.float32), k=1)]
        ['a']
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._texts: list[str] = []
        self._metas: list[dict[str, Any]] = []
        self._matrix: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self._dirty = False
        if self.path is not None and self.path.exists():
            self._load(self.path)

    @property
    def backend(self) -> str:
        """``memory``."""
        return "memory"

    def _load(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            self._matrix = np.array(data["vectors"], dtype=np.float32)
            rows = json.loads(bytes(data["rows"]).decode("utf-8"))
        self._ids = [r[0] for r in rows]
        self._texts = [r[1] for r in rows]
        self._metas = [r[2] for r in rows]
        self._row = {rid: i for i, rid in enumerate(self._ids)}

    def _grow(self, extra: int, dim: int) -> None:
        n = len(self._ids)
        if self._matrix.shape[1] == 0:
            self._matrix = np.zeros((max(16, extra), dim), dtype=np.float32)
        elif n + extra > self._matrix.shape[0]:
            bigger = np.zeros((max(2 * self._matrix.shape[0], n + extra), dim), dtype=np.float32)
            bigger[:n] = self._matrix[:n]
            self._matrix = bigger

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        matrix = as_matrix(records)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.maximum(norms, 1e-12)
        with self._lock:
            if self._matrix.shape[1]:
                check_dim(matrix.shape[1], self._matrix.shape[1])
            self._grow(len(records), matrix.shape[1])
            for rec, vec in zip(records, matrix, strict=True):
                row = self._row.get(rec.id)
                if row is None:
                    row = len(self._ids)
                    self._row[rec.id] = row
                    self._ids.append(rec.id)
                    self._texts.append(rec.text)
                    self._metas.append(dict(rec.metadata))
                else:
                    self._texts[row] = rec.text
                    self._metas[row] = dict(rec.metadata)
                self._matrix[row] = vec
            self._dirty = True

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[VectorRecord]:
        with self._lock:
            out = []
            for rid in ids:
                row = self._row.get(rid)
                if row is not None:
                    vec = self._matrix[row].copy() if with_vectors else None
                    out.append(
                        VectorRecord(id=rid, vector=vec, text=self._texts[row], metadata=self._metas[row])
                    )
            return out

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            for rid in ids:
                row = self._row.pop(rid, None)
                if row is None:
                    continue
                last = len(self._ids) - 1
                if row != last:
                    # Move the last row into the hole: O(1) per delete, order is not a contract.
                    moved = self._ids[last]
                    self._ids[row], self._texts[row], self._metas[row] = (
                        moved,
                        self._texts[last],
                        self._metas[last],
                    )
                    self._matrix[row] = self._matrix[last]
                    self._row[moved] = row
                self._ids.pop()
                self._texts.pop()
                self._metas.pop()
                self._dirty = True

    def _top(self, vector: NDArray[np.float32], k: int, filters: Filter | None) -> list[tuple[int, float]]:
        """Rows and scores of the exact top ``k`` (call with the lock held)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        n = len(self._ids)
        if n == 0 or k <= 0:
            return []
        check_dim(query.shape[0], self._matrix.shape[1])
        scores = self._matrix[:n] @ query
        if filters is not None:
            mask = np.fromiter((filters.matches(m) for m in self._metas), dtype=bool, count=n)
            scores = np.where(mask, scores, -np.inf)
        k = min(k, n)
        top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def search(self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None) -> list[StoreHit]:
        with self._lock:
            return [
                StoreHit(id=self._ids[i], score=s, text=self._texts[i], metadata=self._metas[i])
                for i, s in self._top(vector, k, filters)
            ]

    def candidates(
        self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None
    ) -> list[tuple[str, float]]:
        with self._lock:
            return [(self._ids[i], s) for i, s in self._top(vector, k, filters)]

    def count(self) -> int:
        with self._lock:
            return len(self._ids)

    def ids(self) -> Iterator[str]:
        with self._lock:
            snapshot = list(self._ids)
        yield from snapshot

    def flush(self) -> None:
        if self.path is None:
            return
        with self._lock:
            if not self._dirty and self.path.exists():
                return
            n = len(self._ids)
            rows = json.dumps(list(zip(self._ids, self._texts, self._metas, strict=True)), ensure_ascii=False)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".memory-", suffix=".npz")
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.savez(
                        handle,
                        vectors=self._matrix[:n],
                        rows=np.frombuffer(rows.encode("utf-8"), dtype=np.uint8),
                    )
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._dirty = False

    def close(self) -> None:
        self.flush()

    def destroy(self) -> None:
        with self._lock:
            self._ids, self._texts, self._metas, self._row = [], [], [], {}
            self._matrix = np.zeros((0, 0), dtype=np.float32)
            self._dirty = False
            if self.path is not None:
                self.path.unlink(missing_ok=True)
