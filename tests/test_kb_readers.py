"""A long-lived reader sees what another process ingests (real Chroma, bm25s, MiniLM).

Embedded Chroma keeps its HNSW graph in memory and bm25s its index: before the searcher
compared manifest versions, a reader opened before another process's ingest found none of the
new documents (0 hits on every side) while ``count()`` included them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agentrag.kb import KnowledgeBase
from agentrag.settings import Settings
from tests.conftest import REPO, TEST_CACHE


def _ingest_in_another_process(data_dir: Path, path: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "tests.support.ingest_driver",
        str(data_dir),
        str(path),
        str(TEST_CACHE / "embeddings.sqlite"),
    ]
    proc = subprocess.run(
        cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])


def test_reader_opened_before_another_process_ingests_sees_the_new_documents(
    tmp_path: Path, embedder
) -> None:
    data = tmp_path / "data"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.txt").write_text("Honeybees communicate the direction of flowers with a waggle dance.")
    assert _ingest_in_another_process(data, docs)["added"] == 1

    reader = KnowledgeBase.open(Settings.load(config=None, data_dir=data), "crash", embedder=embedder)
    try:
        assert reader.search("waggle dance of honeybees", k=1, mode="bm25")
        query = "glaciers carve fjords as they retreat"
        for mode in ("bm25", "dense", "hybrid"):
            assert not any(p.source.endswith("second.txt") for p in reader.search(query, k=3, mode=mode))

        (docs / "second.txt").write_text("Retreating glaciers carve deep fjords into the coastline.")
        assert _ingest_in_another_process(data, docs)["added"] == 1
        assert reader.count() == 2
        for mode in ("bm25", "dense", "hybrid"):
            hits = reader.search(query, k=2, mode=mode)
            assert hits and hits[0].source.endswith("second.txt"), (mode, [h.source for h in hits])
        stats = reader.stats()
        assert stats.bm25_current and stats.bm25_chunks == stats.chunks == stats.store_count == 2
    finally:
        reader.close()


def test_search_only_open_neither_repairs_nor_embeds(tmp_path: Path, embedder) -> None:
    data = tmp_path / "data"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Salmon swim upstream to spawn in the river where they hatched.")
    _ingest_in_another_process(data, docs)
    settings = Settings.load(config=None, data_dir=data)
    writer = KnowledgeBase.open(settings, "crash", embedder=embedder)
    ids = writer.index_ids()["store"]
    writer.store.delete(ids)  # damage the store: a repairing open would embed them again
    writer.close()
    before = embedder.stats() if hasattr(embedder, "stats") else None
    reader = KnowledgeBase.open(settings, "crash", embedder=embedder)
    try:
        assert reader.store.count() == 0  # nothing repaired on open
        assert reader.search("salmon spawn", k=1, mode="bm25")[0].source.endswith("a.txt")
        assert reader.store.count() == 0  # nor by searching
        if before is not None:
            assert embedder.stats() == before
        reader.recover()  # the explicit repair (what every write does first)
        assert reader.store.count() == len(ids)
    finally:
        reader.close()
