"""``pack_context``: the evidence subset and order that maximise expected UDCG under a token budget.

The objective, the exact optimiser and how unknown relevance is packed are in
:mod:`agentrag.scoring.packing`: each item adds ``δ_k · E[w]·u`` at position ``k`` (``w = +1``
relevant, ``-1/3`` otherwise, a fixed non-increasing discount ``δ`` over ``max_items`` slots),
the reported UDCG is ``sigmoid`` of that sum, and tokens are counted by the generator's own
tokenizer (vLLM ``/tokenize``, else the served model folder's tokenizer, else a 4-characters-a-
token estimate that the trace names). Every item left out gets a ``Dropped`` with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentrag.errors import LLMError, LLMUnsupportedError
from agentrag.graph.registry import node
from agentrag.nodes._util import degraded, event
from agentrag.scoring.packing import (
    DiscountKind,
    EstimateTokenCounter,
    HFTokenCounter,
    PackItem,
    PackResult,
    TokenCounter,
    VLLMTokenCounter,
    discount_vector,
    expected_gain,
    pack,
    pack_in_order,
)
from agentrag.types import Dropped, Evidence

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import ChatModel, RunContext
    from agentrag.settings import Settings
    from agentrag.state import RAGState

log = logging.getLogger(__name__)

__all__ = ["PackParams", "contribution", "evidence_p", "expected_udcg", "pack_context", "token_counter"]


def evidence_p(e: Evidence) -> float | None:
    """P(relevant) of an evidence item; None when unknown (never read as 0)."""
    return e.relevance.p


def contribution(p_relevant: float, utility: float = 1.0) -> float:
    """Expected UDCG gain of one passage: ``E[w] · u`` with ``E[w] = p - (1 - p)/3``."""
    g = expected_gain(p_relevant, utility)
    assert g is not None  # p is a float here
    return g


def expected_udcg(
    items: Sequence[Evidence],
    utilities: Sequence[float] | None = None,
    *,
    max_items: int = 8,
    discount: DiscountKind | Sequence[float] = "uniform",
) -> float:
    """The value of the best context ``items`` can make, with no token budget.

    It is what the packer would report for them; adding an item never lowers it, so loops can
    use it as their utility-gain rule.
    """
    us = list(utilities) if utilities is not None else [1.0] * len(items)
    result = pack(
        [PackItem(p=evidence_p(e), utility=u, tokens=0) for e, u in zip(items, us, strict=True)],
        token_budget=None,
        max_items=max_items,
        discount=discount,
    )
    return result.udcg


class PackParams(BaseModel):
    """Parameters of ``pack_context``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    token_budget: int = Field(default=1500, ge=16)
    """Evidence tokens allowed in the generator's prompt, counted by the generator's tokenizer."""

    max_items: int = Field(default=8, ge=1)
    """Evidence items at most (the discount's slots)."""

    discount: DiscountKind | list[float] = "uniform"
    """Positional discount ``δ``: ``uniform`` (1/max_items per slot: a full context scores the
    released UDCG), ``log`` (1/log2(k+1), normalised), or explicit non-increasing weights."""

    utility: Literal["proxy", "llm"] = "proxy"
    """``proxy``: every passage has utility 1 (the model uses what it is given). ``llm``:
    measure it, ``u = 1 - P(NO-RESPONSE)`` from the generator, one first-token call per item
    (concurrently)."""

    strategy: Literal["udcg", "in_order"] = "udcg"
    """``udcg``: the subset and order that maximise expected UDCG (exact). ``in_order``: the
    reranked order while it fits, nothing dropped as a distractor: the baseline the ablation
    (``agentrag eval qa --graph rag-pack``) compares against."""

    tokenizer: Literal["auto", "estimate"] = "auto"
    """``auto``: the generator's own tokenizer (vLLM ``/tokenize``, else the served model's
    folder), the estimate only when neither is reachable; ``estimate``: 4 characters a token."""

    @field_validator("discount")
    @classmethod
    def _discount(cls, v: DiscountKind | list[float]) -> DiscountKind | list[float]:
        if not isinstance(v, str):
            discount_vector(v, len(v))  # positive, non-increasing
        return v


async def _utilities(runtime: Runtime[RunContext], question: str, items: list[Evidence]) -> list[float]:
    from agentrag.llm import LLMClient
    from agentrag.scoring.udcg import UtilityScorer

    llm = runtime.context.llm
    if not isinstance(llm, LLMClient):
        raise LLMUnsupportedError("measured utilities need the generator to be a vLLM-served LLMClient")
    return await UtilityScorer(llm).autilities(question, [e.text for e in items])


