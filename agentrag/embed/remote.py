"""An embedder for an OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM serving an embedding model)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from agentrag.embed.base import CachedEmbedder, regex_token_spans
from agentrag.errors import AgentragError, EmbeddingError, LLMError
from agentrag.llm._litellm import translate
from agentrag.llm.transport import RetryPolicy, Transport, shared_transport

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["OpenAIEmbedder"]

T = TypeVar("T")


class OpenAIEmbedder(CachedEmbedder):
    """Embeds through a served embedding model.

    The request goes to ``{api_base}/embeddings`` through the shared
    :class:`~agentrag.llm.transport.Transport` LLM calls use (one pool, the retry policy, the
    run's deadline, a concurrency limit per server); answered requests land in the transport's
    ledger, not in a run's LLM usage. The synchronous API (embedding runs from worker threads,
    see :meth:`aembed_documents`) hands each request to agentrag's event loop.

    Args:
        model: Served model name.
        api_base: Base URL ending in ``/v1``.
        api_key: Bearer token, if the server wants one.
        timeout_s: Per-request timeout.
        max_retries: Extra attempts on retryable failures.
        batch_size: Texts per request.
        normalize: L2-normalise what the server returns (vLLM already normalises most models).
        cache_path: SQLite file for the vector cache.
        query_prefix: Prepended to queries.
        document_prefix: Prepended to documents.
        max_tokens: Longest input the served model takes (for chunking).
        max_concurrency: Requests in flight to the server at once.
        transport: The HTTP transport (default: the process-wide one).

    Example:
        >>> emb = OpenAIEmbedder("minilm", api_base="http://127.0.0.1:8401/v1")  # doctest: +SKIP
        >>> emb.embed_query("a cat").shape  # doctest: +SKIP
        (384,)
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        batch_size: int = 64,
        normalize: bool = True,
        cache_path: Path | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        max_tokens: int = 256,
        max_concurrency: int = 4,
        transport: Transport | None = None,
    ) -> None:
        super().__init__(
            cache_path=cache_path,
            query_prefix=query_prefix,
            document_prefix=document_prefix,
            batch_size=batch_size,
        )
        self.model = model
        self.api_base = api_base.rstrip("/")
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._normalize = normalize
        self._max_tokens = max_tokens
        self._dim: int | None = None
        self.max_concurrency = max_concurrency
        self.transport = transport if transport is not None else shared_transport()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @property
    def model_id(self) -> str:
        """``openai:<served name>@<api_base>``."""
        return f"openai:{self.model}@{self.api_base}"

    @property
    def dim(self) -> int:
        """Vector dimension (asked of the server once)."""
        if self._dim is None:
            self._dim = int(self._embed_batch(["dimension probe"]).shape[1])
        return self._dim

    @property
    def normalized(self) -> bool:
        """Whether vectors are unit length."""
        return self._normalize

    @property
    def max_tokens(self) -> int:
        """Longest input the served model takes (as configured)."""
        return self._max_tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Word/punctuation spans (the served model's tokenizer is not local)."""
        return regex_token_spans(text)

    async def _apost(self, texts: list[str]) -> list[list[float]]:
        import httpx

        url = f"{self.api_base}/embeddings"

        async def call(base: str, seconds: float) -> Any:
            response = await self.transport.client().post(
                f"{base}/embeddings",
                json={"model": self.model, "input": texts},
                headers=self._headers,
                timeout=seconds,
            )
            response.raise_for_status()
            try:
                body = response.json()
                data = body["data"]
                rows = [row["embedding"] for row in sorted(data, key=lambda r: r["index"])]
            except (KeyError, TypeError, ValueError) as exc:
                raise EmbeddingError(f"{url} answered something that is not an embedding list") from exc
            usage = body.get("usage") or {}
            self.transport.record(None, self.model, int(usage.get("prompt_tokens", 0) or 0), 0, run=False)
            return rows

        def translate_exc(exc: BaseException, base: str) -> AgentragError:
            if isinstance(exc, httpx.HTTPStatusError):
                exc.status_code = exc.response.status_code  # type: ignore[attr-defined]
            return translate(exc, endpoint=base, model=self.model)

        try:
            rows: list[list[float]] = await self.transport.run(
                call,
                bases=[self.api_base],
                timeout_s=self.timeout_s,
                policy=RetryPolicy(max_retries=self.max_retries, backoff_initial_s=0.5, backoff_max_s=8.0),
                limit=self.max_concurrency,
                translate=translate_exc,
                what=f"embedding ({self.model})",
                count_in_run=False,
            )
        except LLMError as exc:
            raise EmbeddingError(f"embedding request failed: {exc.message}", hint=exc.hint) from exc
        return rows

    def _embed_batch(self, texts: list[str]) -> NDArray[np.float32]:
        rows = _run_blocking(self._apost(texts))
        vectors = np.asarray(rows, dtype=np.float32)
        if self._normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors


def _run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` from synchronous code on agentrag's loop, whatever thread we are on."""
    from agentrag._async import run_sync

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_sync(coro)  # a worker thread (the usual case): the shared loop and pool
    # Synchronous code called on a running loop (blocking it). Waiting for the shared loop from
    # here could wait for this very loop, so the request runs on a private loop in a helper thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_run_private, coro).result()


def _run_private(coro: Coroutine[Any, Any, T]) -> T:
    async def main() -> T:
        try:
            return await coro
        finally:
            await shared_transport().aclose()  # the private loop's pool dies with it

    return asyncio.run(main())
