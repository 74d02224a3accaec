"""The LLM client against the real local vLLM server (SmolLM2-135M-Instruct on CPU)."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel, Field

from agentrag.errors import LLMBadRequestError
from agentrag.llm import LLMClient
from agentrag.settings import LLMEndpoint

pytestmark = pytest.mark.vllm

# A 135M model barely follows instructions; a few-shot raw prompt is what gets it to put its
# probability on " yes"/" no". The test is about the plumbing (logprobs -> probability), and
# these pairs are chosen so that even this model separates them.
FEW_SHOT = (
    "Question: What color is the sky?\nPassage: On a clear day the sky looks blue.\nRelevant: yes\n\n"
    "Question: What color is the sky?\nPassage: The Eiffel Tower was finished in 1889.\nRelevant: no\n\n"
    "Question: {q}\nPassage: {p}\nRelevant:"
)
PAIRS = [
    (
        "Who wrote Hamlet?",
        "Hamlet is a tragedy written by William Shakespeare around 1600.",
        "The Pacific Ocean is the largest ocean on Earth.",
    ),
    (
        "How many legs does a spider have?",
        "Spiders are arachnids with eight legs.",
        "The stock market fell sharply on Monday.",
    ),
]


async def test_chat_answers(llm: LLMClient) -> None:
    result = await llm.chat([{"role": "user", "content": "What is the capital of France?"}], max_tokens=30)
    # The test model's answers are not judged (tests/conftest.py): the 135M model's greedy
    # answer here depends on the CPU's bf16 kernels ("Paris" on an AMD EPYC with AVX512-BF16,
    # "L'Étoile, la Marseillaise, ..." on an Intel Xeon with AMX; both seen on CI machines).
    assert result.text.strip()
    # The chat template wrapped the 8-token question (SmolLM2's adds a system turn).
    assert result.prompt_tokens > 20
    assert result.finish_reason in {"stop", "length"}
    assert result.completion_tokens > 0
    assert llm.usage.calls == 1 and llm.usage.total_tokens == result.prompt_tokens + result.completion_tokens


class Capital(BaseModel):
    city: str = Field(max_length=40)
    country: str = Field(max_length=40)


async def test_json_schema_answer_parses_into_the_model(llm: LLMClient) -> None:
    out = await llm.structured(
        [{"role": "user", "content": "What is the capital of France? Answer as JSON with city and country."}],
        Capital,
        max_tokens=60,
    )
    assert isinstance(out, Capital)
    assert out.city.lower() == "paris"


@pytest.mark.parametrize(("question", "relevant", "irrelevant"), PAIRS)
async def test_yes_no_probabilities(llm: LLMClient, question: str, relevant: str, irrelevant: str) -> None:
    rel, irr = await asyncio.gather(
        llm.yes_no(prompt=FEW_SHOT.format(q=question, p=relevant)),
        llm.yes_no(prompt=FEW_SHOT.format(q=question, p=irrelevant)),
    )
    for judgement in (rel, irr):
        # Nearly all the first token's probability is on yes/no: the scores are meaningful.
        assert judgement.mass > 0.9
        assert 0.0 < judgement.p_yes < 1.0
    assert rel.p_yes > irr.p_yes + 0.05


async def test_chat_first_token_distribution(llm: LLMClient) -> None:
    dist = await llm.first_token([{"role": "user", "content": "Is Paris in France? Answer yes or no."}])
    assert len(dist.top) >= 10
    assert dist.token in dist.top
    total = sum(pow(2.718281828, lp) for lp in dist.top.values())
    assert 0.5 < total <= 1.0001


async def test_streaming_yields_tokens_incrementally(llm: LLMClient) -> None:
    pieces: list[str] = []
    stamps: list[float] = []
    async for piece in llm.stream([{"role": "user", "content": "Name three colors."}], max_tokens=40):
        pieces.append(piece)
        stamps.append(time.perf_counter())
    assert len(pieces) >= 5
    assert stamps[-1] - stamps[0] > 0.05  # spread over time, not one blob
    assert llm.usage.calls == 1 and llm.usage.completion_tokens == pytest.approx(len(pieces), abs=3)


async def test_concurrent_calls_overlap(llm: LLMClient) -> None:
    msg = [{"role": "user", "content": "Say hello."}]
    spans: list[tuple[float, float]] = []

    async def timed() -> str:
        t0 = time.perf_counter()
        result = await llm.chat(msg, max_tokens=8)
        spans.append((t0, time.perf_counter()))
        return result.text

    results = await asyncio.gather(*(timed() for _ in range(8)))
    assert all(results)
    assert llm.usage.calls == 8
    # All eight were in flight together: every call started before the first one finished
    # (the concurrency limit is 16 here). Wall-time ratios live in bench/, not in tests.
    first_end = min(end for _, end in spans)
    assert all(start < first_end for start, _ in spans)


async def test_raw_completion(llm: LLMClient) -> None:
    result = await llm.complete("The capital of France is", max_tokens=5)
    assert "Paris" in result.text


async def test_unknown_model_is_a_clear_error(llm_endpoint: LLMEndpoint) -> None:
    wrong = LLMClient(llm_endpoint.model_copy(update={"model": "hosted_vllm/no-such-model"}))
    with pytest.raises(LLMBadRequestError) as info:
        await wrong.chat([{"role": "user", "content": "hi"}])
    assert "models status" in info.value.hint


async def test_served_models_lists_the_name(llm: LLMClient, server_settings) -> None:
    served = await llm.served_models()
    assert all(server_settings.served_name in names for names in served.values())


async def test_raw_completions_go_to_the_server_without_litellm(llm: LLMClient, monkeypatch) -> None:
    # On an OpenAI-compatible server the raw completions (scoring, evidence) go straight to the
    # OpenAI SDK client over the shared pool; litellm is not asked.
    from agentrag.llm._litellm import litellm

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("litellm was asked for a text completion")

    monkeypatch.setattr(litellm(), "atext_completion", refuse)
    out = await llm.complete("The capital of France is", max_tokens=3)
    assert out.completion_tokens > 0 and out.prompt_tokens > 0
    dist = await llm.first_token(prompt="Question: Is the sky blue? Answer yes or no.\nAnswer:")
    assert len(dist.top) >= 10 and dist.token in dist.top
    assert llm.usage.calls == 2
