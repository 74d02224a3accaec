"""Context packing: the subset and order of passages that maximise expected UDCG under a token budget.

The objective
-------------
UDCG (Trappolini et al. 2025, METHODS.md §3) scores a context by what the consumer LLM does with
it: passage ``i`` adds ``w_i · u_i``, its utility ``u_i`` (1 − P(abstain | question, p_i))
weighted ``w = +1`` if relevant and ``w = −1/3`` if not (an irrelevant passage that the model
uses is a distractor). At run time we only know ``p_i = P(relevant)``, so the packer uses the
expected gain

    g_i = E[w_i] · u_i = (p_i − (1 − p_i)/3) · u_i = u_i · (4·p_i − 1) / 3,

and scores a context ``(i_1, …, i_m)`` (prompt order) by

    J = Σ_{k=1..m} δ_k · g_{i_k},        reported UDCG = sigmoid(J)  (0 for an empty context),

with a **fixed** positional discount ``δ_1 ≥ δ_2 ≥ … ≥ δ_K > 0`` over the ``K = max_items``
slots. The default ``uniform`` discount is ``δ_k = 1/K``, so a full context scores exactly the
released UDCG formula (``sigmoid(mean(w·u))``); ``log`` is a DCG-shaped ``1/log2(k+1)``
normalised to sum to 1; any non-increasing positive vector may be passed. The discount does not
depend on how many passages are packed: with the released per-context average (``δ = 1/|P|``)
adding a useful passage *lowers* the score (``udcg([0.9])`` 0.704 > ``udcg([0.9, 0.3])`` 0.615),
so an optimiser of that quantity would always pack one passage. Under the fixed discount,
adding a passage with ``g > 0`` at the end of a context always raises ``J``.

The optimisation (exact)
------------------------
Maximise ``J`` subject to ``Σ tokens ≤ token_budget`` and ``m ≤ K``.

1. *Order.* For a fixed subset, sorting by ``g`` descending is optimal: ``δ`` is non-increasing,
   so by the rearrangement inequality ``Σ δ_k g_{π(k)}`` is largest when the largest ``g`` meets
   the largest ``δ``.
2. *Which items.* An item with ``g ≤ 0`` is never in an optimal pack: sorted last, it sits at a
   position of its own and removing it shifts nothing, so ``J`` cannot fall. Only ``g > 0``
   items are candidates.
3. *Subset.* Process the candidates in ``g``-descending order (ties by input order). Let
   ``V[m, t]`` be the best ``J`` of a subset of the items seen so far with ``m`` items and ``t``
   tokens. Because the items arrive in the order in which (1) places them, taking item ``i`` as
   the ``(m+1)``-th adds exactly ``δ_{m+1}·g_i``:
   ``V'[m+1, t+c_i] = max(V[m+1, t+c_i], V[m, t] + δ_{m+1}·g_i)``. This is a 0/1 knapsack with a
   cardinality index; its maximum over all cells is the optimum (token counts are integers, so
   nothing is rounded). Cost ``O(n·K·B)`` time and ``O(n·K·B)`` bits for the back-pointers,
   vectorised over ``t`` with numpy (20 candidates, 8 slots, 1,500 tokens: a few ms).

Consequences the property tests check: the pack is never worse on ``J`` than any top-``k``
prefix that fits; adding a candidate never lowers the optimum (the old pack stays feasible);
the budget is never exceeded.

Unknown relevance
-----------------
A passage whose ``p`` is unknown (``None``: the reranker failed or there is none) is never
treated as ``p = 0`` and never dropped as a distractor. Unknowns have no defined gain, so they
add 0 to ``J`` and do not enter the optimisation; after the known items are packed, unknowns
fill the remaining slots and tokens **in their retrieval order** (the order they were given in),
placed after the known items (so the known items' positions and ``J`` are unchanged). An
unknown is left out only when it does not fit, and its ``Dropped`` reason says so. A retriever
whose scores were calibrated gives *known* probabilities (origin ``calibrated``) and is packed
like any other known item.

Token counting
--------------
Budgets are in the generator's own tokens: :class:`VLLMTokenCounter` asks the served model's
``/tokenize``; :class:`HFTokenCounter` loads the tokenizer from the served model's folder;
:class:`EstimateTokenCounter` (``ceil(chars/4)``, English BPE's typical ratio) is the documented
last resort, and :func:`token_counter` reports which one it used and why.

Example:
    >>> from agentrag.scoring.packing import PackItem, pack
    >>> r = pack([PackItem(p=0.9, tokens=100), PackItem(p=0.3, tokens=100), PackItem(p=0.1, tokens=100)],
    ...          token_budget=1000, max_items=4)
    >>> r.order, [d.index for d in r.dropped]
    ([0, 1], [2])
    >>> round(r.udcg, 4)
    0.5581
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from agentrag.scoring.udcg import IRRELEVANT_WEIGHT, RELEVANT_WEIGHT

if TYPE_CHECKING:
    from agentrag.llm.vllm_api import VLLMApi

__all__ = [
    "DiscountKind",
    "EstimateTokenCounter",
    "HFTokenCounter",
    "PackDrop",
    "PackItem",
    "PackResult",
    "TokenCounter",
    "VLLMTokenCounter",
    "discount_vector",
    "expected_gain",
    "objective",
    "pack",
    "pack_in_order",
    "top_k_objective",
]

log = logging.getLogger(__name__)

DiscountKind = Literal["uniform", "log"]


def expected_gain(
    p: float | None,
    utility: float = 1.0,
    *,
    relevant_weight: float = RELEVANT_WEIGHT,
    irrelevant_weight: float = IRRELEVANT_WEIGHT,
) -> float | None:
    """``g = E[w]·u`` for P(relevant) ``p``; None when ``p`` is unknown (never 0).

    Raises:
        ValueError: ``p`` or ``utility`` outside [0, 1].
    """
    if p is None:
        return None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p(relevant) must be in [0, 1], got {p}")
    if not 0.0 <= utility <= 1.0:
        raise ValueError(f"utility must be in [0, 1], got {utility}")
    return (p * relevant_weight + (1.0 - p) * irrelevant_weight) * utility


def discount_vector(discount: DiscountKind | Sequence[float], slots: int) -> list[float]:
    """The positional discount ``δ_1..δ_slots`` (positive, non-increasing).

    Args:
        discount: ``uniform`` (``1/slots`` each), ``log`` (``1/log2(k+1)`` normalised to sum to
            1), or explicit weights (at least ``slots`` of them; extra ones are ignored).
        slots: Positions in the context (``max_items``).

    Raises:
        ValueError: Too few, non-positive or increasing weights.
    """
    if slots < 1:
        raise ValueError("slots must be >= 1")
    if discount == "uniform":
        return [1.0 / slots] * slots
    if discount == "log":
        raw = [1.0 / math.log2(k + 1) for k in range(1, slots + 1)]
        total = sum(raw)
        return [r / total for r in raw]
    if isinstance(discount, str):  # type: ignore[unreachable]  # a typo in a YAML graph
        raise ValueError(f"unknown discount {discount!r} (uniform, log, or a list of weights)")
    deltas = [float(d) for d in list(discount)[:slots]]
    if len(deltas) < slots:
        raise ValueError(f"discount has {len(deltas)} weights for {slots} slots")
    if any(d <= 0 or not math.isfinite(d) for d in deltas):
        raise ValueError("discount weights must be positive and finite")
    if any(b > a for a, b in itertools.pairwise(deltas)):
        # A weight that rises with position would reward padding the context with distractors
        # to push good passages into better slots; the exactness proof needs non-increasing.
        raise ValueError("discount weights must be non-increasing with position")
    return deltas


def objective(gains: Sequence[float | None], deltas: Sequence[float]) -> float:
    """``J = Σ δ_k·g_k`` of a context in prompt order; unknown gains (None) add 0."""
    if len(gains) > len(deltas):
        raise ValueError(f"{len(gains)} items for {len(deltas)} discount slots")
    return float(sum(d * g for g, d in zip(gains, deltas, strict=False) if g is not None))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True, kw_only=True)
class PackItem:
    """One candidate passage, as the packer sees it."""

    p: float | None
    """P(relevant); None = unknown."""

    tokens: int
    """Its cost in the generator's tokens (as rendered in the prompt)."""

    utility: float = 1.0
    """``u = 1 − P(abstain)``; 1 when not measured."""


