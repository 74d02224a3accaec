"""A failing model server is never an abstention: `agentrag ask` end to end against faults.

A real knowledge base (Chroma + bm25s + MiniLM); the generator and the Prism reranker point
at a scripted local server that answers 500, 429, a 200 whose body is not JSON, or at a
closed port. The run must say what failed and how to fix it, and exit non-zero, never print
"I cannot answer" with every passage at p(rel) 0.00 and exit 0.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.cli.conftest import invoke


@pytest.fixture(scope="module")
def kb_data(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    from agentrag.kb import KnowledgeBase
    from agentrag.settings import Settings

    root = tmp_path_factory.mktemp("faults")
    docs = root / "docs"
    docs.mkdir()
    (docs / "hamlet.txt").write_text("Hamlet is a tragedy written by William Shakespeare around 1600.")
    (docs / "tea.txt").write_text("Green tea is made from leaves that are not oxidised.")
    data = root / "data"
    kb = KnowledgeBase.open(
        Settings.load(config=None, data_dir=data), "default", create=True, embedder=embedder
    )
    try:
        kb.ingest([docs])
    finally:
        kb.close()
    return data


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _point_models_at(monkeypatch: pytest.MonkeyPatch, api_base: str) -> None:
    for role in ("GENERATOR", "RERANKER"):
        monkeypatch.setenv(f"AGENTRAG_{role}__API_BASE", api_base)
        monkeypatch.setenv(f"AGENTRAG_{role}__MODEL", "hosted_vllm/fake")
        monkeypatch.setenv(f"AGENTRAG_{role}__MAX_RETRIES", "1")
        monkeypatch.setenv(f"AGENTRAG_{role}__BACKOFF_INITIAL_S", "0.01")
        monkeypatch.setenv(f"AGENTRAG_{role}__BACKOFF_MAX_S", "0.02")
        monkeypatch.setenv(f"AGENTRAG_{role}__TIMEOUT_S", "10")
    monkeypatch.setenv("AGENTRAG_RERANK__KIND", "prism")


@pytest.mark.parametrize("fault", ["500", "429", "garbage", "closed"])
@pytest.mark.parametrize("graph", ["rag", "crag", "srr"])
def test_a_failing_server_fails_the_run_visibly(
    kb_data: Path, fault_server, monkeypatch: pytest.MonkeyPatch, fault: str, graph: str
) -> None:
    if fault == "closed":
        api_base = _closed_port()
    else:
        fault_server.script([fault])
        api_base = fault_server.api_base
    _point_models_at(monkeypatch, api_base)

    res = invoke(kb_data, "ask", "Who wrote Hamlet?", "--graph", graph)
    out = " ".join(res.output.split())
    assert res.exit_code in (3, 4), out  # degraded or failed, never 0
    assert "failed" in out and "fix:" in out
    assert "cannot answer this from the available documents" not in out
    assert "likely distractor" not in out

    res = invoke(kb_data, "ask", "Who wrote Hamlet?", "--graph", graph, "--json")
    assert res.exit_code in (3, 4)
    report = json.loads(res.stdout)
    assert report["outcome"] in ("degraded", "failed") and report["exit_code"] == res.exit_code
    assert report["errors"] and all(p["fix"] for p in report["problems"])
    # Nothing was judged irrelevant because of the failure: no relevance of 0 anywhere.
    assert all(e["relevance"]["p"] is None for e in report["evidence"])
    assert not [d for d in report["dropped"] if "distractor" in d["reason"]]
    if fault != "closed":
        assert fault_server.requests  # the server was really asked


def test_prism_against_a_closed_port_falls_back_with_unknown_relevance(settings) -> None:
    """The real Prism reranker and LLM client, a stopped server: fallback, never relevance 0."""
    from agentrag.llm import LLMClient
    from agentrag.rerank import PrismReranker
    from agentrag.settings import LLMEndpoint
    from agentrag.types import Passage

    endpoint = LLMEndpoint(model="hosted_vllm/fake", api_base=[_closed_port()], max_retries=0, timeout_s=5)
    reranker = PrismReranker(LLMClient(endpoint, role="reranker"))
    passages = [
        Passage(id=f"p{i}", text=t, source="s.txt", end=len(t))
        for i, t in enumerate(["Hamlet was written by Shakespeare.", "Tea is green.", "Cats purr."])
    ]
    result = reranker.rerank("Who wrote Hamlet?", passages, top_n=2)
    assert result.fallback and "llm.connection" in result.fallback_reason
    assert [p.id for p in result.passages] == ["p0", "p1"]
    assert all(not p.relevance.known and p.relevance.origin == "fallback" for p in result.passages)
    assert all(e.relevance.p is None and e.fallback for e in result.evidence)
