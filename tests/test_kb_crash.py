"""Kill a real ingest (SIGKILL) at every window of the write path, rerun it, and check that the
manifest, the vector store (embedded Chroma) and the BM25 index end complete, equal in content
and free of duplicates: the same chunk ids as a clean, uninterrupted ingest.

Crash points (agentrag._faults) hit each window exactly; timed kills hit wherever the process
happens to be. Each run is a fresh process with real MiniLM (cached vectors) and real Chroma.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentrag._faults import CRASH_ENV
from agentrag.embed import SentenceTransformerEmbedder
from agentrag.kb import KnowledgeBase
from agentrag.settings import Settings
from tests.conftest import REPO, TEST_CACHE

pytestmark = pytest.mark.slow

N_DOCS = 80


def run_driver(
    data_dir: Path,
    corpus: Path,
    *,
    crash: str | None = None,
    prune: bool = False,
    kill_after: float | None = None,
) -> tuple[int, dict | None]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash:
        env[CRASH_ENV] = crash
    cmd = [
        sys.executable,
        "-m",
        "tests.support.ingest_driver",
        str(data_dir),
        str(corpus),
        str(TEST_CACHE / "embeddings.sqlite"),
        "--batch",
        "16",
        "--step",
        "5",
    ]
    if prune:
        cmd.append("--prune")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    report = None
    for line in out.splitlines():
        if line.startswith("REPORT "):
            report = json.loads(line[len("REPORT ") :])
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"driver failed ({proc.returncode}):\n{err[-3000:]}")
    return proc.returncode, report


def open_kb(data_dir: Path, embedder) -> KnowledgeBase:
    return KnowledgeBase.open(Settings.load(config=None, data_dir=data_dir), "crash", embedder=embedder)


def index_ids(data_dir: Path, embedder) -> dict[str, list[str]]:
    kb = open_kb(data_dir, embedder)
    try:
        # Opening to search repairs nothing; the next writer (here: recover) does.
        kb.recover()
        ids = kb.index_ids()
        assert kb.stats().unsettled_documents == 0
        return ids
    finally:
        kb.close()


def assert_complete(data_dir: Path, embedder, reference: list[str]) -> None:
    ids = index_ids(data_dir, embedder)
    assert ids["manifest"] == ids["store"] == ids["bm25"], {k: len(v) for k, v in ids.items()}
    assert len(set(ids["store"])) == len(ids["store"])
    assert ids["manifest"] == reference


@pytest.fixture(scope="module")
def corpora(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    lines = (shared_data / "scifact" / "corpus.jsonl").read_text().splitlines()[:N_DOCS]
    rows = [json.loads(x) for x in lines]
    v1 = "\n".join(json.dumps(r) for r in rows) + "\n"
    # v2: 10 rows changed, 10 removed, 5 added (from further down the corpus).
    extra = [
        json.loads(x)
        for x in (shared_data / "scifact" / "corpus.jsonl").read_text().splitlines()[N_DOCS : N_DOCS + 5]
    ]
    changed = [dict(r, text=r["text"] + " (Revised.)") if i < 10 else r for i, r in enumerate(rows)]
    v2 = "\n".join(json.dumps(r) for r in changed[:-10] + extra) + "\n"
    return v1, v2


@pytest.fixture(scope="module")
def embedder():
    return SentenceTransformerEmbedder(cache_path=TEST_CACHE / "embeddings.sqlite")


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One path for every run: chunk ids hash the source path, so runs compare only if it is equal.
    return tmp_path_factory.mktemp("corpus") / "corpus.jsonl"


@pytest.fixture(scope="module")
def reference(corpora, corpus_path: Path, tmp_path_factory, embedder) -> tuple[list[str], list[str]]:
    v1, v2 = corpora
    data = tmp_path_factory.mktemp("reference") / "data"
    corpus_path.write_text(v1)
    rc, rep = run_driver(data, corpus_path)
    assert rc == 0 and rep["added"] == N_DOCS
    ref1 = index_ids(data, embedder)
    assert ref1["manifest"] == ref1["store"] == ref1["bm25"]
    corpus_path.write_text(v2)
    rc, rep = run_driver(data, corpus_path, prune=True)
    assert rc == 0 and (rep["added"], rep["replaced"], rep["removed"]) == (5, 10, 10)
    ref2 = index_ids(data, embedder)
    assert ref2["manifest"] == ref2["store"] == ref2["bm25"]
    return ref1["manifest"], ref2["manifest"]


CRASH_POINTS = ["after-prepare:2", "store-upsert:4", "after-store:3", "after-commit:2", "bm25-saved:1"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_crash_point_then_rerun(point, reference, corpora, corpus_path, embedder, tmp_path) -> None:
    ref1, _ = reference
    corpus_path.write_text(corpora[0])
    data = tmp_path / "data"
    rc, _ = run_driver(data, corpus_path, crash=point)
    assert rc == -signal.SIGKILL, f"the driver did not reach {point}"
    # Recovery alone repairs: every index agrees (documents may be missing until the rerun).
    partial = index_ids(data, embedder)
    assert partial["manifest"] == partial["store"] == partial["bm25"]
    assert set(partial["manifest"]) <= set(ref1)
    rc, rep = run_driver(data, corpus_path)
    assert rc == 0 and rep["added"] + rep["unchanged"] == N_DOCS
    assert_complete(data, embedder, ref1)


@pytest.mark.parametrize(
    "point", ["after-prepare:1", "store-upsert:2", "after-prepare-delete:1", "bm25-saved:1"]
)
def test_kill_while_replacing_and_pruning(point, reference, corpora, corpus_path, embedder, tmp_path) -> None:
    _ref1, ref2 = reference
    v1, v2 = corpora
    data = tmp_path / "data"
    corpus_path.write_text(v1)
    assert run_driver(data, corpus_path)[0] == 0
    corpus_path.write_text(v2)
    rc, _ = run_driver(data, corpus_path, crash=point, prune=True)
    assert rc == -signal.SIGKILL, f"the driver did not reach {point}"
    rc, _rep = run_driver(data, corpus_path, prune=True)
    assert rc == 0
    assert_complete(data, embedder, ref2)


def test_kills_at_random_moments(reference, corpora, corpus_path, embedder, tmp_path) -> None:
    # Wherever the process happens to be (model loading, embedding, writing, indexing): three
    # kills in a row on the same knowledge base, then one uninterrupted run.
    ref1, _ = reference
    corpus_path.write_text(corpora[0])
    data = tmp_path / "data"
    rng = random.Random(int(os.environ.get("AGENTRAG_CRASH_SEED", "7")))
    t0 = time.perf_counter()
    assert run_driver(data, corpus_path)[0] == 0  # a clean run, to learn how long one takes
    full = time.perf_counter() - t0
    import shutil

    shutil.rmtree(data)
    killed = 0
    for _ in range(3):
        rc, _ = run_driver(data, corpus_path, kill_after=rng.uniform(0.4, 0.95) * full)
        killed += rc == -signal.SIGKILL
    # A later run has less left to do and may finish before its kill; the first cannot.
    assert killed >= 1, "the runs were too fast to be killed"
    rc, _ = run_driver(data, corpus_path)
    assert rc == 0
    assert_complete(data, embedder, ref1)
