"""Rerankers: score and reorder retrieved passages for a query.

- :class:`PrismReranker`: LLM evidence reranker (Prism format) over vLLM: P(yes) from the first
  token, then a contribution and an evidence rewrite for what is kept.
- :class:`CrossEncoderReranker`: a local sentence-transformers cross-encoder.
- :class:`VLLMRerankReranker`: a cross-encoder served by vLLM (``/v1/rerank``).
- :class:`EmbeddingPRFReranker`: dense pseudo-relevance feedback with any embedder (offline).

All implement the :class:`Reranker` protocol and return a :class:`RerankResult`.
"""

from agentrag.rerank.base import BaseReranker, Reranker, RerankResult, reranker_relevance, select
from agentrag.rerank.cross_encoder import CrossEncoderReranker, VLLMRerankReranker
from agentrag.rerank.embedding import EmbeddingPRFReranker, prf_scores
from agentrag.rerank.evidence import PrismOutput, locate_span, parse_prism_output
from agentrag.rerank.factory import reranker_from_settings
from agentrag.rerank.prism import PrismConfig, PrismExample, PrismReranker

__all__ = [
    "BaseReranker",
    "CrossEncoderReranker",
    "EmbeddingPRFReranker",
    "PrismConfig",
    "PrismExample",
    "PrismOutput",
    "PrismReranker",
    "RerankResult",
    "Reranker",
    "VLLMRerankReranker",
    "locate_span",
    "parse_prism_output",
    "prf_scores",
    "reranker_from_settings",
    "reranker_relevance",
    "select",
]
