"""The reranker protocol, its result, and the selection rule every reranker shares.

A reranker scores each candidate passage for a query, reorders them, keeps those that pass
``top_n`` and ``threshold``, and says why it dropped the others. The raw score goes to
``Passage.scores.rerank`` and ``Passage.score``; ``Passage.relevance`` gets a probability: the
calibrated one (origin ``calibrated``) when the reranker has a calibration, else the raw score
clipped to [0, 1] (origin ``reranker``: a probability for Prism's P(yes); calibrate other
rerankers for thresholds to mean anything).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agentrag._async import run_sync
from agentrag.errors import AgentragError
from agentrag.types import Dropped, Evidence, Passage, Relevance

if TYPE_CHECKING:
    from agentrag.scoring.calibration import Calibration

__all__ = [
    "BaseReranker",
    "RerankResult",
    "Reranker",
    "document_text",
    "fallback_result",
    "reranker_relevance",
    "select",
]

log = logging.getLogger(__name__)

STAGE = "rerank"


class RerankResult(BaseModel):
    """What a reranker returns for one query. JSON round-trips (it can live in graph state)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    passages: list[Passage] = Field(default_factory=list)
    """The kept passages, best first, with ``scores.rerank``, ``score`` and ``relevance`` set
    (on fallback: retrieval order, no rerank score, relevance unknown)."""

    evidence: list[Evidence] = Field(default_factory=list)
    """Evidence for the kept passages, in the same order (empty if the reranker makes none)."""

    dropped: list[Dropped] = Field(default_factory=list)
    """Candidates not kept, best first, each with the reason."""

    reranker: str = ""
    """Name of the reranker that produced it."""

    fallback: bool = False
    """True when scoring failed and the retrieval order was kept instead."""

    fallback_reason: str = ""
    """Why, when ``fallback``."""

    timings: dict[str, float] = Field(default_factory=dict)
    """Seconds per phase (``score``, ``evidence``, ``total``)."""


