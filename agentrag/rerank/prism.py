r"""Prism-style evidence reranking over an OpenAI-compatible server (vLLM).

Two phases, as in Prism-Reranker:

1. **Score** every candidate with one generated token: the raw ChatML prompt (template
   ``prompts/rerank_prism.jinja``) goes to ``/v1/completions`` with ``max_tokens=1`` and
   top-20 log-probabilities, and the relevance is P(yes) / (P(yes) + P(no)) =
   sigmoid(logprob_yes − logprob_no) at the first token; a token missing from the top-20 counts
   as log-probability −10. All candidates are sent at once (up to the client's
   ``max_concurrency``), and the prompt puts the instruction and the query before the document
   so vLLM's prefix cache serves the shared part.
2. **Explain** only what is kept (``top_n`` / ``threshold``): the same prompt plus the prefill
   ``yes\n<contribution>`` is continued greedily (up to ``max_tokens``, default 512) into a
   contribution sentence and an evidence rewrite, again concurrently.

Where concurrency pays (``bench/prism_latency.py``): scoring is one token of generation after
a prefill of the document, so its cost is prefill compute. On a GPU the server batches the
prefills and N candidates cost about one round trip; on a CPU server prefill already saturates
the cores, and 20 candidates sent together took as long as 20 single calls one after another
(~20x one call, measured with SmolLM2-135M on 2 shared cores). Evidence generation is
decode-bound and batches well even on CPU (5 evidences together: ~1.9x the time of one).
On CPU, shorten documents (``max_document_chars``) or rerank fewer candidates.

Fallbacks, each logged:

- A scoring call fails (after the client's retries): the whole result keeps the retrieval
  order (no rerank scores; ``threshold`` cannot be applied and is ignored; ``top_n`` still
  caps), ``RerankResult.fallback`` is set with the reason, and each kept passage's evidence is
  its own text with ``Evidence.fallback=True`` and an unknown relevance (origin ``fallback``,
  never 0: a failed call says nothing about relevance).
- Evidence generation fails or its answer cannot be used (no ``<evidence>``, cut off at
  ``max_tokens``, empty): that passage's evidence is its own text with ``fallback=True``; its
  score stands.

Evidence carries the passage id and, when the evidence text occurs in the passage (exactly or
up to whitespace), its character span in the source (``Passage.start`` + offset in the
passage). A rewrite usually does not occur verbatim; then ``start``/``end`` are None.

Example:
    >>> from agentrag.llm import LLMClient
    >>> from agentrag.rerank import PrismReranker
    >>> reranker = PrismReranker(LLMClient.from_settings(settings, "reranker"))  # doctest: +SKIP
    >>> result = await reranker.arerank("Who wrote Hamlet?", passages, top_n=3)  # doctest: +SKIP
    >>> result.evidence[0].text                                                # doctest: +SKIP
    'Hamlet was written by William Shakespeare around 1600.'
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from agentrag.errors import AgentragError
from agentrag.llm.vllm_api import served_name
from agentrag.prompts import load_prompt
from agentrag.rerank.base import (
    BaseReranker,
    RerankResult,
    document_text,
    fallback_result,
    select,
)
from agentrag.rerank.evidence import locate_span, parse_prism_output
from agentrag.types import Evidence, Passage, Relevance

if TYPE_CHECKING:
    from agentrag.llm.client import LLMClient
    from agentrag.scoring.calibration import Calibration

__all__ = ["GENERAL_MODEL_EXAMPLES", "PRISM_THINK", "PrismConfig", "PrismExample", "PrismReranker"]

log = logging.getLogger(__name__)

PRISM_THINK = "<think>\n\n</think>\n\n"
"""The empty think block that opens the assistant turn in Prism's format."""


class PrismExample(BaseModel):
    """A worked example shown to the model as an earlier turn (few-shot)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    query: str
    """The example's query."""

    document: str
    """The example's document."""

    answer: str
    """The full expected answer: ``no``, or ``yes`` + newline + ``<contribution>…</contribution>``
    + newline + ``<evidence>…</evidence>``."""


