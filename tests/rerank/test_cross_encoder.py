"""Cross-encoder rerankers: in-process scores match an independent forward pass, and vLLM's
``/v1/rerank`` serving the same weights gives the same scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrag.errors import LLMUnsupportedError, RerankError
from agentrag.llm.vllm_api import VLLMApi
from agentrag.rerank import CrossEncoderReranker, VLLMRerankReranker
from agentrag.rerank.base import document_text
from agentrag.settings import LLMEndpoint


def reference_scores(model_dir: Path, query: str, docs: list[str]) -> list[float]:
    """sigmoid(logit) from a plain transformers forward pass: no sentence-transformers code involved."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True).eval()
    with torch.no_grad():
        enc = tok([query] * len(docs), docs, padding=True, truncation=True, return_tensors="pt")
        logits = model(**enc).logits[:, 0]
    return torch.sigmoid(logits).tolist()


async def test_local_cross_encoder_matches_a_plain_forward_pass(
    tiny_cross_encoder, scifact_candidates
) -> None:
    c = scifact_candidates[1]
    reranker = CrossEncoderReranker(tiny_cross_encoder)
    got = reranker.predict(c.query, c.passages)
    want = reference_scores(tiny_cross_encoder, c.query, [document_text(p) for p in c.passages])
    assert got == pytest.approx(want, abs=1e-5)
    result = await reranker.arerank(c.query, c.passages)
    order = sorted(range(len(want)), key=lambda i: -want[i])
    assert [p.id for p in result.passages] == [c.passages[i].id for i in order]


def test_sync_wrapper(tiny_cross_encoder, scifact_candidates) -> None:
    c = scifact_candidates[1]
    result = CrossEncoderReranker(tiny_cross_encoder).rerank(c.query, c.passages, top_n=2)
    assert len(result.passages) == 2


async def test_missing_model_is_a_clear_error(tmp_path: Path, scifact_candidates) -> None:
    reranker = CrossEncoderReranker(tmp_path / "nowhere")
    with pytest.raises(RerankError, match="does not exist") as info:
        await reranker.arerank("q", scifact_candidates[0].passages)
    assert "downloaded" in info.value.hint


async def test_a_folder_without_a_model_is_a_clear_error(tmp_path: Path, scifact_candidates) -> None:
    (tmp_path / "junk.txt").write_text("not a model")
    with pytest.raises(RerankError, match="cannot load"):
        await CrossEncoderReranker(tmp_path).arerank("q", scifact_candidates[0].passages)


@pytest.mark.slow
async def test_vllm_rerank_serves_the_same_scores(
    vllm_rerank_server, tiny_cross_encoder, scifact_candidates
) -> None:
    c = scifact_candidates[2]
    served = VLLMRerankReranker(LLMEndpoint(model="hosted_vllm/tiny-ce", api_base=[vllm_rerank_server]))
    local = CrossEncoderReranker(tiny_cross_encoder)
    remote_scores = await served.ascore(c.query, c.passages)
    assert remote_scores == pytest.approx(local.predict(c.query, c.passages), abs=1e-4)
    top = await served.api.rerank(c.query, [document_text(p) for p in c.passages], top_n=2)
    assert len(top) == 2 and top[0][1] >= top[1][1]
    assert served.api.usage.calls >= 2 and served.api.usage.prompt_tokens > 0


@pytest.mark.slow
async def test_vllm_rerank_falls_back_when_the_model_is_unknown(
    vllm_rerank_server, scifact_candidates
) -> None:
    c = scifact_candidates[2]
    wrong = VLLMRerankReranker(
        LLMEndpoint(model="no-such-model", api_base=[vllm_rerank_server], max_retries=0)
    )
    result = await wrong.arerank(c.query, c.passages, top_n=3)
    assert result.fallback and "scoring failed (llm.bad_request" in result.fallback_reason
    assert [p.id for p in result.passages] == [p.id for p in c.passages[:3]]
    assert all("fallback" in d.reason for d in result.dropped)


async def test_rerank_on_a_generation_server_is_unsupported(vllm_server, server_settings) -> None:
    api = VLLMApi(LLMEndpoint(model=server_settings.served_name, api_base=[vllm_server], max_retries=0))
    with pytest.raises(LLMUnsupportedError):
        await api.rerank("q", ["d"])
