"""Corrective RAG (Yan et al. 2024): ``crag_gate``, ``refine`` (knowledge strips) and ``correct``.

The gate reads calibrated P(relevant) of the evidence: CORRECT if any item reaches ``upper``,
INCORRECT if all are below ``lower``, AMBIGUOUS otherwise. CORRECT goes to refinement;
INCORRECT and AMBIGUOUS go to corrective retrieval (AMBIGUOUS keeps the plausible evidence,
INCORRECT discards it) and come back through ``rerank`` to the gate, until a budget or the
utility-gain rule (expected UDCG must rise each round) ends the loop.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentrag.errors import AgentragError, LLMError, RerankError
from agentrag.graph.registry import node, router
from agentrag.nodes._util import degraded, event, retriever, scope
from agentrag.nodes.pack import evidence_p, expected_udcg
from agentrag.types import Dropped, Evidence, Passage

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import RunContext
    from agentrag.state import RAGState


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class GateParams(_Params):
    """Parameters of ``crag_gate``."""

    upper: float = Field(default=0.6, ge=0, le=1)
    """CORRECT when any evidence has P(relevant) at least this. A probability: the reranker's
    scores pass through the knowledge base's calibration (``agentrag kb calibrate``) when there
    is one; without it only a reranker that outputs P(yes) (Prism) makes this meaningful."""

    lower: float = Field(default=0.25, ge=0, le=1)
    """INCORRECT when all evidence is below this."""

    @model_validator(mode="after")
    def _ordered(self) -> GateParams:
        if self.lower > self.upper:
            raise ValueError(f"lower ({self.lower}) must not exceed upper ({self.upper})")
        return self


@node("crag_gate", params=GateParams, uses_llm=False)
async def crag_gate(state: RAGState, runtime: Runtime[RunContext], params: GateParams) -> dict[str, Any]:
    """Decide CORRECT / AMBIGUOUS / INCORRECT; stop the loop on budget or no UDCG gain."""
    # Unknown relevances (a reranker fallback) are not evidence of irrelevance: with none known
    # the gate cannot judge and says "ambiguous" (keep them, search more), never "incorrect".
    scores = [p for p in (evidence_p(e) for e in state.evidence) if p is not None]
    if any(s >= params.upper for s in scores):
        action: Literal["correct", "ambiguous", "incorrect"] = "correct"
    elif not scores and state.evidence:
        action = "ambiguous"
    elif all(s < params.lower for s in scores):
        action = "incorrect"
    else:
        action = "ambiguous"
    value = expected_udcg(state.evidence)
    history = [*state.udcg_history, value]
    budget = state.budget
    stop = None
    if action != "correct":
        stop = budget.over()
        # The utility-gain rule: a correction round that did not raise the expected UDCG of
        # the evidence is not worth repeating.
        if stop is None and len(history) >= 2 and value - max(history[:-1]) <= budget.min_gain:
            stop = "no_gain"
    update: dict[str, Any] = {"crag_action": action, "udcg_history": history}
    if stop is not None:
        update["budget"] = budget.model_copy(update={"exhausted": stop})
    return {
        **update,
        **event(
            f"{action}" + (f" (loop stops: {stop})" if stop else ""),
            max_relevance=round(max(scores), 3) if scores else None,
            expected_udcg=round(value, 4),
            # The thresholds are probabilities only when the reranker's scores are: a fitted
            # calibration (``agentrag kb calibrate``) or a model that outputs P(yes).
            calibrated=getattr(runtime.context.reranker, "calibration", None) is not None,
        ),
    }


@router("crag_action", outcomes=("correct", "ambiguous", "incorrect", "exhausted"))
def crag_action(state: RAGState) -> str:
    """The gate's decision, or ``exhausted`` when a budget / the gain rule stopped the loop."""
    if state.budget.exhausted is not None:
        return "exhausted"
    return state.crag_action or "incorrect"


