"""An adapter that puts any langchain-core ``VectorStore`` behind our protocol.

LangChain stores embed texts themselves through an ``Embeddings`` object. The adapter hands the
wrapped store a :class:`HandoffEmbeddings` instead, which returns the vectors agentrag already
computed for exactly those texts (and refuses to invent any), so the store holds the same
vectors as every other backend. Build the store through a factory that receives it::

    from langchain_core.vectorstores import InMemoryVectorStore
    store = LangChainStore(lambda emb: InMemoryVectorStore(emb))

What LangChain's base class does not standardise is passed in as :class:`LangChainHooks`
(listing ids, reading vectors back, persisting, a native filter). Without a native filter,
filters are applied to over-fetched results in Python, widening the fetch until ``k`` pass.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from langchain_core.embeddings import Embeddings

from agentrag.errors import StoreError
from agentrag.stores.base import StoreHit, VectorRecord, as_matrix, check_dim

if TYPE_CHECKING:
    from langchain_core.vectorstores import VectorStore as LCVectorStore
    from numpy.typing import NDArray

    from agentrag.stores.filters import Filter

__all__ = ["HandoffEmbeddings", "LangChainHooks", "LangChainStore"]


class HandoffEmbeddings(Embeddings):
    """Embeddings that only return vectors handed to it beforehand (never computes one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[str, deque[list[float]]] = defaultdict(deque)
        self._queries: dict[str, list[float]] = {}
        self._seq = itertools.count()

    def stage_documents(self, texts: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Queue vectors to be returned for these texts by the next ``embed_documents``."""
        with self._lock:
            for text, vec in zip(texts, vectors, strict=True):
                self._docs[text].append([float(x) for x in vec])

    def unstage(self, texts: Sequence[str]) -> None:
        """Forget vectors staged for texts that were not consumed (after a failed write)."""
        with self._lock:
            for text in texts:
                self._docs.pop(text, None)

    def stage_query(self, vector: NDArray[np.float32]) -> str:
        """Register a query vector; returns the token to pass as the query text."""
        token = f"\x00agentrag-query-{next(self._seq)}"
        with self._lock:
            self._queries[token] = [float(x) for x in np.asarray(vector).reshape(-1)]
        return token

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            out = []
            for text in texts:
                queue = self._docs.get(text)
                if not queue:
                    raise StoreError(
                        "the wrapped LangChain store asked for a vector agentrag did not hand over",
                        hint="write through LangChainStore.upsert, not the wrapped store directly",
                    )
                out.append(queue.popleft())
                if not queue:
                    del self._docs[text]
            return out

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            vector = self._queries.pop(text, None)
        if vector is None:
            raise StoreError("the wrapped LangChain store embedded a query agentrag did not hand over")
        return vector


@dataclass(frozen=True, kw_only=True)
class LangChainHooks:
    """What the adapter needs that LangChain's ``VectorStore`` base class does not offer."""

    list_ids: Callable[[LCVectorStore], Iterable[str]] | None = None
    """Every id in the store (``count``, ``ids``). Without it those raise :class:`StoreError`."""

    get_vectors: Callable[[LCVectorStore, Sequence[str]], dict[str, Sequence[float]]] | None = None
    """Stored vectors by id (``get(with_vectors=True)``); without it vectors come back ``None``."""

    persist: Callable[[LCVectorStore], None] | None = None
    """Make writes durable (``flush``/``close``)."""

    native_filter: Callable[[Filter], Any] | None = None
    """Translate a filter to the store's own ``filter=`` argument (else filters run in Python)."""

    score: Literal["similarity", "distance"] = "similarity"
    """What the store's ``*_with_score`` methods return: cosine similarity, or cosine distance."""


class LangChainStore:
    """Any langchain-core ``VectorStore`` as a :class:`~agentrag.stores.base.VectorStore`.

    Args:
        factory: Builds the LangChain store from the :class:`HandoffEmbeddings` it must use.
        hooks: Store-specific extras (see :class:`LangChainHooks`).
        overfetch: With Python-side filtering, fetch ``k * overfetch`` first and widen from there.

    Example:
        >>> store = LangChainStore.in_memory()
        >>> store.backend
        'langchain'
    """

    def __init__(
        self,
        factory: Callable[[HandoffEmbeddings], LCVectorStore],
        *,
        hooks: LangChainHooks | None = None,
        overfetch: int = 4,
    ) -> None:
        self.embeddings = HandoffEmbeddings()
        self.store = factory(self.embeddings)
        self.hooks = hooks or LangChainHooks()
        self.overfetch = max(1, overfetch)
        self._lock = threading.RLock()
        self._dim: int | None = None

    @classmethod
    def in_memory(cls, path: str | Path | None = None) -> LangChainStore:
        """LangChain's ``InMemoryVectorStore``, saved as JSON at ``path`` (atomically) if given."""
        from langchain_core.vectorstores import InMemoryVectorStore

        file = Path(path) if path is not None else None

        def factory(emb: HandoffEmbeddings) -> LCVectorStore:
            if file is not None and file.exists():
                return InMemoryVectorStore.load(str(file), emb)
            return InMemoryVectorStore(emb)

        def persist(store: Any) -> None:
            if file is None:
                return
            tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
            store.dump(str(tmp))
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, file)

        hooks = LangChainHooks(
            list_ids=lambda s: list(s.store),  # type: ignore[attr-defined]
            get_vectors=lambda s, ids: {i: s.store[i]["vector"] for i in ids if i in s.store},  # type: ignore[attr-defined]
            persist=persist,
            native_filter=lambda f: lambda doc: f.matches(doc.metadata),
        )
        return cls(factory, hooks=hooks)

    @property
    def backend(self) -> str:
        """``langchain``."""
        return "langchain"

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        matrix = as_matrix(records)
        with self._lock:
            if self._dim is not None:
                check_dim(matrix.shape[1], self._dim)
            self._dim = matrix.shape[1]
            texts = [r.text for r in records]
            ids = [r.id for r in records]
            # Replace, not add: some LangChain stores append a second copy for a known id.
            self.store.delete(ids=ids)
            self.embeddings.stage_documents(texts, matrix)
            try:
                self.store.add_texts(texts, metadatas=[dict(r.metadata) for r in records], ids=ids)
            finally:
                self.embeddings.unstage(texts)

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[VectorRecord]:
        with self._lock:
            docs = {d.id: d for d in self.store.get_by_ids(list(ids)) if d.id is not None}
            vectors: dict[str, Sequence[float]] = {}
            if with_vectors and self.hooks.get_vectors is not None:
                vectors = self.hooks.get_vectors(self.store, [i for i in ids if i in docs])
        out = []
        for rid in ids:
            doc = docs.get(rid)
            if doc is None:
                continue
            vec = vectors.get(rid)
            out.append(
                VectorRecord(
                    id=rid,
                    vector=np.asarray(vec, dtype=np.float32) if vec is not None else None,
                    text=doc.page_content,
                    metadata=dict(doc.metadata),
                )
            )
        return out

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            with self._lock:
                self.store.delete(ids=list(ids))

    def _raw_search(self, vector: NDArray[np.float32], k: int, native: Any) -> list[tuple[Any, float]]:
        extra = {"filter": native} if native is not None else {}
        by_vector = getattr(self.store, "similarity_search_with_score_by_vector", None)
        if by_vector is not None:
            return list(by_vector([float(x) for x in vector], k=k, **extra))
        token = self.embeddings.stage_query(vector)
        return list(self.store.similarity_search_with_score(token, k=k, **extra))

    def search(self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None) -> list[StoreHit]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if k <= 0:
            return []
        with self._lock:
            if self._dim is not None:
                check_dim(query.shape[0], self._dim)
            native = None
            if filters is not None and self.hooks.native_filter is not None:
                native = self.hooks.native_filter(filters)
            fetch = k if filters is None or native is not None else k * self.overfetch
            while True:
                raw = self._raw_search(query, fetch, native)
                kept = [
                    (doc, s)
                    for doc, s in raw
                    if filters is None or native is not None or filters.matches(doc.metadata)
                ]
                if len(kept) >= k or len(raw) < fetch:
                    break
                fetch *= 4
        flip = self.hooks.score == "distance"
        return [
            StoreHit(
                id=str(doc.id),
                score=1.0 - float(s) if flip else float(s),
                text=doc.page_content,
                metadata=dict(doc.metadata),
            )
            for doc, s in kept[:k]
        ]

    def candidates(
        self, vector: NDArray[np.float32], k: int, *, filters: Filter | None = None
    ) -> list[tuple[str, float]]:
        # LangChain's VectorStore API has no ids-only query: its search already returns the
        # documents, so this is the same call with text and metadata dropped.
        return [(h.id, h.score) for h in self.search(vector, k, filters=filters)]

    def _all_ids(self) -> list[str]:
        if self.hooks.list_ids is None:
            raise StoreError(
                "this LangChain store cannot list its ids",
                hint="pass LangChainHooks(list_ids=...) to LangChainStore",
            )
        with self._lock:
            return list(self.hooks.list_ids(self.store))

    def count(self) -> int:
        return len(self._all_ids())

    def ids(self) -> Iterator[str]:
        yield from self._all_ids()

    def flush(self) -> None:
        if self.hooks.persist is not None:
            with self._lock:
                self.hooks.persist(self.store)

    def close(self) -> None:
        self.flush()

    def destroy(self) -> None:
        with self._lock:
            ids = self._all_ids() if self.hooks.list_ids is not None else []
            if ids:
                self.store.delete(ids=ids)
            self.flush()