GENERAL_MODEL_EXAMPLES = (
    PrismExample(
        query="What is the boiling point of water at sea level?",
        document="At sea level, pure water boils at 100 degrees Celsius (212 °F). At higher altitudes "
        "the boiling point is lower because the air pressure is lower.",
        answer="yes\n<contribution>It gives the boiling point of water at sea level.</contribution>\n"
        "<evidence>At sea level, pure water boils at 100 degrees Celsius (212 °F).</evidence>",
    ),
    PrismExample(
        query="What is the boiling point of water at sea level?",
        document="The Great Wall of China stretches for more than 20,000 kilometres across northern China.",
        answer="no",
    ),
)
"""Our worked examples for :meth:`PrismConfig.for_general_models`."""


class PrismConfig(BaseModel):
    """How the Prism-style reranker prompts and decides."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    template: str = "rerank_prism"
    """Prompt template (raw; variables ``query``, ``document``, ``instruction``, ``examples``, ``think``)."""

    instruction: str = ""
    """Replaces the template's default ``<Instruct>`` text (e.g. a domain-specific criterion)."""

    examples: tuple[PrismExample, ...] = ()
    """Few-shot turns before the real one. They sit in the shared prefix, so with prefix caching
    they cost prefill once per query. Models trained on the format (Prism) need none; small
    general models need them to answer yes/no at all."""

    think: str = PRISM_THINK
    """Opens the assistant turn. Prism's format is an empty think block ending in a blank line.
    For a model not trained on it, ``"<think>\\n\\n</think>\\n"`` can work better: its tokenizer
    may turn the trailing ``"\\n\\n"`` into one token that never precedes "yes" in its data."""

    yes_tokens: tuple[str, ...] = ("yes",)
    """First-token texts counted as yes (compared stripped and lower-cased)."""

    no_tokens: tuple[str, ...] = ("no",)
    """First-token texts counted as no."""

    generate_evidence: bool = True
    """Generate contribution + evidence for the kept passages (False: scores only)."""

    evidence_prefill: str = "yes\n<contribution>"
    """Written into the assistant turn before generating evidence: the passage is already kept,
    so the verdict is settled; a Prism model would write exactly this itself."""

    max_tokens: int = Field(default=512, ge=16)
    """Cap on each evidence generation."""

    max_document_chars: int | None = Field(default=None, ge=100)
    """Cut longer passages before prompting (None: send whole; the server rejects prompts over
    its context length)."""

    @classmethod
    def for_general_models(cls, **overrides: object) -> PrismConfig:
        """Settings for an instruction-tuned model that was not trained on the Prism format.

        Adds two worked examples (one yes, one no) as earlier turns and ends the think block
        with a single newline. Measured on SmolLM2-135M-Instruct: with Prism's exact zero-shot
        prompt neither "yes" nor "no" is among its top-20 first tokens (every score is 0.5);
        with these settings ~99% of the first token's mass is on yes/no.
        """
        values: dict[str, object] = {
            "examples": GENERAL_MODEL_EXAMPLES,
            "think": "<think>\n\n</think>\n",
            **overrides,
        }
        return cls.model_validate(values)


