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
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentrag.errors import ConfigError

__all__ = [
    "CALIBRATION_DIR",
    "Calibration",
    "CalibrationReport",
    "LabelledPair",
    "acalibrate_kb",
    "brier_score",
    "calibration_path",
    "expected_calibration_error",
    "find_calibration",
    "fit_with_holdout",
    "list_calibrations",
    "read_labelled_pairs",
]

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


# ---------------------------------------------------------------------- per knowledge base

CALIBRATION_DIR = "calibration"
"""Folder of a knowledge base holding one calibration per scorer (reranker name)."""


def calibration_path(kb_dir: Path | str, scorer: str) -> Path:
    """Where the calibration of ``scorer`` (a reranker's ``name``) lives in a knowledge base."""
    import hashlib
    import re

    slug = re.sub(r"[^A-Za-z0-9._=-]+", "-", scorer).strip("-")[:60] or "scorer"
    digest = hashlib.sha256(scorer.encode()).hexdigest()[:8]
    return Path(kb_dir) / CALIBRATION_DIR / f"{slug}-{digest}.json"


def find_calibration(kb_dir: Path | str, scorer: str) -> Calibration | None:
    """The knowledge base's calibration for exactly this scorer, or None.

    A calibration is fitted on one reranker's raw scores (its ``name`` encodes the model and
    settings); another reranker's scores are on another scale, so nothing else matches.
    """
    path = calibration_path(kb_dir, scorer)
    if not path.is_file():
        return None
    cal = Calibration.load(path)
    return cal if cal.score_name == scorer else None


def list_calibrations(kb_dir: Path | str) -> list[tuple[Path, Calibration]]:
    """Every calibration stored with a knowledge base (unreadable files are skipped)."""
    folder = Path(kb_dir) / CALIBRATION_DIR
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append((path, Calibration.load(path)))
        except ConfigError:
            continue
    return out


class LabelledPair(BaseModel):
    """One (query, passage, relevant?) example for calibration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str
    text: str
    label: bool
    group: str = ""
    """Which query it belongs to (for the held-out split)."""


class CalibrationReport(BaseModel):
    """What ``agentrag kb calibrate`` did."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    calibration: Calibration
    """The fitted map (on all pairs)."""

    path: str
    """Where it was stored."""

    labels: Literal["gold", "llm-judge"]
    """Where the labels came from."""

    queries: int
    """Queries the pairs came from."""

    held_out_pairs: int
    """Pairs of the held-out queries (every 5th query), scored by a map fitted without them."""

    held_out_brier: float | None
    """Brier score of the calibrated probabilities on the held-out pairs."""

    held_out_ece: float | None
    """Expected calibration error on the held-out pairs."""

    raw_brier: float | None
    """Brier score of the raw scores clipped to [0, 1] on the same pairs (what was used before)."""


def read_labelled_pairs(path: Path | str) -> list[LabelledPair]:
    """Read labelled pairs from JSONL: ``{"query", "text", "label"}`` per line (label 0/1 or bool).

    Raises:
        ConfigError: Unreadable, or a row without those fields.
    """
    path = Path(path)
    pairs = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(
                LabelledPair(
                    query=str(row["query"]),
                    text=str(row["text"]),
                    label=float(row["label"]) > 0,
                    group=str(row.get("query_id", row["query"])),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path}:{n} is not a labelled pair ({exc})",
                hint='one JSON object a line: {"query": ..., "text": ..., "label": 0 or 1}',
            ) from exc
    return pairs


def fit_with_holdout(
    scores: Sequence[float],
    labels: Sequence[bool],
    groups: Sequence[str],
    *,
    method: Literal["isotonic", "platt"],
    score_name: str,
) -> tuple[Calibration, dict[str, Any]]:
    """Fit on all pairs, and measure a map fitted without every 5th query on that query's pairs.

    Returns:
        The calibration fitted on all pairs, and held-out figures (``pairs``, ``brier``, ``ece``,
        ``raw_brier``; None where the held-out part lacks a class).
    """
    order = list(dict.fromkeys(groups))
    held = {g for i, g in enumerate(order) if i % 5 == 4}
    train = [i for i, g in enumerate(groups) if g not in held]
    test = [i for i, g in enumerate(groups) if g in held]
    s, t = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    figures: dict[str, Any] = {"pairs": len(test), "brier": None, "ece": None, "raw_brier": None}
    if test and 0 < t[train].sum() < len(train):
        part = Calibration.fit(s[train], t[train], method=method, score_name=score_name)
        probs = part.predict(s[test])
        figures.update(
            brier=brier_score(probs, t[test]),
            ece=expected_calibration_error(probs, t[test]),
            raw_brier=brier_score(np.clip(s[test], 0.0, 1.0), t[test]),
        )
    return Calibration.fit(s, t, method=method, score_name=score_name), figures


