"""Domain models shared across the library.

All are pydantic models that round-trip through JSON (``model_dump_json`` /
``model_validate_json``), so they can live in graph state, checkpoints and reports.

The chain of custody from a file to a cited answer::

    Chunk (stored) -> Passage (retrieved, scored per stage) -> Evidence (what a reranker kept)
                   -> Citation (what the answer points at: source + character span)
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = [
    "Answer",
    "Chunk",
    "Citation",
    "Dropped",
    "Evidence",
    "MetadataValue",
    "Outcome",
    "Passage",
    "Relevance",
    "RelevanceOrigin",
    "StageScores",
    "TraceEvent",
    "Usage",
]

MetadataValue = str | int | float | bool
"""Metadata values every vector store can hold and filter on."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


RelevanceOrigin = Literal["reranker", "calibrated", "retriever", "fallback", "none"]
"""Where a relevance came from: a reranker's own probability, a calibrated map of a raw score,
a calibrated retriever score, a fallback (scoring failed: unknown), or nobody (unknown)."""

Outcome = Literal["answered", "abstained", "degraded", "budget_exhausted", "failed"]
"""How a run ended. ``degraded``: an answer, but a model call failed on the way and a node fell
back (never reported as an abstention); ``failed``: no answer could be generated."""


class Relevance(_Model):
    """P(relevant) of a passage for a query, where it came from, and whether it is known.

    An unknown relevance (``p is None``) is never a score of 0: consumers keep the retrieval
    order for unknown items instead of treating them as distractors.

    Example:
        >>> Relevance(p=0.8, origin="reranker").known, Relevance(origin="fallback").known
        (True, False)
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    p: float | None = Field(default=None, ge=0.0, le=1.0)
    """Probability in [0, 1]; None = unknown."""

    origin: RelevanceOrigin = "none"
    """Who produced ``p`` (``fallback``/``none`` when unknown)."""

    @property
    def known(self) -> bool:
        """Whether ``p`` is a probability (not unknown)."""
        return self.p is not None

    def __str__(self) -> str:
        return f"{self.p:.2f}" if self.p is not None else "unknown"


class StageScores(_Model):
    """The score each retrieval / ranking stage gave a passage (None: that stage did not score it).

    Raw scores on each stage's own scale; only :class:`Relevance` is a probability.
    """

    bm25: float | None = None
    """BM25 score."""

    dense: float | None = None
    """Dense (embedding) similarity."""

    rrf: float | None = None
    """Reciprocal-rank fusion of bm25 and dense."""

    convex: float | None = None
    """Convex (normalised, weighted) fusion of bm25 and dense."""

    multi_rrf: float | None = None
    """Reciprocal-rank fusion over query variants (``multi_query``)."""

    aggregate: float | None = None
    """Sum over queries and rounds (sketch-retrieve-reflect)."""

    rerank: float | None = None
    """The reranker's raw score."""

    def as_dict(self) -> dict[str, float]:
        """The stages that scored the passage, ``{stage: score}``."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Chunk(_Model):
    """A piece of a source document, as stored in a knowledge base."""

    id: str
    """Stable content-hash id (same source + same text = same id)."""

    text: str
    """The chunk's text, exactly as it appears in the source between ``start`` and ``end``."""

    source: str
    """Where it came from: a file path, URL or corpus id."""

    title: str = ""
    """Document title, if known."""

    start: int = Field(default=0, ge=0)
    """Character offset of the chunk in the source's extracted text."""

    end: int = Field(default=0, ge=0)
    """Character offset one past the chunk's last character."""

    doc_id: str = ""
    """Id of the source document (all chunks of one file share it)."""

    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    """Filterable metadata (flat scalars only)."""


class Passage(Chunk):
    """A chunk retrieved for a query, carrying the score each stage gave it."""

    score: float = 0.0
    """The score the current ordering is by (the latest stage's)."""

    scores: StageScores = Field(default_factory=StageScores)
    """Per-stage raw scores (``bm25``, ``dense``, ``rrf``, ``rerank``, ...)."""

    relevance: Relevance = Field(default_factory=Relevance)
    """P(relevant) once a reranker (or a calibration) produced one; unknown before."""

    query: str = ""
    """The query (variant) that retrieved it."""


