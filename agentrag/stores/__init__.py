"""Vector stores: the protocol, filters, and the backends (Chroma, exact numpy, Qdrant, LangChain).

Backends import their libraries inside their constructors, so importing this package is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agentrag.errors import ConfigError
from agentrag.stores.base import StoreHit, VectorRecord, VectorStore
from agentrag.stores.filters import And, Eq, Filter, FilterLike, In, Or, Range, to_filter

if TYPE_CHECKING:
    from agentrag.settings import StoreSettings

__all__ = [
    "And",
    "Eq",
    "Filter",
    "FilterLike",
    "In",
    "Or",
    "Range",
    "StoreHit",
    "VectorRecord",
    "VectorStore",
    "open_store",
    "to_filter",
]


def open_store(cfg: StoreSettings, name: str, kb_dir: Path) -> VectorStore:
    """Open (creating if needed) the vector store ``cfg`` describes for knowledge base ``name``.

    Embedded backends keep their files under ``kb_dir``; server backends use the collection
    ``cfg.collection_prefix + name``.

    Example:
        >>> from agentrag.settings import StoreSettings
        >>> store = open_store(StoreSettings(backend="memory"), "docs", Path("/tmp/kb/docs"))
        >>> store.backend
        'memory'
    """
    collection = cfg.collection_prefix + name
    if cfg.backend == "chroma":
        from agentrag.stores.chroma import ChromaStore

        return ChromaStore.persistent(kb_dir / "chroma", collection, batch_size=cfg.batch_size, hnsw=cfg.hnsw)
    if cfg.backend == "chroma-http":
        from agentrag.stores.chroma import ChromaStore

        if not cfg.url:
            raise ConfigError(
                "the chroma-http store needs [kb.store] url", hint="e.g. url = 'http://127.0.0.1:8000'"
            )
        return ChromaStore.http(cfg.url, collection, batch_size=cfg.batch_size, hnsw=cfg.hnsw)
    if cfg.backend == "memory":
        from agentrag.stores.memory import MemoryStore

        return MemoryStore(kb_dir / "vectors.npz")
    if cfg.backend == "qdrant":
        from agentrag.stores.qdrant import QdrantStore

        if cfg.url:
            key = cfg.api_key.get_secret_value() if cfg.api_key else None
            return QdrantStore.server(cfg.url, collection, api_key=key, batch_size=cfg.batch_size)
        return QdrantStore.local(kb_dir / "qdrant", collection, batch_size=cfg.batch_size)
    raise ConfigError(f"unknown store backend {cfg.backend!r}")  # pragma: no cover - Literal-checked
