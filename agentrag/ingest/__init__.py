"""Ingestion: loaders, token chunking with content-hash ids, and the manifest behind the write path.

The write path itself is :class:`agentrag.kb.KnowledgeBase`.
"""

from __future__ import annotations

from agentrag.ingest.chunking import TokenChunker, chunk_id, content_hash, doc_id
from agentrag.ingest.loaders import Document, Skipped, expand_paths, load_file, load_paths

__all__ = [
    "Document",
    "Skipped",
    "TokenChunker",
    "chunk_id",
    "content_hash",
    "doc_id",
    "expand_paths",
    "load_file",
    "load_paths",
]
