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


def test_chunk_ids_are_kept_beside_the_rows(tmp_path: Path) -> None:
    cfg = BM25Settings()
    ids = [f"{i:032x}" for i in range(len(ROWS))]
    idx = BM25Index.build(DOCS, ROWS, cfg, version=3, ids=ids)
    hits = idx.search("fox dog", k=5)
    assert idx.ids_of([r for r, _ in hits]) == [ids[ROWS.index(r)] for r, _ in hits]
    again = BM25Index.load(idx.save(tmp_path / "a"), cfg)
    assert again.ids_of([40, 3]) == [ids[3], ids[0]]
    # Ids that are not ASCII are kept as text.
    odd = BM25Index.build(DOCS, ROWS, cfg, version=3, ids=["é", "b", "c", "d", "e"])
    assert BM25Index.load(odd.save(tmp_path / "b"), cfg).ids_of([3, 10]) == ["é", "b"]
    # An index saved without ids (an older version, or none given) says so.
    plain = BM25Index.build(DOCS, ROWS, cfg, version=3)
    assert plain.ids_of([3]) is None
    assert BM25Index.load(plain.save(tmp_path / "c"), cfg).ids_of([3]) is None
    with pytest.raises(ValueError, match="ids and rowids"):
        BM25Index.build(DOCS, ROWS, cfg, version=3, ids=ids[:2])


@pytest.mark.parametrize("method", ["lucene", "bm25+"])
def test_search_equals_a_full_sort_by_score_then_row(method: str) -> None:
    """Ranking only the rows that hold a query term (or every row) = sorting all rows."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    # Few words, short texts: many exact ties, and several rows per score.
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 4)))) for _ in range(400)]
    rows = list(range(5, 5 + 2 * len(texts), 2))
    cfg = BM25Settings(method=method, stopwords=None)
    idx = BM25Index.build(texts, rows, cfg, version=1)
    retriever = idx._built.retriever  # type: ignore[union-attr]
    mask = (np.arange(len(texts)) % 3 != 0).astype(np.float32)
    for query in ["w1", "w1 w2", "w3 w3 w4", "w5 w6 w7 w8", "w0 nothing"]:
        scores = retriever.get_scores_from_ids(retriever.get_tokens_ids(idx.query_tokens(query)))
        for weights in (None, mask):
            s = scores if weights is None else scores * weights
            pos = np.flatnonzero(s > 0)
            order = pos[np.lexsort((pos, -s[pos]))]
            for k in (1, 7, 50, 1000):
                expected = [(rows[i], pytest.approx(float(s[i]))) for i in order[:k]]
                assert idx.search(query, k, mask=weights) == expected, (query, k, weights is None)
