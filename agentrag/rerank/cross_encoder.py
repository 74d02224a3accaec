"""Cross-encoder rerankers: in-process (sentence-transformers) and vLLM's ``/v1/rerank``.

Both need real cross-encoder weights, which no PyPI package carries: point
:class:`CrossEncoderReranker` at a local folder (e.g. a downloaded
``cross-encoder/ms-marco-MiniLM-L-6-v2``), or serve one with vLLM
(``--runner pooling``; it exposes ``/v1/rerank``) and use :class:`VLLMRerankReranker`. The
tests here build a tiny cross-encoder from the bundled MiniLM weights with an untrained
classification head: it proves loading, scoring and ordering, not ranking quality.

Example:
    >>> reranker = CrossEncoderReranker("/models/ms-marco-MiniLM-L-6-v2")       # doctest: +SKIP
    >>> (await reranker.arerank("who wrote hamlet", passages, top_n=5)).passages  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrag.errors import RerankError
from agentrag.rerank.base import BaseReranker, document_text
from agentrag.types import Passage

if TYPE_CHECKING:
    from agentrag.scoring.calibration import Calibration
    from agentrag.settings import LLMEndpoint

__all__ = ["CrossEncoderReranker", "VLLMRerankReranker"]

log = logging.getLogger(__name__)


class CrossEncoderReranker(BaseReranker):
    """A sentence-transformers ``CrossEncoder`` loaded from a local folder (lazily, once).

    Args:
        model: Local folder of a cross-encoder (sentence-transformers or a Hugging Face
            sequence-classification model with one label). Nothing is downloaded.
        device: torch device.
        batch_size: Pairs per forward pass.
        max_length: Truncate pairs to this many tokens (None: the model's limit).
        threads: torch CPU threads (None: torch's default).
        calibration: Maps the model's score to P(relevant) for ``threshold``.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int | None = None,
        threads: int | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.path = Path(model).expanduser()
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.calibration = calibration
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # a torch module is not safe to run from two threads

    @property
    def name(self) -> str:
        return f"cross-encoder:{self.path.name}"

    @property
    def model(self) -> Any:
        """The loaded ``CrossEncoder``."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        if not self.path.exists():
            raise RerankError(
                f"cross-encoder folder {self.path} does not exist",
                hint="give a local cross-encoder folder (weights are never downloaded); "
                "without one, use the Prism or embedding reranker",
            )
        import torch
        from sentence_transformers import CrossEncoder
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            model = CrossEncoder(
                str(self.path), device=self.device, max_length=self.max_length, local_files_only=True
            )
        except Exception as exc:
            raise RerankError(
                f"cannot load a cross-encoder from {self.path}: {exc}",
                hint="the folder must hold a sequence-classification model and its tokenizer",
            ) from exc
        if getattr(model, "num_labels", 1) != 1:
            raise RerankError(
                f"{self.path} has {model.num_labels} output labels; a reranker needs one relevance score",
                hint="use a cross-encoder trained for ranking (one label)",
            )
        log.info("loaded cross-encoder %s on %s", self.path, self.device)
        return model

    def predict(self, query: str, passages: Sequence[Passage]) -> list[float]:
        """Scores (blocking), one per passage."""
        if not passages:
            return []
        model = self.model
        pairs = [(query, document_text(p)) for p in passages]
        with self._run_lock:
            scores = model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        return [float(s) for s in scores]

    async def ascore(self, query: str, passages: Sequence[Passage]) -> list[float]:
        """Score every pair in a worker thread (the model call blocks).

        Raises:
            RerankError: The model cannot be loaded (a configuration error, not a fallback case).
        """
        return await asyncio.to_thread(self.predict, query, passages)


class VLLMRerankReranker(BaseReranker):
    """A cross-encoder served by vLLM, through its ``/v1/rerank`` endpoint.

    Args:
        endpoint: The served model (bare served name or ``hosted_vllm/<name>``) and its
            ``api_base`` (ending in ``/v1``), timeout, retries and concurrency.
        calibration: Maps the served score to P(relevant) for ``threshold``.

    When the server fails (after retries), the result falls back to the retrieval order
    (``RerankResult.fallback``), as every reranker does.
    """

    served = True

    def __init__(self, endpoint: LLMEndpoint, *, calibration: Calibration | None = None) -> None:
        from agentrag.llm.vllm_api import VLLMApi

        self.api = VLLMApi(endpoint, role="rerank")
        self.calibration = calibration

    @property
    def name(self) -> str:
        return f"vllm-rerank:{self.api.model}"

    async def ascore(self, query: str, passages: Sequence[Passage]) -> list[float]:
        """One score per passage, in input order."""
        rows = await self.api.rerank(query, [document_text(p) for p in passages])
        scores: list[float | None] = [None] * len(passages)
        for index, score in rows:
            scores[index] = score
        if any(s is None for s in scores):
            raise RerankError("/rerank did not score every document", hint="check the server log")
        return [float(s) for s in scores if s is not None]
