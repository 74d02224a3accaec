"""An embedder for an OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM serving an embedding model)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from agentrag.embed.base import CachedEmbedder, regex_token_spans
from agentrag.errors import EmbeddingError, LLMError, is_retryable
from agentrag.llm._litellm import translate

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["OpenAIEmbedder"]


class OpenAIEmbedder(CachedEmbedder):
    """Embeds through a served embedding model.

    The request goes straight to ``{api_base}/embeddings`` with httpx (a synchronous client:
    embedding runs from worker threads; see :meth:`aembed_documents`). Retries follow the
    same rule as LLM calls.

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
        self._client: Any = None
        self._client_lock = threading.Lock()

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

    def _http(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import httpx

                headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
                self._client = httpx.Client(timeout=self.timeout_s, headers=headers)
            return self._client

    def _post(self, texts: list[str]) -> list[list[float]]:
        import httpx

        try:
            response = self._http().post(
                f"{self.api_base}/embeddings", json={"model": self.model, "input": texts}
            )
            response.raise_for_status()
            data = response.json()["data"]
        except httpx.HTTPStatusError as exc:
            exc.status_code = exc.response.status_code  # type: ignore[attr-defined]
            raise translate(exc, endpoint=self.api_base, model=self.model) from exc
        except (httpx.HTTPError, OSError) as exc:
            raise translate(exc, endpoint=self.api_base, model=self.model) from exc
        except (KeyError, ValueError) as exc:
            raise EmbeddingError(
                f"{self.api_base}/embeddings answered something that is not an embedding list"
            ) from exc
        return [row["embedding"] for row in sorted(data, key=lambda r: r["index"])]

    def _embed_batch(self, texts: list[str]) -> NDArray[np.float32]:
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_random_exponential(multiplier=0.5, max=8.0),
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )
        try:
            rows = retrying(self._post, texts)
        except LLMError as exc:
            raise EmbeddingError(f"embedding request failed: {exc.message}", hint=exc.hint) from exc
        vectors = np.asarray(rows, dtype=np.float32)
        if self._normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors
