"""The Agent API with fakes: answers, threads, streaming, per-run usage, resume."""

from __future__ import annotations

from agentrag import Agent
from agentrag.types import Answer
from tests.conftest import relevance_by_keyword
from tests.support.fakes import FakeLLM, FakeReranker


def make_agent(settings, retriever, llm=None, graph="rag", checkpoint="sqlite") -> Agent:
    llm = llm or FakeLLM(
        structured={"_Rewrite": lambda m: {"query": m[-1]["content"][-40:], "variants": []}},
        answer=lambda m: "Shakespeare wrote Hamlet [1].",
    )
    return Agent(
        settings=settings,
        knowledge_base=retriever,
        graph=graph,
        llm=llm,
        reranker=FakeReranker(relevance_by_keyword),
        checkpoint=checkpoint,
    )


async def test_aask_returns_a_complete_answer(settings, retriever) -> None:
    agent = make_agent(settings, retriever)
    answer = await agent.aask("Who wrote Hamlet?")
    assert isinstance(answer, Answer)
    assert answer.outcome == "answered" and answer.graph == "rag"
    assert answer.citations[0].marker == 1
    assert answer.evidence and answer.udcg is not None and 0 < answer.udcg < 1
    assert answer.usage.calls == 2  # rewrite + generate (the fake reranker is not an LLM)
    assert answer.timings["total"] > 0 and "generate" in answer.timings
    assert [e.node for e in answer.trace if e.event == "end"][-1] == "generate"
    await agent.aclose()


def test_blocking_ask(settings, retriever) -> None:
    agent = make_agent(settings, retriever, checkpoint="memory")
    answer = agent.ask("Who wrote Hamlet?")
    assert answer.outcome == "answered"
    agent.close()


async def test_threads_carry_history(settings, retriever) -> None:
    seen: list[str] = []

    def answer(messages):
        seen.append(messages[-1]["content"])
        return f"Answer number {len(seen)} [1]."

    llm = FakeLLM(structured={"_Rewrite": {"query": "Shakespeare", "variants": []}}, answer=answer)
    agent = make_agent(settings, retriever, llm=llm)
    await agent.aask("Who wrote Hamlet?", thread_id="conv")
    await agent.aask("When was it first performed?", thread_id="conv")
    assert "Who wrote Hamlet?" in seen[1] and "Answer number 1" in seen[1]
    turns = await agent.ahistory("conv")
    assert [t.question for t in turns] == ["Who wrote Hamlet?", "When was it first performed?"]
    # Another thread starts clean.
    await agent.aask("Who wrote Hamlet?", thread_id="other")
    assert "Earlier in this conversation" not in seen[2]
    await agent.aclose()


async def test_astream_events(settings, retriever) -> None:
    agent = make_agent(settings, retriever, checkpoint="none")
    events = [e async for e in agent.astream("Who wrote Hamlet?")]
    assert events[-1].kind == "answer" and events[-1].answer is not None
    assert "".join(e.text for e in events if e.kind == "token") == "Shakespeare wrote Hamlet [1]."
    nodes = {e.node for e in events if e.kind == "node"}
    assert nodes == {"rewrite", "retrieve", "rerank", "pack", "generate"}


async def test_concurrent_questions_get_their_own_usage(settings, retriever) -> None:
    import asyncio

    agent = make_agent(settings, retriever, checkpoint="none")
    a, b = await asyncio.gather(agent.aask("Who wrote Hamlet?"), agent.aask("Globe Theatre?"))
    assert a.usage.calls == 2 and b.usage.calls == 2


async def test_search_graph_returns_results(settings, retriever) -> None:
    from tests.graph.test_srr import PLAN, keep_all

    llm = FakeLLM(structured={"_PlanOut": PLAN, "_Keep": keep_all, "_Verdict": {"verdict": "good"}})
    agent = make_agent(settings, retriever, llm=llm, graph="premise", checkpoint="none")
    results = await agent.asearch("Who wrote Hamlet?")
    assert results and all(r.scores.aggregate for r in results)
