"""`agentrag ask` end to end as a user runs it: bounded by max_wall_s, and it always exits.

Every model is behind a local HTTP server (the fault server for generation and reranking, a tiny
embeddings server for the remote embedder), so the whole run goes through the shared transport
in a real subprocess, interpreter exit included.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.llm._embed_server import EmbedServer
from tests.support.fault_server import FaultServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def servers() -> Iterator[tuple[FaultServer, EmbedServer]]:
    with (
        FaultServer(["ok"], content="The K2 grinder was designed in Ghent [1].") as llm,
        EmbedServer() as emb,
    ):
        yield llm, emb


def _env(llm: FaultServer, emb: EmbedServer, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # this checkout's agentrag, whatever is installed
        "AGENTRAG_EMBEDDER__BACKEND": "openai",
        "AGENTRAG_EMBEDDER__API_BASE": emb.api_base,
        "AGENTRAG_EMBEDDER__MODEL": "fake-embed",
        "AGENTRAG_GENERATOR__MODEL": "hosted_vllm/fake",
        "AGENTRAG_GENERATOR__API_BASE": llm.api_base,
        "AGENTRAG_RERANKER__MODEL": "hosted_vllm/fake",
        "AGENTRAG_RERANKER__API_BASE": llm.api_base,
    }
    env.update(extra)
    return env


def _cli(
    args: list[str], env: dict[str, str], timeout: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "agentrag", *args],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang (at exit or anywhere) fails the test here
    )
    return res, time.perf_counter() - t0


def _ingest(tmp_path: Path, env: dict[str, str]) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "k2.txt").write_text("The K2 grinder was designed in Ghent. Clean its burrs every two weeks.\n")
    data = tmp_path / "data"
    res, _ = _cli(["--data-dir", str(data), "ingest", str(docs)], env, timeout=180)
    assert res.returncode == 0, res.stderr
    return data


def test_ask_against_a_hanging_server_ends_at_max_wall_s(tmp_path: Path, servers) -> None:
    llm, emb = servers
    data = _ingest(tmp_path, _env(llm, emb))
    llm.script(["hang"])  # every model request hangs for 30 s; 120 s timeout x 4 attempts unbounded
    env = _env(llm, emb, AGENTRAG_BUDGETS__MAX_WALL_S="5")
    res, elapsed = _cli(["--data-dir", str(data), "ask", "Who designed the K2?"], env, timeout=240)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode == 5  # budget exhausted before any answer (agentrag ask's exit codes)
    assert "budget_exhausted" in out and "budget.wall_time" in out and "max_wall_s" in out
    # 5 s of run plus interpreter start and imports (~10 s idle, more on a loaded 2-core box);
    # before the deadline was propagated this took 1,000 s.
    assert elapsed < 60, f"ask took {elapsed:.1f}s"


def test_ask_exits_every_time(tmp_path: Path, servers) -> None:
    llm, emb = servers
    env = _env(llm, emb)
    data = _ingest(tmp_path, env)
    for _ in range(4):
        res, elapsed = _cli(["--data-dir", str(data), "ask", "Who designed the K2?"], env, timeout=180)
        assert "Ghent" in res.stdout, res.stderr
        # Pools are closed while the loop still runs: nothing is left for a __del__ at exit.
        assert "Unclosed" not in res.stderr and "Traceback" not in res.stderr
        assert elapsed < 120
