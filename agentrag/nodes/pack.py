"""``pack_context``: choose the evidence to show the generator by expected UDCG, under a token budget.

UDCG (Trappolini et al. 2025) scores a context by what an LLM does with it: each passage adds
``w·u``, its utility ``u`` (how much it makes the model answer rather than abstain) weighted
``w = +1`` if relevant and ``-1/3`` if not (a distractor hurts). With only a probability ``p``
that a passage is relevant, its expected contribution is::

    c = u · (p · 1 + (1 - p) · (-1/3)) = u · (4p - 1) / 3

which is positive only when ``p > 1/4``: below that, the passage is expected to distract more
than it helps, and top-k would include it anyway. The packer keeps the items with ``c > 0``,
best first, while they fit the token budget, and records every item it leaves out and why.

The reported expected UDCG is ``sigmoid(mean(c))`` over the packed items (UDCG's uniform
discount), which plugs the expected contributions into the released formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentrag.errors import LLMError, LLMUnsupportedError
from agentrag.graph.registry import node
from agentrag.nodes._util import approx_tokens, degraded, event
from agentrag.scoring.udcg import expected_weight, udcg
from agentrag.types import Dropped, Evidence

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import RunContext
    from agentrag.state import RAGState


def contribution(p_relevant: float, utility: float = 1.0) -> float:
    """Expected UDCG contribution of one passage: ``E[w] · u`` with ``E[w] = p - (1 - p)/3``."""
    return expected_weight(p_relevant) * utility


def expected_udcg(items: Sequence[Evidence], utilities: Sequence[float] | None = None) -> float:
    """Soft-label UDCG of a context (:func:`agentrag.scoring.udcg.udcg`); 0 when empty.

    Items of unknown relevance are left out of the value (unknown is not 0).
    """
    us = list(utilities) if utilities is not None else [1.0] * len(items)
    known = [(e.relevance.p, u) for e, u in zip(items, us, strict=True) if e.relevance.p is not None]
    return udcg([p for p, _ in known], [u for _, u in known])


class PackParams(BaseModel):
    """Parameters of ``pack_context``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    token_budget: int = Field(default=1500, ge=16)
    """Evidence tokens allowed in the generator's prompt (estimated at ~4 characters a token)."""

    max_items: int = Field(default=8, ge=1)
    """Evidence items at most."""

    utility: Literal["proxy", "llm"] = "proxy"
    """``proxy``: every passage has utility 1 (the model uses what it is given). ``llm``:
    measure it, ``u = 1 - P(NO-RESPONSE)`` from the generator, one first-token call per item
    (concurrently)."""

    order: Literal["best_first", "edges"] = "best_first"
    """``best_first``; or ``edges``: best at the start and the end, weakest in the middle (long
    contexts lose the middle)."""


async def _utilities(runtime: Runtime[RunContext], question: str, items: list[Evidence]) -> list[float]:
    from agentrag.llm import LLMClient
    from agentrag.scoring.udcg import UtilityScorer

    llm = runtime.context.llm
    if not isinstance(llm, LLMClient):
        raise LLMUnsupportedError("measured utilities need the generator to be a vLLM-served LLMClient")
    return await UtilityScorer(llm).autilities(question, [e.text for e in items])


@node("pack_context", params=PackParams, uses_llm=False)
async def pack_context(state: RAGState, runtime: Runtime[RunContext], params: PackParams) -> dict[str, Any]:
    """Choose and order the evidence that maximises expected UDCG within the token budget.

    Fallback: if utilities cannot be measured (``utility: llm``), the proxy is used.
    """
    items = list(state.evidence)
    errors: list[str] = []
    utilities = [1.0] * len(items)
    if params.utility == "llm" and items:
        try:
            utilities = await _utilities(runtime, state.question, items)
        except LLMError as exc:
            errors = degraded(state, "pack_context", "used proxy utilities", exc)
    # Unknown relevance (reranker fell back) has no expected contribution: such items are
    # never dropped as distractors and follow the scored ones in the order given (retrieval).
    scored = sorted(
        (
            (None if e.relevance.p is None else contribution(e.relevance.p, u), u, e)
            for e, u in zip(items, utilities, strict=True)
        ),
        key=lambda t: (t[0] is None, -(t[0] or 0.0)),
    )
    chosen: list[tuple[float, Evidence]] = []
    dropped: list[Dropped] = []
    used = 0
    for c, u, item in scored:
        cost = approx_tokens(item.text)
        if c is not None and c <= 0:
            dropped.append(
                Dropped(
                    passage_id=item.passage_id,
                    stage="pack_context",
                    score=item.relevance.p,
                    reason=f"likely distractor: p(relevant)={item.relevance}, utility {u:.2f} "
                    f"-> expected UDCG contribution {c:+.2f}",
                )
            )
        elif len(chosen) >= params.max_items:
            dropped.append(
                Dropped(
                    passage_id=item.passage_id,
                    stage="pack_context",
                    score=item.relevance.p,
                    reason=f"beyond {params.max_items} items",
                )
            )
        elif used + cost > params.token_budget:
            dropped.append(
                Dropped(
                    passage_id=item.passage_id,
                    stage="pack_context",
                    score=item.relevance.p,
                    reason=f"over the token budget ({used}+{cost} > {params.token_budget})",
                )
            )
        else:
            chosen.append((u, item))
            used += cost
    context = [item for _, item in chosen]
    if params.order == "edges" and len(context) > 2:
        # Alternate best items between the front and the back: 1, 3, 5, ..., 6, 4, 2.
        context = context[0::2] + context[1::2][::-1]
    value = expected_udcg([e for _, e in chosen], [u for u, _ in chosen])
    return {
        "context": context,
        "udcg": value if context else 0.0,
        "dropped": dropped,
        "errors": errors,
        **event(
            f"packed {len(context)} items (~{used} tokens), expected UDCG {value:.3f}",
            dropped=len(dropped),
            tokens=used,
            token_budget=params.token_budget,
        ),
    }
