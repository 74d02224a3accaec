"""LLM access: one async client over litellm for OpenAI-compatible servers (vLLM by default).

Every request, litellm's and vLLM's own endpoints' and the remote embedder's, goes through one
shared :class:`~agentrag.llm.transport.Transport` (one pool, one retry policy, one limit per
server, one usage ledger), bounded by the run's deadline (:mod:`agentrag._deadline`).
"""

from agentrag.llm.client import (
    MISSING_LOGPROB,
    Completion,
    LLMClient,
    Message,
    TokenDistribution,
    YesNo,
    current_usage_scope,
    parse_json_object,
    usage_scope,
)
from agentrag.llm.transport import RetryPolicy, Transport, shared_transport

__all__ = [
    "MISSING_LOGPROB",
    "Completion",
    "LLMClient",
    "Message",
    "RetryPolicy",
    "TokenDistribution",
    "Transport",
    "YesNo",
    "current_usage_scope",
    "parse_json_object",
    "shared_transport",
    "usage_scope",
]
