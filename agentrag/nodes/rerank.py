"""``rerank``: score the candidates with the run's reranker and keep the best as evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agentrag.errors import AgentragError
from agentrag.graph.registry import node
from agentrag.nodes._util import degraded, event
from agentrag.rerank.base import SCORE_KEY, SCORE_P_KEY
from agentrag.types import Dropped, Evidence, Passage

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import RunContext
    from agentrag.state import RAGState

UNKNOWN_RELEVANCE = 0.5
"""Relevance given to passages nobody scored (no reranker, or it failed): unknown, not bad."""


class RerankParams(BaseModel):
    """Parameters of ``rerank``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    top_n: int = Field(default=8, ge=1)
    """Evidence items kept (best first)."""

    threshold: float | None = Field(default=None, ge=0, le=1)
    """Also drop passages with P(relevant) below this."""

    max_candidates: int = Field(default=20, ge=1)
    """Candidates sent to the reranker (the rest are dropped as 'not reranked')."""


def passage_evidence(p: Passage, relevance: float, *, fallback: bool) -> Evidence:
    """Evidence that is the whole passage (when no extract exists)."""
    return Evidence(
        passage_id=p.id,
        text=p.text,
        relevance=relevance,
        source=p.source,
        title=p.title,
        start=p.start,
        end=p.end,
        fallback=fallback,
    )


def relevance_of(p: Passage) -> float:
    """P(relevant) of a reranked passage.

    The calibrated probability when the reranker has a calibration, else its raw score clipped
    to [0, 1] (a probability for Prism's P(yes); calibrate other rerankers for thresholds to
    mean anything).
    """
    value = p.scores.get(SCORE_P_KEY, p.scores.get(SCORE_KEY, p.score))
    return min(1.0, max(0.0, float(value)))


@node("rerank", params=RerankParams)
async def rerank(state: RAGState, runtime: Runtime[RunContext], params: RerankParams) -> dict[str, Any]:
    """Score candidates with the reranker; keep the top ones as evidence.

    Passages already scored in an earlier loop round keep their evidence and are not sent
    again. Fallback (no reranker, or it fails): retrieval order, passage text as evidence,
    relevance unknown (0.5), each marked ``fallback``.
    """
    ctx = runtime.context
    known = {e.passage_id: e for e in state.evidence}
    pool = state.candidates[: params.max_candidates]
    fresh = [p for p in pool if p.id not in known]
    dropped = [
        Dropped(
            passage_id=p.id, stage="rerank", reason=f"beyond the {params.max_candidates} candidates reranked"
        )
        for p in state.candidates[params.max_candidates :]
    ]
    errors = state.errors
    scored: list[Evidence] = list(known.values())
    if fresh:
        if ctx.reranker is None:
            scored += [passage_evidence(p, UNKNOWN_RELEVANCE, fallback=True) for p in fresh]
        else:
            try:
                result = await ctx.reranker.arerank(
                    state.question, fresh, top_n=params.top_n, threshold=params.threshold
                )
            except AgentragError as exc:
                errors = degraded(state, "rerank", "kept retrieval order", exc)
                scored += [passage_evidence(p, UNKNOWN_RELEVANCE, fallback=True) for p in fresh]
            else:
                if result.fallback:
                    errors = [*errors, f"rerank: {result.fallback_reason}"]
                # Kept passages come with evidence (Prism) or without (score-only rerankers);
                # passages the reranker dropped are out for good.
                have = {e.passage_id: e for e in result.evidence}
                for p in result.passages:
                    if p.id in have:
                        scored.append(have[p.id])
                    else:
                        unscored = result.fallback or SCORE_KEY not in p.scores
                        rel = UNKNOWN_RELEVANCE if unscored else relevance_of(p)
                        scored.append(passage_evidence(p, rel, fallback=unscored))
                dropped += result.dropped
    scored.sort(key=lambda e: -e.relevance)
    kept: list[Evidence] = []
    for item in scored:
        if params.threshold is not None and item.relevance < params.threshold:
            dropped.append(
                Dropped(
                    passage_id=item.passage_id,
                    stage="rerank",
                    score=item.relevance,
                    reason=f"p(relevant)={item.relevance:.2f} below {params.threshold:.2f}",
                )
            )
        elif len(kept) >= params.top_n:
            dropped.append(
                Dropped(
                    passage_id=item.passage_id,
                    stage="rerank",
                    score=item.relevance,
                    reason=f"outside the top {params.top_n}",
                )
            )
        else:
            kept.append(item)
    return {
        "evidence": kept,
        "dropped": [*state.dropped, *dropped],
        "errors": errors,
        **event(
            f"kept {len(kept)} of {len(scored)} (scored {len(fresh)} new)",
            relevance=[round(e.relevance, 3) for e in kept],
        ),
    }
