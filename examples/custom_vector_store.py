"""A vector store of your own: brute-force numpy search behind the ``VectorStore`` protocol.

``NumpyDirStore`` keeps every vector in one float32 matrix and persists to a folder (``vectors.npy``
plus ``records.json``, each replaced atomically on :meth:`~NumpyDirStore.flush`). Anything with
the protocol's methods plugs into a :class:`~agentrag.KnowledgeBase` through ``store=``; the
test suite runs this class through the same conformance tests as the shipped backends
(``tests/examples/test_custom_store_conformance.py``).

Usage::

    python examples/custom_vector_store.py [QUERY]

Ingests ``examples/docs`` into a knowledge base under ``$AGENTRAG_DATA_DIR`` (default: a fresh
temporary folder) whose vectors live in this store, then prints hybrid search hits (no LLM).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrag import KnowledgeBase, Settings
from agentrag.stores import StoreHit, VectorRecord, VectorStore
from agentrag.stores.base import as_matrix, check_dim

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.stores import Filter

DOCS = Path(__file__).resolve().parent / "docs"
QUERY = "what does the warranty cover"


class NumpyDirStore:
    """Exact cosine search over a numpy matrix, saved to a folder.

    Args:
        directory: Where ``vectors.npy`` and ``records.json`` live (created if missing).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # KnowledgeBase calls stores from worker threads: one lock guards all the state.
        self._lock = threading.RLock()
        self._records: dict[str, tuple[str, dict[str, Any]]] = {}
        self._vectors: dict[str, NDArray[np.float32]] = {}
        self._dim: int | None = None
        self._load()

    @property
    def backend(self) -> str:
        """``numpy-dir``."""
        return "numpy-dir"

    # -- persistence -------------------------------------------------------------------------

    def _load(self) -> None:
        meta, vecs = self.directory / "records.json", self.directory / "vectors.npy"
        if not meta.exists():
            return
        rows = json.loads(meta.read_text(encoding="utf-8"))
        matrix = np.load(vecs, allow_pickle=False)
        for (rid, text, metadata), vector in zip(rows, matrix, strict=True):
            self._records[rid] = (text, metadata)
            self._vectors[rid] = vector
        self._dim = int(matrix.shape[1]) if matrix.ndim == 2 and matrix.shape[0] else None

    def _replace(self, name: str, write: Any) -> None:
        # Write a temp file and rename it over the old one: a kill mid-write keeps the last flush.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def flush(self) -> None:
        """Write the records, then the vectors (``records.json`` names what ``vectors.npy`` holds)."""
        with self._lock:
            ids = list(self._records)
            rows = [[rid, *self._records[rid]] for rid in ids]
            matrix = (
                np.stack([self._vectors[rid] for rid in ids])
                if ids
                else np.zeros((0, self._dim or 0), dtype=np.float32)
            )
            # Vectors first: a kill between the two renames leaves old rows over new vectors,
            # which _load rejects loudly (strict zip) rather than mixing data silently.
            self._replace("vectors.npy", lambda fh: np.save(fh, matrix, allow_pickle=False))
            self._replace("records.json", lambda fh: fh.write(json.dumps(rows).encode("utf-8")))

    def close(self) -> None:
        """Nothing to release: files are only open during :meth:`flush`."""

    def destroy(self) -> None:
        """Delete the folder and forget everything."""
        with self._lock:
            self._records.clear()
            self._vectors.clear()
            self._dim = None
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- writes and reads --------------------------------------------------------------------

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        """Insert or replace records; vectors are stored unit-length so a dot product is cosine."""
        if not records:
            return
        matrix = as_matrix(records)  # raises StoreError when a record has no vector
        matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        with self._lock:
            if self._dim is not None:
                check_dim(matrix.shape[1], self._dim)
            self._dim = int(matrix.shape[1])
            for rec, vec in zip(records, matrix, strict=True):
                self._records[rec.id] = (rec.text, dict(rec.metadata))
                self._vectors[rec.id] = vec

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[VectorRecord]:
        """Records for ``ids`` that exist, in that order."""
        with self._lock:
            return [
                VectorRecord(
                    id=rid,
                    vector=self._vectors[rid].copy() if with_vectors else None,
                    text=self._records[rid][0],
                    metadata=dict(self._records[rid][1]),
                )
                for rid in ids
                if rid in self._records
            ]

    def delete(self, ids: Sequence[str]) -> None:
        """Remove records; unknown ids are ignored."""
        with self._lock:
            for rid in ids:
                self._records.pop(rid, None)
                self._vectors.pop(rid, None)

    def search(self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None) -> list[StoreHit]:
        """The ``k`` most similar records passing ``filters``, best first (cosine scores)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        with self._lock:
            if not self._records or k <= 0:
                return []
            assert self._dim is not None
            check_dim(query.shape[0], self._dim)
            ids = [
                rid for rid, (_, meta) in self._records.items() if filters is None or filters.matches(meta)
            ]
            if not ids:
                return []
            scores = np.stack([self._vectors[rid] for rid in ids]) @ query
            # Stable sort: ties keep insertion order, so results are reproducible.
            order = np.argsort(-scores, kind="stable")[:k]
            return [
                StoreHit(
                    id=ids[i],
                    score=float(scores[i]),
                    text=self._records[ids[i]][0],
                    metadata=dict(self._records[ids[i]][1]),
                )
                for i in order
            ]

    def candidates(
        self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None
    ) -> list[tuple[str, float]]:
        """``(id, score)`` of the ``k`` best records: what hybrid search fuses before it reads text."""
        return [(hit.id, hit.score) for hit in self.search(vector, k, filters=filters)]

    def count(self) -> int:
        """Records stored."""
        with self._lock:
            return len(self._records)

    def ids(self) -> Iterator[str]:
        """Every stored id (a snapshot, so callers may write while iterating)."""
        with self._lock:
            return iter(list(self._records))


def main(argv: list[str]) -> int:
    """Ingest ``examples/docs`` into a knowledge base backed by :class:`NumpyDirStore`, then search."""
    query = argv[0] if argv else QUERY
    overrides: dict[str, Any] = {}
    if not os.environ.get("AGENTRAG_DATA_DIR"):
        overrides["data_dir"] = Path(tempfile.mkdtemp(prefix="agentrag-custom-store-"))
    settings = Settings.load(**overrides)
    store = NumpyDirStore(settings.kb_dir("custom-store") / "numpy")
    assert isinstance(store, VectorStore)  # the protocol is runtime-checkable
    with KnowledgeBase.open(settings, "custom-store", store=store) as kb:
        report = kb.ingest([DOCS])
        print(f"store: {kb.store.backend}, {kb.store.count()} vectors in {store.directory}")
        print(f"ingested: {report.added} added, {report.unchanged} unchanged, {report.chunks_added} chunks")
        for mode in ("dense", "hybrid"):
            print(f"{mode}: {query}")
            for hit in kb.search(query, k=3, mode=mode):
                scores = " ".join(f"{key}={val:.3f}" for key, val in hit.scores.as_dict().items())
                print(f"  {hit.score:.3f} {Path(hit.source).name}:{hit.start}-{hit.end} {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
