"""Checkpoint resume after an interruption, threads, and streaming of node events and tokens."""

from __future__ import annotations

import asyncio

import pytest

from agentrag.graph import RunContext, load_graph, open_checkpointer
from agentrag.state import RAGState
from tests.conftest import relevance_by_keyword
from tests.support.fakes import FakeReranker


class CrashOnce(FakeReranker):
    """A reranker whose first call dies like a process-level failure (not a handled LLM error)."""

    def __init__(self) -> None:
        super().__init__(relevance_by_keyword)
        self.crashed = False

    async def arerank(self, *args, **kwargs):
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("power cut")
        return await super().arerank(*args, **kwargs)


async def test_resume_after_a_crash_reruns_only_the_unfinished_node(settings, fake_llm, retriever) -> None:
    reranker = CrashOnce()
    ctx = RunContext(
        settings=settings, llm=fake_llm, retriever=retriever, reranker=reranker, usage=fake_llm.usage
    )
    async with open_checkpointer(settings) as saver:
        graph = load_graph("rag", checkpointer=saver)
        with pytest.raises(RuntimeError, match="power cut"):
            await graph.ainvoke(RAGState(question="Who wrote Hamlet?"), context=ctx, thread_id="t1")
        state, pending = await graph.aget_state("t1")
        assert pending == ("rerank",)
        assert state is not None and state.candidates
        # Resume: input None continues from the checkpoint.
        final = await graph.ainvoke(None, context=ctx, thread_id="t1")
    assert final.outcome == "answered"
    assert fake_llm.calls["_Rewrite"] == 1  # rewrite was not run again
    assert [e.node for e in final.trace if e.event == "end"] == [
        "rewrite",
        "retrieve",
        "rerank",
        "pack",
        "generate",
    ]
    assert (settings.data_dir / "checkpoints.sqlite").exists()


async def test_resume_after_cancellation(settings, fake_llm, retriever) -> None:
    gate = asyncio.Event()

    class Slow(FakeReranker):
        async def arerank(self, *args, **kwargs):
            gate.set()
            await asyncio.sleep(30)
            return await super().arerank(*args, **kwargs)

    ctx = RunContext(
        settings=settings,
        llm=fake_llm,
        retriever=retriever,
        reranker=Slow(relevance_by_keyword),
        usage=fake_llm.usage,
    )
    async with open_checkpointer(settings, "memory") as saver:
        graph = load_graph("rag", checkpointer=saver)
        task = asyncio.create_task(
            graph.ainvoke(RAGState(question="Who wrote Hamlet?"), context=ctx, thread_id="c")
        )
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        _, pending = await graph.aget_state("c")
        assert pending == ("rerank",)
        ctx.reranker = FakeReranker(relevance_by_keyword)
        final = await graph.ainvoke(None, context=ctx, thread_id="c")
    assert final.outcome == "answered"


async def test_stream_yields_node_events_then_tokens_then_state(settings, fake_llm, retriever) -> None:
    ctx = RunContext(
        settings=settings,
        llm=fake_llm,
        retriever=retriever,
        reranker=FakeReranker(relevance_by_keyword),
        usage=fake_llm.usage,
    )
    graph = load_graph("rag")
    events = [e async for e in graph.astream(RAGState(question="Who wrote Hamlet?"), context=ctx)]
    kinds = [e.kind for e in events]
    assert kinds[-1] == "state"
    nodes = [(e.node, e.event) for e in events if e.kind == "node"]
    assert nodes[0] == ("rewrite", "start") and nodes[-1] == ("generate", "end")
    tokens = [e.text for e in events if e.kind == "token"]
    assert len(tokens) > 3
    assert "".join(tokens) == "Hamlet was written by William Shakespeare [1]."
    # Tokens arrive between generate's start and end events.
    start = next(
        i for i, e in enumerate(events) if e.kind == "node" and e.node == "generate" and e.event == "start"
    )
    first_token = kinds.index("token")
    assert start < first_token
    final = events[-1].state
    assert final is not None and final.citations[0].marker == 1
