"""Query nodes: ``rewrite`` (standalone query, multi-query and HyDE variants) and ``retrieve``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentrag.errors import LLMError
from agentrag.graph.registry import node
from agentrag.nodes._util import degraded, event, retriever, scope
from agentrag.types import Passage

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import RunContext
    from agentrag.state import RAGState


class RewriteParams(BaseModel):
    """Parameters of ``rewrite``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    variants: int = Field(default=0, ge=0, le=4)
    """Extra phrasings of the query to search with (multi-query)."""

    hyde: bool = False
    """Also search with a hypothetical answer passage (HyDE)."""

    keep_question: bool = True
    """Search with the question as asked, too (robust when the rewrite drifts)."""


class _Rewrite(BaseModel):
    query: str = Field(max_length=300)
    variants: list[str] = Field(default_factory=list, max_length=4)
    hypothetical_answer: str = Field(default="", max_length=800)


@node("rewrite", params=RewriteParams)
async def rewrite(state: RAGState, runtime: Runtime[RunContext], params: RewriteParams) -> dict[str, Any]:
    """Rewrite the question into standalone search queries (schema-constrained).

    Fallback: on any LLM failure the question itself is the only query.
    """
    ctx = runtime.context
    messages = ctx.prompts.messages(
        "rewrite", question=state.question, history=state.history, variants=params.variants, hyde=params.hyde
    )
    try:
        out = await ctx.llm.structured(
            messages, _Rewrite, max_tokens=120 + 60 * params.variants + 200 * params.hyde
        )
    except LLMError as exc:
        return {
            "queries": [state.question],
            "errors": degraded(state, "rewrite", "kept the question", exc),
            **event("rewrite failed; searching with the question"),
        }
    queries = [state.question] if params.keep_question or not out.query.strip() else []
    queries += [out.query, *out.variants[: params.variants]]
    if params.hyde and out.hypothetical_answer.strip():
        queries.append(out.hypothetical_answer)
    unique = list(dict.fromkeys(q.strip() for q in queries if q and q.strip()))
    return {"queries": unique, **event(f"{len(unique)} queries", queries=unique)}


class RetrieveParams(BaseModel):
    """Parameters of ``retrieve``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    k: int = Field(default=20, ge=1, le=1000)
    """Passages kept after merging the queries' results."""

    per_query_k: int | None = Field(default=None, ge=1)
    """Passages fetched per query (default ``k``)."""

    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    """Retrieval mode of the knowledge base."""

    filters: dict[str, Any] | None = None
    """Metadata filters of this node, applied on both sides of hybrid retrieval (and with the
    request's filters, ``state.filters``, when both are set)."""

    rrf_k: int = Field(default=60, ge=1)
    """RRF constant for merging the queries' rankings."""

    source: str | None = None
    """A named retrieval source from the run context (default: the knowledge base)."""


def merge_rankings(rankings: list[list[Passage]], *, k: int, rrf_k: int = 60) -> list[Passage]:
    """Reciprocal-rank fusion of several rankings of passages, by passage id.

    A passage keeps the scores of its best appearance and gets ``scores.multi_rrf``.
    """
    if len(rankings) == 1:
        return rankings[0][:k]
    fused: dict[str, float] = {}
    best: dict[str, tuple[int, Passage]] = {}
    for ranking in rankings:
        for rank, passage in enumerate(ranking, start=1):
            fused[passage.id] = fused.get(passage.id, 0.0) + 1.0 / (rrf_k + rank)
            if passage.id not in best or rank < best[passage.id][0]:
                best[passage.id] = (rank, passage)
    order = sorted(fused, key=lambda pid: -fused[pid])[:k]
    out = []
    for pid in order:
        passage = best[pid][1]
        out.append(
            passage.model_copy(
                update={
                    "score": fused[pid],
                    "scores": passage.scores.model_copy(update={"multi_rrf": fused[pid]}),
                }
            )
        )
    return out


@node("retrieve", params=RetrieveParams, uses_llm=False, retrieves=True)
async def retrieve(state: RAGState, runtime: Runtime[RunContext], params: RetrieveParams) -> dict[str, Any]:
    """Hybrid retrieval for every query variant concurrently, merged by reciprocal rank.

    Applies the request's metadata filter (``state.filters``) and the node's own ``filters``.
    """
    source = retriever(runtime, params.source)
    queries = state.queries or [state.question]
    per_query = params.per_query_k or params.k
    flt = scope(state, params.filters)
    results = await asyncio.gather(
        *(source.asearch(q, k=per_query, mode=params.mode, filters=flt) for q in queries)
    )
    tagged = [
        [p.model_copy(update={"query": q}) for p in hits] for q, hits in zip(queries, results, strict=True)
    ]
    merged = merge_rankings(tagged, k=params.k, rrf_k=params.rrf_k)
    return {
        "candidates": merged,
        "evidence": [],
        **event(f"{len(merged)} passages from {len(queries)} queries", per_query=[len(r) for r in results]),
    }
