"""The vector store protocol every backend implements, and the records it moves.

Stores are blocking (the embedded engines are); :class:`~agentrag.kb.KnowledgeBase` calls them
from worker threads, so every implementation must be safe to call from several threads at once.
Scores are similarities, higher = closer: cosine similarity for every backend here (all
collections are created with the cosine metric), which is what score normalisation in hybrid
fusion assumes (theoretical range [-1, 1]).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from agentrag.errors import StoreError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.stores.filters import Filter

__all__ = ["StoreHit", "VectorRecord", "VectorStore", "as_matrix", "check_dim"]


@dataclass(frozen=True, kw_only=True, slots=True)
class VectorRecord:
    """One stored vector with its text and metadata."""

    id: str
    """Chunk id (unique in the store)."""

    vector: NDArray[np.float32] | None = None
    """The embedding; ``None`` when read back without vectors."""

    text: str = ""
    """The chunk text (stores keep it so they stay usable on their own)."""

    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Flat scalar metadata the store can filter on."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StoreHit:
    """One search result."""

    id: str
    """Chunk id."""

    score: float
    """Similarity to the query (cosine; higher is closer)."""

    text: str = ""
    """The stored text."""

    metadata: Mapping[str, Any] = field(default_factory=dict)
    """The stored metadata."""


@runtime_checkable
class VectorStore(Protocol):
    """A persistent collection of vectors with metadata filters.

    Contract (checked by ``tests/stores/test_conformance.py`` for every backend):

    - ``upsert`` is idempotent: the same id twice leaves one record (the latest).
    - ``get`` returns records in the order of the ids asked for; unknown ids are left out.
    - ``delete`` ignores unknown ids.
    - ``search`` returns at most ``k`` hits, best first, only ones passing ``filters``.
    - ``candidates`` returns the same ids and scores as ``search`` (an approximate index may
      differ only by its own approximation), without text or metadata: the cheap first stage
      of hybrid search, whose final ``k`` are read afterwards.
    - Data written and :meth:`flush`-ed survives :meth:`close` and a reopen (and a kill).
    """

    @property
    def backend(self) -> str:
        """Short backend name (``chroma``, ``memory``, ...)."""
        ...

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        """Insert or replace records (every one must carry a vector)."""
        ...

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[VectorRecord]:
        """Records for ``ids`` that exist, in that order."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove records (unknown ids are ignored)."""
        ...

    def search(self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None) -> list[StoreHit]:
        """The ``k`` records most similar to ``vector`` that pass ``filters``."""
        ...

    def candidates(
        self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None
    ) -> list[tuple[str, float]]:
        """``(id, similarity)`` of the ``k`` records most similar to ``vector``, best first.

        Nothing else is read (no text, no metadata): at a million records, reading them for
        every candidate costs more than the nearest-neighbour search itself.
        """
        ...

    def count(self) -> int:
        """Records stored."""
        ...

    def ids(self) -> Iterator[str]:
        """Every stored id (for reconciliation against the manifest)."""
        ...

    def flush(self) -> None:
        """Make everything written so far durable."""
        ...

    def close(self) -> None:
        """Release files, connections and locks."""
        ...

    def destroy(self) -> None:
        """Delete the collection and everything in it (the store is unusable afterwards)."""
        ...


def as_matrix(records: Sequence[VectorRecord], dim: int | None = None) -> NDArray[np.float32]:
    """The records' vectors as one float32 matrix (raises if one is missing or of a wrong size)."""
    if not records:
        return np.zeros((0, dim or 0), dtype=np.float32)
    rows = []
    for rec in records:
        if rec.vector is None:
            raise StoreError(f"record {rec.id} has no vector", hint="embed texts before writing them")
        rows.append(np.asarray(rec.vector, dtype=np.float32).reshape(-1))
    matrix = np.stack(rows)
    if dim is not None:
        check_dim(matrix.shape[1], dim)
    return matrix


def check_dim(got: int, want: int) -> None:
    """Raise a :class:`StoreError` when a vector's size is not the collection's."""
    if got != want:
        raise StoreError(
            f"vector dimension {got} does not match the collection's {want}",
            hint="a knowledge base keeps one embedding model; use a new KB name for another model",
        )