@dataclass(frozen=True, kw_only=True)
class PackDrop:
    """A candidate left out, and why."""

    index: int
    """Its index in the input."""

    reason: str
    """Why, in a sentence."""

    kind: Literal["distractor", "budget", "slots"]
    """``distractor``: expected gain ≤ 0; ``budget``/``slots``: no room for it in the best pack."""


@dataclass(frozen=True, kw_only=True)
class PackResult:
    """The chosen context and what it is worth."""

    order: list[int]
    """Indices of the packed items, in prompt order."""

    dropped: list[PackDrop]
    """Every item not packed, with the reason."""

    objective: float
    """``J = Σ δ_k·g_k`` of the pack (what is maximised)."""

    udcg: float
    """``sigmoid(J)``, or 0.0 for an empty context (UDCG's convention)."""

    tokens: int
    """Tokens used."""

    deltas: list[float] = field(default_factory=list)
    """The discount used."""

    unknown: int = 0
    """Packed items whose relevance is unknown."""


def top_k_objective(items: Sequence[PackItem], deltas: Sequence[float], k: int) -> float:
    """``J`` of the first ``k`` items in the given order (the top-k baseline)."""
    return objective([expected_gain(it.p, it.utility) for it in items[:k]], deltas)


def pack(
    items: Sequence[PackItem],
    *,
    token_budget: int | None,
    max_items: int,
    discount: DiscountKind | Sequence[float] = "uniform",
) -> PackResult:
    """The subset and order of ``items`` that maximise ``J`` (exact; see the module docstring).

    Args:
        items: Candidates; for unknowns, the input order is their retrieval order.
        token_budget: Tokens allowed in all (None: unlimited).
        max_items: Slots ``K`` (also the discount's length).
        discount: The positional discount (see :func:`discount_vector`).

    Returns:
        The pack: known items by expected gain, then unknowns in input order.
    """
    deltas, budget = _limits(items, token_budget, max_items, discount)
    gains = [expected_gain(it.p, it.utility) for it in items]
    dropped: list[PackDrop] = []
    candidates: list[int] = []
    for i, (it, g) in enumerate(zip(items, gains, strict=True)):
        if it.tokens < 0:
            raise ValueError(f"item {i} has a negative token count")
        if g is None:
            continue
        if g <= 0:
            dropped.append(
                PackDrop(
                    index=i,
                    kind="distractor",
                    reason=f"likely distractor: p(relevant)={it.p:.2f}, utility {it.utility:.2f} "
                    f"-> expected gain {g:+.3f} (positive only above p=0.25)",
                )
            )
        elif it.tokens > budget:
            dropped.append(
                PackDrop(
                    index=i, kind="budget", reason=f"alone over the token budget ({it.tokens} > {budget})"
                )
            )
        else:
            candidates.append(i)
    # g-descending, ties by input order: the order the exactness argument needs.
    candidates.sort(key=lambda i: (-(gains[i] or 0.0), i))
    chosen = _knapsack(
        [gains[i] or 0.0 for i in candidates], [items[i].tokens for i in candidates], deltas, budget
    )
    order = [candidates[j] for j in chosen]
    used = sum(items[i].tokens for i in order)
    packed = set(order)
    for i in candidates:
        if i in packed:
            continue
        if len(order) >= max_items:
            kind: Literal["budget", "slots"] = "slots"
            why = f"all {max_items} slots hold passages worth more"
        else:
            kind = "budget"
            why = (
                f"the best pack within {budget} tokens leaves it out ({items[i].tokens} tokens; {used} used)"
            )
        dropped.append(PackDrop(index=i, kind=kind, reason=f"expected gain {gains[i]:+.3f}, but {why}"))
    j_value = objective([gains[i] for i in order], deltas)
    # Unknowns: retrieval order, after the known items, while they fit.
    unknown = 0
    for i, g in enumerate(gains):
        if g is not None:
            continue
        cost = items[i].tokens
        if len(order) >= max_items:
            dropped.append(
                PackDrop(index=i, kind="slots", reason=f"relevance unknown; all {max_items} slots are taken")
            )
        elif used + cost > budget:
            dropped.append(
                PackDrop(
                    index=i,
                    kind="budget",
                    reason=f"relevance unknown; over the token budget ({used}+{cost} > {budget})",
                )
            )
        else:
            order.append(i)
            used += cost
            unknown += 1
    dropped.sort(key=lambda d: d.index)
    return _result(order, dropped, j_value, used, deltas, unknown)


