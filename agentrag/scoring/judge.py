"""An LLM judge of relevance and correctness, for evaluation sets without labels.

Both judgements are schema-constrained (JSON schema through :meth:`LLMClient.structured`, which
vLLM enforces with guided decoding), so even a small model returns a parseable verdict. A
judge is only as good as its model: with a weak local model, use it for plumbing and smoke
tests, and check agreement with gold labels before trusting its numbers.

Example:
    >>> judge = LLMJudge(llm)                                                      # doctest: +SKIP
    >>> (await judge.relevance("Who wrote Hamlet?", "Shakespeare wrote Hamlet.")).relevant  # doctest: +SKIP
    True
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from agentrag.prompts import load_prompt

if TYPE_CHECKING:
    from agentrag.llm.client import LLMClient

__all__ = ["CorrectnessJudgement", "LLMJudge", "RelevanceJudgement"]


class RelevanceJudgement(BaseModel):
    """The judge's verdict on one (question, passage) pair."""

    model_config = ConfigDict(extra="forbid")

    relevant: bool
    """Whether the passage helps answer the question."""

    reason: str = Field(max_length=300)
    """One short sentence."""


class CorrectnessJudgement(BaseModel):
    """The judge's verdict on one answer."""

    model_config = ConfigDict(extra="forbid")

    correct: bool
    """Whether the answer is correct (against the reference, when one is given)."""

    reason: str = Field(max_length=300)
    """One short sentence."""


class LLMJudge:
    """Relevance and correctness judgements from an LLM.

    Args:
        llm: The judging model's client.
        relevance_template: Chat template with ``question`` and ``passage``.
        correctness_template: Chat template with ``question``, ``answer`` and optional ``reference``.
        max_tokens: Cap on each verdict's length.
    """

    def __init__(
        self,
        llm: LLMClient,
        *,
        relevance_template: str = "judge_relevance",
        correctness_template: str = "judge_correctness",
        max_tokens: int = 120,
    ) -> None:
        self.llm = llm
        self._relevance = load_prompt(relevance_template)
        self._correctness = load_prompt(correctness_template)
        self.max_tokens = max_tokens

    async def relevance(self, question: str, passage: str) -> RelevanceJudgement:
        """Is ``passage`` relevant to ``question``?

        Raises:
            LLMOutputError: No valid verdict after the client's repair attempts.
        """
        messages = self._relevance.messages(question=question, passage=passage)
        return await self.llm.structured(
            messages, RelevanceJudgement, max_tokens=self.max_tokens, temperature=0.0
        )

    async def relevances(self, question: str, passages: Sequence[str]) -> list[RelevanceJudgement]:
        """Judge several passages concurrently."""
        return list(await asyncio.gather(*(self.relevance(question, p) for p in passages)))

    async def correctness(self, question: str, answer: str, reference: str = "") -> CorrectnessJudgement:
        """Is ``answer`` correct (compared with ``reference`` when given)?

        Raises:
            LLMOutputError: No valid verdict after the client's repair attempts.
        """
        messages = self._correctness.messages(question=question, answer=answer, reference=reference)
        return await self.llm.structured(
            messages, CorrectnessJudgement, max_tokens=self.max_tokens, temperature=0.0
        )
