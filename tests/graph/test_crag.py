"""Every CRAG route with fakes: correct, ambiguous, incorrect, budget exhausted, no gain, LLM failure."""

from __future__ import annotations

import re

import pytest

from agentrag.agent import outcome_of
from agentrag.graph import RunContext, load_graph
from agentrag.state import RAGState
from tests.support.fakes import FakeLLM, FakeReranker, FakeRetriever, passage


def node_path(state: RAGState) -> list[str]:
    return [e.node for e in state.trace if e.event == "end"]


async def run(graph_name: str, settings, llm, retriever, reranker, question="Who wrote Hamlet?", **budget):
    graph = load_graph(graph_name)
    b = graph.budget(settings).model_copy(update=budget)
    ctx = RunContext(settings=settings, llm=llm, retriever=retriever, reranker=reranker, usage=llm.usage)
    return await graph.ainvoke(RAGState(question=question, budget=b), context=ctx)


async def test_correct_goes_straight_to_refinement(settings, fake_llm, retriever) -> None:
    from tests.conftest import relevance_by_keyword

    state = await run("crag", settings, fake_llm, retriever, FakeReranker(relevance_by_keyword))
    assert node_path(state) == ["rewrite", "retrieve", "rerank", "gate", "refine", "pack", "generate"]
    assert state.crag_action == "correct"
    assert state.outcome == "answered"
    assert state.budget.rounds == 0
    # Refinement keeps exact strips of the source text with their own spans.
    for ev in state.context:
        source = next(p for p in state.candidates if p.id == ev.passage_id)
        assert source.text[ev.start - source.start : ev.end - source.start] == ev.text
    # The distractors were dropped (either by the reranker's top-n or the packer), with reasons.
    assert state.citations and state.citations[0].passage_id in {"hamlet", "globe"}


async def test_incorrect_triggers_corrective_retrieval_then_recovers(settings, fake_llm) -> None:
    # First retrieval finds only distractors; the corrective query finds the Shakespeare passage.
    retriever = FakeRetriever(
        [
            passage("ocean", "The Pacific Ocean is the largest ocean on Earth. Hamlet who wrote"),
            passage("hamlet", "Hamlet is a tragedy by William Shakespeare, performed around 1600."),
        ]
    )
    # Only the corrective query mentions "Shakespeare"; make the first search miss it.
    original = retriever.asearch

    async def search(query, *, k=10, mode="hybrid", filters=None):
        hits = await original(query, k=k, mode=mode, filters=filters)
        return hits if "Shakespeare" in query else [h for h in hits if h.id == "ocean"]

    retriever.asearch = search  # type: ignore[method-assign]
    reranker = FakeReranker(lambda t: 0.95 if "Shakespeare" in t else 0.05)
    state = await run("crag", settings, fake_llm, retriever, reranker)
    path = node_path(state)
    assert path[:4] == ["rewrite", "retrieve", "rerank", "gate"]
    assert path[4:8] == ["correct", "rerank", "gate", "refine"]
    assert state.budget.rounds == 1
    assert "Shakespeare play Hamlet author" in state.queries
    assert state.outcome == "answered"
    assert all(e.passage_id == "hamlet" for e in state.context)
    # The reranker never re-scored a passage it had already judged.
    assert len(reranker.seen) == len(set(reranker.seen))


async def test_ambiguous_keeps_plausible_evidence_and_adds_new(settings, fake_llm, retriever) -> None:
    reranker = FakeReranker(lambda t: 0.4 if "Shakespeare" in t else 0.1)  # never above upper=0.6
    state = await run("crag", settings, fake_llm, retriever, reranker, max_rounds=3)
    path = node_path(state)
    # The first correction found a second plausible passage: the best context is worth more
    # (the old per-context average called that "no gain"); the second found nothing new.
    assert state.udcg_history[1] > state.udcg_history[0]
    assert state.udcg_history[2] == state.udcg_history[1]
    assert path.count("correct") == 2
    assert state.crag_action == "ambiguous"
    assert state.budget.exhausted == "no_gain"
    # Evidence judged plausible (p >= keep_above 0.25) survived the correction.
    assert {e.passage_id for e in state.evidence} >= {"hamlet"}
    assert state.outcome == "answered"  # no_gain is not a budget limit


