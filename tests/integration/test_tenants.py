"""Tenant scope never leaks: two tenants in one real knowledge base (Chroma + bm25s + MiniLM),
every shipped graph run with the request filter ``tenant=a`` against the real vLLM server
(SmolLM2-135M: the mechanics, not the answers), and every prompt any model saw recorded.

No text of tenant b may reach a prompt (generator, rewrite, corrective query, sketch, filter,
judge, the Prism reranker) or the answer. A control run without the filter shows the test can
fail: there tenant b's text does reach the prompts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from agentrag import Agent
from agentrag.llm import LLMClient

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

SECRET = "KESTREL-B"

TENANT_A = [
    "The Zephyr project launched on March 3 and its budget is managed by the finance team of tenant A.",
    "Zephyr project status: the first milestone of the Zephyr project was reached in April.",
]
TENANT_B = [
    f"{SECRET}: the Zephyr project budget is nine million dollars, approved by the board.",
    f"{SECRET}: the Zephyr project milestone review names the budget owner as Dana.",
    f"{SECRET}: Zephyr project budget risks include vendor delays.",
]


class RecordingLLM:
    """The real client, with every prompt it is sent recorded (chat messages and raw prompts)."""

    def __init__(self, inner: LLMClient) -> None:
        self._inner = inner
        self.prompts: list[str] = []

    def _record(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for value in (*args, kwargs.get("messages"), kwargs.get("prompt")):
            if value is not None and not isinstance(value, type):
                self.prompts.append(value if isinstance(value, str) else json.dumps(value, default=str))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in {"stream", "structured", "yes_no", "complete", "first_token", "chat"}:
            return attr

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._record(args, kwargs)
            return attr(*args, **kwargs)

        return recorded


@pytest.fixture(scope="module")
def tenant_kb(tmp_path_factory, embedder, vllm_server, server_settings) -> Iterator[tuple[Any, Any]]:
    from agentrag.ingest.loaders import Document
    from agentrag.kb import KnowledgeBase
    from agentrag.settings import Settings

    settings = Settings.load(
        config=None,
        data_dir=tmp_path_factory.mktemp("tenants") / "data",
        server=server_settings.model_dump(),
        rerank={"max_document_chars": 600},
    )
    kb = KnowledgeBase.open(settings, "tenants", embedder=embedder)
    docs = [
        Document(source=f"{tenant}/{i}.txt", title=f"doc {tenant}{i}", text=text, metadata={"tenant": tenant})
        for tenant, texts in (("a", TENANT_A), ("b", TENANT_B))
        for i, text in enumerate(texts)
    ]
    kb.ingest_documents(docs)
    yield settings, kb
    kb.close()


def _agent(settings, kb, llm, graph: str, *, prism: bool) -> Agent:
    from agentrag.rerank import PrismReranker

    reranker = PrismReranker(llm) if prism else None  # type: ignore[arg-type]
    return Agent(
        settings=settings, knowledge_base=kb, graph=graph, llm=llm, reranker=reranker, checkpoint="none"
    )


def _leaks(llm: RecordingLLM, answer_text: str = "") -> list[str]:
    return [p[:200] for p in [*llm.prompts, answer_text] if SECRET in p or "nine million" in p]


QUESTION = "What is the Zephyr project budget?"


@pytest.mark.parametrize(
    ("graph", "prism"),
    # crag without a reranker: unknown relevance makes the gate "ambiguous", so corrective
    # retrieval (`correct`) surely runs and is checked; rag and srr with the real Prism reranker.
    [("rag", True), ("crag", False), ("crag", True), ("srr", True)],
)
async def test_no_tenant_b_text_reaches_a_prompt(tenant_kb, llm_endpoint, graph: str, prism: bool) -> None:
    settings, kb = tenant_kb
    llm = RecordingLLM(LLMClient(llm_endpoint, role="test"))
    agent = _agent(settings, kb, llm, graph, prism=prism)
    answer = await agent.aask(QUESTION, filters={"tenant": "a"}, budget={"max_rounds": 1, "max_wall_s": 600})
    assert llm.prompts, "no model was called"
    assert not _leaks(llm, answer.text)
    for item in [*answer.evidence, *answer.citations]:
        assert item.source.startswith("a/")
    nodes = {e.node for e in answer.trace if e.event == "end"}
    if graph == "crag" and not prism:
        assert "correct" in nodes  # the corrective search ran, filtered
    await agent.aclose()


async def test_premise_search_graph_respects_the_filter(tenant_kb, llm_endpoint) -> None:
    settings, kb = tenant_kb
    llm = RecordingLLM(LLMClient(llm_endpoint, role="test"))
    agent = _agent(settings, kb, llm, "premise", prism=False)
    results = await agent.asearch(QUESTION, filters={"tenant": "a"}, budget={"max_rounds": 1})
    assert all(p.metadata["tenant"] == "a" for p in results)
    assert not _leaks(llm)
    await agent.aclose()


async def test_control_without_the_filter_tenant_b_is_seen(tenant_kb, llm_endpoint) -> None:
    settings, kb = tenant_kb
    llm = RecordingLLM(LLMClient(llm_endpoint, role="test"))
    agent = _agent(settings, kb, llm, "rag", prism=False)
    await agent.aask(QUESTION, budget={"max_rounds": 1})
    assert _leaks(llm), "the control should see tenant b's text"
    await agent.aclose()