def pack_in_order(
    items: Sequence[PackItem],
    *,
    token_budget: int | None,
    max_items: int,
    discount: DiscountKind | Sequence[float] = "uniform",
) -> PackResult:
    """The items in their given (rank) order while they fit: the top-k baseline, no optimisation.

    What a packer without the UDCG objective does: no item is dropped as a distractor, none is
    reordered; an item that does not fit the remaining budget is skipped and later ones still
    get their chance. :func:`pack` is never worse on the objective (a property test checks it);
    the ``in_order`` packing strategy exists to measure what that is worth in answers.

    Args:
        items: Candidates in rank order.
        token_budget: Tokens allowed in all (None: unlimited).
        max_items: Slots.
        discount: The positional discount the reported objective uses.

    Returns:
        The pack, with ``objective``/``udcg`` computed as :func:`pack` computes them.
    """
    deltas, budget = _limits(items, token_budget, max_items, discount)
    order: list[int] = []
    dropped: list[PackDrop] = []
    used = 0
    for i, it in enumerate(items):
        if it.tokens < 0:
            raise ValueError(f"item {i} has a negative token count")
        if len(order) >= max_items:
            dropped.append(
                PackDrop(index=i, kind="slots", reason=f"all {max_items} slots are taken (in order)")
            )
        elif used + it.tokens > budget:
            dropped.append(
                PackDrop(
                    index=i,
                    kind="budget",
                    reason=f"over the token budget in rank order ({used}+{it.tokens} > {budget})",
                )
            )
        else:
            order.append(i)
            used += it.tokens
    gains = [expected_gain(items[i].p, items[i].utility) for i in order]
    return _result(order, dropped, objective(gains, deltas), used, deltas, sum(g is None for g in gains))