class RefineParams(_Params):
    """Parameters of ``refine``."""

    strip: Literal["sentences", "words"] = "sentences"
    """Strip shape: groups of sentences, or fixed word windows."""

    size: int = Field(default=3, ge=1)
    """Sentences per strip, or words per strip (CRAG: 3 sentences or ~50 words)."""

    top_n: int = Field(default=6, ge=1)
    """Strips kept over all evidence."""

    max_passages: int = Field(default=5, ge=1)
    """Evidence items decomposed (best first)."""

    scorer: Literal["auto", "reranker", "llm", "embedding"] = "auto"
    """Strip scoring: the reranker, a yes/no LLM prompt, or embedding cosine. ``auto``: the
    reranker when there is one, else the embedder, else the LLM."""

    min_relevance: float = Field(default=0.0, ge=0, le=1)
    """Drop strips scoring below this."""


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def strips(text: str, *, mode: str, size: int) -> list[tuple[int, int]]:
    """Character spans of the strips of ``text`` (sentence groups or word windows)."""
    if mode == "words":
        words = [m.span() for m in re.finditer(r"\S+", text)]
        return [(words[i][0], words[min(i + size, len(words)) - 1][1]) for i in range(0, len(words), size)]
    bounds = [0] + [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    sentences = [(a, b) for a, b in itertools.pairwise(bounds) if text[a:b].strip()]
    out = []
    for i in range(0, len(sentences), size):
        a = sentences[i][0]
        b = sentences[min(i + size, len(sentences)) - 1][1]
        # Trim whitespace so the span's text is exactly the strip.
        while b > a and text[b - 1].isspace():
            b -= 1
        out.append((a, b))
    return out


async def _score_strips(
    runtime: Runtime[RunContext], question: str, items: list[Passage], scorer: str
) -> list[float]:
    ctx = runtime.context
    if scorer == "auto":
        scorer = (
            "reranker" if ctx.reranker is not None else "embedding" if ctx.embedder is not None else "llm"
        )
    if scorer == "reranker" and ctx.reranker is not None:
        reranker = ctx.reranker
        score_only = getattr(reranker, "ascore", None)
        if score_only is not None:
            # Scores only: a strip needs a number, not an evidence rewrite (Prism would write one
            # for every kept strip through arerank).
            raw = list(await score_only(question, items))
            calibration = getattr(reranker, "calibration", None)
            probs = calibration.predict(raw) if calibration is not None else raw
            return [min(1.0, max(0.0, float(p))) for p in probs]
        result = await reranker.arerank(question, items, top_n=None, threshold=None)
        if result.fallback:
            # No scores (unknown relevance is not 0): refine falls back to the unrefined evidence.
            raise RerankError(f"strip scoring fell back: {result.fallback_reason}")
        by_id = {p.id: p.relevance.p for p in result.passages if p.relevance.p is not None}
        return [by_id.get(p.id, 0.0) for p in items]
    if scorer == "embedding" and ctx.embedder is not None:
        q = await ctx.embedder.aembed_query(question)
        vecs = await ctx.embedder.aembed_documents([p.text for p in items])
        return [max(0.0, float(v @ q)) for v in vecs]
    judgements = await asyncio.gather(
        *(
            ctx.llm.yes_no(ctx.prompts.messages("strip_relevance", question=question, strip=p.text))
            for p in items
        )
    )
    return [j.p_yes for j in judgements]


@dataclass(frozen=True)
class _Strip:
    """One strip: which evidence item it came from, its text, and its span in the source."""

    item: int
    """Index of the evidence item (the strip's source)."""

    order: int
    """Position among its source's strips."""

    passage: Passage
    """The strip as a passage (what the scorer sees)."""

    start: int | None
    """Character offset in the source document (None for a rewrite that is not verbatim)."""

    end: int | None
    """End offset."""


def _strip_source(ev: Evidence, source: Passage | None) -> tuple[str, int | None, str]:
    """The text a source's strips are cut from, its offset in the document, and which it is.

    Prism evidence (a query-focused rewrite written by the reranker) is the strip source when
    there is one; the passage text otherwise (and always when the evidence is a fallback).
    """
    if not ev.fallback and ev.text.strip() and (source is None or ev.text != source.text):
        return ev.text, ev.start, "evidence"
    if source is not None:
        return source.text, source.start, "passage"
    return ev.text, ev.start, "evidence"


def recompose(pieces: list[tuple[int, str, int | None, int | None]]) -> tuple[str, int | None, int | None]:
    """One refined passage from the kept strips of one source, in their original order.

    Args:
        pieces: ``(order, text, start, end)`` of each kept strip.

    Returns:
        The text, and its span in the source when the strips are contiguous there (so the text
        is exactly ``source[start:end]``); a span of None otherwise (citations then point at
        the whole passage rather than at text that was cut out).
    """
    pieces = sorted(pieces)
    orders = [o for o, _, _, _ in pieces]
    contiguous = orders == list(range(orders[0], orders[0] + len(orders)))
    text = " ".join(t for _, t, _, _ in pieces)
    first, last = pieces[0], pieces[-1]
    if contiguous and first[2] is not None and last[3] is not None:
        return text, first[2], last[3]
    return text, None, None


@node("refine", params=RefineParams)
async def refine(state: RAGState, runtime: Runtime[RunContext], params: RefineParams) -> dict[str, Any]:
    """Knowledge refinement (CRAG): decompose, score strips, keep the top-n, recompose.

    Each evidence item's text (its Prism evidence when the reranker wrote one, else the passage
    text) is split into strips; all strips are scored against the question; the best
    ``top_n`` over all sources are kept; the kept strips of each source are joined, in their
    original order, into one refined passage. A source with no kept strip, and any item beyond
    ``max_passages``, is removed with a ``Dropped`` record. Fallback: if scoring fails, the
    evidence is kept as it was.
    """
    by_id = {p.id: p for p in state.candidates}
    evidence = list(state.evidence)
    pieces: list[_Strip] = []
    kinds: dict[str, int] = {"evidence": 0, "passage": 0}
    for i, ev in enumerate(evidence[: params.max_passages]):
        source = by_id.get(ev.passage_id)
        text, offset, kind = _strip_source(ev, source)
        kinds[kind] += 1
        for order, (a, b) in enumerate(strips(text, mode=params.strip, size=params.size)):
            base = source or Passage(id=ev.passage_id, text=text, source=ev.source, title=ev.title)
            piece = base.model_copy(update={"id": f"{ev.passage_id}#{kind}:{a}", "text": text[a:b]})
            span = (offset + a, offset + b) if offset is not None else (None, None)
            pieces.append(_Strip(item=i, order=order, passage=piece, start=span[0], end=span[1]))
    if not pieces:
        return event("nothing to refine")
    try:
        scores = await _score_strips(runtime, state.question, [s.passage for s in pieces], params.scorer)
    except (AgentragError, LLMError) as exc:
        return {
            "errors": degraded(state, "refine", "kept unrefined evidence", exc),
            **event("refinement failed"),
        }
    ranked = sorted(range(len(pieces)), key=lambda j: -scores[j])
    kept = {j for j in ranked[: params.top_n] if scores[j] >= params.min_relevance}
    refined: list[Evidence] = []
    dropped: list[Dropped] = []
    for i, ev in enumerate(evidence):
        if i >= params.max_passages:
            dropped.append(
                Dropped(
                    passage_id=ev.passage_id,
                    stage="refine",
                    score=evidence_p(ev),
                    reason=f"beyond the {params.max_passages} evidence items refined",
                )
            )
            continue
        mine = [j for j, s in enumerate(pieces) if s.item == i]
        chosen = [j for j in mine if j in kept]
        if not chosen:
            best = max((scores[j] for j in mine), default=None)
            dropped.append(
                Dropped(
                    passage_id=ev.passage_id,
                    stage="refine",
                    score=evidence_p(ev),
                    reason=f"none of its {len(mine)} strips is among the best {params.top_n}"
                    + (f" (its best strip scored {best:.2f})" if best is not None else ""),
                )
            )
            continue
        text, start, end = recompose(
            [(pieces[j].order, pieces[j].passage.text, pieces[j].start, pieces[j].end) for j in chosen]
        )
        # The refined passage keeps its passage-level relevance: that is the calibrated
        # probability; strip scores only rank strips against each other.
        refined.append(ev.model_copy(update={"text": text, "start": start, "end": end}))
    refined.sort(key=lambda e: (evidence_p(e) is None, -(evidence_p(e) or 0.0)))
    return {
        "evidence": refined,
        "dropped": dropped,
        **event(
            f"kept {len(kept)} of {len(pieces)} strips, recomposed into {len(refined)} passages",
            strip_sources=kinds,
            dropped=len(dropped),
        ),
    }


class CorrectParams(_Params):
    """Parameters of ``correct``."""

    source: str | None = None
    """A named retrieval source from the run context (another index, a search tool). Default:
    the knowledge base, searched again with a rewritten query and a wider ``k``."""

    k: int = Field(default=30, ge=1)
    """Passages to fetch."""

    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    """Retrieval mode."""

    keep_above: float = Field(default=0.25, ge=0, le=1)
    """AMBIGUOUS: evidence at or above this P(relevant) (or of unknown relevance) is kept
    alongside the new results."""

    filters: dict[str, Any] | None = None
    """Metadata filters of this node (applied with the request's ``state.filters``)."""


class _Query(BaseModel):
    query: str = Field(max_length=200)


@node("correct", params=CorrectParams, retrieves=True)
async def correct(state: RAGState, runtime: Runtime[RunContext], params: CorrectParams) -> dict[str, Any]:
    """Corrective retrieval: a rewritten query against a wider or different source.

    INCORRECT discards the current evidence; AMBIGUOUS keeps what is plausibly relevant.
    Passages already judged are not fetched again. Fallback: if the rewrite fails, the
    question is searched as is.
    """
    ctx = runtime.context
    budget = state.budget.model_copy(update={"rounds": state.budget.rounds + 1})
    errors: list[str] = []
    tried = state.queries or [state.question]
    try:
        out = await ctx.llm.structured(
            ctx.prompts.messages("corrective_query", question=state.question, tried=tried),
            _Query,
            max_tokens=80,
        )
        query = out.query.strip() or state.question
    except LLMError as exc:
        errors = degraded(state, "correct", "searched with the question", exc)
        query = state.question
    hits = await retriever(runtime, params.source).asearch(
        query, k=params.k, mode=params.mode, filters=scope(state, params.filters)
    )
    judged = {e.passage_id for e in state.evidence} | {d.passage_id for d in state.dropped}
    keep = (
        [e for e in state.evidence if e.relevance.p is None or e.relevance.p >= params.keep_above]
        if state.crag_action == "ambiguous"
        else []
    )
    kept_ids = {e.passage_id for e in keep}
    why = (
        f"AMBIGUOUS: p(relevant) below keep_above {params.keep_above}; replaced by corrective retrieval"
        if state.crag_action == "ambiguous"
        else "INCORRECT: all evidence below the gate's lower threshold; replaced by corrective retrieval"
    )
    removed = [
        Dropped(passage_id=e.passage_id, stage="correct", score=evidence_p(e), reason=why)
        for e in state.evidence
        if e.passage_id not in kept_ids
    ]
    old = [p for p in state.candidates if p.id in kept_ids]
    new = [p.model_copy(update={"query": query}) for p in hits if p.id not in judged]
    return {
        "queries": [*tried, query],
        "candidates": old + new,
        "evidence": keep,
        "dropped": removed,
        "budget": budget,
        "errors": errors,
        **event(
            f"round {budget.rounds}: {len(new)} new passages for {query!r}",
            kept=len(keep),
            removed=len(removed),
        ),
    }
