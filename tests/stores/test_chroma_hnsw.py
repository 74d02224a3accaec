"""[kb.store.hnsw] reaches real Chroma collections (embedded and a `chroma run` server)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import numpy as np
import pytest

from agentrag.settings import HnswSettings, Settings
from agentrag.stores import VectorRecord, open_store
from agentrag.stores.chroma import ChromaStore


def _hnsw(store: ChromaStore) -> dict[str, object]:
    return dict(store._collection.configuration["hnsw"])


@pytest.mark.parametrize("kind", ["chroma", "chroma-http"])
def test_hnsw_settings_are_applied_and_tunables_change_on_reopen(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"h{uuid.uuid4().hex[:10]}"

    def open_(hnsw: HnswSettings) -> ChromaStore:
        if kind == "chroma":
            return ChromaStore.persistent(tmp_path / "c", name, hnsw=hnsw)
        return ChromaStore.http(request.getfixturevalue("chroma_server"), name, hnsw=hnsw)

    first = HnswSettings(space="ip", max_neighbors=8, ef_construction=64, ef_search=40, num_threads=1)
    store = open_(first)
    got = _hnsw(store)
    assert (got["space"], got["max_neighbors"], got["ef_construction"], got["ef_search"]) == ("ip", 8, 64, 40)
    vecs = np.eye(4, dtype=np.float32)
    store.upsert([VectorRecord(id=f"v{i}", vector=vecs[i]) for i in range(4)])
    # ip space: score = 1 - distance = the dot product.
    [(top, score)] = store.candidates(vecs[2], k=1)
    assert top == "v2" and score == pytest.approx(1.0, abs=1e-5)
    store.close()

    # Tunables follow the settings on reopen; construction parameters stay, with a warning.
    with caplog.at_level(logging.WARNING, logger="agentrag.stores.chroma"):
        store = open_(first.model_copy(update={"ef_search": 77, "max_neighbors": 32}))
    got = _hnsw(store)
    assert got["ef_search"] == 77 and got["max_neighbors"] == 8
    assert "fixed at creation" in caplog.text
    assert store.count() == 4
    store.close()


def test_open_store_passes_the_hnsw_table(tmp_path: Path) -> None:
    settings = Settings.load(
        config=None, data_dir=tmp_path, kb={"store": {"hnsw": {"max_neighbors": 24, "ef_search": 150}}}
    )
    store = open_store(settings.kb.store, "hnswkb", settings.kb_dir("hnswkb"))
    assert isinstance(store, ChromaStore)
    got = _hnsw(store)
    assert got["max_neighbors"] == 24 and got["ef_search"] == 150
    store.close()


def test_reopen_with_the_same_settings_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chromadb.api.models.Collection import Collection

    hnsw = HnswSettings(ef_search=60, batch_size=500, num_threads=1)
    ChromaStore.persistent(tmp_path / "c", "same", hnsw=hnsw).close()

    def no_write(*_a: object, **_k: object) -> None:
        raise AssertionError("a reopen with unchanged settings modified the collection")

    monkeypatch.setattr(Collection, "modify", no_write)
    store = ChromaStore.persistent(tmp_path / "c", "same", hnsw=hnsw)  # batch_size is not reported back
    assert _hnsw(store)["ef_search"] == 60
    store.close()
