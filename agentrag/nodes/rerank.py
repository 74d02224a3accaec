"""``rerank``: score the candidates with the run's reranker and keep the best as evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agentrag.errors import AgentragError
from agentrag.graph.registry import node
from agentrag.nodes._util import degraded, event
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


def _relevance(p: Passage) -> float:
    value = p.scores.get("p_relevant", p.scores.get("rerank", UNKNOWN_RELEVANCE))
    return min(1.0, max(0.0, value))


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
                # Evidence for the passages the reranker kept; a plain score for the others
                # (they may still be kept here when earlier-round evidence is weaker).
                have = {e.passage_id for e in result.evidence}
                scored += result.evidence
                scored += [
                    passage_evidence(p, _relevance(p), fallback=False)
                    for p in result.passages
                    if p.id not in have
                ]
                seen = have | {p.id for p in result.passages}
                scored += [
                    passage_evidence(p, UNKNOWN_RELEVANCE, fallback=True) for p in fresh if p.id not in seen
                ]
            except AgentragError as exc:
                errors = degraded(state, "rerank", "kept retrieval order", exc)
                scored += [passage_evidence(p, UNKNOWN_RELEVANCE, fallback=True) for p in fresh]
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
