from __future__ import annotations

import math

import pytest

from agentrag.llm import MISSING_LOGPROB, TokenDistribution, parse_json_object


def test_yes_no_normalises_over_yes_and_no() -> None:
    dist = TokenDistribution(
        token="yes", top={"yes": math.log(0.6), "no": math.log(0.2), "maybe": math.log(0.2)}
    )
    yn = dist.yes_no()
    assert yn.p_yes == pytest.approx(0.75)
    assert yn.logit == pytest.approx(math.log(3))
    assert yn.mass == pytest.approx(0.8)


def test_variants_are_summed_unless_exact() -> None:
    dist = TokenDistribution(
        token="Yes", top={"Yes": math.log(0.3), " yes": math.log(0.3), "No": math.log(0.2)}
    )
    assert dist.yes_no().p_yes == pytest.approx(0.6 / 0.8)
    exact = dist.yes_no(yes=("yes",), no=("no",), exact=True)
    assert exact.logprob_yes == MISSING_LOGPROB and exact.logprob_no == MISSING_LOGPROB
    assert exact.p_yes == pytest.approx(0.5)


def test_missing_candidate_counts_as_minus_ten() -> None:
    dist = TokenDistribution(token="yes", top={"yes": -0.1})
    yn = dist.yes_no()
    assert yn.logprob_no == MISSING_LOGPROB
    assert yn.p_yes == pytest.approx(1 / (1 + math.exp(-(-0.1 + 10))))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Sure! Here it is: {"a": [1, 2]} hope that helps', {"a": [1, 2]}),
        ("[1, 2]", [1, 2]),
    ],
)
def test_parse_json_object_tolerates_wrapping(text: str, value: object) -> None:
    assert parse_json_object(text) == value


def test_parse_json_object_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="no JSON"):
        parse_json_object('{"a": unterminated')
