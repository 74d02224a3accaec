"""The context packer: exact optimum of its objective, property-tested with hypothesis."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrag.scoring.packing import (
    EstimateTokenCounter,
    HFTokenCounter,
    PackItem,
    discount_vector,
    expected_gain,
    objective,
    pack,
    pack_in_order,
    top_k_objective,
)
from agentrag.scoring.udcg import udcg

EPS = 1e-9

probs = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
known = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
items_st = st.lists(
    st.builds(
        PackItem,
        p=probs,
        tokens=st.integers(min_value=0, max_value=120),
        utility=st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    ),
    max_size=9,
)
discounts = st.one_of(
    st.sampled_from(["uniform", "log"]),
    st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=8, max_size=8).map(
        lambda xs: sorted(xs, reverse=True)
    ),
)


def _brute(items: list[PackItem], budget: int, k: int, deltas: list[float]) -> float:
    """Best J over every subset (of known items) and every order that fits."""
    idx = [i for i, it in enumerate(items) if it.p is not None]
    best = 0.0
    for m in range(1, min(k, len(idx)) + 1):
        for subset in itertools.permutations(idx, m):
            if sum(items[i].tokens for i in subset) <= budget:
                best = max(
                    best, objective([expected_gain(items[i].p, items[i].utility) for i in subset], deltas)
                )
    return best


def test_the_issue_example_adding_a_useful_passage_raises_the_value() -> None:
    # The released per-context average falls when a p=0.3 passage is added ...
    assert udcg([0.9], [1.0]) > udcg([0.9, 0.3], [1.0, 1.0])
    # ... the packer's fixed discount does not: both are packed and the value rises.
    one = pack([PackItem(p=0.9, tokens=10)], token_budget=100, max_items=8)
    two = pack([PackItem(p=0.9, tokens=10), PackItem(p=0.3, tokens=10)], token_budget=100, max_items=8)
    assert two.order == [0, 1]
    assert two.objective > one.objective and two.udcg > one.udcg


def test_full_uniform_context_is_the_released_formula() -> None:
    ps = [0.9, 0.8, 0.6, 0.5]
    r = pack([PackItem(p=p, tokens=1) for p in ps], token_budget=10, max_items=4)
    assert r.udcg == pytest.approx(udcg(ps, [1.0] * 4))


def test_budget_choice_beats_greedy() -> None:
    # Greedy by gain takes the 0.9 passage (900 tokens) and nothing else fits; two 0.85
    # passages of 500 tokens are worth more.
    items = [PackItem(p=0.9, tokens=900), PackItem(p=0.85, tokens=500), PackItem(p=0.85, tokens=500)]
    r = pack(items, token_budget=1000, max_items=4)
    assert sorted(r.order) == [1, 2]
    assert [d.index for d in r.dropped] == [0] and r.dropped[0].kind == "budget"


def test_unknown_relevance_is_kept_in_retrieval_order_never_as_a_distractor() -> None:
    items = [PackItem(p=None, tokens=10), PackItem(p=0.1, tokens=10), PackItem(p=None, tokens=10)]
    r = pack(items, token_budget=100, max_items=4)
    assert r.order == [0, 2] and r.unknown == 2
    assert [(d.index, d.kind) for d in r.dropped] == [(1, "distractor")]
    # All unknown (a reranker fallback): retrieval order, cut only by the budget.
    r = pack([PackItem(p=None, tokens=40) for _ in range(4)], token_budget=100, max_items=8)
    assert r.order == [0, 1] and {d.kind for d in r.dropped} == {"budget"}
    assert "relevance unknown" in r.dropped[0].reason


def test_discount_validation() -> None:
    assert discount_vector("uniform", 4) == [0.25] * 4
    assert sum(discount_vector("log", 5)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-increasing"):
        discount_vector([0.1, 0.2], 2)
    with pytest.raises(ValueError, match="weights for"):
        discount_vector([0.1], 2)


@settings(max_examples=300, deadline=None)
@given(items=items_st, budget=st.integers(min_value=0, max_value=400), k=st.integers(1, 5), disc=discounts)
def test_exact_against_brute_force(items: list[PackItem], budget: int, k: int, disc: object) -> None:
    deltas = discount_vector(disc, k)  # type: ignore[arg-type]
    r = pack(items, token_budget=budget, max_items=k, discount=disc)  # type: ignore[arg-type]
    assert r.objective == pytest.approx(_brute(items, budget, k, deltas), abs=EPS)


@settings(max_examples=300, deadline=None)
@given(items=items_st, budget=st.integers(min_value=0, max_value=600), k=st.integers(1, 8), disc=discounts)
def test_budget_and_slots_are_never_exceeded_and_every_item_is_accounted_for(
    items: list[PackItem], budget: int, k: int, disc: object
) -> None:
    r = pack(items, token_budget=budget, max_items=k, discount=disc)  # type: ignore[arg-type]
    assert r.tokens == sum(items[i].tokens for i in r.order) <= budget
    assert len(r.order) <= k
    assert sorted(r.order + [d.index for d in r.dropped]) == list(range(len(items)))
    # Reported value = sigmoid of what is optimised (0 for an empty context).
    assert r.objective == pytest.approx(
        objective([expected_gain(items[i].p, items[i].utility) for i in r.order], r.deltas), abs=EPS
    )


@settings(max_examples=300, deadline=None)
@given(items=items_st, budget=st.integers(min_value=0, max_value=600), k=st.integers(1, 8), disc=discounts)
def test_never_worse_than_top_k(items: list[PackItem], budget: int, k: int, disc: object) -> None:
    r = pack(items, token_budget=budget, max_items=k, discount=disc)  # type: ignore[arg-type]
    # Top-k in the given (retrieval) order and in relevance order, for every k that fits.
    by_p = sorted(items, key=lambda it: -(it.p if it.p is not None else -1))
    for ranking in (items, by_p):
        for j in range(1, k + 1):
            if sum(it.tokens for it in ranking[:j]) <= budget:
                assert r.objective >= top_k_objective(ranking, r.deltas, j) - EPS


@settings(max_examples=300, deadline=None)
@given(
    items=items_st,
    p=known,
    u=st.floats(min_value=0.0, max_value=1.0),
    tokens=st.integers(0, 120),
    at=st.integers(0, 9),
    budget=st.integers(min_value=0, max_value=600),
    k=st.integers(1, 8),
    disc=discounts,
)
def test_adding_a_passage_with_positive_gain_never_lowers_the_value(
    items: list[PackItem], p: float, u: float, tokens: int, at: int, budget: int, k: int, disc: object
) -> None:
    extra = PackItem(p=p, utility=u, tokens=tokens)
    gain = expected_gain(p, u)
    assert gain is not None
    before = pack(items, token_budget=budget, max_items=k, discount=disc)  # type: ignore[arg-type]
    more = [*items[:at], extra, *items[at:]]
    after = pack(more, token_budget=budget, max_items=k, discount=disc)  # type: ignore[arg-type]
    assert after.objective >= before.objective - EPS
    if gain > 0:
        assert after.udcg >= before.udcg - EPS


async def test_estimate_counter() -> None:
    assert await EstimateTokenCounter().acount(["abcd", "abcde", ""]) == [1, 2, 1]


async def test_hf_counter_counts_with_the_served_models_tokenizer() -> None:
    from agentrag.models.setup import default_model_dir
    from agentrag.settings import Settings

    folder = default_model_dir(Settings.load(config=None).server)
    if not (folder / "tokenizer.json").exists():
        pytest.skip(f"no served model folder at {folder}")
    from transformers import AutoTokenizer

    text = "Corrective retrieval-augmented generation keeps strips of evidence."
    want = len(AutoTokenizer.from_pretrained(str(folder))(text, add_special_tokens=False)["input_ids"])
    assert await HFTokenCounter(folder).acount([text, ""]) == [want, 0]


@settings(max_examples=300, deadline=None)
@given(items=items_st, budget=st.integers(min_value=0, max_value=600), k=st.integers(1, 8), disc=discounts)
def test_in_order_packing_is_the_top_k_baseline_and_never_beats_the_optimum(
    items: list[PackItem], budget: int, k: int, disc: object
) -> None:
    base = pack_in_order(items, token_budget=budget, max_items=k, discount=disc)  # type: ignore[arg-type]
    # Rank order kept, budget and slots respected, every item accounted for, no distractor drops.
    assert base.order == sorted(base.order)
    assert base.tokens == sum(items[i].tokens for i in base.order) <= budget
    assert len(base.order) <= k
    assert sorted(base.order + [d.index for d in base.dropped]) == list(range(len(items)))
    assert all(d.kind in {"budget", "slots"} for d in base.dropped)
    # Greedy in order: a skipped item did not fit what was left, or the slots were full.
    for d in base.dropped:
        used_before = sum(items[i].tokens for i in base.order if i < d.index)
        taken_before = sum(1 for i in base.order if i < d.index)
        assert taken_before >= k or used_before + items[d.index].tokens > budget
    known_only = [it for it in items if it.p is not None]
    opt = pack(known_only, token_budget=budget, max_items=k, discount=disc)  # type: ignore[arg-type]
    top_k = pack_in_order(known_only, token_budget=budget, max_items=k, discount=disc)  # type: ignore[arg-type]
    assert opt.objective >= top_k.objective - EPS


def test_in_order_keeps_a_likely_distractor_the_optimum_drops() -> None:
    items = [PackItem(p=0.9, tokens=10), PackItem(p=0.05, tokens=10), PackItem(p=0.8, tokens=10)]
    assert pack(items, token_budget=100, max_items=3).order == [0, 2]
    base = pack_in_order(items, token_budget=100, max_items=3)
    assert base.order == [0, 1, 2] and base.udcg < pack(items, token_budget=100, max_items=3).udcg
