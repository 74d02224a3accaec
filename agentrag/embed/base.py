"""The embedder protocol and the machinery every embedder shares (cache, batching, prefixes)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from agentrag.errors import EmbeddingError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["CachedEmbedder", "Embedder", "EmbeddingCache", "regex_token_spans"]

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors.

    Implementations must be safe to call from several tasks at once. Vectors are float32,
    shape ``(n, dim)`` for documents and ``(dim,)`` for a query, L2-normalised when the
    embedder says so (``normalized``).
    """

    @property
    def name(self) -> str:
        """Stable identity of the model (and prefixes): vectors from different names don't mix."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    @property
    def normalized(self) -> bool:
        """Whether vectors are unit length (inner product = cosine)."""
        ...

    @property
    def max_tokens(self) -> int:
        """Longest input (in the model's tokens) embedded without truncation."""
        ...

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens in ``text`` (for token-based chunking)."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed documents (blocking)."""
        ...

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """Embed one query (blocking)."""
        ...

    async def aembed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed documents without blocking the event loop."""
        ...

    async def aembed_query(self, text: str) -> NDArray[np.float32]:
        """Embed one query without blocking the event loop."""
        ...


_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def regex_token_spans(text: str) -> list[tuple[int, int]]:
    """Word/punctuation spans: an approximation of subword tokens when no tokenizer is local."""
    return [m.span() for m in _TOKEN_RE.finditer(text)]


class EmbeddingCache:
    """Vectors on disk, keyed by (embedder name, sha256 of the text).

    SQLite in WAL mode: safe for several processes (a killed ingest and its rerun), durable
    per batch, and a cache miss costs one indexed lookup.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, key BLOB, vec BLOB, PRIMARY KEY (model, key))"
        )
        self._conn.commit()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> bytes:
        """Cache key of a text."""
        return hashlib.sha256(text.encode("utf-8")).digest()

    def get_many(self, model: str, keys: Sequence[bytes], dim: int) -> dict[bytes, NDArray[np.float32]]:
        """Vectors found for ``keys`` (missing keys are absent from the result)."""
        found: dict[bytes, NDArray[np.float32]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = list(keys[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT key, vec FROM vectors WHERE model = ? AND key IN ({marks})",
                    [model, *part],
                ).fetchall()
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.shape[0] == dim:
                        found[bytes(key)] = vec
        self.hits += len(found)
        self.misses += len(set(keys)) - len(found)
        return found

    def put_many(self, model: str, items: Sequence[tuple[bytes, NDArray[np.float32]]]) -> None:
        """Store vectors (replacing any with the same key)."""
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vectors (model, key, vec) VALUES (?, ?, ?)",
                [(model, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )
            self._conn.commit()

    def count(self, model: str | None = None) -> int:
        """Vectors stored (for one model, or all)."""
        with self._lock:
            if model is None:
                return int(self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
            return int(
                self._conn.execute("SELECT COUNT(*) FROM vectors WHERE model = ?", [model]).fetchone()[0]
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()


class CachedEmbedder(ABC):
    """Base for embedders: prefixes, the disk cache, de-duplication and async offloading.

    Subclasses implement :meth:`_embed_batch` (raw texts -> vectors) and the model facts.
    """

    def __init__(
        self,
        *,
        cache_path: Path | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        batch_size: int = 64,
    ) -> None:
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.batch_size = batch_size
        self._cache_path = cache_path
        self._cache: EmbeddingCache | None = None
        self._cache_lock = threading.Lock()

    # -- facts a subclass provides
    @property
    @abstractmethod
    def model_id(self) -> str:
        """Identity of the underlying model."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Vector dimension."""

    @property
    @abstractmethod
    def normalized(self) -> bool:
        """Whether vectors are unit length."""

    @property
    @abstractmethod
    def max_tokens(self) -> int:
        """Longest input in model tokens."""

    @abstractmethod
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens."""

    @abstractmethod
    def _embed_batch(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed texts (already prefixed), returning ``(len(texts), dim)`` float32."""

    # -- shared behaviour
    @property
    def name(self) -> str:
        """Model identity plus prefixes (a prefix changes every vector)."""
        extra = ""
        if self.query_prefix or self.document_prefix:
            extra = "|q=" + self.query_prefix + "|d=" + self.document_prefix
        return self.model_id + extra

    @property
    def cache_name(self) -> str:
        """Key of this embedder's vectors in the disk cache (``name`` unless a runtime differs)."""
        return self.name

    @property
    def cache(self) -> EmbeddingCache | None:
        """The disk cache, opened on first use (None when caching is off)."""
        if self._cache_path is None:
            return None
        with self._cache_lock:
            if self._cache is None:
                self._cache = EmbeddingCache(self._cache_path)
            return self._cache

    def _embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        cache = self.cache
        if cache is None:
            return self._embed_unique(list(texts))
        keys = [EmbeddingCache.key(t) for t in texts]
        found = cache.get_many(self.cache_name, keys, self.dim)
        todo: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found and key not in todo:
                todo[key] = text
        if todo:
            fresh = self._embed_unique(list(todo.values()))
            pairs = list(zip(todo.keys(), fresh, strict=True))
            cache.put_many(self.cache_name, pairs)
            found.update(pairs)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _embed_unique(self, texts: list[str]) -> NDArray[np.float32]:
        # Sort by length so each batch pads to a similar length (padding is wasted compute:
        # one long text in a batch of short ones makes the whole batch long), then restore order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        vectors = self._embed_sorted([texts[i] for i in order]).astype(np.float32, copy=False)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result

    def _embed_sorted(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed texts sorted by length, one ``batch_size`` slice per :meth:`_embed_batch` call.

        An embedder that batches (and overlaps batches) itself overrides this to take them all.
        """
        return np.concatenate(
            [self._embed_batch(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        )

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed documents (document prefix applied; cached by prefixed text)."""
        if isinstance(texts, str):
            raise EmbeddingError(
                "embed_documents takes a list of texts, not one string",
                hint="use embed_query for a single text",
            )
        return self._embed([self.document_prefix + t for t in texts])

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """Embed one query (query prefix applied)."""
        vector: NDArray[np.float32] = self._embed([self.query_prefix + text])[0]
        return vector

    async def aembed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed documents in a worker thread (the model is CPU-bound)."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> NDArray[np.float32]:
        """Embed one query in a worker thread."""
        return await asyncio.to_thread(self.embed_query, text)
