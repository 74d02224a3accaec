"""Answer quality against the default model (Qwen2.5-Coder-1.5B-Instruct), on examples/docs.

The server must already run (converting and loading the 1.5B takes minutes and 8 GB, so the
session does not start it): ``agentrag models setup --model qwen2.5-coder-1.5b`` then
``agentrag models serve --model qwen2.5-coder-1.5b --port 8402``. Another port:
``AGENTRAG_TEST_DEFAULT_PORT``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from agentrag import Agent
from agentrag.kb import KnowledgeBase
from agentrag.llm import LLMClient
from agentrag.rerank import reranker_from_settings
from agentrag.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

SERVED = "qwen2.5-coder-1.5b"
DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"


def _read(path: str) -> str:
    return Path(path).read_text()


@pytest.fixture(scope="session")
def default_model_url() -> str:
    """Base URL of a healthy server serving the default model, or a failure naming the fix."""
    port = int(os.environ.get("AGENTRAG_TEST_DEFAULT_PORT", "8402"))
    url = f"http://127.0.0.1:{port}/v1"
    try:
        served = [m["id"] for m in httpx.get(f"{url}/models", timeout=10).json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError):
        served = []
    if SERVED not in served:
        pytest.fail(
            f"no server serving {SERVED} at {url} (found {served or 'none'}); run "
            f"`agentrag models setup --model {SERVED}` and "
            f"`agentrag models serve --model {SERVED} --port {port}`, or set AGENTRAG_TEST_DEFAULT_PORT",
            pytrace=False,
        )
    return url


async def test_warranty_answer_says_two_years_and_cites_warranty_md(
    default_model_url: str, tmp_path: Path, embedder
) -> None:
    settings = Settings.load(
        config=None,
        data_dir=tmp_path,
        profile="cpu",  # the economical plan: one LLM call
        generator={"model": f"hosted_vllm/{SERVED}", "api_base": [default_model_url], "timeout_s": 600},
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
