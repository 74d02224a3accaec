"""vLLM's own endpoints: tokenize (text and chat), exact next-token log-probs, errors."""

from __future__ import annotations

import pytest

from agentrag.errors import LLMConnectionError
from agentrag.llm.vllm_api import VLLMApi, served_name
from agentrag.settings import LLMEndpoint


def test_served_name() -> None:
    assert served_name("hosted_vllm/smollm2-135m") == "smollm2-135m"
    assert served_name("openai/x") == "x" and served_name("plain") == "plain"


@pytest.mark.vllm
async def test_tokenize_text_and_chat(llm_endpoint: LLMEndpoint) -> None:
    api = VLLMApi(llm_endpoint)
    ids = await api.tokenize("Hello world", add_special_tokens=False)
    assert ids and all(isinstance(i, int) for i in ids)
    messages = [{"role": "user", "content": "Hello world"}]
    chat = await api.tokenize(messages=messages)
    bare = await api.tokenize(messages=messages, add_generation_prompt=False)
    assert len(chat) > len(bare) > len(ids)  # template tokens, then the assistant header
    with pytest.raises(ValueError, match="exactly one"):
        await api.tokenize()


@pytest.mark.vllm
async def test_next_token_logprobs_form_a_distribution(llm_endpoint: LLMEndpoint) -> None:
    api = VLLMApi(llm_endpoint)
    prompt = await api.tokenize("The capital of France is", add_special_tokens=False)
    paris = (await api.tokenize(" Paris", add_special_tokens=False))[0]
    banana = (await api.tokenize(" banana", add_special_tokens=False))[0]
    lp_paris = await api.next_token_logprob(prompt, paris)
    lp_banana = await api.next_token_logprob(prompt, banana)
    assert lp_banana < lp_paris <= 0.0
    assert api.usage.calls == 2 and api.usage.prompt_tokens > 0


async def test_unreachable_server_is_a_connection_error() -> None:
    api = VLLMApi(LLMEndpoint(model="m", api_base=["http://127.0.0.1:9/v1"], max_retries=0, timeout_s=5))
    with pytest.raises(LLMConnectionError):
        await api.tokenize("x")
    assert api.usage.failed_calls == 1
