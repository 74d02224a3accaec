from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrag.retrieve.bm25 import BM25Index, bm25_fingerprint
from agentrag.settings import BM25Settings

DOCS = [
    "The quick brown fox jumps over the lazy dog",
    "A runner was running in the marathon races",
    "Dogs and foxes are both canids",
    "Completely unrelated text about databases",
    "the the the of of and",
]
ROWS = [3, 10, 11, 40, 41]


def test_basic_ranking_and_rowids() -> None:
    idx = BM25Index.build(DOCS, ROWS, BM25Settings(), version=7)
    hits = idx.search("fox dog", k=10)
    assert [r for r, _ in hits] == [11, 3]  # the shorter one first; the rest score 0 and are dropped
    assert hits[0][1] > hits[1][1] > 0
    assert idx.size == 5 and idx.version == 7


def test_k_is_clamped_and_no_zero_padding() -> None:
    idx = BM25Index.build(DOCS, ROWS, BM25Settings(), version=1)
    assert len(idx.search("databases", k=1000)) == 1  # bm25s.retrieve would raise for k > 5
    assert idx.search("zebra xylophone", k=3) == []  # out of vocabulary: nothing, not arbitrary docs
    assert idx.search("the of and", k=3) == []  # only stopwords
    assert idx.search("fox", k=0) == []


def test_stemming_and_stopwords() -> None:
    pytest.importorskip("Stemmer")
    stemmed = BM25Index.build(DOCS, ROWS, BM25Settings(), version=1)
    assert [r for r, _ in stemmed.search("runs", k=5)] == [10]  # runner/running/runs -> run
    plain = BM25Index.build(DOCS, ROWS, BM25Settings(stemmer=None), version=1)
    assert plain.search("runs", k=5) == []
    with_stop = BM25Index.build(DOCS, ROWS, BM25Settings(stopwords=None, stemmer=None), version=1)
    assert next(r for r, _ in with_stop.search("the", k=5)) == 41
    assert stemmed.query_tokens("The Running foxes") == ["run", "fox"]


def test_mask_filters() -> None:
    idx = BM25Index.build(DOCS, ROWS, BM25Settings(), version=1)
    mask = idx.mask_for(np.array([11, 40, 999], dtype=np.int64))
    assert mask.tolist() == [0, 0, 1, 1, 0]
    assert [r for r, _ in idx.search("fox dog", k=5, mask=mask)] == [11]
    assert idx.search("fox dog", k=5, mask=idx.mask_for(np.array([], dtype=np.int64))) == []


def test_save_load_round_trip(tmp_path: Path) -> None:
    cfg = BM25Settings()
    idx = BM25Index.build(DOCS, ROWS, cfg, version=5)
    folder = idx.save(tmp_path)
    assert folder.parent == tmp_path and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    again = BM25Index.load(folder, cfg)
    assert again.version == 5 and again.fingerprint == bm25_fingerprint(cfg)
    assert again.search("fox dog", k=5) == idx.search("fox dog", k=5)
    assert again.rowids.tolist() == ROWS
    empty = BM25Index.build([], [], cfg, version=0)
    assert BM25Index.load(empty.save(tmp_path), cfg).search("fox", k=5) == []


def test_fingerprint_tracks_settings() -> None:
    assert bm25_fingerprint(BM25Settings()) != bm25_fingerprint(BM25Settings(k1=1.2))


def test_rowids_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascending"):
        BM25Index.build(["a", "b"], [2, 1], BM25Settings(), version=0)
