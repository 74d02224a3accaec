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
    f = convex(bm25, dense, alpha=0.3, method="tmm", missing="floor")
    assert f["a"] == pytest.approx(0.7 * 1.0)
    assert f["b"] == pytest.approx(0.7 * 0.5 + 0.3 * 1.0)
    assert f["c"] == pytest.approx(0.3 * (1.2 / 1.8))
    # Default: a side's missing document scores that side's lowest observed hit.
    f = convex(bm25, dense, alpha=0.3, method="tmm")
    assert f["a"] == pytest.approx(0.7 * 1.0 + 0.3 * (1.2 / 1.8))
    assert f["b"] == pytest.approx(0.7 * 0.5 + 0.3 * 1.0)
    assert f["c"] == pytest.approx(0.7 * 0.5 + 0.3 * (1.2 / 1.8))
    # α = 0 / 1 reproduce the single rankings.
    only_bm25 = convex(bm25, dense, alpha=0.0, method="minmax")
    assert sorted(only_bm25, key=lambda d: -only_bm25[d])[:2] == ["a", "b"]
    only_dense = convex(bm25, dense, alpha=1.0, method="minmax")
    assert only_dense["b"] == 1.0 and only_dense["c"] == 0.0 and only_dense["a"] == 0.0
    with pytest.raises(ValueError, match="alpha"):
        convex(bm25, dense, alpha=1.5)


def _sides(n: int = 100) -> tuple[dict[str, float], dict[str, float]]:
    """Typical MiniLM / BM25 lists: 100 hits each, 20 shared; cosines 0.30-0.60, BM25 2-20."""
    dense = {f"d{i}": 0.60 - 0.003 * i for i in range(n)}
    bm25 = {f"b{i}": 20.0 - 0.18 * i for i in range(n - 20)}
    for i in range(20):
        bm25[f"d{i * 5}"] = 10.0 - 0.1 * i
    return bm25, dense


@pytest.mark.parametrize(("method", "alpha"), [("tmm", 0.8), ("minmax", 0.5)])
def test_a_bm25_only_document_can_reach_the_top_k(method: str, alpha: float) -> None:
    bm25, dense = _sides()
    fused = convex(bm25, dense, alpha=alpha, method=method)  # type: ignore[arg-type]
    top20 = sorted(fused, key=lambda d: -fused[d])[:20]
    # The best BM25 hit (not in dense's 100) beats dense's weaker hits.
    assert "b0" in top20
    top100 = sorted(fused, key=lambda d: -fused[d])[:100]
    assert sum(d.startswith("b") for d in top100) >= 5


def test_the_old_floor_locks_bm25_only_documents_out_under_tmm() -> None:
    # The bug this default fixes: with the theoretical floor for a missing side, every dense
    # hit (cosine >= 0) scores >= 0.4 at alpha 0.8 and a BM25-only one <= 0.2.
    bm25, dense = _sides()
    fused = convex(bm25, dense, alpha=0.8, method="tmm", missing="floor")
    top100 = sorted(fused, key=lambda d: -fused[d])[:100]
    assert set(top100) == set(dense)


def test_missing_min_keeps_each_side_order_and_one_sided_input() -> None:
    bm25, dense = _sides()
    fused = convex(bm25, {}, alpha=0.8, method="tmm")
    assert sorted(fused, key=lambda d: -fused[d]) == sorted(bm25, key=lambda d: -bm25[d])
    fused = convex({}, dense, alpha=0.8, method="tmm")
    assert sorted(fused, key=lambda d: -fused[d]) == sorted(dense, key=lambda d: -dense[d])
    assert convex({}, {}, alpha=0.5) == {}
