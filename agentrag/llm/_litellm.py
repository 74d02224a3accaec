"""Lazy litellm import and the translation of its exceptions into our error tree."""

from __future__ import annotations

import logging
import threading
from types import ModuleType
from typing import Any

from agentrag import _offline
from agentrag.errors import (
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMServerError,
    LLMTimeoutError,
    LLMUnsupportedError,
)

_module: ModuleType | None = None
_priced: set[str] = set()
_priced_lock = threading.Lock()

_CONNECT_MARKERS = (
    "cannot connect",
    "connection refused",
    "connect call failed",
    "connection reset",
    "server disconnected",
    "name or service not known",
    "connecterror",
    "remoteprotocolerror",
    "all connection attempts failed",
)
_UNSUPPORTED_MARKERS = ("response_format", "json_schema", "guided", "structured output", "logprobs")


def litellm() -> ModuleType:
    """Import litellm once, quietly and offline (its import costs ~4 s of CPU)."""
    global _module  # noqa: PLW0603 - import once, on first use
    if _module is None:
        _offline.apply()  # before import: the cost-map fetch happens at import time
        import litellm as mod

        mod.suppress_debug_info = True
        mod.drop_params = False
        # httpx transport: its pooled clients close cleanly; the aiohttp one leaves
        # "Unclosed connector" warnings at exit.
        mod.disable_aiohttp_transport = True
        # litellm logs every failure at WARNING/ERROR before we get to handle it; our own
        # logger reports what matters (with retry counts), so keep litellm's quiet.
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _module = mod
    return _module


def price_self_hosted(model: str) -> None:
    """Tell litellm that a self-hosted model (``hosted_vllm/<name>``) costs nothing, once per model.

    litellm prices every response it returns. For a model its price map does not know (any
    model a local vLLM serves under its own name) each pricing walks litellm's fallback rules,
    twice per call: ~0.6 ms of CPU per scoring call and ~1 ms per streamed answer on a 2-core
    box (measured against bench/_fake_openai.py), on the event loop's critical path when a
    reranker sends 20 calls at once. A zero price changes nothing of ours (usage counts
    tokens, not money); a model litellm already prices is left alone.
    """
    if model in _priced:
        return
    mod = litellm()
    with _priced_lock:
        if model in _priced:
            return
        if model not in mod.model_cost:
            mod.register_model(
                {
                    model: {
                        "input_cost_per_token": 0.0,
                        "output_cost_per_token": 0.0,
                        "litellm_provider": "hosted_vllm",
                        "mode": "chat",
                    }
                }
            )
        _priced.add(model)


def translate(exc: BaseException, *, endpoint: str, model: str) -> LLMError:
    """Map an exception raised by litellm (or the transport below it) to our error tree."""
    if isinstance(exc, LLMError):
        return exc
    name = type(exc).__name__
    text = str(exc)
    low = text.lower()
    status = getattr(exc, "status_code", None)
    where = {"endpoint": endpoint, "model": model}
    short = text.splitlines()[0][:400] if text else name

    if "timeout" in name.lower() or isinstance(exc, TimeoutError):
        return LLMTimeoutError(f"{model} at {endpoint} did not answer in time ({short})", **where)
    if _is_connect_failure(exc) or any(m in low for m in _CONNECT_MARKERS):
        return LLMConnectionError(f"cannot reach {endpoint} ({short})", **where)
    if status == 429 or "ratelimit" in name.lower():
        return LLMRateLimitError(f"{endpoint} is rate limiting ({short})", **where)
    if isinstance(status, int) and status >= 500:
        return LLMServerError(f"{endpoint} failed with HTTP {status} ({short})", status=status, **where)
    if isinstance(status, int) and 400 <= status < 500:
        if any(m in low for m in _UNSUPPORTED_MARKERS):
            return LLMUnsupportedError(
                f"{endpoint} cannot serve this request for {model} ({short})", status=status, **where
            )
        hint = None
        if status == 404 or "does not exist" in low or "not found" in low:
            hint = "the model name is not served there; `agentrag models status` lists what is"
        elif "maximum context length" in low or "too long" in low or "context window" in low:
            hint = "the prompt is longer than the model's context; lower top-k or the token budget"
        return LLMBadRequestError(
            f"{endpoint} rejected the request for {model}: HTTP {status} ({short})",
            hint=hint,
            status=status,
            **where,
        )
    return LLMError(f"calling {model} at {endpoint} failed: {name}: {short}", **where)


def _is_connect_failure(exc: BaseException) -> bool:
    # litellm wraps transport errors (httpx.ConnectError, ...) in its own classes with a
    # status of 500; the original sits somewhere down the cause/context chain.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__.lower()
        if isinstance(current, ConnectionError) or "connecterror" in name or "connectionerror" in name:
            return True
        current = current.__cause__ or current.__context__
    return False


def usage_of(response: Any) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) of a litellm response, 0 where absent."""
    usage = getattr(response, "usage", None)
    if usage is None:
        return 0, 0
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)
