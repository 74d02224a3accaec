"""Every reranker passes the same contract, against real parts.

- prism: the real local vLLM server (SmolLM2-135M), our Prism-format prompt.
- cross-encoder: a tiny cross-encoder built from the bundled MiniLM weights, in process.
- vllm-rerank: the same tiny cross-encoder served by a real vLLM (``--runner pooling``).
- embedding-prf: the real bundled MiniLM embedder.
"""

from __future__ import annotations

import pytest

from agentrag.rerank import (
    CrossEncoderReranker,
    EmbeddingPRFReranker,
    PrismConfig,
    PrismReranker,
    Reranker,
    RerankResult,
    VLLMRerankReranker,
)
from agentrag.settings import LLMEndpoint
from agentrag.types import StageScores


def build(kind: str, request: pytest.FixtureRequest) -> Reranker:
    if kind == "prism":
        llm = request.getfixturevalue("llm")
        # Few-shot settings so the small model's scores differ; short evidence keeps it quick.
        return PrismReranker(llm, PrismConfig.for_general_models(max_tokens=48))
    if kind == "cross-encoder":
        return CrossEncoderReranker(request.getfixturevalue("tiny_cross_encoder"))
    if kind == "vllm-rerank":
        url = request.getfixturevalue("vllm_rerank_server")
        return VLLMRerankReranker(LLMEndpoint(model="tiny-ce", api_base=[url], timeout_s=60))
    if kind == "embedding-prf":
        return EmbeddingPRFReranker(request.getfixturevalue("embedder"), k=2, beta=0.5)
    raise AssertionError(kind)


KINDS = [
    pytest.param("prism", marks=pytest.mark.vllm),
    "cross-encoder",
    pytest.param("vllm-rerank", marks=[pytest.mark.vllm, pytest.mark.slow]),
    "embedding-prf",
]


@pytest.fixture(params=KINDS)
def reranker(request: pytest.FixtureRequest) -> Reranker:
    return build(request.param, request)


@pytest.fixture
def case(scifact_candidates):
    c = scifact_candidates[0]
    # Earlier stages' scores must survive reranking.
    passages = [
        p.model_copy(update={"scores": StageScores(bm25=10.0 - i), "score": 10.0 - i})
        for i, p in enumerate(c.passages)
    ]
    return c.query, passages


async def test_is_a_reranker(reranker: Reranker) -> None:
    assert isinstance(reranker, Reranker)
    assert isinstance(reranker.name, str) and reranker.name


async def test_scores_every_passage_and_orders_by_score(reranker: Reranker, case) -> None:
    query, passages = case
    before = [p.model_dump() for p in passages]
    result = await reranker.arerank(query, passages)
    assert not result.fallback
    assert result.reranker == reranker.name
    assert sorted(p.id for p in result.passages) == sorted(p.id for p in passages)
    assert result.dropped == []
    scores = [p.score for p in result.passages]
    assert scores == sorted(scores, reverse=True)
    for p in result.passages:
        assert p.scores.rerank == p.score and p.relevance.known
        assert p.scores.bm25 is not None
    assert len(set(scores)) > 1, "scores should not all tie on real candidates"
    # The inputs are untouched.
    assert [p.model_dump() for p in passages] == before
    assert result.timings["total"] >= result.timings["score"] >= 0.0


async def test_top_n_keeps_the_best_and_explains_the_rest(reranker: Reranker, case) -> None:
    query, passages = case
    full = await reranker.arerank(query, passages)
    result = await reranker.arerank(query, passages, top_n=3)
    assert [p.id for p in result.passages] == [p.id for p in full.passages[:3]]
    assert [d.passage_id for d in result.dropped] == [p.id for p in full.passages[3:]]
    assert all(d.stage == "rerank" and "top_n=3" in d.reason for d in result.dropped)
    none = await reranker.arerank(query, passages, top_n=0)
    assert none.passages == [] and len(none.dropped) == len(passages)


async def test_threshold_keeps_only_scores_at_or_above(reranker: Reranker, case) -> None:
    query, passages = case
    full = await reranker.arerank(query, passages)
    cut = sorted(p.score for p in full.passages)[len(passages) // 2]
    result = await reranker.arerank(query, passages, threshold=cut)
    assert result.passages and all(p.score >= cut for p in result.passages)
    assert all(
        d.score is not None and d.score < cut and "below threshold" in d.reason for d in result.dropped
    )
    assert len(result.passages) + len(result.dropped) == len(passages)


async def test_evidence_belongs_to_kept_passages(reranker: Reranker, case) -> None:
    query, passages = case
    result = await reranker.arerank(query, passages, top_n=2)
    if result.evidence:  # only some rerankers produce evidence
        assert [e.passage_id for e in result.evidence] == [p.id for p in result.passages]
        for e, p in zip(result.evidence, result.passages, strict=True):
            assert e.text and e.source == p.source
            assert e.relevance.p is not None and 0.0 <= e.relevance.p <= 1.0
            if e.start is not None:
                assert e.end is not None and p.start <= e.start < e.end <= p.start + len(p.text)


async def test_empty_input(reranker: Reranker) -> None:
    result = await reranker.arerank("anything", [])
    assert result.passages == [] and result.dropped == [] and result.evidence == []


async def test_result_round_trips_through_json(reranker: Reranker, case) -> None:
    query, passages = case
    result = await reranker.arerank(query, passages, top_n=2)
    assert RerankResult.model_validate_json(result.model_dump_json()) == result


async def test_deterministic(reranker: Reranker, case) -> None:
    query, passages = case
    a = await reranker.arerank(query, passages[:4])
    b = await reranker.arerank(query, passages[:4])
    assert [p.id for p in a.passages] == [p.id for p in b.passages]
    assert [p.score for p in a.passages] == pytest.approx([p.score for p in b.passages], abs=1e-4)
