"""The graph state: everything a run knows, as plain data.

No clients or handles live here (they are in the runtime context), so the state round-trips
through JSON and checkpoints stay trivial to serialise. Nodes read the state and return a
partial update (a dict of fields to replace). The records ``trace``, ``dropped`` and ``errors``
are append-only: LangGraph merges them through a reducer (:func:`append_records`), so a node
returns only its new records and no node can erase an earlier one.

Example:
    >>> s = RAGState(question="Who wrote Hamlet?")
    >>> RAGState.model_validate_json(s.model_dump_json()) == s
    True
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentrag.settings import Budget
from agentrag.stores.filters import Filter
from agentrag.types import Citation, Dropped, Evidence, Outcome, Passage, TraceEvent

__all__ = [
    "RESET",
    "Budget",
    "BudgetState",
    "ChatTurn",
    "CragAction",
    "Outcome",
    "Plan",
    "PlanStep",
    "RAGState",
    "SearchRound",
    "append_records",
]

CragAction = Literal["correct", "ambiguous", "incorrect"]

RESET = "__reset__"
"""Key of the one update that replaces a record list instead of extending it: the input of a
new turn on a thread (``{RESET: [...]}``), so one turn's trace does not run into the next."""


def append_records(old: list[Any], new: Any) -> list[Any]:
    """The reducer of the append-only lists: ``old + new``.

    A node's update can only add records. The one exception is a new run's input, which
    starts the lists afresh with ``{RESET: [...]}`` (see :data:`RESET`).
    """
    if isinstance(new, Mapping) and RESET in new:
        return list(new[RESET])
    if new is None:
        return list(old)
    return [*old, *new]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class BudgetState(Budget):
    """A run's limits (:class:`Budget`) and what has been used so far."""

    model_config = ConfigDict(extra="forbid", frozen=False, use_attribute_docstrings=True)

    rounds: int = 0
    """Loop rounds started."""

    llm_calls: int = 0
    """Model requests made (answered ones)."""

    tokens: int = 0
    """Tokens used."""

    started_at: float = Field(default_factory=time.time)
    """When the run started (epoch seconds)."""

    exhausted: str | None = None
    """Which limit stopped a loop: ``rounds``, ``llm_calls``, ``tokens``, ``wall_time`` or
    ``no_gain`` (None while none has)."""

    @classmethod
    def start(cls, limits: Budget) -> BudgetState:
        """Fresh counters under ``limits``."""
        return cls(**limits.model_dump())

    @property
    def limits(self) -> Budget:
        """The limits alone."""
        return Budget(**{k: getattr(self, k) for k in Budget.model_fields})

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.time() - self.started_at

    def remaining_s(self) -> float:
        """Wall-clock seconds left (never negative)."""
        return max(0.0, self.max_wall_s - self.elapsed())

    def over(self) -> str | None:
        """The first limit that is used up (``rounds`` counts as used up at ``max_rounds``)."""
        if self.rounds >= self.max_rounds:
            return "rounds"
        return self.over_calls()

    def over_calls(self) -> str | None:
        """The first limit that forbids another model call.

        ``llm_calls``, ``tokens`` or ``wall_time``; rounds do not (a round's own calls are
        allowed).
        """
        if self.llm_calls >= self.max_llm_calls:
            return "llm_calls"
        if self.tokens >= self.max_tokens:
            return "tokens"
        if self.elapsed() >= self.max_wall_s:
            return "wall_time"
        return None


class PlanStep(_Model):
    """One step of a sketch plan."""

    description: str = ""
    """What the step establishes."""

    reasoning: str = ""
    """Why it is needed."""

    queries: list[str] = Field(default_factory=list)
    """Search queries for it."""


class Plan(_Model):
    """A sketch: what to look for, as search queries (LeanSearch v2's reasoning mode)."""

    definition_queries: list[str] = Field(default_factory=list)
    """Queries for the definitions / entities involved."""

    highlevel_queries: list[str] = Field(default_factory=list)
    """Queries for the overall answer or result."""

    steps: list[PlanStep] = Field(default_factory=list)
    """Steps of the argument, each with its queries."""

    def queries(self, limit: int = 20) -> list[str]:
        """All queries, de-duplicated in order, at most ``limit``."""
        out: list[str] = []
        seen: set[str] = set()
        for raw in [
            *self.definition_queries,
            *self.highlevel_queries,
            *(q for s in self.steps for q in s.queries),
        ]:
            q = raw.strip()
            if q and q.lower() not in seen:
                seen.add(q.lower())
                out.append(q)
        return out[:limit]


class SearchRound(_Model):
    """One round of sketch -> retrieve -> filter -> reflect."""

    plan: Plan
    """The plan of this round."""

    hits: dict[str, list[Passage]] = Field(default_factory=dict)
    """Per query, the retrieved passages in rank order."""

    kept: dict[str, list[str]] = Field(default_factory=dict)
    """Per query, the ids the filter kept, in rank order."""

    verdict: Literal["good", "bad"] | None = None
    """The judge's verdict."""

    feedback: str = ""
    """The judge's feedback for the next round."""


class ChatTurn(_Model):
    """One earlier question and answer of the conversation (thread)."""

    question: str
    """What was asked."""

    answer: str
    """What was answered."""


class RAGState(_Model):
    """The state every shipped graph runs on."""

    question: str
    """The user's question for this turn."""

    history: list[ChatTurn] = Field(default_factory=list)
    """Earlier turns of the same thread."""

    filters: Filter | None = None
    """Metadata filter of the request: every node that retrieves applies it (tenant scope)."""

    queries: list[str] = Field(default_factory=list)
    """Search queries (rewrite / multi-query / HyDE variants; the question if none)."""

    candidates: list[Passage] = Field(default_factory=list)
    """Retrieved passages (merged over queries), with per-stage scores."""

    evidence: list[Evidence] = Field(default_factory=list)
    """Scored evidence after reranking / refinement, best first."""

    context: list[Evidence] = Field(default_factory=list)
    """The packed context the answer is generated from, in prompt order."""

    dropped: Annotated[list[Dropped], append_records] = Field(default_factory=list)
    """Passages left out, with reasons (append-only)."""

    udcg: float | None = None
    """Expected UDCG of the packed context."""

    udcg_history: list[float] = Field(default_factory=list)
    """Expected UDCG of the evidence after each loop round (the utility-gain rule reads it)."""

    crag_action: CragAction | None = None
    """The corrective gate's last decision."""

    rounds: list[SearchRound] = Field(default_factory=list)
    """Sketch-retrieve-reflect rounds."""

    results: list[Passage] = Field(default_factory=list)
    """Ranked results of a search graph (premise search ends here)."""

    answer: str = ""
    """The generated answer with [n] markers."""

    citations: list[Citation] = Field(default_factory=list)
    """Resolved citations."""

    outcome: Outcome | None = None
    """How the run ended (set by the last node)."""

    budget: BudgetState = Field(default_factory=BudgetState)
    """Limits and counters."""

    trace: Annotated[list[TraceEvent], append_records] = Field(default_factory=list)
    """Node events, in order (append-only)."""

    timings: dict[str, float] = Field(default_factory=dict)
    """Seconds per node, summed over rounds."""

    errors: Annotated[list[str], append_records] = Field(default_factory=list)
    """Degradations that happened (a node fell back after a failed call), as readable lines
    (append-only). Any line makes the run's outcome ``degraded``."""
