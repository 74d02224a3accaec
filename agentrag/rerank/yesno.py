r"""First-token yes/no relevance from an instruction model's chat endpoint.

Each candidate is one chat request with ``max_tokens=1`` and top-20 log-probabilities
(``prompts/rerank_yesno.jinja``); its score is P(yes) / (P(yes) + P(no)) at the first token.
All candidates are sent together (the client caps requests in flight), each passage cut to a
token budget first: the cost of a score is the prefill of its prompt. The instruction and the
query open the prompt and the document comes last, so vLLM's prefix cache serves the shared
part to every candidate of a query.

Measured (``../shared/RUNTIME.md``, SciFact train, 30 queries × 10 candidates cut to 1,000
characters, Qwen2.5-Coder-1.5B-Instruct bf16 on 2 CPU cores): AUC 0.72, nDCG@10 of the 10
candidates 0.577 → 0.661, ~15 s per query. SmolLM2-135M and Qwen2.5-Coder-0.5B: no signal.
So it pays on a GPU, or on a CPU when ranking quality matters more than seconds; the ``cpu``
profile does not use it by default.

Fallback: when a call fails (after the client's retries) the result keeps the retrieval order,
with ``fallback`` set and the reason; it does not raise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agentrag.llm.vllm_api import served_name
from agentrag.prompts import load_prompt
from agentrag.rerank.base import BaseReranker, document_text
from agentrag.types import Passage

if TYPE_CHECKING:
    from agentrag.graph.context import ChatModel
    from agentrag.scoring.calibration import Calibration

__all__ = ["YesNoReranker", "cut_to_tokens"]

CHARS_PER_TOKEN = 4
"""Characters per token of English text in BPE vocabularies (the cut needs no tokenizer)."""


def cut_to_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut to about ``max_tokens`` tokens, at a word boundary when one is near.

    Example:
        >>> cut_to_tokens("one two three four five", 3)
        'one two'
    """
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


class YesNoReranker(BaseReranker):
    """P(yes) at the first token of a plain "is this relevant?" chat question.

    Args:
        llm: The reranking model's client (a chat endpoint with log-probabilities: vLLM).
        max_document_tokens: Passages are cut to about this many tokens.
        template: The chat prompt (variables ``query`` and ``document``).
        calibration: Maps P(yes) to a calibrated P(relevant).
    """

    served = True

    def __init__(
        self,
        llm: ChatModel,
        *,
        max_document_tokens: int = 256,
        template: str = "rerank_yesno",
        calibration: Calibration | None = None,
    ) -> None:
        self.llm = llm
        self.max_document_tokens = max_document_tokens
        self.calibration = calibration
        self._template = load_prompt(template)

    @property
    def name(self) -> str:
        model = getattr(self.llm, "model", "") or type(self.llm).__name__
        return f"yesno:{served_name(str(model))}"

    def messages(self, query: str, passage: Passage) -> list[dict[str, str]]:
        """The chat messages that score one candidate."""
        document = cut_to_tokens(document_text(passage), self.max_document_tokens)
        return self._template.messages(query=query, document=document)

    async def ascore(self, query: str, passages: Sequence[Passage]) -> list[float]:
        """P(yes)/(P(yes)+P(no)) per passage, all requests in flight together.

        Raises:
            AgentragError: A call failed after the client's retries.
        """
        judgements = await asyncio.gather(
            *(self.llm.yes_no(self.messages(query, p), yes=("yes",), no=("no",)) for p in passages)
        )
        return [j.p_yes for j in judgements]
