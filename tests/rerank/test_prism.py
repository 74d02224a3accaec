"""PrismReranker against the real local vLLM server (SmolLM2-135M-Instruct, CPU).

A 135M model is a weak judge: these tests check the plumbing (exact scores, concurrency,
evidence only for the kept, fallbacks), not ranking quality, which bench/ measures.
"""

from __future__ import annotations

import math
import time

import httpx
import pytest

from agentrag.llm import LLMClient
from agentrag.rerank import PrismConfig, PrismReranker
from agentrag.settings import LLMEndpoint

pytestmark = pytest.mark.vllm


def independent_p_yes(base: str, model: str, prompt: str) -> float:
    """P(yes)/(P(yes)+P(no)) computed from a raw /v1/completions call, without our client."""
    r = httpx.post(
        f"{base}/completions",
        json={"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": 20},
        timeout=120,
    )
    r.raise_for_status()
    top = r.json()["choices"][0]["logprobs"]["top_logprobs"][0]

    def mass(word: str) -> float:
        hits = [lp for tok, lp in top.items() if tok.strip().lower() == word]
        return math.log(sum(math.exp(lp) for lp in hits)) if hits else -10.0

    return 1.0 / (1.0 + math.exp(-(mass("yes") - mass("no"))))


class RecordingLLM(LLMClient):
    """The real client, recording when each scoring/evidence call ran."""

    def __init__(self, endpoint: LLMEndpoint) -> None:
        super().__init__(endpoint, role="test")
        self.spans: list[tuple[float, float]] = []
        self.completions = 0

    async def yes_no(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = await super().yes_no(*args, **kwargs)
        self.spans.append((t0, time.perf_counter()))
        return out

    async def complete(self, *args, **kwargs):
        self.completions += 1
        return await super().complete(*args, **kwargs)


@pytest.mark.parametrize(
    "config", [PrismConfig(), PrismConfig.for_general_models()], ids=["prism", "general"]
)
async def test_scores_equal_an_independent_first_token_computation(
    llm: LLMClient, vllm_server: str, server_settings, scifact_candidates, config: PrismConfig
) -> None:
    c = scifact_candidates[0]
    reranker = PrismReranker(llm, config)
    got = await reranker.ascore(c.query, c.passages[:4])
    want = [
        independent_p_yes(vllm_server, server_settings.served_name, reranker.prompt(c.query, p))
        for p in c.passages[:4]
    ]
    assert got == pytest.approx(want, abs=1e-5)
    assert all(0.0 < s < 1.0 for s in got)


async def test_general_settings_put_the_first_token_on_yes_or_no(llm: LLMClient, scifact_candidates) -> None:
    # What PrismConfig.for_general_models claims for this model.
    c = scifact_candidates[3]
    reranker = PrismReranker(llm, PrismConfig.for_general_models())
    for p in c.passages[:3]:
        dist = await llm.first_token(prompt=reranker.prompt(c.query, p))
        assert dist.yes_no().mass > 0.9


async def test_all_candidates_are_scored_concurrently(llm_endpoint: LLMEndpoint, scifact_candidates) -> None:
    c = scifact_candidates[1]
    llm = RecordingLLM(llm_endpoint.model_copy(update={"max_concurrency": 16}))
    result = await PrismReranker(llm, PrismConfig(generate_evidence=False)).arerank(c.query, c.passages)
    assert len(llm.spans) == len(c.passages) == len(result.passages)
    first_end = min(end for _, end in llm.spans)
    assert all(start < first_end for start, _ in llm.spans)  # every request was in flight together


async def test_evidence_from_the_real_model_only_for_kept(
    llm_endpoint: LLMEndpoint, scifact_candidates
) -> None:
    c = scifact_candidates[2]
    llm = RecordingLLM(llm_endpoint)
    reranker = PrismReranker(llm, PrismConfig.for_general_models(max_tokens=64))
    result = await reranker.arerank(c.query, c.passages, top_n=2)
    assert llm.completions == 2 and len(result.evidence) == 2
    for ev, p in zip(result.evidence, result.passages, strict=True):
        assert ev.passage_id == p.id and ev.text.strip()
        assert ev.relevance.p == pytest.approx(p.score) and ev.relevance.origin == "reranker"
        if ev.fallback:
            assert ev.text == p.text
        elif ev.start is not None:
            # A located span really holds the evidence text (up to whitespace).
            local = p.text[ev.start - p.start : ev.end - p.start]
            assert " ".join(local.split()) == " ".join(ev.text.split())
    assert usage_ok(llm)


def usage_ok(llm: LLMClient) -> bool:
    return llm.usage.calls >= 1 and llm.usage.prompt_tokens > 0
