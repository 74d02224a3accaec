"""``rerank``: score the candidates with the run's reranker and keep the best as evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agentrag.errors import AgentragError
from agentrag.graph.registry import node
from agentrag.nodes._util import degraded, event
from agentrag.types import Dropped, Evidence, Passage, Relevance

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import RunContext
    from agentrag.state import RAGState


class RerankParams(BaseModel):
    """Parameters of ``rerank``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    top_n: int = Field(default=8, ge=1)
    """Evidence items kept (best first)."""

    threshold: float | None = Field(default=None, ge=0, le=1)
    """Also drop passages with P(relevant) below this."""

    max_candidates: int = Field(default=20, ge=1)
    """Candidates sent to the reranker (the rest are dropped as 'not reranked')."""


def passage_evidence(p: Passage, relevance: Relevance, *, fallback: bool) -> Evidence:
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


def order_evidence(items: list[Evidence], retrieval_rank: dict[str, int]) -> list[Evidence]:
    """Known relevances first, best first; unknown ones after them, in retrieval order.

    An unknown relevance is not a low one: it is never compared with a probability, so a
    failed reranker leaves the retriever's order intact instead of sorting by a made-up 0.
    Ties keep the input order.
    """
    last = len(retrieval_rank)

    def key(e: Evidence) -> tuple[int, float]:
        if e.relevance.p is not None:
            return (0, -e.relevance.p)
        return (1, float(retrieval_rank.get(e.passage_id, last)))

    return sorted(items, key=key)


@node("rerank", params=RerankParams)
async def rerank(state: RAGState, runtime: Runtime[RunContext], params: RerankParams) -> dict[str, Any]:
    """Score candidates with the reranker; keep the top ones as evidence.

    Passages already scored in an earlier loop round keep their evidence and are not sent
    again. Fallback (no reranker, or it fails): passage text as evidence, relevance unknown
    (origin ``fallback``, or ``none`` without a reranker), kept in retrieval order after the
    scored ones; a failure is recorded in ``errors`` (the run is then ``degraded``).
    """
    ctx = runtime.context
    known = {e.passage_id: e for e in state.evidence}
    pool = state.candidates[: params.max_candidates]
    rank = {p.id: i for i, p in enumerate(state.candidates)}
    fresh = [p for p in pool if p.id not in known]
    dropped = [
        Dropped(
            passage_id=p.id, stage="rerank", reason=f"beyond the {params.max_candidates} candidates reranked"
        )
        for p in state.candidates[params.max_candidates :]
    ]
    errors: list[str] = []
    scored: list[Evidence] = list(known.values())
    if fresh:
        if ctx.reranker is None:
            scored += [passage_evidence(p, Relevance(origin="none"), fallback=True) for p in fresh]
        else:
            try:
                result = await ctx.reranker.arerank(
                    state.question, fresh, top_n=params.top_n, threshold=params.threshold
                )
            except AgentragError as exc:
                errors += degraded(state, "rerank", "kept the retrieval order, relevance unknown", exc)
                scored += [passage_evidence(p, Relevance(origin="fallback"), fallback=True) for p in fresh]
            else:
                if result.fallback:
                    errors.append(
                        f"rerank: {result.fallback_reason} (relevance unknown for {len(result.passages)} "
                        "passages, kept in retrieval order)"
                    )
                # Kept passages come with evidence (Prism) or without (score-only rerankers);
                # passages the reranker dropped are out for good.
                have = {e.passage_id: e for e in result.evidence}
                for p in result.passages:
                    if p.id in have:
                        ev = have[p.id]
                        if result.fallback and ev.relevance.known:
                            ev = ev.model_copy(update={"relevance": Relevance(origin="fallback")})
                        scored.append(ev)
                    else:
                        rel = Relevance(origin="fallback") if result.fallback else p.relevance
                        scored.append(passage_evidence(p, rel, fallback=not rel.known))
                dropped += result.dropped
    unknown = sum(not e.relevance.known for e in scored)
    kept: list[Evidence] = []
    for item in order_evidence(scored, rank):
        prob = item.relevance.p
        # A threshold needs a probability; unknown relevances are kept (never read as 0).
        if params.threshold is not None and prob is not None and prob < params.threshold:
            dropped.append(
                Dropped(
                    passage_id=item.passage_id,
                    stage="rerank",
                    score=prob,
                    reason=f"p(relevant)={prob:.2f} below {params.threshold:.2f}",
                )
            )
        elif len(kept) >= params.top_n:
            dropped.append(
                Dropped(
                    passage_id=item.passage_id,
                    stage="rerank",
                    score=prob,
                    reason=f"outside the top {params.top_n}"
                    + ("" if prob is not None else " (relevance unknown: retrieval order)"),
                )
            )
        else:
            kept.append(item)
    message = f"kept {len(kept)} of {len(scored)} (scored {len(fresh)} new)"
    if unknown:
        message += f"; {unknown} with unknown relevance kept in retrieval order"
    return {
        "evidence": kept,
        "dropped": dropped,
        "errors": errors,
        **event(
            message,
            relevance=[None if e.relevance.p is None else round(e.relevance.p, 3) for e in kept],
            unknown_relevance=unknown,
        ),
    }