class PrismReranker(BaseReranker):
    """LLM evidence reranker (Prism format) over :class:`~agentrag.llm.LLMClient`.

    Args:
        llm: Client of the reranking model (raw completions with logprobs: vLLM).
        config: Prompting and decision settings.
        calibration: Maps the raw P(yes) to a calibrated P(relevant), used for ``threshold``
            and ``Evidence.relevance``.
    """

    def __init__(
        self, llm: LLMClient, config: PrismConfig | None = None, *, calibration: Calibration | None = None
    ) -> None:
        self.llm = llm
        self.config = config or PrismConfig()
        self.calibration = calibration
        self._template = load_prompt(self.config.template)

    @property
    def name(self) -> str:
        return f"prism:{served_name(self.llm.model)}"

    # ------------------------------------------------------------------ prompts

    def _document(self, passage: Passage) -> str:
        text = document_text(passage)
        limit = self.config.max_document_chars
        return text[:limit] if limit is not None else text

    def prompt(self, query: str, passage: Passage) -> str:
        """The raw scoring prompt for one candidate."""
        return self._template.render(
            query=query,
            document=self._document(passage),
            instruction=self.config.instruction,
            examples=[e.model_dump() for e in self.config.examples],
            think=self.config.think,
        )

    # ------------------------------------------------------------------ phases

    async def ascore(self, query: str, passages: Sequence[Passage]) -> list[float]:
        """P(yes)/(P(yes)+P(no)) for each passage, all requests in flight together.

        Raises:
            AgentragError: A call failed after the client's retries (the first failure).
        """
        cfg = self.config
        judgements = await asyncio.gather(
            *(
                self.llm.yes_no(prompt=self.prompt(query, p), yes=cfg.yes_tokens, no=cfg.no_tokens)
                for p in passages
            )
        )
        return [j.p_yes for j in judgements]

    async def _evidence_for(self, query: str, passage: Passage, relevance: Relevance) -> Evidence:
        cfg = self.config
        prefill = cfg.evidence_prefill
        try:
            completion = await self.llm.complete(
                self.prompt(query, passage) + prefill,
                max_tokens=cfg.max_tokens,
                temperature=0.0,
                stop=["</evidence>"],
            )
        except AgentragError as exc:
            log.warning("prism: evidence for %s failed (%s); using the passage text", passage.id, exc.code)
            return _fallback_evidence(passage, relevance)
        parsed = parse_prism_output(prefill + completion.text, finished=completion.finish_reason != "length")
        if not parsed.usable:
            log.info(
                "prism: unusable evidence for %s (%s); using the passage text",
                passage.id,
                "; ".join(parsed.problems) or "empty",
            )
            return _fallback_evidence(passage, relevance, contribution=parsed.contribution)
        span = locate_span(parsed.evidence, passage.text)
        return Evidence(
            passage_id=passage.id,
            text=parsed.evidence,
            contribution=parsed.contribution,
            relevance=relevance,
            source=passage.source,
            title=passage.title,
            start=passage.start + span[0] if span else None,
            end=passage.start + span[1] if span else None,
            fallback=False,
        )

    # ------------------------------------------------------------------ entry point

    async def arerank(
        self,
        query: str,
        passages: Sequence[Passage],
        *,
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> RerankResult:
        """Score all candidates, keep the best, and explain the kept ones.

        See the module docstring for the fallbacks. ``threshold`` applies to the calibrated
        probability when a calibration is set, else to the raw P(yes).
        """
        t0 = time.perf_counter()
        if not passages:
            return RerankResult(reranker=self.name, timings={"score": 0.0, "evidence": 0.0, "total": 0.0})
        try:
            scores = await self.ascore(query, passages)
        except AgentragError as exc:
            cut = passages if top_n is None else passages[: max(0, top_n)]
            return fallback_result(
                self.name,
                passages,
                top_n=top_n,
                reason=f"scoring failed ({exc.code}: {exc.message}); kept the retrieval order",
                # Unknown, not 0: a failed scoring call says nothing about relevance.
                evidence=[_fallback_evidence(p, Relevance(origin="fallback")) for p in cut]
                if self.config.generate_evidence
                else [],
                elapsed=time.perf_counter() - t0,
            )
        t_scored = time.perf_counter()
        kept, dropped = select(
            passages, scores, top_n=top_n, threshold=threshold, calibration=self.calibration
        )
        evidence: list[Evidence] = []
        if self.config.generate_evidence and kept:
            evidence = list(await asyncio.gather(*(self._evidence_for(query, p, p.relevance) for p in kept)))
            n_fallback = sum(e.fallback for e in evidence)
            if n_fallback:
                log.warning(
                    "prism: %d of %d evidence generations fell back to the passage text",
                    n_fallback,
                    len(kept),
                )
        t_end = time.perf_counter()
        return RerankResult(
            passages=kept,
            evidence=evidence,
            dropped=dropped,
            reranker=self.name,
            timings={"score": t_scored - t0, "evidence": t_end - t_scored, "total": t_end - t0},
        )


def _fallback_evidence(passage: Passage, relevance: Relevance, *, contribution: str = "") -> Evidence:
    """The passage itself stands in for extracted evidence (its span is the whole passage)."""
    return Evidence(
        passage_id=passage.id,
        text=passage.text,
        contribution=contribution,
        relevance=relevance,
        source=passage.source,
        title=passage.title,
        start=passage.start,
        end=passage.start + len(passage.text),
        fallback=True,
    )
