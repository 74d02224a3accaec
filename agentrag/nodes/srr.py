"""Sketch-retrieve-reflect (LeanSearch v2's reasoning mode): sketch, search, filter, reflect, aggregate.

Per round: the sketch is a JSON plan of queries (definition queries, high-level queries, steps);
every query is searched in parallel; one LLM call per query keeps the hits that match it; a
judge reads the plan and the kept hits and says good (stop) or bad (with feedback for the next
plan). At most ``max_rounds`` rounds, and a round that does not raise the expected UDCG of the
kept hits ends the loop. The final round's kept hits are fused:
``score(d) = sum over queries q, positions i where kept_q[i] = d of 1 / log2(i + 2)``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agentrag.errors import LLMError
from agentrag.graph.registry import node, router
from agentrag.nodes._util import degraded, event, retriever, scope
from agentrag.state import Plan, PlanStep, SearchRound
from agentrag.types import Passage

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import RunContext
    from agentrag.state import RAGState


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# The plan as the model must write it. Every list and every string is bounded in the JSON
# schema, so constrained decoding cannot run away: a small model that starts repeating itself
# hits a length bound and the grammar closes the string (LeanSearch v2: 1-3 definition
# queries, 2-4 high-level ones, 3-7 steps, <= 20 queries). Queries are short search strings.
_Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=100)]


class _StepOut(BaseModel):
    description: str = Field(max_length=160)
    reasoning: str = Field(max_length=160)
    # A step may add no query: forced to write one, the 1.5B repeats an earlier query (20 of 20
    # premise plans had repeats with a minimum of one query per step).
    queries: list[_Query] = Field(min_length=0, max_length=2)


class _PlanOut(BaseModel):
    definition_queries: list[_Query] = Field(min_length=1, max_length=3)
    highlevel_queries: list[_Query] = Field(min_length=2, max_length=4)
    steps: list[_StepOut] = Field(min_length=3, max_length=7)


def degenerate_queries(queries: Sequence[str], question: str) -> list[str]:
    """The queries of a plan that add nothing: repeats, copies of the question, stutters.

    A query is degenerate when it repeats an earlier one (case and spacing ignored), is the
    question itself or a verbatim piece of it longer than half of it, or repeats one word
    three times in a row (a small model looping inside a string).

    Example:
        >>> degenerate_queries(["prime two le", "Prime  two le", "a a a b"], "Is 2 <= p?")
        ['Prime  two le', 'a a a b']
    """
    out: list[str] = []
    seen: set[str] = set()
    asked = " ".join(question.lower().split())
    for query in queries:
        norm = " ".join(query.lower().split())
        words = norm.split()
        stutter = any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2))
        copied = norm == asked or (len(norm) > len(asked) / 2 and norm in asked)
        if norm in seen or stutter or copied:
            out.append(query)
        seen.add(norm)
    return out


class SketchParams(_Params):
    """Parameters of ``sketch``."""

    style: Literal["multihop", "premise"] = "multihop"
    """Prompt family: multi-hop questions over documents, or Lean/Mathlib premises."""

    max_queries: int = Field(default=20, ge=1, le=40)
    """Queries per plan at most."""

    max_tokens: int = Field(default=700, ge=64)
    """Plan length cap."""


@node("sketch", params=SketchParams)
async def sketch(state: RAGState, runtime: Runtime[RunContext], params: SketchParams) -> dict[str, Any]:
    """Write a search plan; later rounds see the previous plan and the judge's feedback.

    Fallback: if the plan cannot be had, the question itself is the only query.
    """
    ctx = runtime.context
    budget = state.budget.model_copy(update={"rounds": state.budget.rounds + 1})
    previous = state.rounds[-1] if state.rounds else None
    template = "sketch_premise" if params.style == "premise" else "sketch"
    messages = ctx.prompts.messages(
        template,
        question=state.question,
        previous=previous.plan.queries() if previous else [],
        feedback=previous.feedback if previous else "",
        max_queries=params.max_queries,
    )
    errors: list[str] = []
    try:
        out = await ctx.llm.structured(messages, _PlanOut, max_tokens=params.max_tokens)
        plan = Plan(
            definition_queries=out.definition_queries,
            highlevel_queries=out.highlevel_queries,
            steps=[
                PlanStep(description=s.description, reasoning=s.reasoning, queries=s.queries)
                for s in out.steps
            ],
        )
    except LLMError as exc:
        errors = degraded(state, "sketch", "searched with the question only", exc)
        plan = Plan(highlevel_queries=[state.question])
    queries = plan.queries(params.max_queries)
    stale = set(degenerate_queries(queries, state.question))
    queries = [q for q in queries if q not in stale]
    if previous is not None:
        # "Must produce a different plan": queries already searched add nothing new.
        old = {q.lower() for q in previous.plan.queries(100)}
        fresh = [q for q in queries if q.lower() not in old]
        queries = fresh or [state.question]
    # The question itself is always searched: a small planner can miss the obvious query.
    if state.question.lower() not in {q.lower() for q in queries}:
        queries = [state.question, *queries][: params.max_queries]
    new_round = SearchRound(plan=plan, hits={q: [] for q in queries})
    return {
        "rounds": [*state.rounds, new_round],
        "queries": queries,
        "budget": budget,
        "errors": errors,
        **event(f"round {budget.rounds}: {len(queries)} queries", queries=queries),
    }


class SearchParams(_Params):
    """Parameters of ``search``."""

    k: int = Field(default=10, ge=1, le=200)
    """Hits per query (LeanSearch v2 standard mode: 30)."""

    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    """Retrieval mode."""

    source: str | None = None
    """A named retrieval source (default: the knowledge base)."""

    filters: dict[str, Any] | None = None
    """Metadata filters of this node (applied with the request's ``state.filters``)."""


@node("search", params=SearchParams, uses_llm=False, retrieves=True)
async def search(state: RAGState, runtime: Runtime[RunContext], params: SearchParams) -> dict[str, Any]:
    """Search every query of the current plan, in parallel, within the request's filters."""
    source = retriever(runtime, params.source)
    current = state.rounds[-1]
    queries = list(current.hits) or [state.question]
    flt = scope(state, params.filters)
    results = await asyncio.gather(
        *(source.asearch(q, k=params.k, mode=params.mode, filters=flt) for q in queries)
    )
    hits = {q: [p.model_copy(update={"query": q}) for p in r] for q, r in zip(queries, results, strict=True)}
    updated = current.model_copy(update={"hits": hits})
    total = sum(len(r) for r in results)
    return {"rounds": [*state.rounds[:-1], updated], **event(f"{total} hits for {len(queries)} queries")}


class FilterParams(_Params):
    """Parameters of ``filter``."""

    style: Literal["multihop", "premise"] = "multihop"
    """Prompt family."""

    max_hits: int = Field(default=20, ge=1)
    """Hits shown per query."""

    fallback_keep: int = Field(default=5, ge=0)
    """On a failed or unparsable answer, keep this many top hits."""


class _Keep(BaseModel):
    keep: list[int] = Field(max_length=20)


@node("filter", params=FilterParams)
async def filter_hits(state: RAGState, runtime: Runtime[RunContext], params: FilterParams) -> dict[str, Any]:
    """One LLM call per query keeps the hits that match it (concurrently).

    Fallback: a call that fails or returns nothing usable keeps the top ``fallback_keep``.
    """
    ctx = runtime.context
    current = state.rounds[-1]
    template = "filter_premise" if params.style == "premise" else "filter"
    errors: list[str] = []

    async def one(query: str, hits: list[Passage]) -> tuple[list[str], str | None]:
        shown = hits[: params.max_hits]
        if not shown:
            return [], None
        try:
            out = await ctx.llm.structured(
                ctx.prompts.messages(template, question=state.question, query=query, hits=shown),
                _Keep,
                max_tokens=80,
            )
        except LLMError as exc:
            return [p.id for p in shown[: params.fallback_keep]], f"{type(exc).__name__}"
        picked = list(dict.fromkeys(i for i in out.keep if 0 <= i < len(shown)))
        return [shown[i].id for i in picked], None

    results = await asyncio.gather(*(one(q, h) for q, h in current.hits.items()))
    kept = {q: ids for q, (ids, _) in zip(current.hits, results, strict=True)}
    failures = [q for q, (_, err) in zip(current.hits, results, strict=True) if err]
    if failures:
        errors = [
            *errors,
            f"filter: {len(failures)} of {len(kept)} calls failed; kept the top {params.fallback_keep}",
        ]
    updated = current.model_copy(update={"kept": kept})
    n = sum(len(v) for v in kept.values())
    return {
        "rounds": [*state.rounds[:-1], updated],
        "errors": errors,
        **event(f"kept {n} hits over {len(kept)} queries", failed=len(failures)),
    }


class ReflectParams(_Params):
    """Parameters of ``reflect``."""

    style: Literal["multihop", "premise"] = "multihop"
    """Prompt family."""

    max_hits: int = Field(default=30, ge=1)
    """Kept hits shown to the judge."""


class _Verdict(BaseModel):
    verdict: Literal["good", "bad"]
    feedback: str = Field(default="", max_length=400)


def round_udcg(rnd: SearchRound, *, max_items: int = 8) -> float:
    """The value of the best context a round's kept hits make: the packer's objective.

    The hits the filter kept, fused over queries, are packed as ``pack_context`` would pack
    them (:func:`agentrag.scoring.packing.pack`, no token budget, ``max_items`` slots); each
    kept hit's P(relevant) is its typed relevance when known, else the filter's verdict (kept =
    relevant). Hits the filter dropped are not in the context, so they do not count. A round
    that finds more distinct relevant hits is worth more, up to what the context holds; the
    share of hits the filter kept (what this used to measure) does not enter.
    """
    from agentrag.scoring.packing import PackItem, pack

    def p_of(hit: Passage) -> float:
        rel: Any = getattr(hit, "relevance", None)
        p = getattr(rel, "p", None)
        return 1.0 if p is None else float(p)

    items = [PackItem(p=p_of(h), tokens=0) for h in fused_hits(rnd)]
    return pack(items, token_budget=None, max_items=max_items).udcg


def fused_hits(rnd: SearchRound) -> list[Passage]:
    """The round's kept hits fused by ``sum 1/log2(i+2)`` over queries (LeanSearch v2)."""
    score: dict[str, float] = {}
    first: dict[str, Passage] = {}
    for query, ids in rnd.kept.items():
        by_id = {p.id: p for p in rnd.hits.get(query, [])}
        for i, pid in enumerate(ids):
            score[pid] = score.get(pid, 0.0) + 1.0 / math.log2(i + 2)
            if pid not in first and pid in by_id:
                first[pid] = by_id[pid]
    order = sorted((pid for pid in score if pid in first), key=lambda pid: -score[pid])
    return [
        first[pid].model_copy(
            update={
                "score": score[pid],
                "scores": first[pid].scores.model_copy(update={"aggregate": score[pid]}),
            }
        )
        for pid in order
    ]


@node("reflect", params=ReflectParams)
async def reflect(state: RAGState, runtime: Runtime[RunContext], params: ReflectParams) -> dict[str, Any]:
    """The judge: good (stop) or bad with feedback. An unusable answer counts as bad.

    The judge is not asked about a round after which the budget allows no other (the loop ends
    either way).

    A bad round stops the loop when a budget is used up or the round's expected UDCG did not
    rise above the best earlier round's.
    """
    ctx = runtime.context
    current = state.rounds[-1]
    value = round_udcg(current)
    history = [*state.udcg_history, value]
    over = state.budget.over()
    if over is not None:
        # The budget allows no further round: good or bad, the loop ends here, so the judge's
        # call would change nothing (one LLM call saved per run on a one-round CPU plan). The
        # round stays unjudged and the router sends it on as the last one. Rounds run as
        # planned are not a cut; calls, tokens or time running out are, and say so.
        update: dict[str, Any] = {"udcg_history": history}
        if over != "rounds":
            update["budget"] = state.budget.model_copy(update={"exhausted": over})
        return {**update, **event(f"not judged: the last round the budget allows ({over})")}
    shown = fused_hits(current)[: params.max_hits]
    template = "reflect_premise" if params.style == "premise" else "reflect"
    errors: list[str] = []
    try:
        out = await ctx.llm.structured(
            ctx.prompts.messages(template, question=state.question, queries=list(current.hits), hits=shown),
            _Verdict,
            max_tokens=160,
        )
        verdict, feedback = out.verdict, out.feedback
    except LLMError as exc:
        errors = degraded(state, "reflect", "counted as bad", exc)
        verdict, feedback = "bad", "the judge could not be consulted"
    budget = state.budget
    if verdict == "bad":
        stop = budget.over()
        if stop is None and len(history) >= 2 and value - max(history[:-1]) <= budget.min_gain:
            stop = "no_gain"
        if stop is not None:
            budget = budget.model_copy(update={"exhausted": stop})
    updated = current.model_copy(update={"verdict": verdict, "feedback": feedback})
    return {
        "rounds": [*state.rounds[:-1], updated],
        "udcg_history": history,
        "budget": budget,
        "errors": errors,
        **event(
            f"{verdict}" + (f" (loop stops: {budget.exhausted})" if budget.exhausted else ""),
            feedback=feedback,
            round_udcg=round(value, 4),
        ),
    }


@router("reflect_verdict", outcomes=("good", "bad", "exhausted"))
def reflect_verdict(state: RAGState) -> str:
    """The judge's verdict, or ``exhausted`` when the loop ends without one.

    That is when a budget / the gain rule stopped the loop, or when the last round the budget
    allows went unjudged.
    """
    last = state.rounds[-1].verdict if state.rounds else None
    if state.budget.exhausted is not None or last is None:
        return "exhausted"
    return last


class AggregateParams(_Params):
    """Parameters of ``aggregate``."""

    top_k: int = Field(default=20, ge=1)
    """Results kept."""

    rounds: Literal["final", "all"] = "final"
    """Fuse the final round only (LeanSearch v2) or every round."""


@node("aggregate", params=AggregateParams, uses_llm=False)
async def aggregate(state: RAGState, runtime: Runtime[RunContext], params: AggregateParams) -> dict[str, Any]:
    """Rank fusion of the kept hits: ``sum 1/log2(i+2)``; results become the candidates."""
    chosen = state.rounds[-1:] if params.rounds == "final" else state.rounds
    merged: dict[str, Passage] = {}
    for rnd in chosen:
        for p in fused_hits(rnd):
            if p.id in merged:
                total = merged[p.id].score + p.score
                merged[p.id] = merged[p.id].model_copy(
                    update={"score": total, "scores": p.scores.model_copy(update={"aggregate": total})}
                )
            else:
                merged[p.id] = p
    results = sorted(merged.values(), key=lambda p: -p.score)[: params.top_k]
    if not results and state.rounds:
        # Nothing was kept: fall back to the final round's raw hits in retrieval order.
        raw = [p for hits in state.rounds[-1].hits.values() for p in hits]
        results = list({p.id: p for p in raw}.values())[: params.top_k]
    return {
        "results": results,
        "candidates": results,
        "evidence": [],
        **event(f"{len(results)} results from {len(chosen)} round(s)"),
    }
