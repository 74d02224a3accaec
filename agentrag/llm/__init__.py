"""LLM access: one async client over litellm for OpenAI-compatible servers (vLLM by default)."""

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

__all__ = [
    "MISSING_LOGPROB",
    "Completion",
    "LLMClient",
    "Message",
    "TokenDistribution",
    "YesNo",
    "current_usage_scope",
    "parse_json_object",
    "usage_scope",
]