def _limits(
    items: Sequence[PackItem],
    token_budget: int | None,
    max_items: int,
    discount: DiscountKind | Sequence[float],
) -> tuple[list[float], int]:
    """The discount and the token budget (None: room for every item), validated."""
    deltas = discount_vector(discount, max_items)
    budget = token_budget if token_budget is not None else sum(max(0, it.tokens) for it in items)
    if budget < 0:
        raise ValueError("token_budget must be >= 0")
    return deltas, budget


def _result(
    order: list[int], dropped: list[PackDrop], j_value: float, used: int, deltas: list[float], unknown: int
) -> PackResult:
    # UDCG's convention: an empty context scores 0, not sigmoid(0).
    return PackResult(
        order=order,
        dropped=dropped,
        objective=j_value,
        udcg=_sigmoid(j_value) if order else 0.0,
        tokens=used,
        deltas=deltas,
        unknown=unknown,
    )


def _knapsack(gains: list[float], costs: list[int], deltas: list[float], budget: int) -> list[int]:
    """Indices (into ``gains``, increasing) of the best pack; items arrive g-descending."""
    n, slots = len(gains), len(deltas)
    if n == 0 or slots == 0:
        return []
    big = min(slots, n)
    value = np.full((big + 1, budget + 1), -np.inf)
    value[0, 0] = 0.0
    take = np.zeros((n, big + 1, budget + 1), dtype=bool)
    for i, (g, c) in enumerate(zip(gains, costs, strict=True)):
        width = budget + 1 - c
        # m descending: row m is read before this item can have written it.
        for m in range(min(i, big - 1), -1, -1):
            cand = value[m, :width] + deltas[m] * g
            row = value[m + 1, c:]
            better = cand > row
            row[better] = cand[better]
            take[i, m + 1, c:] = better
    best = np.unravel_index(int(np.argmax(value)), value.shape)
    m, t = int(best[0]), int(best[1])
    out: list[int] = []
    for i in range(n - 1, -1, -1):
        if m > 0 and take[i, m, t]:
            out.append(i)
            t -= costs[i]
            m -= 1
    return out[::-1]


# ---------------------------------------------------------------------- token counting


class TokenCounter(Protocol):
    """Counts tokens as the generator's tokenizer does."""

    @property
    def name(self) -> str:
        """What counts (``vllm:/tokenize``, ``hf:<folder>``, ``estimate``)."""
        ...

    async def acount(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text (no special tokens)."""
        ...


class EstimateTokenCounter:
    """``ceil(chars / 4)``: the documented last resort when no tokenizer is reachable."""

    name = "estimate:4-chars-per-token"

    async def acount(self, texts: Sequence[str]) -> list[int]:
        """Estimated tokens in each text."""
        return [max(1, (len(t) + 3) // 4) for t in texts]


class VLLMTokenCounter:
    """The served model's own tokenizer, through vLLM's ``/tokenize`` (one request per text)."""

    def __init__(self, api: VLLMApi) -> None:
        self.api = api

    @property
    def name(self) -> str:
        """``vllm:/tokenize`` and the served model."""
        return f"vllm:/tokenize:{self.api.model}"

    async def acount(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, all requests in flight together."""
        ids = await asyncio.gather(*(self.api.tokenize(t, add_special_tokens=False) for t in texts))
        return [len(x) for x in ids]


class HFTokenCounter:
    """The tokenizer files of the served model's folder (``tokenizer.json`` etc.), loaded offline."""

    _cache: dict[str, object] = {}  # noqa: RUF012  # one tokenizer per folder per process

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    @property
    def name(self) -> str:
        """``hf:`` and the folder."""
        return f"hf:{self.folder}"

    def _tokenizer(self) -> object:
        key = str(self.folder)
        if key not in self._cache:
            from transformers import AutoTokenizer

            self._cache[key] = AutoTokenizer.from_pretrained(key, local_files_only=True)
        return self._cache[key]

    async def acount(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text."""
        tok = await asyncio.to_thread(self._tokenizer)
        encoded = tok(list(texts), add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        return [len(x) for x in encoded]
