"""``generate``: the answer, streamed, with ``[n]`` citations resolved to exact source spans."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agentrag.errors import LLMError
from agentrag.graph.registry import node
from agentrag.nodes._util import degraded, event
from agentrag.types import Citation, Evidence, Passage

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import RunContext
    from agentrag.state import RAGState

ABSTAIN = "I cannot answer this from the available documents."
"""What the generator says (and is told to say) when the evidence does not hold the answer."""

_MARKERS = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_BUDGET_LIMITS = {"rounds", "llm_calls", "tokens", "wall_time"}


class GenerateParams(BaseModel):
    """Parameters of ``generate``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_tokens: int = Field(default=256, ge=1)
    """Answer length cap."""

    temperature: float = Field(default=0.0, ge=0)
    """Sampling temperature (0: greedy)."""


def resolve_citations(
    answer: str, context: list[Evidence], passages: dict[str, Passage]
) -> tuple[str, list[Citation]]:
    """Find ``[n]`` / ``[n, m]`` markers, map them to context items, drop invalid ones.

    Each citation points at exact source text: the evidence's own span when it was found
    verbatim in the source, else the whole passage's span.

    Returns:
        The answer with out-of-range markers removed, and one citation per distinct marker.
    """
    cited: dict[int, Citation] = {}

    def keep(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1))]
        valid = [n for n in numbers if 1 <= n <= len(context)]
        for n in valid:
            if n not in cited:
                item = context[n - 1]
                passage = passages.get(item.passage_id)
                if item.start is not None and item.end is not None:
                    start, end, quote = item.start, item.end, item.text
                elif passage is not None:
                    start, end, quote = passage.start, passage.end, passage.text
                else:
                    continue
                cited[n] = Citation(
                    marker=n,
                    passage_id=item.passage_id,
                    source=item.source,
                    title=item.title,
                    start=start,
                    end=end,
                    quote=quote,
                )
        return "".join(f"[{n}]" for n in valid)

    text = _MARKERS.sub(keep, answer)
    return re.sub(r"[ \t]+([.,;:])", r"\1", text).strip(), [cited[n] for n in sorted(cited)]


def is_abstention(text: str) -> bool:
    """Whether the answer is (essentially) the abstention sentence."""
    norm = re.sub(r"[^a-z ]", "", text.lower()).strip()
    target = re.sub(r"[^a-z ]", "", ABSTAIN.lower()).strip()
    return not norm or norm.startswith(target[:40]) or "cannot answer this from the available" in norm


@node("generate", params=GenerateParams)
async def generate(state: RAGState, runtime: Runtime[RunContext], params: GenerateParams) -> dict[str, Any]:
    """Write the answer from the packed context, streaming tokens; abstain when there is none.

    With an empty context the model is not called: the answer is the abstention sentence.
    Outcome: ``answered``, ``abstained``, or ``budget_exhausted`` when a loop was cut short by
    a budget (the answer is then the best from the evidence gathered so far).
    """
    ctx = runtime.context
    cut_short = state.budget.exhausted in _BUDGET_LIMITS
    if not state.context:
        return {
            "answer": ABSTAIN,
            "citations": [],
            "outcome": "abstained",
            **event("abstained: no evidence in the context"),
        }
    messages = ctx.prompts.messages(
        "generate",
        question=state.question,
        evidence=state.context,
        history=state.history,
        abstain_phrase=ABSTAIN,
    )
    writer = runtime.stream_writer
    pieces: list[str] = []
    try:
        async for delta in ctx.llm.stream(
            messages, max_tokens=params.max_tokens, temperature=params.temperature
        ):
            pieces.append(delta)
            writer({"kind": "token", "node": "generate", "text": delta})
    except LLMError as exc:
        if not pieces:
            raise  # nothing to salvage: let the run fail (and be resumable from here)
        errors = degraded(state, "generate", "answer cut off", exc)
        pieces.append(" …")
    else:
        errors = []
    raw = "".join(pieces).strip()
    passages = {p.id: p for p in state.candidates}
    text, citations = resolve_citations(raw, state.context, passages)
    outcome = "abstained" if is_abstention(text) else "budget_exhausted" if cut_short else "answered"
    return {
        "answer": text,
        "citations": citations,
        "outcome": outcome,
        "errors": errors,
        **event(f"{outcome}: {len(text)} chars, {len(citations)} citations"),
    }