@runtime_checkable
class Reranker(Protocol):
    """Scores and reorders candidate passages for a query.

    Implementations are async first, safe to call from several tasks at once, and never
    mutate the passages they are given.
    """

    @property
    def name(self) -> str:
        """Stable identity (model and settings), for reports."""
        ...

    async def arerank(
        self,
        query: str,
        passages: Sequence[Passage],
        *,
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> RerankResult:
        """Score, reorder and select.

        Args:
            query: The query.
            passages: Candidates, in retrieval order.
            top_n: Keep at most this many (None: no cap).
            threshold: Keep only passages scoring at least this (the calibrated probability
                when the reranker has a calibration, else the raw score). None: no threshold.
        """
        ...


def select(
    passages: Sequence[Passage],
    scores: Sequence[float],
    *,
    top_n: int | None,
    threshold: float | None,
    calibration: Calibration | None = None,
) -> tuple[list[Passage], list[Dropped]]:
    """Order by score (ties keep retrieval order), apply ``threshold`` then ``top_n``.

    Returns copies of the passages with ``score``, ``scores.rerank`` and ``relevance`` set; the
    inputs are untouched.
    """
    if len(passages) != len(scores):
        raise ValueError(f"{len(passages)} passages but {len(scores)} scores")
    if top_n is not None and top_n < 0:
        raise ValueError("top_n must be >= 0")
    probs = calibration.predict(scores) if calibration is not None else None
    scored = []
    for i, (p, s) in enumerate(zip(passages, scores, strict=True)):
        relevance = reranker_relevance(float(s), None if probs is None else float(probs[i]))
        stage = p.scores.model_copy(update={"rerank": float(s)})
        scored.append(
            p.model_copy(update={"score": float(s), "scores": stage, "relevance": relevance}, deep=True)
        )
    # sorted() is stable: equal scores keep the retrieval order.
    order = sorted(range(len(scored)), key=lambda i: -scored[i].score)
    kept: list[Passage] = []
    dropped: list[Dropped] = []
    for rank, i in enumerate(order, start=1):
        p = scored[i]
        gate = p.relevance.p if probs is not None and p.relevance.p is not None else p.score
        gate_name = "p(relevant)" if probs is not None else "score"
        if threshold is not None and gate < threshold:
            dropped.append(
                Dropped(
                    passage_id=p.id,
                    stage=STAGE,
                    reason=f"below threshold: {gate_name}={gate:.3f} < {threshold:g}",
                    score=p.score,
                )
            )
        elif top_n is not None and len(kept) >= top_n:
            dropped.append(
                Dropped(
                    passage_id=p.id,
                    stage=STAGE,
                    reason=f"beyond top_n={top_n} (rank {rank}, {gate_name}={gate:.3f})",
                    score=p.score,
                )
            )
        else:
            kept.append(p)
    return kept, dropped


def reranker_relevance(raw: float, calibrated: float | None = None) -> Relevance:
    """The relevance a reranker's score stands for.

    The calibrated probability when there is one, else the raw score clipped to [0, 1] (a
    probability for Prism's P(yes)). A NaN score is unknown, not 0.
    """
    if calibrated is not None and not math.isnan(calibrated):
        return Relevance(p=min(1.0, max(0.0, calibrated)), origin="calibrated")
    if math.isnan(raw):
        return Relevance(origin="fallback")
    return Relevance(p=min(1.0, max(0.0, raw)), origin="reranker")


def document_text(passage: Passage) -> str:
    """What a reranker reads for a passage: its title (when it has one) and its text."""
    if passage.title and not passage.text.startswith(passage.title):
        return f"{passage.title}\n{passage.text}"
    return passage.text


def fallback_result(
    reranker: str,
    passages: Sequence[Passage],
    *,
    top_n: int | None,
    reason: str,
    evidence: Sequence[Evidence] = (),
    elapsed: float = 0.0,
) -> RerankResult:
    """The documented fallback when scoring fails: retrieval order, ``top_n`` applied.

    No rerank score is written (there is none), so ``threshold`` cannot be applied; every kept
    passage's relevance is unknown (origin ``fallback``), never 0.
    """
    log.warning("%s: %s", reranker, reason)
    cut = len(passages) if top_n is None else max(0, top_n)
    kept = [
        p.model_copy(update={"relevance": Relevance(origin="fallback")}, deep=True) for p in passages[:cut]
    ]
    dropped = [
        Dropped(passage_id=p.id, stage=STAGE, reason=f"beyond top_n={top_n} (fallback: retrieval order)")
        for p in passages[cut:]
    ]
    return RerankResult(
        passages=kept,
        evidence=list(evidence),
        dropped=dropped,
        reranker=reranker,
        fallback=True,
        fallback_reason=reason,
        timings={"score": elapsed, "total": elapsed},
    )


class BaseReranker:
    """Shared plumbing: score-then-select, the sync wrapper and an optional calibration.

    A score-only reranker implements :meth:`ascore`; the default :meth:`arerank` times it and
    orders and selects through :func:`select`. Rerankers with more phases (Prism) override
    :meth:`arerank`.
    """

    calibration: Calibration | None = None

    served: ClassVar[bool] = False
    """Scores come from a model server: a failed call (after the client's retries) falls back to
    the retrieval order (``RerankResult.fallback``) instead of raising. Local models raise."""

    @property
    def name(self) -> str:
        return type(self).__name__

    async def ascore(self, query: str, passages: Sequence[Passage]) -> list[float]:
        """One raw score per passage, in input order."""
        raise NotImplementedError

    async def arerank(
        self,
        query: str,
        passages: Sequence[Passage],
        *,
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> RerankResult:
        """Score every passage (:meth:`ascore`), then order and select.

        A :attr:`served` reranker whose scoring call fails keeps the retrieval order (fallback).
        """
        t0 = time.perf_counter()
        if not passages:
            return RerankResult(reranker=self.name, timings={"score": 0.0, "total": 0.0})
        try:
            scores = await self.ascore(query, passages)
        except AgentragError as exc:
            if not self.served:
                raise
            return fallback_result(
                self.name,
                passages,
                top_n=top_n,
                reason=f"scoring failed ({exc.code}: {exc.message}); kept the retrieval order",
                elapsed=time.perf_counter() - t0,
            )
        return self._selected(passages, scores, top_n=top_n, threshold=threshold, t0=t0)

    def _selected(
        self,
        passages: Sequence[Passage],
        scores: Sequence[float],
        *,
        top_n: int | None,
        threshold: float | None,
        t0: float,
    ) -> RerankResult:
        kept, dropped = select(
            passages, scores, top_n=top_n, threshold=threshold, calibration=self.calibration
        )
        elapsed = time.perf_counter() - t0
        return RerankResult(
            passages=kept, dropped=dropped, reranker=self.name, timings={"score": elapsed, "total": elapsed}
        )

    def rerank(
        self,
        query: str,
        passages: Sequence[Passage],
        *,
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> RerankResult:
        """Blocking :meth:`arerank` (runs on agentrag's background event loop)."""
        return run_sync(self.arerank(query, passages, top_n=top_n, threshold=threshold))
