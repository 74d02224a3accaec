"""The selection rule every reranker shares."""

from __future__ import annotations

import pytest

from agentrag.rerank import select
from agentrag.rerank.base import document_text, fallback_result
from agentrag.types import Passage

P = [Passage(id=f"p{i}", text=f"text {i}", source="s") for i in range(5)]


def test_ties_keep_retrieval_order() -> None:
    kept, dropped = select(P, [0.5, 0.9, 0.5, 0.9, 0.1], top_n=None, threshold=None)
    assert [p.id for p in kept] == ["p1", "p3", "p0", "p2", "p4"] and dropped == []


def test_threshold_then_top_n() -> None:
    kept, dropped = select(P, [0.5, 0.9, 0.4, 0.8, 0.1], top_n=2, threshold=0.45)
    assert [p.id for p in kept] == ["p1", "p3"]
    reasons = {d.passage_id: d.reason for d in dropped}
    assert (
        "top_n=2" in reasons["p0"]
        and "below threshold" in reasons["p2"]
        and "below threshold" in reasons["p4"]
    )
    assert [d.passage_id for d in dropped] == ["p0", "p2", "p4"]  # best first


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scores"):
        select(P, [0.1], top_n=None, threshold=None)
    with pytest.raises(ValueError, match="top_n"):
        select(P, [0.1] * 5, top_n=-1, threshold=None)


def test_document_text_adds_the_title_once() -> None:
    assert document_text(Passage(id="a", text="Body.", source="s", title="T")) == "T\nBody."
    assert document_text(Passage(id="a", text="T: body.", source="s", title="T")) == "T: body."
    assert document_text(Passage(id="a", text="Body.", source="s")) == "Body."


def test_fallback_result() -> None:
    r = fallback_result("x", P, top_n=3, reason="down")
    assert r.fallback and r.fallback_reason == "down" and [p.id for p in r.passages] == ["p0", "p1", "p2"]
    assert [d.passage_id for d in r.dropped] == ["p3", "p4"]
