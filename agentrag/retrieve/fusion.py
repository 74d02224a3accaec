"""Hybrid fusion of a lexical and a dense ranking.

- Weighted reciprocal rank fusion (Cormack et al. 2009): ``score(d) = Σ_r w_r / (k + rank_r(d))``,
  ranks 1-based, ``k = 60``; a list that did not retrieve ``d`` adds nothing.
- Convex combination (Bruch et al., TOIS 2023): ``f(d) = α·φ(dense(d)) + (1-α)·φ(bm25(d))`` with a
  per-query normalisation φ: min-max over the query's hits, or theoretical min-max (lower bound
  0 for BM25, -1 for cosine; upper bound the query's best).

A side that did not retrieve ``d`` gives it the normalised score of that side's *lowest observed*
hit (``missing="min"``): ``d`` ranks below everything that side returned, so at best it ties
with its last hit. Scoring it the theoretical floor instead (``missing="floor"``, 0 after
normalisation) locks one side out under ``tmm``: with α = 0.8 every dense hit (cosine ≥ 0)
scores ≥ 0.4 while a BM25-only document scores ≤ 0.2, so BM25 could only reorder dense's
candidates and never add one.

Example:
    >>> rrf([["a", "b"], ["b", "c"]], weights=[1.0, 1.0], k=60)["b"] > rrf([["a", "b"]], [1.0])["a"]
    True
    >>> convex({"a": 10.0, "b": 5.0}, {"b": 0.9, "c": 0.1}, alpha=0.5, method="minmax")
    {'a': 0.5, 'b': 0.5, 'c': 0.0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

__all__ = ["BM25_FLOOR", "COSINE_FLOOR", "Missing", "Normalization", "convex", "normalize", "rrf"]

BM25_FLOOR = 0.0
"""Theoretical minimum of a BM25 score."""

COSINE_FLOOR = -1.0
"""Theoretical minimum of a cosine similarity."""

Normalization = Literal["minmax", "tmm"]
"""Per-query normalisation of one side's scores."""

Missing = Literal["min", "floor"]
"""What a side scores a document it did not retrieve: its lowest observed hit, or 0."""


def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float], k: float = 60.0) -> dict[str, float]:
    """Weighted reciprocal rank fusion of ranked id lists (best first)."""
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return fused


def normalize(scores: Mapping[str, float], method: Normalization, floor: float) -> dict[str, float]:
    """Per-query normalisation to [0, 1].

    Args:
        scores: One query's scores.
        method: ``minmax`` (observed min and max) or ``tmm`` (theoretical min ``floor``,
            observed max).
        floor: Theoretical minimum of the scorer (``tmm`` only).
    """
    if not scores:
        return {}
    hi = max(scores.values())
    lo = min(scores.values()) if method == "minmax" else floor
    span = hi - lo
    if span <= 0:
        # One hit, or all tied: every hit is as good as the best.
        return dict.fromkeys(scores, 1.0)
    return {d: (s - lo) / span for d, s in scores.items()}


def convex(
    bm25: Mapping[str, float],
    dense: Mapping[str, float],
    *,
    alpha: float,
    method: Normalization = "tmm",
    missing: Missing = "min",
) -> dict[str, float]:
    """Convex combination ``α·φ(dense) + (1-α)·φ(bm25)`` over the union of both hit sets.

    Args:
        bm25: BM25 scores of the lexical side's hits.
        dense: Cosine similarities of the dense side's hits.
        alpha: Weight of the dense side, in [0, 1].
        method: The normalisation φ.
        missing: A document one side did not retrieve scores that side's lowest observed hit
            (``min``, the default) or 0 (``floor``; see the module docstring for why not).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    nb = normalize(bm25, method, BM25_FLOOR)
    nd = normalize(dense, method, COSINE_FLOOR)
    fill_b = min(nb.values()) if nb and missing == "min" else 0.0
    fill_d = min(nd.values()) if nd and missing == "min" else 0.0
    return {d: alpha * nd.get(d, fill_d) + (1.0 - alpha) * nb.get(d, fill_b) for d in {**nb, **nd}}
