from __future__ import annotations

import pytest

from agentrag.retrieve.fusion import convex, normalize, rrf


def test_rrf_formula_and_weights() -> None:
    fused = rrf([["a", "b", "c"], ["c", "a"]], weights=[1.0, 2.0], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 2 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 2 / 61)
    assert rrf([[], []], [1, 1]) == {}
    with pytest.raises(ValueError, match="weight"):
        rrf([["a"]], [1.0, 1.0])


def test_normalisations() -> None:
    assert normalize({"a": 3.0, "b": 1.0, "c": 2.0}, "minmax", 0.0) == {"a": 1.0, "b": 0.0, "c": 0.5}
    assert normalize({"a": 4.0, "b": 1.0}, "tmm", 0.0) == {"a": 1.0, "b": 0.25}
    assert normalize({"a": 0.5, "b": 0.0}, "tmm", -1.0) == {"a": 1.0, "b": pytest.approx(1 / 1.5)}
    assert normalize({"a": 2.0}, "minmax", 0.0) == {"a": 1.0}
    assert normalize({}, "minmax", 0.0) == {}


def test_convex_combination() -> None:
    bm25 = {"a": 10.0, "b": 5.0}
    dense = {"b": 0.8, "c": 0.2}
    f = convex(bm25, dense, alpha=0.3, method="tmm")
    assert f["a"] == pytest.approx(0.7 * 1.0)
    assert f["b"] == pytest.approx(0.7 * 0.5 + 0.3 * 1.0)
    assert f["c"] == pytest.approx(0.3 * (1.2 / 1.8))
    # α = 0 / 1 reproduce the single rankings.
    only_bm25 = convex(bm25, dense, alpha=0.0, method="minmax")
    assert sorted(only_bm25, key=lambda d: -only_bm25[d])[:2] == ["a", "b"]
    only_dense = convex(bm25, dense, alpha=1.0, method="minmax")
    assert only_dense["b"] == 1.0 and only_dense["c"] == 0.0 and only_dense["a"] == 0.0
    with pytest.raises(ValueError, match="alpha"):
        convex(bm25, dense, alpha=1.5)
