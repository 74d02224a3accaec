"""Embedding PRF: the Rocchio math, and the reranker on real MiniLM vectors."""

from __future__ import annotations

import numpy as np
import pytest

from agentrag.rerank import EmbeddingPRFReranker, prf_scores
from agentrag.rerank.base import document_text


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_without_feedback_it_is_plain_cosine() -> None:
    rng = np.random.default_rng(0)
    q, d = rng.normal(size=8), rng.normal(size=(5, 8))
    want = (d / np.linalg.norm(d, axis=1, keepdims=True)) @ unit(q)
    assert prf_scores(q, d, k=0) == pytest.approx(want, abs=1e-6)
    assert prf_scores(q, d, k=3, beta=0.0) == pytest.approx(want, abs=1e-6)


def test_rocchio_update_by_hand() -> None:
    q = unit([1.0, 0.0, 0.0])
    d = np.stack([unit([1, 1, 0]), unit([0, 1, 0]), unit([0, 0, 1]), unit([1, 0.9, 0])])
    # dense feedback: top-2 by cosine are rows 0 and 3.
    q2 = unit(1.0 * q + 0.5 * (d[0] + d[3]) / 2)
    assert prf_scores(q, d, k=2, beta=0.5) == pytest.approx(d @ q2, abs=1e-6)
    # input feedback: the first two rows, whatever their cosine.
    q3 = unit(q + 0.5 * (d[0] + d[1]) / 2)
    assert prf_scores(q, d, k=2, beta=0.5, feedback="input") == pytest.approx(d @ q3, abs=1e-6)
    # Feedback pulls the second topic up: row 1 gains on row 2.
    plain = prf_scores(q, d, k=0)
    moved = prf_scores(q, d, k=2, beta=0.5)
    assert moved[1] - moved[2] > plain[1] - plain[2]


def test_k_is_clamped_and_empty_is_fine() -> None:
    q = unit([1.0, 0.0])
    d = np.stack([unit([1, 0]), unit([0, 1])])
    assert prf_scores(q, d, k=10).shape == (2,)
    assert prf_scores(q, np.zeros((0, 2), dtype=np.float32), k=3).shape == (0,)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        EmbeddingPRFReranker(object(), k=-1)  # type: ignore[arg-type]


async def test_reranker_on_real_minilm_vectors(embedder, scifact_candidates) -> None:
    c = scifact_candidates[4]
    reranker = EmbeddingPRFReranker(embedder, k=2, alpha=1.0, beta=0.7)
    q = embedder.embed_query(c.query)
    d = embedder.embed_documents([document_text(p) for p in c.passages])
    want = prf_scores(q, d, k=2, alpha=1.0, beta=0.7, feedback=reranker.feedback)
    result = await reranker.arerank(c.query, c.passages)
    by_id = {p.id: p.score for p in result.passages}
    assert [by_id[p.id] for p in c.passages] == pytest.approx(list(want), abs=1e-5)
    assert "k=2" in reranker.name and embedder.name in reranker.name
    # MiniLM puts a relevant abstract first for this claim, with or without feedback.
    assert result.passages[0].id in c.relevant
