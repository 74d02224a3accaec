"""The searcher's threading: one worker-thread call per search, the query embedded meanwhile.

Real embedded Chroma and real bm25s; the embedder is the bag-of-words fake (instant) wrapped
to be slow or to fail the way a real one does (an :class:`EmbeddingError` from its thread).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agentrag.errors import EmbeddingError
from agentrag.kb import KnowledgeBase
from agentrag.settings import Settings
from tests.support.fake_embedder import FakeEmbedder

TEXTS = {
    "cats.md": "# Cats\n\nCats purr when they are happy. A cat sleeps most of the day.",
    "dogs.txt": "Dogs bark at strangers. A loyal dog guards the house at night.",
    "cells.txt": "The mitochondria produce ATP. Cells divide by mitosis.",
}


class GatedEmbedder(FakeEmbedder):
    """Query embeddings wait for ``gate`` (documents do not); ``fail`` makes them raise."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def embed_query(self, text: str) -> np.ndarray:
        if not self.gate.wait(timeout=30):
            raise AssertionError("the gate was never opened")
        if self.fail:
            raise EmbeddingError("the embedding model failed")
        return super().embed_query(text)


@pytest.fixture
def kb(settings: Settings, tmp_path: Path):
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in TEXTS.items():
        (root / name).write_text(text)
    embedder = GatedEmbedder()
    kb = KnowledgeBase.open(settings, "t", embedder=embedder)
    kb.ingest([root])
    yield kb
    kb.close()


async def test_many_concurrent_hybrid_searches_finish(kb: KnowledgeBase) -> None:
    # More searches than the event loop's default executor has threads: a search thread that
    # waited for an embedding computed in that executor would starve it and never finish.
    queries = ["cats purr", "dogs bark", "mitochondria ATP"] * 12
    results = await asyncio.wait_for(asyncio.gather(*(kb.asearch(q, k=1) for q in queries)), timeout=60)
    assert [hits[0].source.rsplit("/", 1)[1] for hits in results[:3]] == ["cats.md", "dogs.txt", "cells.txt"]
    assert all(hits[0].scores.bm25 is not None and hits[0].scores.dense is not None for hits in results[:3])


async def test_hybrid_search_waits_for_a_slow_embedding(kb: KnowledgeBase) -> None:
    embedder = kb.embedder
    assert isinstance(embedder, GatedEmbedder)
    embedder.gate.clear()
    search = asyncio.ensure_future(kb.asearch("dogs bark", k=1))
    await asyncio.sleep(0.2)
    assert not search.done()  # the BM25 side is ready; the dense side waits for the vector
    embedder.gate.set()
    hits = await asyncio.wait_for(search, timeout=30)
    assert hits[0].source.endswith("dogs.txt")
    assert hits[0].scores.dense is not None


async def test_a_failed_query_embedding_is_the_search_error(kb: KnowledgeBase) -> None:
    embedder = kb.embedder
    assert isinstance(embedder, GatedEmbedder)
    embedder.fail = True
    with pytest.raises(EmbeddingError):
        await asyncio.wait_for(kb.asearch("dogs bark", k=1), timeout=30)
    assert (await kb.asearch("dogs bark", k=1, mode="bm25"))[0].source.endswith("dogs.txt")


async def test_a_cancelled_search_frees_its_thread(kb: KnowledgeBase) -> None:
    embedder = kb.embedder
    assert isinstance(embedder, GatedEmbedder)
    embedder.gate.clear()
    search = asyncio.ensure_future(kb.asearch("cats purr", k=1))
    await asyncio.sleep(0.2)
    assert any(t.name.startswith("agentrag-search") and _busy(t) for t in threading.enumerate())
    search.cancel()
    with pytest.raises(asyncio.CancelledError):
        await search
    # The search thread stops waiting for the vector of a cancelled search (the embedding
    # itself is still stuck behind the gate).
    deadline = time.monotonic() + 10
    while any(t.name.startswith("agentrag-search") and _busy(t) for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a search thread is still waiting"
        await asyncio.sleep(0.05)
    embedder.gate.set()
    assert (await kb.asearch("cats purr", k=1))[0].source.endswith("cats.md")


def _busy(thread: threading.Thread) -> bool:
    import sys
    import traceback

    frame = sys._current_frames().get(thread.ident or -1)
    return frame is not None and any(f.name == "_search" for f in traceback.extract_stack(frame))


async def test_bm25_hits_come_from_the_index_ids_when_fresh_and_the_manifest_when_stale(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    searcher = kb.searcher
    index = searcher.refresh()
    assert index is not None and index.version == kb.manifest.version
    asked: list[int] = []
    original = kb.manifest.live_ids_by_rowids

    def counting(rowids):  # type: ignore[no-untyped-def]
        asked.append(len(rowids))
        return original(rowids)

    monkeypatch.setattr(kb.manifest, "live_ids_by_rowids", counting)
    fresh = searcher.bm25_hits(index, "dog barks at strangers", 10, None)
    assert fresh and asked == []  # the fresh index named its hits itself
    # The same hits through the manifest (what a stale index, or one saved without ids, uses).
    stale = type(index)(
        built=index._built, cfg=index.cfg, version=index.version - 1, fingerprint=index.fingerprint
    )
    assert searcher.bm25_hits(stale, "dog barks at strangers", 10, None) == fresh
    assert asked == [len(fresh)]
    # A chunk deleted since a stale index was built is not a hit.
    gone = next(iter(kb.manifest.live_by_ids([fresh[0][0]]).values()))
    assert kb.delete_sources([gone.source]) == 1
    assert fresh[0][0] not in dict(searcher.bm25_hits(stale, "dog barks at strangers", 10, None))
