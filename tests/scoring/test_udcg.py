"""UDCG: the released formula, soft labels, discounts, and per-passage utility through real vLLM."""

from __future__ import annotations

import math

import httpx
import pytest

from agentrag.llm import LLMClient
from agentrag.llm.vllm_api import VLLMApi
from agentrag.scoring.udcg import NO_RESPONSE, UtilityScorer, expected_weight, udcg, uniform_discount

# The released data file (GiovanniTRA/UDCG data/dataset_with_udcg.json): per passage the
# consumer's NO-RESPONSE probability, then the UDCG stored for the example.
RELEASED = [
    (
        [2.086162567138672e-06, 1.341104507446289e-05],
        [0.1318359375, 0.1812744140625, 0.02081298828125],
        0.5553808928170055,
    ),
    (
        [5.960464477539063e-08, 6.616115570068359e-06],
        [0.00018215179443359375, 0.006114959716796875, 0.0093536376953125],
        0.5501411475208001,
    ),
    (
        [3.0100345611572266e-05],
        [0.00010311603546142578, 0.007602691650390625, 0.01299285888671875, 0.00013053417205810547],
        0.4837510250741193,
    ),
]


def test_reproduces_the_published_example() -> None:
    # Two relevant passages (utility 1.0) and three distractors: 0.5554 as published. That figure
    # (and the released data below) was computed with the weight written as -0.333; the exact
    # -1/3 of the code's default gives 0.55534.
    util = [1.0, 1.0, 0.8682, 0.8187, 0.9792]
    assert round(udcg([1, 1, 0, 0, 0], util, irrelevant_weight=-0.333), 4) == 0.5554
    assert round(udcg([True, True, False, False, False], util), 4) == 0.5553


@pytest.mark.parametrize(("rel", "irr", "stored"), RELEASED)
def test_reproduces_the_released_data_exactly(rel, irr, stored) -> None:
    labels = [1] * len(rel) + [0] * len(irr)
    utilities = [1.0 - p for p in rel + irr]
    assert udcg(labels, utilities, irrelevant_weight=-0.333) == pytest.approx(stored, abs=1e-12)
    assert udcg(labels, utilities) == pytest.approx(stored, abs=1e-4)


def test_the_formula_by_hand() -> None:
    rel, util = [1, 0, 1], [0.9, 0.6, 0.3]
    inner = (0.9 - 0.6 / 3 + 0.3) / 3
    assert udcg(rel, util) == pytest.approx(1 / (1 + math.exp(-inner)))
    # Order does not matter with the uniform discount ...
    assert udcg(rel[::-1], util[::-1]) == pytest.approx(udcg(rel, util))
    # ... and does with a positional one.
    delta = [0.5, 0.3, 0.2]
    inner = 0.5 * 0.9 - 0.3 * 0.6 / 3 + 0.2 * 0.3
    assert udcg(rel, util, discount=delta) == pytest.approx(1 / (1 + math.exp(-inner)))
    assert udcg(rel, util, discount=uniform_discount(3)) == pytest.approx(udcg(rel, util))


def test_empty_context_is_zero() -> None:
    assert udcg([], []) == 0.0


def test_more_distraction_lowers_the_score() -> None:
    assert udcg([1, 0], [1.0, 0.9]) < udcg([1, 0], [1.0, 0.1]) < udcg([1], [1.0])


def test_soft_labels_use_the_expected_weight() -> None:
    assert expected_weight(1.0) == 1.0 and expected_weight(0.0) == pytest.approx(-1 / 3)
    assert expected_weight(0.25) == pytest.approx(0.25 - 0.75 / 3)
    inner = (expected_weight(0.8) * 0.9 + expected_weight(0.1) * 0.7) / 2
    assert udcg([0.8, 0.1], [0.9, 0.7]) == pytest.approx(1 / (1 + math.exp(-inner)))
    # Soft labels at 0/1 are the hard formula.
    assert udcg([1.0, 0.0], [0.9, 0.7]) == pytest.approx(udcg([1, 0], [0.9, 0.7]))


def test_custom_weights() -> None:
    assert udcg([0], [1.0], irrelevant_weight=-1.0) == pytest.approx(1 / (1 + math.e))


@pytest.mark.parametrize(
    ("rel", "util", "kwargs", "match"),
    [
        ([1, 0], [1.0], {}, "relevance labels"),
        ([1], [1.5], {}, "utility"),
        ([2], [0.5], {}, "probability"),
        ([1, 1], [0.5, 0.5], {"discount": [1.0]}, "discount"),
    ],
)
def test_bad_inputs(rel, util, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        udcg(rel, util, **kwargs)


# ---------------------------------------------------------------- the real consumer model


@pytest.fixture
def api(llm: LLMClient) -> VLLMApi:
    return VLLMApi(llm.endpoint, usage=llm.usage)


async def test_the_abstention_token_comes_from_the_servers_tokenizer(
    llm: LLMClient, vllm_server: str
) -> None:
    scorer = UtilityScorer(llm)
    token_id = await scorer.abstain_token_id()
    root = vllm_server.removesuffix("/v1")
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{root}/tokenize",
            json={
                "model": scorer.api.model,
                "prompt": NO_RESPONSE,
                "add_special_tokens": False,
                "return_token_strs": True,
            },
        )
    r = response.json()
    assert token_id == r["tokens"][0]
    assert NO_RESPONSE.startswith(r["token_strs"][0])


async def test_prompt_logprob_equals_the_generated_tokens_logprob(llm: LLMClient, api: VLLMApi) -> None:
    # The exact-probability path (prompt_logprobs) must agree with what generation reports for
    # the token the model actually picks first, under the same chat template.
    scorer = UtilityScorer(llm, api=api)
    messages = scorer.template.messages(
        question="Who wrote Hamlet?", passage="Hamlet is a tragedy written by William Shakespeare."
    )
    dist = await llm.first_token(messages)
    top_token, top_lp = max(dist.top.items(), key=lambda kv: kv[1])
    ids = await api.tokenize(top_token, add_special_tokens=False)
    assert len(ids) == 1
    prompt_ids = await api.tokenize(messages=messages)
    assert await api.next_token_logprob(prompt_ids, ids[0]) == pytest.approx(top_lp, abs=2e-3)


async def test_utilities_are_probabilities_and_concurrent(llm: LLMClient) -> None:
    scorer = UtilityScorer(llm)
    passages = [
        "Hamlet is a tragedy written by William Shakespeare around 1600.",
        "The Pacific Ocean is the largest and deepest ocean on Earth.",
        "NO-RESPONSE NO-RESPONSE NO-RESPONSE",
    ]
    utilities = await scorer.autilities("Who wrote Hamlet?", passages)
    assert len(utilities) == 3 and all(0.0 <= u <= 1.0 for u in utilities)
    abst = await scorer.aabstention("Who wrote Hamlet?", passages[0])
    assert abst == pytest.approx(1.0 - utilities[0], abs=1e-6)
    assert llm.usage.calls >= 4  # the logprob requests are accounted on the client's meter
