"""Calibration: a map from a raw relevance score to P(relevant), fitted on labelled pairs.

Thresholds only mean something across queries, models and corpora when they are probabilities.
A :class:`Calibration` is fitted once on labelled (score, relevant?) pairs, saved as JSON next
to a knowledge base's index, and applied at run time (the rerankers' ``threshold`` then reads
as "keep passages at least this likely to be relevant").

Two methods, fitted with scikit-learn (the reference implementations, and already installed
with sentence-transformers):

- ``isotonic`` (default): a non-decreasing step-wise-linear map, no shape assumption; needs a
  few hundred pairs. Stored as its breakpoints and applied with ``numpy.interp``, which is
  exactly scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` prediction, so loading a
  calibration needs no scikit-learn.
- ``platt``: P = sigmoid(a·s + b), a logistic fit; two parameters, works with few pairs, assumes
  the log-odds are linear in the score.

Example:
    >>> from agentrag.scoring.calibration import Calibration
    >>> cal = Calibration.fit([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1], method="platt")
    >>> 0.0 < cal(0.15) < cal(0.8) < 1.0
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentrag.errors import ConfigError

__all__ = ["Calibration", "brier_score", "expected_calibration_error"]

FORMAT_VERSION = 1


class Calibration(BaseModel):
    """A fitted score → P(relevant) map. Build with :meth:`fit`, persist with :meth:`save`."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    method: Literal["isotonic", "platt"]
    """How it was fitted."""

    x: list[float] = Field(default_factory=list)
    """Isotonic: raw-score breakpoints, increasing."""

    y: list[float] = Field(default_factory=list)
    """Isotonic: P(relevant) at each breakpoint, non-decreasing."""

    a: float = 0.0
    """Platt: slope on the raw score."""

    b: float = 0.0
    """Platt: intercept."""

    score_name: str = ""
    """What raw score this maps (e.g. the reranker's name); checked by users, not enforced."""

    n_pairs: int = 0
    """Labelled pairs it was fitted on."""

    n_positive: int = 0
    """Relevant pairs among them."""

    fit_brier: float | None = None
    """Brier score on the fitting pairs (in-sample; lower is better)."""

    version: int = FORMAT_VERSION
    """File format version."""

    @model_validator(mode="after")
    def _check(self) -> Calibration:
        if self.method == "isotonic":
            if not self.x or len(self.x) != len(self.y):
                raise ValueError("isotonic calibration needs breakpoints x and y of equal length")
            if any(b < a for a, b in zip(self.x, self.x[1:], strict=False)):
                raise ValueError("isotonic breakpoints x must be increasing")
            if any(b < a - 1e-12 for a, b in zip(self.y, self.y[1:], strict=False)):
                raise ValueError("isotonic values y must be non-decreasing")
        return self

    # ------------------------------------------------------------------ fit

    @classmethod
    def fit(
        cls,
        scores: Sequence[float] | NDArray[np.floating],
        labels: Sequence[bool | int | float] | NDArray[np.generic],
        *,
        method: Literal["isotonic", "platt"] = "isotonic",
        score_name: str = "",
    ) -> Calibration:
        """Fit on labelled pairs.

        Args:
            scores: Raw scores (higher = more relevant).
            labels: 1/True for relevant, 0/False otherwise.
            method: ``isotonic`` or ``platt`` (see the module docstring).
            score_name: Recorded with the calibration.

        Raises:
            ValueError: Fewer than 2 pairs, mismatched lengths, or only one class present.
        """
        s = np.asarray(scores, dtype=np.float64).ravel()
        t = (np.asarray(labels, dtype=np.float64).ravel() > 0).astype(np.float64)
        if s.shape != t.shape:
            raise ValueError(f"{s.size} scores but {t.size} labels")
        if s.size < 2 or t.min() == t.max():
            raise ValueError("calibration needs at least one relevant and one non-relevant pair")
        if not np.isfinite(s).all():
            raise ValueError("scores must be finite")
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
            iso.fit(s, t)
            cal = cls(
                method="isotonic",
                x=[float(v) for v in iso.X_thresholds_],
                y=[float(v) for v in iso.y_thresholds_],
                score_name=score_name,
            )
        elif method == "platt":
            from sklearn.linear_model import LogisticRegression

            # Essentially unregularised: the two parameters are the whole model.
            lr = LogisticRegression(C=1e6, max_iter=1000)
            lr.fit(s.reshape(-1, 1), t)
            cal = cls(
                method="platt",
                a=float(lr.coef_[0][0]),
                b=float(lr.intercept_[0]),
                score_name=score_name,
            )
        else:
            raise ValueError(f"unknown calibration method {method!r}")
        brier = brier_score(cal.predict(s), t)
        return cal.model_copy(update={"n_pairs": int(s.size), "n_positive": int(t.sum()), "fit_brier": brier})

    # ------------------------------------------------------------------ apply

    def predict(self, scores: Sequence[float] | NDArray[np.floating]) -> NDArray[np.float64]:
        """P(relevant) for each raw score."""
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "isotonic":
            # np.interp clamps outside [x0, xn], like out_of_bounds="clip".
            out: NDArray[np.float64] = np.interp(s, np.asarray(self.x), np.asarray(self.y))
            return out
        z = self.a * s + self.b
        sig: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid without overflow
        return sig

    def __call__(self, score: float) -> float:
        """P(relevant) for one raw score."""
        return float(self.predict([score])[0])

    def threshold_for(self, probability: float) -> float:
        """The lowest raw score whose P(relevant) reaches ``probability`` (inf if none does).

        Useful to turn a probability threshold into a raw-score cut for a retriever that
        cannot apply the calibration itself.
        """
        if self.method == "platt":
            if probability <= 0.0:
                return -math.inf
            if probability >= 1.0 or self.a == 0.0:
                return math.inf
            raw = (math.log(probability / (1.0 - probability)) - self.b) / self.a
            return raw if self.a > 0 else math.inf
        for i, p in enumerate(self.y):
            if p >= probability:
                if i == 0:
                    return -math.inf
                # Linear interpolation between breakpoints i-1 and i.
                x0, x1, y0, y1 = self.x[i - 1], self.x[i], self.y[i - 1], self.y[i]
                return x1 if y1 == y0 else x0 + (probability - y0) * (x1 - x0) / (y1 - y0)
        return math.inf

    # ------------------------------------------------------------------ persist

    def save(self, path: Path | str) -> Path:
        """Write as JSON (atomically: a temp file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> Calibration:
        """Read a calibration written by :meth:`save`.

        Raises:
            ConfigError: Missing, unreadable, or not a calibration.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read calibration {path}: {exc}", hint="fit one with Calibration.fit(...).save(path)"
            ) from exc
        if isinstance(data, dict) and data.get("version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ConfigError(f"calibration {path} has a newer format (v{data['version']})")
        try:
            return cls.model_validate(data)
        except ValueError as exc:
            raise ConfigError(f"{path} is not a valid calibration: {exc}") from exc


def brier_score(
    probabilities: Sequence[float] | NDArray[np.floating], labels: Sequence[float] | NDArray[np.generic]
) -> float:
    """Mean squared error between probabilities and 0/1 labels (lower is better)."""
    p = np.asarray(probabilities, dtype=np.float64)
    t = (np.asarray(labels, dtype=np.float64) > 0).astype(np.float64)
    return float(np.mean((p - t) ** 2))


def expected_calibration_error(
    probabilities: Sequence[float] | NDArray[np.floating],
    labels: Sequence[float] | NDArray[np.generic],
    *,
    bins: int = 10,
) -> float:
    """ECE: |mean predicted − observed rate| per equal-width bin, weighted by bin size."""
    p = np.asarray(probabilities, dtype=np.float64)
    t = (np.asarray(labels, dtype=np.float64) > 0).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() / p.size * abs(p[mask].mean() - t[mask].mean())
    return float(total)