class Evidence(_Model):
    """What a reranker kept from a passage: the query-relevant content and why it matters."""

    passage_id: str
    """Id of the passage (chunk) the evidence came from."""

    text: str
    """Evidence text for the generator's context (the passage text itself on fallback)."""

    contribution: str = ""
    """One sentence: what the passage contributes to answering the query."""

    relevance: Relevance = Field(default_factory=Relevance)
    """P(relevant), calibrated where a calibration exists; unknown when nobody could score it."""

    source: str = ""
    """The passage's source."""

    title: str = ""
    """The passage's title."""

    start: int | None = None
    """Character offset of the evidence text in the source, when it was found verbatim."""

    end: int | None = None
    """End offset matching ``start``."""

    fallback: bool = False
    """True when generation failed and the passage text stands in for extracted evidence."""


class Citation(_Model):
    """One ``[n]`` marker in an answer, resolved to the exact text it points at."""

    marker: int = Field(ge=1)
    """The number inside the brackets."""

    passage_id: str
    """The cited passage."""

    source: str
    """The cited passage's source."""

    title: str = ""
    """The cited passage's title."""

    start: int
    """Character offset in the source of the cited text."""

    end: int
    """End offset of the cited text."""

    quote: str
    """The cited text itself (source[start:end])."""


class Dropped(_Model):
    """A passage left out of the answer's context, and why."""

    passage_id: str
    """The passage."""

    stage: str
    """Which node dropped it (``rerank``, ``pack_context``, ...)."""

    reason: str
    """Human-readable reason, e.g. ``"likely distractor: p(relevant)=0.08, utility -0.29"``."""

    score: float | None = None
    """The score it was dropped at, if any."""


class TraceEvent(_Model):
    """One step of a run, for debugging and display."""

    node: str
    """Node (or component) name."""

    event: Literal["start", "end", "error", "info", "route", "budget"] = "info"
    """Kind of event."""

    message: str = ""
    """What happened, in a sentence."""

    elapsed_s: float = 0.0
    """Seconds since the run started."""

    data: dict[str, Any] = Field(default_factory=dict)
    """JSON-ready details (counts, scores, route taken)."""


class Usage(_Model):
    """LLM usage accounting. Thread- and task-safe to update through :meth:`add`."""

    calls: int = 0
    """Requests that got an answer."""

    failed_calls: int = 0
    """Attempts that failed (including retried ones)."""

    prompt_tokens: int = 0
    """Prompt tokens over all answered calls."""

    completion_tokens: int = 0
    """Completion tokens over all answered calls."""

    by_model: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Per-model ``{"calls", "prompt_tokens", "completion_tokens"}``."""

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __eq__(self, other: object) -> bool:
        # Compare the counts, not the private lock (two meters with equal counts are equal).
        return isinstance(other, Usage) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def add(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Record one answered call."""
        with self._lock:
            self.calls += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            row = self.by_model.setdefault(model, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
            row["calls"] += 1
            row["prompt_tokens"] += prompt_tokens
            row["completion_tokens"] += completion_tokens

    def add_failure(self) -> None:
        """Record one failed attempt."""
        with self._lock:
            self.failed_calls += 1

    def merge(self, other: Usage) -> None:
        """Add another meter's counts into this one."""
        with self._lock:
            self.calls += other.calls
            self.failed_calls += other.failed_calls
            self.prompt_tokens += other.prompt_tokens
            self.completion_tokens += other.completion_tokens
            for model, row in other.by_model.items():
                mine = self.by_model.setdefault(
                    model, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
                )
                for key, value in row.items():
                    mine[key] = mine.get(key, 0) + value

    def snapshot(self) -> Usage:
        """An independent copy (for reports)."""
        with self._lock:
            return Usage.model_validate(self.model_dump())


class Answer(_Model):
    """The result of asking a question."""

    question: str
    """The question as asked."""

    text: str
    """The answer, with ``[n]`` citation markers."""

    outcome: Outcome = "answered"
    """How the run ended (``degraded``/``failed``: see :attr:`errors` for what failed)."""

    citations: list[Citation] = Field(default_factory=list)
    """Resolved ``[n]`` markers."""

    evidence: list[Evidence] = Field(default_factory=list)
    """The evidence the answer was generated from, in context order."""

    dropped: list[Dropped] = Field(default_factory=list)
    """Passages kept out of the context, with reasons."""

    udcg: float | None = None
    """UDCG of the packed context (None when not scored)."""

    usage: Usage = Field(default_factory=Usage)
    """LLM usage for this answer."""

    timings: dict[str, float] = Field(default_factory=dict)
    """Seconds per node (summed over loop rounds) and ``total``."""

    trace: list[TraceEvent] = Field(default_factory=list)
    """What happened, step by step."""

    graph: str = ""
    """Name of the graph that produced it."""

    errors: list[str] = Field(default_factory=list)
    """Fallbacks nodes took on the way (``node: what (error)``); empty on a clean run."""
