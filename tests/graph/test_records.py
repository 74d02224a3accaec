"""Append-only records: ``trace``, ``dropped`` and ``errors`` go through LangGraph reducers.

A node returns only its new records; one that returns an empty or partial list (as a node that
rebuilt the list from scratch would) cannot erase what earlier nodes recorded. A new run on a
thread starts its records afresh instead of appending to the previous turn's.
"""

from __future__ import annotations

from typing import Any

from agentrag.graph import RunContext, load_graph
from agentrag.graph.registry import node
from agentrag.graph.spec import parse_spec
from agentrag.state import RAGState, append_records
from agentrag.types import Dropped, TraceEvent, Usage


@node("_records_first", uses_llm=False)
async def _first(state: RAGState, runtime: Any, params: Any) -> dict[str, Any]:
    return {
        "dropped": [Dropped(passage_id="p1", stage="first", reason="first")],
        "errors": ["first: fell back"],
        "trace": [TraceEvent(node="first", message="custom")],
    }


@node("_records_eraser", uses_llm=False)
async def _eraser(state: RAGState, runtime: Any, params: Any) -> dict[str, Any]:
    # What a node that "replaces the list" would return: a partial list without the earlier
    # records. Under the reducer this only adds its one record.
    return {
        "dropped": [Dropped(passage_id="p2", stage="eraser", reason="second")],
        "errors": [],
        "trace": [],
    }


SPEC = """
name: records
entry: first
nodes:
  first: {node: _records_first}
  eraser: {node: _records_eraser}
edges:
  - first -> eraser
  - eraser -> END
"""


def test_reducer_appends_and_resets() -> None:
    assert append_records([1, 2], [3]) == [1, 2, 3]
    assert append_records([1, 2], []) == [1, 2]
    assert append_records([1, 2], {"__reset__": [9]}) == [9]


async def test_a_partial_list_cannot_erase_earlier_records(settings) -> None:
    graph = load_graph(parse_spec(SPEC))
    ctx = RunContext(settings=settings, llm=None, usage=Usage())  # type: ignore[arg-type]
    state = await graph.ainvoke(RAGState(question="q"), context=ctx)
    assert [d.passage_id for d in state.dropped] == ["p1", "p2"]
    assert state.errors == ["first: fell back"]
    # first's own event, then start/end of each node, in order.
    assert [(e.node, e.event) for e in state.trace] == [
        ("first", "info"),
        ("first", "start"),
        ("first", "end"),
        ("eraser", "start"),
        ("eraser", "end"),
    ]


async def test_a_new_turn_on_a_thread_starts_its_records_afresh(settings) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    graph = load_graph(parse_spec(SPEC), checkpointer=InMemorySaver())
    ctx = RunContext(settings=settings, llm=None, usage=Usage())  # type: ignore[arg-type]
    await graph.ainvoke(RAGState(question="q1"), context=ctx, thread_id="t")
    second = await graph.ainvoke(RAGState(question="q2"), context=ctx, thread_id="t")
    assert [d.passage_id for d in second.dropped] == ["p1", "p2"]
    assert second.errors == ["first: fell back"] and len(second.trace) == 5
