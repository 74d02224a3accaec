"""Sketch-retrieve-reflect routes with fakes: good, bad -> new plan, exhausted, judge/filter failures."""

from __future__ import annotations

from agentrag.graph import RunContext, load_graph
from agentrag.nodes.srr import fused_hits, round_udcg
from agentrag.state import Plan, RAGState, SearchRound
from tests.graph.test_crag import node_path
from tests.support.fakes import FakeLLM, FakeReranker, passage

PLAN = {
    "definition_queries": ["Hamlet"],
    "highlevel_queries": ["Who wrote Hamlet", "Hamlet author"],
    "steps": [
        {"description": "find the play", "reasoning": "r", "queries": ["Hamlet play"]},
        {"description": "find the author", "reasoning": "r", "queries": ["Shakespeare"]},
        {"description": "check", "reasoning": "r", "queries": ["Globe Theatre"]},
    ],
}
PLAN2 = {**PLAN, "highlevel_queries": ["tragedy Denmark", "playwright 1600"]}


def keep_all(messages):
    # The filter prompt numbers hits "[0] ...": keep every shown hit.
    text = messages[-1]["content"]
    return {"keep": [i for i in range(20) if f"[{i}]" in text]}


async def run(settings, llm, retriever, graph="srr", **budget):
    g = load_graph(graph)
    b = g.budget(settings).model_copy(update=budget)
    ctx = RunContext(
        settings=settings,
        llm=llm,
        retriever=retriever,
        reranker=FakeReranker(lambda t: 0.9 if "Shakespeare" in t else 0.1),
        usage=llm.usage,
    )
    return await g.ainvoke(RAGState(question="Who wrote Hamlet?", budget=b), context=ctx)


async def test_good_verdict_stops_after_one_round(settings, retriever) -> None:
    llm = FakeLLM(
        structured={"_PlanOut": PLAN, "_Keep": keep_all, "_Verdict": {"verdict": "good"}},
        answer=lambda m: "Shakespeare wrote it [1].",
    )
    state = await run(settings, llm, retriever)
    assert node_path(state) == [
        "sketch",
        "search",
        "filter",
        "reflect",
        "aggregate",
        "rerank",
        "pack",
        "generate",
    ]
    assert len(state.rounds) == 1 and state.rounds[0].verdict == "good"
    # One filter call per query, concurrently; the question is always one of the queries.
    assert llm.calls["_Keep"] == len(state.rounds[0].hits)
    assert "Who wrote Hamlet?" in state.rounds[0].hits
    assert state.results and (state.results[0].scores.aggregate or 0) > 0
    assert state.outcome == "answered"


async def test_bad_verdict_replans_with_feedback(settings, retriever) -> None:
    plans = iter([PLAN, PLAN2])
    verdicts = iter([{"verdict": "bad", "feedback": "need the author"}, {"verdict": "good"}])
    llm = FakeLLM(
        structured={
            "_PlanOut": lambda m: next(plans),
            "_Keep": keep_all,
            "_Verdict": lambda m: next(verdicts),
        }
    )
    state = await run(settings, llm, retriever, max_rounds=3, min_gain=-1.0)
    assert [r.verdict for r in state.rounds] == ["bad", "good"]
    # The second sketch saw the first plan's queries and the judge's feedback.
    second_sketch = [m for kind, m in llm.log if kind == "_PlanOut"][1]
    assert "need the author" in second_sketch[-1]["content"]
    assert "Hamlet play" in second_sketch[-1]["content"]
    # ... and searched only queries it had not searched before (plus the question).
    assert set(state.rounds[1].hits) - {"Who wrote Hamlet?"} == {"tragedy Denmark", "playwright 1600"}
    assert state.budget.rounds == 2


