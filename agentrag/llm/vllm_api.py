"""vLLM's own endpoints, beyond the OpenAI API: ``/tokenize``, prompt log-probabilities, ``/v1/rerank``.

litellm speaks the OpenAI API only, so these go straight to the server, through the same shared
:class:`~agentrag.llm.transport.Transport` as :class:`~agentrag.llm.LLMClient` calls: one pool,
the server's concurrency limit, per-call timeouts clamped to the run's deadline, tenacity retries
on retryable failures only, errors translated into our tree, and answered model calls counted on
the caller's meter and the run's (:func:`~agentrag.llm.usage_scope`). ``/tokenize`` runs no model
and is not counted as a call.

Example:
    >>> from agentrag.llm.vllm_api import VLLMApi
    >>> api = VLLMApi(llm.endpoint)                                  # doctest: +SKIP
    >>> ids = asyncio.run(api.tokenize("NO-RESPONSE", add_special_tokens=False))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from agentrag.errors import AgentragError, LLMError, LLMOutputError, LLMUnsupportedError
from agentrag.llm._litellm import translate
from agentrag.llm.transport import RetryPolicy, Transport, shared_transport
from agentrag.settings import LLMEndpoint
from agentrag.types import Usage

__all__ = ["VLLMApi", "served_name"]

log = logging.getLogger(__name__)

_PROVIDER_PREFIXES = ("hosted_vllm/", "openai/", "vllm/")


def served_name(model: str) -> str:
    """The name the server answers to: a litellm id without its provider prefix."""
    for prefix in _PROVIDER_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


class VLLMApi:
    """vLLM-specific requests for one served model (one or more replicas).

    Args:
        endpoint: The model's endpoint (litellm id or bare served name; ``api_base`` ends in ``/v1``).
        usage: Usage meter to add to (share the LLM client's to account a run in one place).
        role: A label for logs.
        transport: The HTTP transport (default: the process-wide one LLM calls use too).
    """

    def __init__(
        self,
        endpoint: LLMEndpoint,
        *,
        usage: Usage | None = None,
        role: str = "vllm",
        transport: Transport | None = None,
    ) -> None:
        if not endpoint.model or not endpoint.api_base:
            raise LLMError(
                f"{role} endpoint needs a model and at least one api_base",
                hint="load it through Settings.load(), which fills in the local server's defaults",
            )
        self.endpoint = endpoint
        self.model = served_name(endpoint.model)
        self.role = role
        self.usage = usage if usage is not None else Usage()
        self.transport = transport if transport is not None else shared_transport()
        self._policy = RetryPolicy.of(endpoint)
        self._headers: dict[str, str] = {}
        if endpoint.api_key:
            self._headers["Authorization"] = f"Bearer {endpoint.api_key.get_secret_value()}"

    # ---------------------------------------------------------------- transport

    async def _post(self, path: str, payload: dict[str, Any], *, root: bool = False) -> Any:
        """POST to ``{api_base}{path}`` (``root``: to the server root, without ``/v1``)."""
        import httpx

        def url_of(base: str) -> str:
            if root and base.endswith("/v1"):
                base = base[: -len("/v1")]
            return f"{base}{path}"

        async def call(base: str, seconds: float) -> Any:
            url = url_of(base)
            response = await self.transport.client().post(
                url, json=payload, headers=self._headers, timeout=seconds
            )
            response.raise_for_status()
            try:
                return response.json()
            except ValueError as exc:
                raise LLMOutputError(f"{url} answered something that is not JSON") from exc

        def translate_exc(exc: BaseException, base: str) -> AgentragError:
            url = url_of(base)
            if isinstance(exc, httpx.HTTPStatusError):
                exc.status_code = exc.response.status_code  # type: ignore[attr-defined]
                # vLLM answers 404 both for an unknown model (a JSON error naming the model) and
                # for a route the server does not have ({"detail": ...}).
                if exc.response.status_code == 404 and "model" not in exc.response.text.lower():
                    return LLMUnsupportedError(
                        f"{url} does not exist on this server",
                        hint="this needs a vLLM server (and, for /rerank, a model served with "
                        "--runner pooling)",
                        endpoint=url,
                        model=self.model,
                    )
            return translate(exc, endpoint=url, model=self.model)

        return await self.transport.run(
            call,
            bases=self.endpoint.api_base,
            timeout_s=self.endpoint.timeout_s,
            policy=self._policy,
            limit=self.endpoint.max_concurrency,
            translate=translate_exc,
            usage=self.usage,
            what=f"{self.role} {path} ({self.model})",
        )

    # ---------------------------------------------------------------- requests

    async def tokenize(
        self,
        text: str | None = None,
        *,
        messages: Sequence[dict[str, str]] | None = None,
        add_special_tokens: bool = True,
        add_generation_prompt: bool = True,
    ) -> list[int]:
        """Token ids of ``text``, or of ``messages`` rendered with the server's chat template.

        Args:
            text: Raw text.
            messages: Chat messages (the server applies the model's own chat template).
            add_special_tokens: Add BOS etc. (raw text only).
            add_generation_prompt: End chat messages with the assistant turn's header.
        """
        if (text is None) == (messages is None):
            raise ValueError("give exactly one of text or messages")
        payload: dict[str, Any] = {"model": self.model}
        if text is not None:
            payload.update(prompt=text, add_special_tokens=add_special_tokens)
        else:
            payload.update(messages=list(messages or []), add_generation_prompt=add_generation_prompt)
        data = await self._post("/tokenize", payload, root=True)
        try:
            return [int(t) for t in data["tokens"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise LLMOutputError("/tokenize answered without a token list", raw=str(data)[:500]) from exc

    async def next_token_logprob(self, prompt_ids: Sequence[int], token_id: int) -> float:
        """Exact log P(``token_id`` | ``prompt_ids``) over the whole vocabulary.

        The token is appended to the prompt and the server asked for the prompt's own
        log-probabilities (``prompt_logprobs``), which it reports for the actual prompt token
        whatever its rank: no top-k cut-off, and no restriction of the allowed tokens (which
        would renormalise the distribution being measured).

        Raises:
            LLMUnsupportedError: The server returned no prompt log-probabilities.
        """
        payload = {
            "model": self.model,
            "prompt": [*map(int, prompt_ids), int(token_id)],
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 0,
        }
        data = await self._post("/completions", payload)
        usage = data.get("usage") or {}
        self.transport.record(
            self.usage, self.model, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        )
        try:
            last = data["choices"][0]["prompt_logprobs"][-1]
            return float(last[str(int(token_id))]["logprob"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise LLMUnsupportedError(
                f"{self.model} returned no prompt log-probabilities",
                hint="this needs vLLM's /v1/completions with prompt_logprobs",
                model=self.model,
            ) from exc

    async def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None
    ) -> list[tuple[int, float]]:
        """Scores from vLLM's ``/v1/rerank`` (a cross-encoder served with ``--runner pooling``).

        Returns:
            ``(index into documents, relevance score)`` for every document (or the ``top_n``
            best), best first.
        """
        if not documents:
            return []
        payload: dict[str, Any] = {"model": self.model, "query": query, "documents": list(documents)}
        if top_n is not None:
            payload["top_n"] = top_n
        data = await self._post("/rerank", payload)
        usage = data.get("usage") or {}
        self.transport.record(self.usage, self.model, int(usage.get("prompt_tokens", 0)), 0)
        try:
            rows = [(int(r["index"]), float(r["relevance_score"])) for r in data["results"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise LLMOutputError("/rerank answered without results", raw=str(data)[:500]) from exc
        if any(not 0 <= i < len(documents) for i, _ in rows):
            raise LLMOutputError("/rerank returned an index outside the documents sent", raw=str(rows)[:500])
        return sorted(rows, key=lambda r: -r[1])

    async def aclose(self) -> None:
        """Close the transport's pool on the running loop (shared: the next call reopens it)."""
        await self.transport.aclose()
