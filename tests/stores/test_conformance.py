"""One conformance suite for every VectorStore backend (Haystack's document-store tests).

Backends: Chroma embedded, Chroma server (a real `chroma run`), exact numpy, Qdrant local mode,
Qdrant over its REST API (see `qdrant_rest` below), and LangChain's InMemoryVectorStore through
the adapter. Expected results come from brute-force numpy over the same data.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from agentrag.errors import StoreError
from agentrag.stores import And, Eq, In, Or, Range, VectorRecord, VectorStore
from agentrag.stores.filters import Filter

DIM = 16
N = 120


@dataclass
class Backend:
    name: str
    open: Callable[[], VectorStore]


def _records(n: int = N, seed: int = 0) -> list[VectorRecord]:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return [
        VectorRecord(
            id=f"c{i:04d}",
            vector=vecs[i],
            text=f"chunk number {i}",
            metadata={
                "lang": "en" if i % 3 else "fr",
                "year": 1990 + i % 30,
                "tag": "abc"[i % 3],
                "flag": i % 2 == 0,
                "score": i / 10,
            },
        )
        for i in range(n)
    ]


@pytest.fixture(params=["chroma", "chroma-http", "memory", "qdrant-local", "qdrant-rest", "langchain"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name = request.param
    collection = f"t{uuid.uuid4().hex[:12]}"
    opened: list[VectorStore] = []

    def track(store: VectorStore) -> VectorStore:
        opened.append(store)
        return store

    if name == "chroma":
        from agentrag.stores.chroma import ChromaStore

        def make() -> VectorStore:
            return track(ChromaStore.persistent(tmp_path / "chroma", collection))
    elif name == "chroma-http":
        from agentrag.stores.chroma import ChromaStore

        url = request.getfixturevalue("chroma_server")

        def make() -> VectorStore:
            return track(ChromaStore.http(url, collection))
    elif name == "memory":
        from agentrag.stores.memory import MemoryStore

        def make() -> VectorStore:
            return track(MemoryStore(tmp_path / "vectors.npz"))
    elif name == "qdrant-local":
        from agentrag.stores.qdrant import QdrantStore

        def make() -> VectorStore:
            return track(QdrantStore.local(tmp_path / "qdrant", collection))
    elif name == "qdrant-rest":
        from agentrag.stores.qdrant import QdrantStore

        url = request.getfixturevalue("qdrant_rest")

        def make() -> VectorStore:
            return track(QdrantStore.server(url, collection))
    else:
        from agentrag.stores.langchain import LangChainStore

        def make() -> VectorStore:
            return track(LangChainStore.in_memory(tmp_path / "lc.json"))

    yield Backend(name, make)
    for store in opened:
        with contextlib.suppress(Exception):
            store.close()


def _cos_top(records: list[VectorRecord], query: np.ndarray, k: int, f: Filter | None = None) -> list[str]:
    pool = [r for r in records if f is None or f.matches(r.metadata)]
    sims = np.array([float(r.vector @ query) for r in pool])  # type: ignore[operator]
    order = np.argsort(-sims, kind="stable")[:k]
    return [pool[i].id for i in order]


def test_is_a_vector_store(backend: Backend) -> None:
    store = backend.open()
    assert isinstance(store, VectorStore)
    assert store.count() == 0
    assert store.search(np.ones(DIM, dtype=np.float32), k=5) == []


def test_add_get_count_ids(backend: Backend) -> None:
    store = backend.open()
    recs = _records()
    store.upsert(recs)
    assert store.count() == N
    assert sorted(store.ids()) == sorted(r.id for r in recs)
    got = store.get(["c0005", "nope", "c0001"], with_vectors=True)
    assert [r.id for r in got] == ["c0005", "c0001"]  # asked order, unknown left out
    assert got[0].text == "chunk number 5"
    assert dict(got[0].metadata) == dict(recs[5].metadata)
    assert got[0].vector is not None and np.allclose(got[0].vector, recs[5].vector, atol=1e-5)
    assert store.get([]) == []


def test_upsert_is_idempotent_and_replaces(backend: Backend) -> None:
    store = backend.open()
    recs = _records()
    store.upsert(recs)
    store.upsert(recs[:10])
    assert store.count() == N
    new_vec = -recs[3].vector  # type: ignore[operator]
    store.upsert([VectorRecord(id="c0003", vector=new_vec, text="changed", metadata={"lang": "de"})])
    assert store.count() == N
    (rec,) = store.get(["c0003"], with_vectors=True)
    assert rec.text == "changed" and dict(rec.metadata) == {"lang": "de"}
    assert np.allclose(rec.vector, new_vec, atol=1e-5)  # type: ignore[arg-type]
    top = store.search(new_vec, k=1)
    assert top[0].id == "c0003" and top[0].score == pytest.approx(1.0, abs=1e-4)


def test_delete(backend: Backend) -> None:
    store = backend.open()
    recs = _records()
    store.upsert(recs)
    store.delete(["c0000", "c0001", "missing"])
    store.delete([])
    assert store.count() == N - 2
    assert store.get(["c0000", "c0002"]) != [] and [r.id for r in store.get(["c0000", "c0002"])] == ["c0002"]
    hits = store.search(recs[0].vector, k=N)  # type: ignore[arg-type]
    assert "c0000" not in {h.id for h in hits}


def test_search_order_and_cosine_scores(backend: Backend) -> None:
    store = backend.open()
    recs = _records()
    store.upsert(recs)
    rng = np.random.default_rng(7)
    for _ in range(5):
        q = rng.normal(size=DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        hits = store.search(q, k=10)
        assert [h.id for h in hits] == _cos_top(recs, q, 10)
        by_id = {r.id: r for r in recs}
        for h in hits:
            assert h.score == pytest.approx(float(by_id[h.id].vector @ q), abs=1e-4)  # type: ignore[operator]
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    # k beyond the collection returns everything, nothing more.
    assert len(store.search(recs[0].vector, k=N + 50)) == N  # type: ignore[arg-type]


def test_candidates_are_ids_and_scores_of_search(backend: Backend) -> None:
    store = backend.open()
    assert store.candidates(np.ones(DIM, dtype=np.float32), k=5) == []  # empty store
    recs = _records()
    store.upsert(recs)
    by_id = {r.id: r for r in recs}
    rng = np.random.default_rng(11)
    for _ in range(5):
        q = rng.normal(size=DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        cands = store.candidates(q, k=10)
        assert all(isinstance(i, str) and isinstance(s, float) for i, s in cands)
        assert [i for i, _ in cands] == _cos_top(recs, q, 10)
        for i, s in cands:
            assert s == pytest.approx(float(by_id[i].vector @ q), abs=1e-4)  # type: ignore[operator]
        hits = store.search(q, k=10)
        assert [(h.id, round(h.score, 5)) for h in hits] == [(i, round(s, 5)) for i, s in cands]
    flt = Eq(field="lang", value="fr") & Range(field="year", gte=2000)
    q = recs[11].vector
    got = store.candidates(q, k=7, filters=flt)  # type: ignore[arg-type]
    assert [i for i, _ in got] == _cos_top(recs, q, 7, flt)  # type: ignore[arg-type]
    assert store.candidates(q, k=0) == []  # type: ignore[arg-type]
    assert len(store.candidates(q, k=N + 50)) == N  # type: ignore[arg-type]
    assert store.candidates(q, k=3, filters=Eq(field="lang", value="xx")) == []  # type: ignore[arg-type]


FILTERS: list[Filter] = [
    Eq(field="lang", value="fr"),
    Eq(field="flag", value=True),
    Eq(field="year", value=1995),
    In(field="tag", values=("a", "c")),
    In(field="year", values=(1990, 1991, 2019)),
    Range(field="year", gte=2000, lt=2010),
    Range(field="score", gt=5.5),
    Eq(field="lang", value="en") & Range(field="year", lte=1995),
    Or(filters=(Eq(field="tag", value="b"), Range(field="year", gte=2015))),
    And(
        filters=(
            In(field="tag", values=("a", "b")),
            Eq(field="flag", value=False),
            Range(field="score", lt=8),
        )
    ),
]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f.kind + ":" + getattr(f, "field", "…"))
def test_metadata_filters(backend: Backend, flt: Filter) -> None:
    store = backend.open()
    recs = _records()
    store.upsert(recs)
    q = recs[11].vector
    expected = _cos_top(recs, q, 15, flt)  # type: ignore[arg-type]
    assert expected, "the filter must select something"
    hits = store.search(q, k=15, filters=flt)  # type: ignore[arg-type]
    assert [h.id for h in hits] == expected
    assert all(flt.matches(h.metadata) for h in hits)


def test_filter_matching_nothing(backend: Backend) -> None:
    store = backend.open()
    store.upsert(_records())
    assert store.search(np.ones(DIM, dtype=np.float32), k=5, filters=Eq(field="lang", value="xx")) == []


def test_reopen_after_restart(backend: Backend) -> None:
    store = backend.open()
    recs = _records()
    store.upsert(recs)
    store.delete(["c0007"])
    store.flush()
    store.close()
    again = backend.open()
    assert again.count() == N - 1
    assert [h.id for h in again.search(recs[3].vector, k=3)] == _cos_top(  # type: ignore[arg-type]
        [r for r in recs if r.id != "c0007"],
        recs[3].vector,  # type: ignore[arg-type]
        3,
    )
    assert again.get(["c0007"]) == []


def test_queries_on_an_empty_store_decide_nothing(backend: Backend) -> None:
    store = backend.open()
    assert store.candidates(np.ones(3, dtype=np.float32), k=5) == []  # not the store's dimension
    assert store.search(np.ones(3, dtype=np.float32), k=5) == []
    recs = _records(4)
    store.upsert(recs)  # the first write decides the dimension, not the query before it
    assert len(store.candidates(recs[0].vector, k=10)) == 4  # type: ignore[arg-type]
    store.delete([r.id for r in recs])
    assert store.candidates(recs[0].vector, k=10) == []  # type: ignore[arg-type]
    assert store.search(recs[0].vector, k=10) == []  # type: ignore[arg-type]


def test_wrong_dimension_is_a_store_error(backend: Backend) -> None:
    store = backend.open()
    store.upsert(_records(5))
    with pytest.raises(StoreError, match="dimension"):
        store.upsert([VectorRecord(id="x", vector=np.ones(DIM + 1, dtype=np.float32))])
    with pytest.raises(StoreError, match="dimension"):
        store.search(np.ones(DIM + 1, dtype=np.float32), k=3)


def test_destroy(backend: Backend) -> None:
    store = backend.open()
    store.upsert(_records(10))
    store.destroy()
    fresh = backend.open()
    assert fresh.count() == 0