def _hf_folder(settings: Settings, llm: ChatModel) -> Any:
    """The served model's folder when the generator is the local server, else None."""
    from agentrag.models.setup import default_model_dir

    server = settings.server
    local = f"http://{server.host}:{server.port}/v1"
    endpoint = getattr(llm, "endpoint", None)
    bases = list(getattr(endpoint, "api_base", []) or [])
    if local not in bases:
        return None
    folder = server.model_path or default_model_dir(server)
    return (
        folder
        if (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists()
        else None
    )


async def token_counter(settings: Settings, llm: ChatModel, probe: str = "token") -> tuple[TokenCounter, str]:
    """The generator's own token counter, and a note on how it was chosen.

    Tries vLLM's ``/tokenize`` of the served model (one quick probe, no retries), then the
    tokenizer in the served model's folder, and falls back to the documented estimate.
    """
    from agentrag.llm import LLMClient

    notes = []
    if isinstance(llm, LLMClient):
        from agentrag.llm.vllm_api import VLLMApi

        quick = llm.endpoint.model_copy(
            update={"max_retries": 0, "timeout_s": min(10.0, llm.endpoint.timeout_s)}
        )
        vllm = VLLMTokenCounter(VLLMApi(quick, usage=llm.usage, role=f"{llm.role}-tokenize"))
        try:
            await vllm.acount([probe])
            return vllm, "the served model's /tokenize"
        except LLMError as exc:
            notes.append(f"/tokenize unreachable ({type(exc).__name__})")
    else:
        notes.append("the generator is not a vLLM client")
    folder = _hf_folder(settings, llm)
    if folder is not None:
        hf = HFTokenCounter(folder)
        try:
            await hf.acount([probe])
            return hf, f"the served model folder's tokenizer ({'; '.join(notes)})"
        except Exception as exc:  # a broken tokenizer folder must not stop the answer
            notes.append(f"tokenizer in {folder} failed ({type(exc).__name__})")
    else:
        notes.append("no local model folder")
    return EstimateTokenCounter(), "ESTIMATE, 4 characters a token: " + "; ".join(notes)


def _rendered(e: Evidence) -> str:
    # What generate.jinja writes for one item (the marker's digits vary; "[1] " stands for them).
    return f"[1] ({e.title}) {e.text}\n" if e.title else f"[1] {e.text}\n"


@node("pack_context", params=PackParams, uses_llm=False)
async def pack_context(state: RAGState, runtime: Runtime[RunContext], params: PackParams) -> dict[str, Any]:
    """Choose and order the evidence that maximises expected UDCG within the token budget (exact).

    Fallbacks: if utilities cannot be measured (``utility: llm``), the proxy ``u = 1`` is used;
    if no tokenizer of the generator is reachable, tokens are estimated and the trace says so.
    """
    items = list(state.evidence)
    errors: list[str] = []
    utilities = [1.0] * len(items)
    if params.utility == "llm" and items:
        try:
            utilities = await _utilities(runtime, state.question, items)
        except LLMError as exc:
            errors = degraded(state, "pack_context", "used proxy utilities", exc)
    counter: TokenCounter
    if params.tokenizer == "estimate":
        counter, how = EstimateTokenCounter(), "ESTIMATE, 4 characters a token (tokenizer: estimate)"
    else:
        counter, how = await token_counter(runtime.context.settings, runtime.context.llm)
    costs = await counter.acount([_rendered(e) for e in items]) if items else []
    packer = pack if params.strategy == "udcg" else pack_in_order
    result: PackResult = packer(
        [
            PackItem(p=evidence_p(e), utility=u, tokens=c)
            for e, u, c in zip(items, utilities, costs, strict=True)
        ],
        token_budget=params.token_budget,
        max_items=params.max_items,
        discount=params.discount,
    )
    context = [items[i] for i in result.order]
    dropped = [
        Dropped(
            passage_id=items[d.index].passage_id,
            stage="pack_context",
            score=evidence_p(items[d.index]),
            reason=d.reason,
        )
        for d in result.dropped
    ]
    return {
        "context": context,
        "udcg": result.udcg,
        "dropped": dropped,
        "errors": errors,
        **event(
            f"packed {len(context)} items ({result.tokens} tokens by {counter.name}), "
            f"expected UDCG {result.udcg:.3f}",
            dropped=len(dropped),
            tokens=result.tokens,
            token_budget=params.token_budget,
            strategy=params.strategy,
            tokenizer=counter.name,
            tokenizer_note=how,
            objective=round(result.objective, 6),
            unknown_relevance=result.unknown,
        ),
    }
