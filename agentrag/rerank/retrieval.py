"""A reranker that costs nothing: the retrieval score, relative to the query's best candidate.

On a CPU every LLM call costs seconds, so the ``cpu`` profile ranks by what hybrid retrieval
already computed. The score of a passage is its retrieval score divided by the best score among
the candidates, in [0, 1] (1 for the top one): fused scores differ in scale between convex
fusion (~0.5-1) and reciprocal-rank fusion (~0.01-0.03), and dividing by the maximum puts both
on one scale without changing the order. It is a ranking signal, not a probability; with a
calibration (fitted on these scores) it becomes one.

Example:
    >>> from agentrag.types import Passage
    >>> ps = [Passage(id=i, source="s", text=i, score=s) for i, s in (("a", 0.8), ("b", 0.4))]
    >>> RetrievalScoreReranker().rerank("q", ps).passages[1].scores.rerank
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from agentrag.rerank.base import BaseReranker, RerankResult, fallback_result
from agentrag.types import Passage

if TYPE_CHECKING:
    from agentrag.scoring.calibration import Calibration

__all__ = ["RetrievalScoreReranker", "relative_scores"]


def relative_scores(scores: Sequence[float]) -> list[float]:
    """Each score divided by the largest, clipped to [0, 1]; all 0 when none is positive."""
    top = max(scores, default=0.0)
    if top <= 0:
        return [0.0] * len(scores)
    return [min(1.0, max(0.0, s / top)) for s in scores]


class RetrievalScoreReranker(BaseReranker):
    """Keeps the retrieval order; the relevance is the relative retrieval score (no model).

    Args:
        calibration: Maps the relative score to a calibrated P(relevant).
    """

    def __init__(self, *, calibration: Calibration | None = None) -> None:
        self.calibration = calibration

    @property
    def name(self) -> str:
        return "retrieval"

    async def ascore(self, query: str, passages: Sequence[Passage]) -> list[float]:
        """The passages' relative retrieval scores (``Passage.score`` / the best)."""
        return relative_scores([p.score for p in passages])

    async def arerank(
        self,
        query: str,
        passages: Sequence[Passage],
        *,
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> RerankResult:
        """Order by relative retrieval score; without any positive score, the fallback.

        Passages that carry no retrieval score (strips cut from evidence, hits of another
        source) are not scored 0: relevance is then unknown and the retrieval order is kept.
        """
        if passages and all(p.score <= 0 for p in passages):
            return fallback_result(
                self.name, passages, top_n=top_n, reason="the passages carry no retrieval score"
            )
        return await super().arerank(query, passages, top_n=top_n, threshold=threshold)
