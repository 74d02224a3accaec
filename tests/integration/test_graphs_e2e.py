"""Every shipped text graph end to end: real HotpotQA paragraphs in a real knowledge base, the
real vLLM server (SmolLM2-135M) generating, the real Prism-style reranker scoring.

A 135M model answers badly; these tests assert on the structure of the result: citations
resolve to exact source spans, budgets hold, the trace is complete and follows the graph.
"""

from __future__ import annotations

import itertools

import pytest

from agentrag import Agent
from agentrag.graph import load_spec
from agentrag.llm import LLMClient

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def assert_well_formed(answer, kb, graph_name: str, max_rounds: int, spec=None) -> None:
    # degraded: a node fell back (e.g. the 135M model's plan did not parse); it must say why.
    assert answer.outcome in {"answered", "abstained", "budget_exhausted", "degraded"}
    assert (answer.outcome == "degraded") == bool(answer.errors)
    assert answer.graph == graph_name
    # Citations point at exact text of the stored chunk they cite.
    for c in answer.citations:
        [chunk] = kb.get([c.passage_id.split("#")[0]])
        assert chunk.start <= c.start <= c.end <= chunk.end
        assert chunk.text[c.start - chunk.start : c.end - chunk.start] == c.quote
    for ev in answer.evidence:
        assert ev.passage_id and (ev.relevance.p is None or 0.0 <= ev.relevance.p <= 1.0)
    # The trace is complete: every node that started ended, in an order the graph allows.
    spec = spec or load_spec(graph_name)  # the agent's spec: its profile may trim the graph
    starts = [e.node for e in answer.trace if e.event == "start"]
    ends = [e.node for e in answer.trace if e.event == "end"]
    assert starts == ends and ends[0] == spec.entry and ends[-1] in {"generate", "aggregate"}
    for a, b in itertools.pairwise(ends):
        assert b in spec.successors(a), f"{a} -> {b} is not an edge of {graph_name}"
    rounds = [e for e in answer.trace if e.node in {"correct", "sketch"} and e.event == "end"]
    assert len(rounds) <= max_rounds
    # Usage and the budget counters agree, and every node's time is accounted.
    node_calls = sum(e.data.get("llm_calls", 0) for e in answer.trace if e.event == "end")
    assert node_calls == answer.usage.calls > 0
    assert set(answer.timings) >= set(ends)


@pytest.mark.parametrize(("graph", "max_rounds"), [("rag", 0), ("crag", 1), ("srr", 1)])
async def test_graph_end_to_end(
    graph, max_rounds, e2e_settings, hotpot_kb, hotpot_questions, llm_endpoint, real_reranker
) -> None:
    agent = Agent(
        settings=e2e_settings,
        knowledge_base=hotpot_kb,
        graph=graph,
        llm=LLMClient(llm_endpoint),
        reranker=real_reranker,
        checkpoint="sqlite",
    )
    question = hotpot_questions[0]["question_text"]
    budget = {"max_rounds": max_rounds or 1, "max_wall_s": 600}
    answer = await agent.aask(question, thread_id=f"e2e-{graph}", budget=budget)
    assert_well_formed(answer, hotpot_kb, graph, max_rounds or 1, agent.spec)
    if answer.outcome != "abstained":
        assert answer.text.strip()
        assert answer.evidence
    # The run is checkpointed under its thread.
    assert [t.question for t in await agent.ahistory(f"e2e-{graph}")] == [question]
    await agent.aclose()


async def test_tokens_stream_before_the_answer(
    e2e_settings, hotpot_kb, hotpot_questions, llm_endpoint, real_reranker
) -> None:
    agent = Agent(
        settings=e2e_settings,
        knowledge_base=hotpot_kb,
        graph="rag",
        llm=LLMClient(llm_endpoint),
        reranker=real_reranker,
        checkpoint="none",
    )
    events = [e async for e in agent.astream(hotpot_questions[1]["question_text"])]
    tokens = [e for e in events if e.kind == "token"]
    final = events[-1].answer
    assert final is not None
    if final.outcome != "abstained":
        assert len(tokens) > 3
        # The streamed text is the answer (before citation markers are normalised).
        assert "".join(t.text for t in tokens).strip()[:20] == final.text[:20]
