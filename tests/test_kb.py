"""KnowledgeBase: the write path, sync, recovery, search modes, filters, concurrency.

Logic tests use a bag-of-words fake embedder (instant) over real stores (the exact numpy store
and embedded Chroma) and real bm25s; the integration tests at the bottom use real MiniLM.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from agentrag.errors import KBBusyError, KBNotFoundError, StoreError
from agentrag.ingest.loaders import load_file
from agentrag.kb import IngestProgress, KnowledgeBase, _records
from agentrag.settings import Settings
from agentrag.stores import Eq, Range
from agentrag.stores.memory import MemoryStore
from tests.support.fake_embedder import FakeEmbedder

TEXTS = {
    "cats.md": "# Cats\n\nCats purr when they are happy. A cat sleeps most of the day.",
    "dogs.txt": "Dogs bark at strangers. A loyal dog guards the house at night.",
    "sub/cells.txt": "The mitochondria produce ATP. Cells divide by mitosis.",
    "sub/space.html": "<html><head><title>Space</title></head><body><p>Rockets reach orbit.</p></body>",
}


def write_tree(root: Path, texts: dict[str, str] = TEXTS) -> Path:
    for rel, text in texts.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def fake() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(params=["memory", "chroma"])
def make_kb(request: pytest.FixtureRequest, settings: Settings, fake: FakeEmbedder):
    opened: list[KnowledgeBase] = []
    backend = request.param

    def make(name: str = "t", **kw) -> KnowledgeBase:
        s = settings.model_copy(
            update={
                "kb": settings.kb.model_copy(
                    update={"store": settings.kb.store.model_copy(update={"backend": backend})}
                )
            }
        )
        kb = KnowledgeBase.open(s, name, embedder=kw.pop("embedder", fake), **kw)
        opened.append(kb)
        return kb

    yield make
    for kb in opened:
        kb.close()


def consistent(kb: KnowledgeBase) -> list[str]:
    ids = kb.index_ids()
    assert ids["manifest"] == ids["store"] == ids["bm25"], {k: len(v) for k, v in ids.items()}
    assert len(set(ids["manifest"])) == len(ids["manifest"])
    return ids["manifest"]


def test_ingest_search_and_exact_spans(make_kb, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "docs")
    kb = make_kb()
    events: list[IngestProgress] = []
    report = kb.ingest([root], progress=events.append)
    assert (report.added, report.unchanged, report.replaced, report.skipped) == (4, 0, 0, [])
    assert report.chunks_added == kb.count() > 0
    assert events and events[-1].files_done == events[-1].files_total == 4
    assert events[-1].bytes_done == events[-1].bytes_total
    consistent(kb)
    for mode in ("hybrid", "bm25", "dense"):
        hits = kb.search("why do cats purr", k=2, mode=mode)
        assert hits[0].source.endswith("cats.md"), mode
        assert hits[0].title == "Cats"
        loaded = (root / "cats.md").read_text()
        assert loaded[hits[0].start : hits[0].end] == hits[0].text
        assert hits[0].score == max(h.score for h in hits)
        assert hits[0].query == "why do cats purr"
    hybrid = kb.search("why do cats purr", k=3, fusion="rrf")
    assert set(hybrid[0].scores.as_dict()) >= {"bm25", "dense", "rrf"}
    convex = kb.search("why do cats purr", k=3, fusion="convex")
    assert convex[0].scores.convex is not None and 0 < convex[0].score <= 1
    assert kb.get([hybrid[0].id, "nope"]) == [kb.get([hybrid[0].id])[0]]
    html = [c for c in kb.get(consistent(kb)) if c.source.endswith("space.html")]
    assert html and html[0].title == "Space" and "Rockets reach orbit." in html[0].text


def test_reingest_is_a_no_op_and_changes_replace(make_kb, tmp_path: Path, fake: FakeEmbedder) -> None:
    root = write_tree(tmp_path / "docs")
    kb = make_kb()
    kb.ingest([root])
    before = consistent(kb)
    embedded = fake.texts_embedded
    again = kb.ingest([root])
    assert (again.added, again.unchanged, again.chunks_added) == (0, 4, 0)
    assert fake.texts_embedded == embedded  # nothing re-embedded
    assert consistent(kb) == before
    (root / "dogs.txt").write_text("Dogs howl at the moon. Wolves are related to dogs.")
    changed = kb.ingest([root])
    assert (changed.added, changed.replaced, changed.unchanged) == (0, 1, 3)
    after = consistent(kb)
    assert len(after) == len(before)
    assert kb.search("howl at the moon", k=1, mode="bm25")[0].source.endswith("dogs.txt")
    assert kb.search("strangers", k=5, mode="bm25") == []  # the old text is gone from both sides
    dog_chunks = [c for c in kb.get(after) if c.source.endswith("dogs.txt")]
    assert all("strangers" not in c.text for c in dog_chunks)


def test_sync_removes_deleted_files_and_adds_new(make_kb, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "docs")
    kb = make_kb()
    kb.ingest([root])
    (root / "sub" / "cells.txt").unlink()
    (root / "new.txt").write_text("A brand new file about volcanoes.")
    (root / "binary.txt").write_bytes(b"\x00\x01")
    report = kb.sync()
    assert (report.added, report.removed, report.unchanged) == (1, 1, 3)
    assert [s.reason for s in report.skipped] == ["binary file (NUL bytes)"]
    ids = consistent(kb)
    sources = {c.source.rsplit("/", 1)[1] for c in kb.get(ids)}
    assert sources == {"cats.md", "dogs.txt", "space.html", "new.txt"}
    # Ingest with prune on a sub-folder only touches that sub-folder.
    (root / "dogs.txt").unlink()
    sub = kb.ingest([root / "sub"], prune=True)
    assert sub.removed == 0
    assert kb.stats().roots == sorted([root.as_posix(), (root / "sub").as_posix()])


def test_unreadable_file_keeps_its_old_chunks(make_kb, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "docs")
    kb = make_kb()
    kb.ingest([root])
    (root / "dogs.txt").write_bytes(b"\xff\xfe\x00garbage" * 3 + b"\xd8")  # now undecodable
    report = kb.sync()
    assert report.removed == 0 and len(report.skipped) == 1
    assert any(c.source.endswith("dogs.txt") for c in kb.get(consistent(kb)))


def test_filters_apply_to_both_sides(make_kb, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {
            "_id": f"d{i}",
            "title": f"Doc {i}",
            "text": f"shared words about topic {i % 3} and item {i}",
            "year": 2000 + i,
            "lang": "en" if i % 2 else "fr",
        }
        for i in range(30)
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows))
    kb = make_kb()
    kb.ingest([corpus])
    for mode in ("bm25", "dense", "hybrid"):
        hits = kb.search("shared words topic", k=50, mode=mode, filters={"lang": "en"})
        assert hits and all(h.metadata["lang"] == "en" for h in hits), mode
        assert len(hits) == 15
        ranged = kb.search(
            "shared words topic", k=50, mode=mode, filters=Range(field="year", gte=2010, lt=2015)
        )
        assert sorted(h.metadata["year"] for h in ranged) == [2010, 2011, 2012, 2013, 2014]
        by_source = kb.search(
            "item", k=5, mode=mode, filters=Eq(field="source", value=f"{corpus.resolve().as_posix()}#d7")
        )
        assert [h.metadata["row_id"] for h in by_source] == ["d7"]
    assert kb.search("nothing matches this", k=5, filters={"lang": "xx"}) == []


def test_k_and_candidates(make_kb, tmp_path: Path) -> None:
    kb = make_kb()
    kb.ingest([write_tree(tmp_path / "docs")])
    assert len(kb.search("cats dogs cells rockets", k=100)) == kb.count()
    assert len(kb.search("cats", k=1)) == 1
    assert kb.search("   ") == []
    assert kb.search("zzzz qqqq", mode="bm25") == []  # out of vocabulary: no lexical hits at all


async def test_concurrent_searches_and_ingest(make_kb, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "docs")
    kb = make_kb()
    await kb.aingest([root])
    queries = ["cats purr", "dogs bark", "mitochondria ATP", "rockets orbit"] * 10
    (root / "more.txt").write_text("More text about cats and rockets.")
    results, report = await asyncio.gather(
        asyncio.gather(*(kb.asearch(q, k=2) for q in queries)), kb.aingest([root])
    )
    assert report.added == 1
    for q, hits in zip(queries, results, strict=True):
        assert hits, q
    ordered = await asyncio.gather(*(kb.asearch(q, k=2, mode="bm25") for q in queries[:4]))
    assert [h[0].source.rsplit("/", 1)[1] for h in ordered] == [
        "cats.md",
        "dogs.txt",
        "cells.txt",
        "space.html",
    ]
    consistent(kb)


def test_retriever(make_kb, tmp_path: Path) -> None:
    kb = make_kb()
    kb.ingest([write_tree(tmp_path / "docs")])
    docs = kb.as_retriever(k=2, mode="bm25").invoke("dogs bark")
    assert docs[0].metadata["source"].endswith("dogs.txt") and "bm25" in docs[0].metadata["scores"]
    adocs = asyncio.run(kb.as_retriever(k=1).ainvoke("cats"))
    assert len(adocs) == 1 and adocs[0].page_content


def test_stats_list_and_delete(make_kb, settings: Settings, tmp_path: Path) -> None:
    kb = make_kb("alpha")
    kb.ingest([write_tree(tmp_path / "docs")])
    st = kb.stats()
    assert (st.documents, st.chunks, st.store_count, st.bm25_chunks) == (
        4,
        kb.count(),
        kb.count(),
        kb.count(),
    )
    assert st.bm25_current and st.unsettled_documents == 0 and st.embedder == "fake:hash"
    assert KnowledgeBase.list_names(settings) == ["alpha"]
    kb.close()
    with pytest.raises(KBNotFoundError):
        KnowledgeBase.open(settings, "nope", create=False)
    KnowledgeBase.delete(settings, "alpha")
    assert KnowledgeBase.list_names(settings) == []
    with pytest.raises(KBNotFoundError):
        KnowledgeBase.delete(settings, "alpha")


def test_embedder_mismatch_is_refused(make_kb, tmp_path: Path) -> None:
    kb = make_kb("m")
    kb.ingest([write_tree(tmp_path / "docs")])
    kb.close()
    with pytest.raises(StoreError, match="built with embedder 'fake:hash'"):
        make_kb("m", embedder=FakeEmbedder(name="fake:other"))


def test_one_writer_at_a_time(make_kb, settings: Settings, tmp_path: Path, fake: FakeEmbedder) -> None:
    kb = make_kb("w")
    root = write_tree(tmp_path / "docs")
    other = KnowledgeBase.open(settings, "w", embedder=fake, store=MemoryStore())
    with kb._writing(), pytest.raises(KBBusyError):
        other.ingest([root])
    other.close()


def test_recovery_rolls_back_unsettled_documents(
    settings: Settings, fake: FakeEmbedder, tmp_path: Path
) -> None:
    # A writer killed between prepare and commit: pending rows, vectors half written.
    root = write_tree(tmp_path / "docs")
    store = MemoryStore(tmp_path / "v.npz")
    kb = KnowledgeBase.open(settings, "r", embedder=fake, store=store)
    kb.ingest([root])
    good = consistent(kb)
    dog_chunks = sum(1 for c in kb.get(good) if c.source.endswith("dogs.txt"))
    (root / "dogs.txt").write_text("Dogs changed their text entirely. New sentence here.")
    (doc,) = load_file(root / "dogs.txt")
    plan = kb._plan(doc, kb.manifest.document_hashes())
    assert plan is not None
    vectors = kb._embed_batch([plan])
    to_add, _ = kb.manifest.prepare(
        [(plan.chunks[0].doc_id, doc.source, plan.chash, len(doc.text), plan.chunks)]
    )
    store.upsert(_records(to_add[:1], np.stack([vectors[to_add[0].id]])))
    store.flush()
    kb.close()
    reopened = KnowledgeBase.open(settings, "r", embedder=fake, store=MemoryStore(tmp_path / "v.npz"))
    assert reopened.recovered == 1
    ids = consistent(reopened)
    assert len(ids) == len(good) - dog_chunks  # the interrupted document is rolled back whole
    assert not any(c.source.endswith("dogs.txt") for c in reopened.get(ids))
    report = reopened.ingest([root])
    assert (report.added, report.unchanged, report.recovered) == (1, 3, 1)
    assert any("changed" in c.text for c in reopened.get(consistent(reopened)))
    reopened.close()


def test_repair_fills_and_trims_the_store(settings: Settings, fake: FakeEmbedder, tmp_path: Path) -> None:
    root = write_tree(tmp_path / "docs")
    kb = KnowledgeBase.open(settings, "p", embedder=fake, store=MemoryStore(tmp_path / "v.npz"))
    kb.ingest([root])
    ids = consistent(kb)
    kb.store.delete(ids[:2])
    from agentrag.stores import VectorRecord

    kb.store.upsert([VectorRecord(id="stray", vector=np.ones(fake.dim, dtype=np.float32))])
    kb.store.flush()
    kb.close()
    again = KnowledgeBase.open(settings, "p", embedder=fake, store=MemoryStore(tmp_path / "v.npz"))
    assert consistent(again) == ids
    again.close()


def test_bm25_follows_settings_changes(settings: Settings, fake: FakeEmbedder, tmp_path: Path) -> None:
    kb = KnowledgeBase.open(settings, "b", embedder=fake, store=MemoryStore(tmp_path / "v.npz"))
    kb.ingest([write_tree(tmp_path / "docs")])
    assert kb.search("sleeping", k=1, mode="bm25")  # stemmed: sleeping -> sleep (text: sleeps)
    kb.close()
    plain = settings.model_copy(
        update={
            "retrieval": settings.retrieval.model_copy(
                update={"bm25": settings.retrieval.bm25.model_copy(update={"stemmer": None})}
            )
        }
    )
    kb = KnowledgeBase.open(plain, "b", embedder=fake, store=MemoryStore(tmp_path / "v.npz"))
    assert kb.search("sleeping", k=1, mode="bm25") == []  # rebuilt without stemming on open
    consistent(kb)
    kb.close()


# -- integration: real MiniLM, real Chroma (embedded and server) -------------------------------


@pytest.mark.parametrize("backend", ["chroma", "chroma-http"])
def test_scifact_sample_with_minilm(
    settings: Settings, embedder, shared_data: Path, tmp_path: Path, backend: str, request
) -> None:
    lines = (shared_data / "scifact" / "corpus.jsonl").read_text().splitlines()[:60]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    store_cfg = {"backend": backend}
    if backend == "chroma-http":
        store_cfg["url"] = request.getfixturevalue("chroma_server")
        store_cfg["collection_prefix"] = f"it{tmp_path.name[-8:].replace('_', '')}_"
    s = Settings.load(config=None, data_dir=settings.data_dir, kb={"store": store_cfg})
    kb = KnowledgeBase.open(s, "sci", embedder=embedder)
    report = kb.ingest([corpus])
    assert report.added == 60 and report.chunks_added == kb.count() >= 60
    consistent(kb)
    rows = [json.loads(line) for line in lines]
    hits_at_1 = 0
    for row in rows[:20]:
        # The title as a query should find its own abstract on every side.
        for mode in ("bm25", "dense", "hybrid"):
            top = kb.search(row["title"], k=3, mode=mode)
            hits_at_1 += top[0].source.endswith("#" + row["_id"])
    assert hits_at_1 >= 0.9 * 60
    passage = kb.search(rows[0]["title"], k=1)[0]
    assert rows[0]["text"][passage.start : passage.end] == passage.text
    kb.close()
    if backend == "chroma-http":
        KnowledgeBase.delete(s, "sci")