async def test_rounds_budget_exhausted(settings, retriever) -> None:
    llm = FakeLLM(
        structured={"_PlanOut": PLAN, "_Keep": keep_all, "_Verdict": {"verdict": "bad", "feedback": "more"}}
    )
    state = await run(settings, llm, retriever, graph="premise", max_rounds=2, min_gain=-1.0)
    assert state.budget.rounds == 2 and node_path(state)[-1] == "aggregate"
    assert state.results  # the best so far
    # The judge said bad once; the second round is the last the budget allows: not judged.
    assert [r.verdict for r in state.rounds] == ["bad", None] and llm.calls["_Verdict"] == 1
    # A loop cut short by a budget still says so (the judge consulted, no round left).
    llm = FakeLLM(
        structured={"_PlanOut": PLAN, "_Keep": keep_all, "_Verdict": {"verdict": "bad", "feedback": "more"}}
    )
    state = await run(settings, llm, retriever, graph="premise", max_rounds=2, max_llm_calls=4, min_gain=-1.0)
    assert state.budget.exhausted in {"llm_calls", "rounds"} and node_path(state)[-1] == "aggregate"


async def test_the_last_round_the_budget_allows_is_not_judged(settings, retriever) -> None:
    # One round (the cpu plan of srr): the judge's verdict could change nothing, so it is not asked.
    llm = FakeLLM(
        structured={"_PlanOut": PLAN, "_Keep": keep_all, "_Verdict": {"verdict": "bad"}},
        answer=lambda m: "Shakespeare wrote it [1].",
    )
    state = await run(settings, llm, retriever, max_rounds=1)
    assert "_Verdict" not in llm.calls and state.rounds[0].verdict is None
    assert node_path(state)[3:5] == ["reflect", "aggregate"] and state.outcome == "answered"
    assert state.budget.exhausted is None and len(state.udcg_history) == 1


async def test_judge_failure_counts_as_bad_and_filter_failure_keeps_top(settings, retriever) -> None:
    llm = FakeLLM(
        structured={"_PlanOut": PLAN, "_Keep": keep_all, "_Verdict": {"verdict": "good"}},
        fail={"_Verdict": {1}, "_Keep": {1, 2}},
    )
    state = await run(settings, llm, retriever, graph="premise", max_rounds=3, min_gain=-1.0)
    assert state.rounds[0].verdict == "bad"
    assert any(e.startswith("reflect: counted as bad") for e in state.errors)
    assert any(e.startswith("filter: 2 of") for e in state.errors)
    assert state.rounds[1].verdict == "good" and len(state.rounds) == 2


async def test_sketch_failure_searches_the_question(settings, retriever) -> None:
    llm = FakeLLM(structured={"_Keep": keep_all, "_Verdict": {"verdict": "good"}}, fail={"_PlanOut": {1}})
    llm.structured_scripts["_PlanOut"] = PLAN
    state = await run(settings, llm, retriever, graph="premise")
    assert list(state.rounds[0].hits) == ["Who wrote Hamlet?"]
    assert any(e.startswith("sketch:") for e in state.errors)


def test_aggregate_formula_and_round_udcg() -> None:
    a, b, c = passage("a", "x"), passage("b", "y"), passage("c", "z")
    rnd = SearchRound(plan=Plan(), hits={"q1": [a, b, c], "q2": [b, c]}, kept={"q1": ["a", "b"], "q2": ["b"]})
    fused = fused_hits(rnd)
    # b: 1/log2(3) + 1/log2(2) = 1.6309; a: 1/log2(2) = 1
    assert [p.id for p in fused] == ["b", "a"]
    assert abs(fused[0].score - (1 / 1.5849625 + 1.0)) < 1e-6
    # The packer's objective over the 2 distinct kept hits (the filter's label: relevant), 8
    # uniform slots: sigmoid(2/8). Not the keep-rate: more dropped hits do not lower it ...
    import math

    assert abs(round_udcg(rnd) - 1 / (1 + math.exp(-2 / 8))) < 1e-9
    noisy = rnd.model_copy(update={"hits": {"q1": [a, b, c, passage("d", "w")], "q2": [b, c]}})
    assert round_udcg(noisy) == round_udcg(rnd)
    # ... and a round that finds one more relevant hit is worth more, though its keep-rate fell.
    more = SearchRound(
        plan=Plan(),
        hits={"q1": [a, b, c], "q2": [b, c], "q3": [passage("d", "w"), passage("e", "v")]},
        kept={"q1": ["a", "b"], "q2": ["b"], "q3": ["d"]},
    )
    assert round_udcg(more) > round_udcg(rnd)
