"""Retrieval: the BM25 sidecar (bm25s), hybrid fusion (RRF, convex combination), a LangChain retriever.

Dense search is the vector store's; :meth:`agentrag.kb.KnowledgeBase.asearch` runs both sides
concurrently and fuses them.
"""

from __future__ import annotations

from agentrag.retrieve.bm25 import BM25Index
from agentrag.retrieve.fusion import convex, normalize, rrf

__all__ = ["BM25Index", "convex", "normalize", "rrf"]
