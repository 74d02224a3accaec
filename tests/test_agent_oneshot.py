"""One-shot asks (no thread_id) do not write checkpoints; threaded asks still do.

The real SQLite checkpointer under ``data_dir``; the LLM and reranker are the unit-test fakes
(what is checked is what reaches ``checkpoints.sqlite``, not the answer).
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.test_agent import make_agent


def _checkpoint_rows(settings) -> int:
    path = settings.data_dir / "checkpoints.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables)


async def test_one_shot_asks_leave_the_checkpoint_store_alone(settings, retriever) -> None:
    agent = make_agent(settings, retriever)
    for _ in range(3):
        answer = await agent.aask("Who wrote Hamlet?")
        assert answer.outcome == "answered"
    assert _checkpoint_rows(settings) == 0
    await agent.aask("Who wrote Hamlet?", thread_id="t1")
    threaded = _checkpoint_rows(settings)
    assert threaded > 0  # a conversation is still checkpointed
    await agent.aask("Who wrote Hamlet?")
    assert _checkpoint_rows(settings) == threaded
    await agent.aclose()


@pytest.mark.parametrize("closer", ["agent", "client"])
async def test_closing_does_not_cut_another_agents_stream(settings, retriever, closer: str) -> None:
    """Agents on one loop share the HTTP pool: closing one must not kill another's answer mid-stream.

    Before the pool was held per agent, ``eval qa --concurrency 2`` lost answers this way (the
    first question's agent closed the pool while the second one's answer was streaming). A bare
    model client closing (a script's ``await llm.aclose()``) must not either.
    """
    import asyncio

    from agentrag.llm import LLMClient
    from agentrag.settings import LLMEndpoint
    from tests.support.fault_server import FaultServer

    with FaultServer(["slow:0.4"], content="Shakespeare wrote Hamlet [1].") as server:
        endpoint = LLMEndpoint(model="hosted_vllm/fake", api_base=[server.api_base], max_retries=0)
        cpu = settings.model_copy(update={"profile": "cpu"})  # one LLM call: the streamed answer
        streaming = make_agent(cpu, retriever, llm=LLMClient(endpoint), checkpoint="none")
        quick = make_agent(settings, retriever, checkpoint="none")
        task = asyncio.create_task(streaming.aask("Who wrote Hamlet?"))
        for _ in range(200):  # until the answer is streaming (the server saw the request)
            if server.requests:
                break
            await asyncio.sleep(0.05)
        if closer == "agent":
            await quick.aask("Who wrote Hamlet?")
            await quick.aclose()
        else:
            await LLMClient(endpoint).aclose()
        answer = await task
        await streaming.aclose()
    assert answer.errors == [] and answer.outcome == "answered", answer.errors
    assert answer.text.startswith("Shakespeare wrote Hamlet")
