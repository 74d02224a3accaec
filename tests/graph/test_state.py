"""JSON round-trips of the state and every domain type."""

from __future__ import annotations

from agentrag.state import BudgetState, ChatTurn, Plan, PlanStep, RAGState, SearchRound
from agentrag.stores.filters import Eq
from agentrag.types import Answer, Chunk, Citation, Dropped, Evidence, Passage, Relevance, TraceEvent, Usage


def full_state() -> RAGState:
    p = Passage(
        id="p1",
        text="Hamlet is a play.",
        source="a.txt",
        title="H",
        start=3,
        end=20,
        doc_id="d",
        metadata={"year": 1600, "lang": "en", "ok": True, "w": 0.5},
        score=0.7,
        scores={"bm25": 1.2, "rerank": 0.7},
        relevance=Relevance(p=0.7, origin="reranker"),
        query="q",
    )
    ev = Evidence(
        passage_id="p1",
        text="Hamlet is a play.",
        contribution="names the play",
        relevance=Relevance(p=0.7, origin="calibrated"),
        source="a.txt",
        title="H",
        start=3,
        end=20,
    )
    plan = Plan(
        definition_queries=["a"],
        highlevel_queries=["b", "c"],
        steps=[PlanStep(description="d", reasoning="r", queries=["e"])],
    )
    return RAGState(
        question="Who?",
        history=[ChatTurn(question="q0", answer="a0")],
        filters=Eq(field="tenant", value="a"),
        queries=["Who?", "author"],
        candidates=[p],
        evidence=[ev],
        context=[ev],
        dropped=[Dropped(passage_id="p2", stage="pack_context", reason="distractor", score=0.1)],
        udcg=0.61,
        udcg_history=[0.5, 0.61],
        crag_action="ambiguous",
        rounds=[SearchRound(plan=plan, hits={"a": [p]}, kept={"a": ["p1"]}, verdict="bad", feedback="f")],
        results=[p],
        answer="Shakespeare [1].",
        citations=[
            Citation(marker=1, passage_id="p1", source="a.txt", start=3, end=20, quote="Hamlet is a play.")
        ],
        outcome="answered",
        budget=BudgetState(rounds=1, llm_calls=3, tokens=100, exhausted="no_gain"),
        trace=[TraceEvent(node="rewrite", event="end", message="m", elapsed_s=0.1, data={"n": 1})],
        timings={"rewrite": 0.1},
        errors=["x"],
    )


def test_state_round_trips_through_json() -> None:
    state = full_state()
    again = RAGState.model_validate_json(state.model_dump_json())
    assert again == state


def test_domain_types_round_trip() -> None:
    usage = Usage()
    usage.add("m", 10, 5)
    answer = Answer(
        question="Who?",
        text="S [1].",
        citations=full_state().citations,
        evidence=full_state().evidence,
        dropped=full_state().dropped,
        udcg=0.6,
        usage=usage,
        timings={"total": 1.0},
        trace=full_state().trace,
        graph="rag",
    )
    assert Answer.model_validate_json(answer.model_dump_json()) == answer
    chunk = Chunk(id="c", text="t", source="s", start=0, end=1)
    assert Chunk.model_validate_json(chunk.model_dump_json()) == chunk
    assert Usage.model_validate_json(usage.model_dump_json()).by_model == {
        "m": {"calls": 1, "prompt_tokens": 10, "completion_tokens": 5}
    }


def test_plan_queries_dedupe_and_limit() -> None:
    plan = Plan(
        definition_queries=["A", "a "],
        highlevel_queries=["b"],
        steps=[PlanStep(queries=["c", "B"]), PlanStep(queries=["d"])],
    )
    assert plan.queries() == ["A", "b", "c", "d"]
    assert plan.queries(limit=2) == ["A", "b"]
