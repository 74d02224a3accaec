"""litellm prices every response; a self-hosted model it does not know gets a zero price once."""

from __future__ import annotations

from agentrag.llm import LLMClient
from agentrag.llm._litellm import litellm, price_self_hosted
from agentrag.settings import LLMEndpoint


def test_unknown_self_hosted_model_is_priced_at_zero_once() -> None:
    lm = litellm()
    model = "hosted_vllm/agentrag-test-pricing-model"
    assert model not in lm.model_cost
    price_self_hosted(model)
    entry = lm.model_cost[model]
    assert entry["input_cost_per_token"] == 0.0 and entry["output_cost_per_token"] == 0.0
    price_self_hosted(model)  # idempotent
    assert lm.model_cost[model] is entry or lm.model_cost[model] == entry


def test_a_model_litellm_prices_is_left_alone() -> None:
    lm = litellm()
    known = next(k for k, v in lm.model_cost.items() if (v.get("input_cost_per_token") or 0) > 0)
    before = dict(lm.model_cost[known])
    price_self_hosted(known)
    assert lm.model_cost[known] == before


def test_client_prices_its_hosted_vllm_model_before_the_first_call() -> None:
    model = "hosted_vllm/agentrag-test-client-model"
    client = LLMClient(LLMEndpoint(model=model, api_base=["http://127.0.0.1:9/v1"]), role="t")
    assert model not in litellm().model_cost
    assert client._provider_name() == "hosted_vllm"  # every call asks this first
    assert litellm().model_cost[model]["output_cost_per_token"] == 0.0
