"""What the knowledge base reports: ingest reports, progress events, stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentrag.ingest.loaders import Skipped

__all__ = ["MANIFEST", "IngestProgress", "IngestReport", "KBStats", "SearchMode"]

SearchMode = Literal["hybrid", "bm25", "dense"]
MANIFEST = "manifest.sqlite"


class IngestReport(BaseModel):
    """What one ingest (or sync) did."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kb: str
    """Knowledge base name."""

    added: int = 0
    """Documents new to the knowledge base."""

    replaced: int = 0
    """Documents whose content changed (old chunks replaced)."""

    unchanged: int = 0
    """Documents already present with the same content (nothing done)."""

    removed: int = 0
    """Documents removed because their source is gone (sync / prune)."""

    skipped: list[Skipped] = Field(default_factory=list)
    """Files or rows not loaded, with the reason."""

    chunks_added: int = 0
    """Chunks written to the store."""

    chunks_removed: int = 0
    """Chunks deleted from the store."""

    recovered: int = 0
    """Documents rolled back from an interrupted earlier write (re-added by this run if seen)."""

    seconds: float = 0.0
    """Wall time."""

    embed_seconds: float = 0.0
    """Time spent embedding."""

    index_seconds: float = 0.0
    """Time spent rebuilding and saving the BM25 index."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestProgress:
    """A progress snapshot, passed to the ``progress`` callback of :meth:`KnowledgeBase.ingest`."""

    files_done: int
    """Files finished."""

    files_total: int
    """Files to read."""

    bytes_done: int
    """Bytes of input finished (approximate inside a file)."""

    bytes_total: int
    """Bytes of input in all."""

    documents: int
    """Documents seen so far."""

    chunks_embedded: int
    """Chunks embedded so far."""

    embed_seconds: float
    """Time spent embedding so far."""

    current: str
    """The file being read."""


class KBStats(BaseModel):
    """A knowledge base's size and health."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """Knowledge base name."""

    path: str
    """Its folder."""

    store: str
    """Vector store backend."""

    embedder: str
    """Embedding model it was built with."""

    documents: int
    """Committed documents."""

    chunks: int
    """Live chunks (manifest)."""

    store_count: int
    """Vectors in the store (equals ``chunks`` when healthy)."""

    bm25_chunks: int
    """Chunks in the BM25 index (equals ``chunks`` when current)."""

    bm25_current: bool
    """Whether the BM25 index reflects the latest manifest version."""

    unsettled_documents: int
    """Documents left mid-write by an interrupted ingest (repaired by the next writer)."""

    disk_bytes: int
    """Bytes on disk under its folder."""

    roots: list[str] = Field(default_factory=list)
    """Paths that `sync` re-reads."""