async def test_budget_exhausted_ends_the_loop_with_the_best_so_far(settings, fake_llm, retriever) -> None:
    # Every correction finds new (still weak) passages, so only the round budget can stop it.
    counter = {"n": 0}
    original = retriever.asearch

    async def search(query, *, k=10, mode="hybrid", filters=None):
        counter["n"] += 1
        hits = await original(query, k=k, mode=mode, filters=filters)
        extra = passage(f"new{counter['n']}", f"Shakespeare trivia number {counter['n']}.")
        return [*hits, extra]

    retriever.asearch = search  # type: ignore[method-assign]

    def relevance(text: str) -> float:
        # Each round's new passage is a little better: the expected UDCG keeps rising, so the
        # gain rule never fires and the round budget is what stops the loop.
        number = re.search(r"number (\d+)", text)
        return 0.3 + 0.04 * int(number.group(1)) if number else 0.3

    reranker = FakeReranker(relevance)
    state = await run("crag", settings, fake_llm, retriever, reranker, max_rounds=3)
    assert state.budget.rounds == 3
    assert state.budget.exhausted == "rounds"
    assert node_path(state).count("correct") == 3
    assert state.outcome == "budget_exhausted"
    assert state.answer  # an answer from the evidence gathered so far


async def test_all_irrelevant_and_out_of_budget_abstains(settings, fake_llm, retriever) -> None:
    reranker = FakeReranker(lambda t: 0.01)
    state = await run("crag", settings, fake_llm, retriever, reranker, max_rounds=1)
    assert state.crag_action == "incorrect"
    assert state.budget.exhausted in {"rounds", "no_gain"}
    assert state.context == []
    assert state.outcome == "abstained"
    assert fake_llm.calls.get("chat", 0) == 0  # no evidence: the generator is not even asked
    assert any("likely distractor" in d.reason for d in state.dropped)


async def test_llm_failure_mid_loop_degrades(settings, retriever) -> None:
    llm = FakeLLM(
        structured={"_Rewrite": {"query": "Hamlet", "variants": []}, "_Query": {"query": "x"}},
        fail={"_Query": {1}},  # the corrective rewrite fails
        answer=lambda m: "Shakespeare [1].",
    )
    reranker = FakeReranker(lambda t: 0.4 if "Shakespeare" in t else 0.1)
    state = await run("crag", settings, llm, retriever, reranker)
    assert any(e.startswith("correct: searched with the question") for e in state.errors)
    assert "correct" in node_path(state)
    assert state.outcome == "answered"


@pytest.mark.parametrize(
    ("fail", "line"), [(True, "rerank: scoring failed"), ("raise", "rerank: kept the retrieval order")]
)
async def test_reranker_failure_falls_back_to_retrieval_order(
    settings, fake_llm, retriever, fail, line
) -> None:
    state = await run("rag", settings, fake_llm, retriever, FakeReranker(lambda t: 1.0, fail=fail))
    assert any(e.startswith(line) for e in state.errors), state.errors
    # The evidence keeps the retrieval order (unknown relevance is never sorted as 0).
    order = [p.id for p in state.candidates]
    assert [e.passage_id for e in state.evidence] == order[: len(state.evidence)]
    # ... and none of it is dropped by the packer as a "likely distractor".
    assert state.context and not [d for d in state.dropped if "distractor" in d.reason]
    assert all(e.fallback and not e.relevance.known for e in state.evidence)
    assert state.outcome == "answered" and outcome_of(state) == "degraded"


@pytest.mark.parametrize("name", ["rag", "crag"])
async def test_budget_counters_and_trace(settings, fake_llm, retriever, name) -> None:
    from tests.conftest import relevance_by_keyword

    state = await run(name, settings, fake_llm, retriever, FakeReranker(relevance_by_keyword))
    assert state.budget.llm_calls == fake_llm.usage.calls
    assert state.budget.tokens == fake_llm.usage.total_tokens
    starts = [e.node for e in state.trace if e.event == "start"]
    ends = [e.node for e in state.trace if e.event == "end"]
    assert starts == ends  # every node that started, ended
    assert set(state.timings) == set(ends)
