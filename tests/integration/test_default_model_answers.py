"""Answer quality against the default model (Qwen2.5-Coder-1.5B-Instruct), on examples/docs.

The ``default_llm_server`` fixture (tests/conftest.py) reuses a server already serving the
default model on its port (8400, or ``AGENTRAG_DEFAULT_LLM_PORT``) or starts one; ``.ci/setup``
prepares the model.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentrag import Agent
from agentrag.kb import KnowledgeBase
from agentrag.llm import LLMClient
from agentrag.rerank import reranker_from_settings
from agentrag.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"


def _read(path: str) -> str:
    return Path(path).read_text()


async def test_warranty_answer_says_two_years_and_cites_warranty_md(
    default_llm_server: str, default_server_settings, tmp_path: Path, embedder
) -> None:
    settings = Settings.load(
        config=None,
        data_dir=tmp_path,
        profile="cpu",  # the economical plan: one LLM call
        generator={
            "model": f"hosted_vllm/{default_server_settings.served_name}",
            "api_base": [default_llm_server],
            "timeout_s": 600,
        },
    )
    kb = KnowledgeBase.open(settings, "docs", embedder=embedder)
    try:
        await kb.aingest([DOCS])
        agent = Agent(
            settings=settings,
            knowledge_base=kb,
            llm=LLMClient.from_settings(settings, "generator"),
            reranker=reranker_from_settings(settings),
            checkpoint="none",
        )
        answer = await agent.aask("How long is the Aurora K2 warranty and what does it cover?")
    finally:
        kb.close()
    assert answer.outcome == "answered", answer
    assert answer.usage.calls <= 3
    text = answer.text.lower()
    assert any(s in text for s in ("two years", "two-year", "2 years")), answer.text
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", answer.text)}
    assert markers and markers == {c.marker for c in answer.citations}, answer.text
    for cited in answer.citations:
        # Every marker resolves to the exact text of its source.
        assert _read(cited.source)[cited.start : cited.end] == cited.quote
    warranty = [c for c in answer.citations if c.source.endswith("warranty.md")]
    assert any("two-year" in c.quote or "two years" in c.quote for c in warranty), answer.citations
