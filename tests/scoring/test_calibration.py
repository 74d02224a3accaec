"""Calibration: unit behaviour, JSON round trip, and a fit on real SciFact pairs scored by MiniLM."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from agentrag.errors import ConfigError
from agentrag.scoring.calibration import Calibration, brier_score, expected_calibration_error


def test_isotonic_prediction_is_sklearns() -> None:
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(0)
    s = rng.normal(size=400)
    t = (rng.random(400) < 1 / (1 + np.exp(-2 * s))).astype(float)
    cal = Calibration.fit(s, t)
    ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s, t)
    probe = np.linspace(-4, 4, 101)
    assert cal.predict(probe) == pytest.approx(ref.predict(probe), abs=1e-12)
    assert np.all(np.diff(cal.predict(probe)) >= 0)
    assert cal.n_pairs == 400 and cal.n_positive == int(t.sum()) and cal.fit_brier is not None


def test_platt_recovers_a_logistic_map() -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(size=4000)
    t = (rng.random(4000) < 1 / (1 + np.exp(-(3 * s - 1)))).astype(float)
    cal = Calibration.fit(s, t, method="platt")
    assert cal.a == pytest.approx(3.0, rel=0.15) and cal.b == pytest.approx(-1.0, abs=0.2)
    assert cal(0.0) == pytest.approx(1 / (1 + math.exp(-cal.b)))


def test_threshold_for_inverts_the_map() -> None:
    platt = Calibration(method="platt", a=2.0, b=-1.0)
    raw = platt.threshold_for(0.7)
    assert platt(raw) == pytest.approx(0.7)
    iso = Calibration(method="isotonic", x=[0.0, 1.0, 2.0], y=[0.1, 0.5, 0.9])
    assert iso.threshold_for(0.7) == pytest.approx(1.5)
    assert iso(iso.threshold_for(0.7)) == pytest.approx(0.7)
    assert iso.threshold_for(0.05) == -math.inf and iso.threshold_for(0.95) == math.inf


def test_save_load_round_trip(tmp_path: Path) -> None:
    cal = Calibration.fit([0.1, 0.2, 0.3, 0.6, 0.7, 0.9], [0, 0, 1, 0, 1, 1], score_name="test")
    path = cal.save(tmp_path / "kb" / "calibration.json")
    data = json.loads(path.read_text())
    assert data["method"] == "isotonic" and data["score_name"] == "test" and data["version"] == 1
    back = Calibration.load(path)
    assert back == cal
    assert back.predict([0.0, 0.25, 0.5, 1.0]) == pytest.approx(cal.predict([0.0, 0.25, 0.5, 1.0]))


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Calibration.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"method": "isotonic", "x": [1, 0], "y": [0, 1]}')
    with pytest.raises(ConfigError, match="not a valid calibration"):
        Calibration.load(tmp_path / "bad.json")
    (tmp_path / "new.json").write_text('{"method": "platt", "version": 99}')
    with pytest.raises(ConfigError, match="newer format"):
        Calibration.load(tmp_path / "new.json")


def test_fit_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="relevant and one non-relevant"):
        Calibration.fit([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="labels"):
        Calibration.fit([0.1, 0.2], [1])


def test_quality_measures() -> None:
    assert brier_score([1.0, 0.0], [1, 0]) == 0.0
    assert brier_score([0.5, 0.5], [1, 0]) == 0.25
    assert expected_calibration_error([0.9] * 10, [1] * 9 + [0]) == pytest.approx(0.0)
    assert expected_calibration_error([0.9] * 10, [0] * 10) == pytest.approx(0.9)


# ---------------------------------------------------------------- real labelled pairs


def scifact_pairs(shared_data: Path, embedder, n_queries: int = 240):
    """(query id, cosine, label): every qrels pair plus 4 random non-relevant abstracts per query."""
    root = shared_data / "scifact"
    corpus = {}
    with (root / "corpus.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            corpus[row["_id"]] = f"{row['title']}\n{row['text']}"
    queries = {}
    with (root / "queries.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            queries[row["_id"]] = row["text"]
    rels: dict[str, set[str]] = {}
    with (root / "qrels" / "train.tsv").open() as f:
        next(f)
        for line in f:
            q, d, _ = line.split("\t")
            rels.setdefault(q, set()).add(d)
    rng = random.Random(3)
    ids = sorted(corpus)
    chosen = sorted(rels, key=int)[:n_queries]
    pairs = []
    for q in chosen:
        pairs += [(q, d, 1) for d in sorted(rels[q])]
        pairs += [(q, d, 0) for d in rng.sample(ids, 6) if d not in rels[q]][:4]
    q_vecs = {q: embedder.embed_query(queries[q]) for q in chosen}
    doc_ids = sorted({d for _, d, _ in pairs})
    d_vecs = dict(zip(doc_ids, embedder.embed_documents([corpus[d] for d in doc_ids]), strict=True))
    return [(q, float(q_vecs[q] @ d_vecs[d]), label) for q, d, label in pairs]


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrated_minilm_cosines_beat_raw_on_held_out_queries(shared_data, embedder, method) -> None:
    pairs = scifact_pairs(shared_data, embedder)
    queries = sorted({q for q, _, _ in pairs}, key=int)
    train_q = set(queries[: len(queries) // 2])
    train = [(s, t) for q, s, t in pairs if q in train_q]
    test = [(s, t) for q, s, t in pairs if q not in train_q]
    cal = Calibration.fit(
        [s for s, _ in train], [t for _, t in train], method=method, score_name="minilm-cos"
    )
    s_test = np.array([s for s, _ in test])
    t_test = np.array([t for _, t in test])
    calibrated = cal.predict(s_test)
    base_rate = np.full_like(s_test, np.mean([t for _, t in train]))
    raw = np.clip(s_test, 0.0, 1.0)  # a cosine read as a probability
    assert brier_score(calibrated, t_test) < brier_score(base_rate, t_test) - 0.02
    assert brier_score(calibrated, t_test) < brier_score(raw, t_test)
    assert expected_calibration_error(calibrated, t_test) < expected_calibration_error(raw, t_test)
    # The map is monotone, so it never reorders a ranking.
    order = np.argsort(s_test)
    assert np.all(np.diff(calibrated[order]) >= -1e-12)