def _read_queries(path: Path) -> list[tuple[str, str]]:
    """Unlabelled queries: JSONL rows with ``query`` (or BEIR's ``_id``/``text``), or one a line."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            row = json.loads(line)
            text = row.get("query", row.get("text"))
            if not isinstance(text, str):
                raise ConfigError(f"{path}:{n} has no query", hint='one {"query": ...} object a line')
            out.append((str(row.get("_id", n)), text))
        else:
            out.append((str(n), line.strip()))
    return out


async def acalibrate_kb(
    kb: Any,
    reranker: Any,
    data: Path | str,
    *,
    method: Literal["isotonic", "platt"] = "isotonic",
    max_queries: int | None = 200,
    depth: int = 10,
    split: str | None = None,
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
    judge: Any = None,
    progress: Any = None,
) -> CalibrationReport:
    """Fit ``reranker``'s score → P(relevant) map for a knowledge base and store it with the KB.

    The pairs are what the reranker sees at run time: each query's top-``depth`` passages from
    the knowledge base (``mode``), scored with the reranker's raw :meth:`ascore`.

    Args:
        kb: An open :class:`~agentrag.kb.KnowledgeBase`.
        reranker: The reranker to calibrate (its ``name`` keys the stored map).
        data: A BEIR folder (labels from its qrels, matched by corpus id), a JSONL of labelled
            pairs (``query``, ``text``, ``label``; scored directly), or unlabelled queries
            (JSONL with ``query``, or a text file, one a line) that need ``judge``.
        method: ``isotonic`` or ``platt``.
        max_queries: Queries used at most (BEIR / unlabelled queries).
        depth: Passages per query.
        split: BEIR qrels split (default: the folder's first of test/dev/validation/train).
        mode: Retrieval mode for the candidates.
        judge: An :class:`~agentrag.scoring.judge.LLMJudge` labelling the candidates of
            unlabelled queries (the labels are then the LLM's, and the report says so).
        progress: Called as ``progress(done, total)`` after each query.

    Raises:
        ConfigError: Unusable data, unlabelled queries without a judge, a reranker without
            raw scores, or pairs of one class only.
    """
    data = Path(data)
    if not hasattr(reranker, "ascore"):
        raise ConfigError(f"reranker {reranker.name} has no raw scores to calibrate")
    scores: list[float] = []
    labels: list[bool] = []
    groups: list[str] = []
    source: Literal["gold", "llm-judge"] = "gold"

    async def add(group: str, query: str, texts: list[Any], truth: list[bool]) -> None:
        raw = await reranker.ascore(query, texts)
        scores.extend(float(x) for x in raw)
        labels.extend(truth)
        groups.extend([group] * len(truth))

    if data.is_dir():
        from agentrag.evaluation.data import read_beir
        from agentrag.evaluation.retrieval import doc_id

        beir = read_beir(data, split).limited(max_queries)
        total = len(beir.queries)
        for i, (qid, text) in enumerate(beir.queries.items(), start=1):
            hits = await kb.asearch(text, k=depth, mode=mode)
            positive = {d for d, grade in beir.qrels.get(qid, {}).items() if grade >= 1}
            if hits:
                await add(qid, text, hits, [doc_id(h) in positive for h in hits])
            if progress is not None:
                progress(i, total)
    elif data.suffix == ".jsonl" and _has_labels(data):
        from agentrag.types import Passage

        pairs = read_labelled_pairs(data)
        by_query: dict[str, list[LabelledPair]] = {}
        for pair in pairs:
            by_query.setdefault(pair.group, []).append(pair)
        for i, (group, rows) in enumerate(by_query.items(), start=1):
            texts = [Passage(id=f"{group}#{j}", text=r.text, source="pairs") for j, r in enumerate(rows)]
            await add(group, rows[0].query, texts, [r.label for r in rows])
            if progress is not None:
                progress(i, len(by_query))
    else:
        if not data.is_file():
            raise ConfigError(
                f"{data} does not exist", hint="a BEIR folder, labelled pairs (.jsonl) or queries"
            )
        if judge is None:
            raise ConfigError(
                f"{data} has queries but no relevance labels",
                hint="add --judge to let the generator LLM label the retrieved passages "
                "(LLM labels, not gold), or give a BEIR folder / labelled pairs",
            )
        source = "llm-judge"
        queries = _read_queries(data)[:max_queries]
        for i, (qid, text) in enumerate(queries, start=1):
            hits = await kb.asearch(text, k=depth, mode=mode)
            if hits:
                verdicts = await judge.relevances(text, [h.text for h in hits])
                await add(qid, text, hits, [bool(v.relevant) for v in verdicts])
            if progress is not None:
                progress(i, len(queries))
    if not labels or all(labels) or not any(labels):
        raise ConfigError(
            f"calibration needs relevant and non-relevant pairs; got {sum(labels)} relevant of {len(labels)}",
            hint="use more queries (--queries) or a deeper candidate list (--depth)",
        )
    cal, held = fit_with_holdout(scores, labels, groups, method=method, score_name=reranker.name)
    path = cal.save(calibration_path(kb.directory, reranker.name))
    return CalibrationReport(
        calibration=cal,
        path=str(path),
        labels=source,
        queries=len(dict.fromkeys(groups)),
        held_out_pairs=held["pairs"],
        held_out_brier=held["brier"],
        held_out_ece=held["ece"],
        raw_brier=held["raw_brier"],
    )


def _has_labels(path: Path) -> bool:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path} is not JSONL ({exc})") from exc
            return isinstance(row, dict) and "label" in row and "text" in row
    return False
