"""The spec validator rejects a graph that could retrieve unfiltered when any retrieval is filtered."""

from __future__ import annotations

import pytest

from agentrag.errors import GraphSpecError
from agentrag.graph.spec import list_specs, parse_spec


def test_spec_validator_rejects_a_graph_that_could_retrieve_unfiltered() -> None:
    spec = """
name: leaky
entry: retrieve
nodes:
  retrieve: {params: {filters: {tenant: a}}}
  rerank: {}
  gate: {node: crag_gate}
  correct: {}
  pack: {node: pack_context}
  generate: {}
edges:
  - retrieve -> rerank
  - rerank -> gate
  - correct -> rerank
  - pack -> generate
  - generate -> END
routes:
  gate: {router: crag_action, map: {correct: pack, ambiguous: correct, incorrect: correct, exhausted: pack}}
"""
    with pytest.raises(GraphSpecError, match="'correct' retrieves without filters"):
        parse_spec(spec)
    fixed = spec.replace("  correct: {}", "  correct: {params: {filters: {tenant: a}}}")
    assert parse_spec(fixed).name == "leaky"


def test_shipped_graphs_pass_and_mark_their_retrieving_nodes() -> None:
    from agentrag.graph.registry import get_node

    retrieving = {
        spec.name: sorted(n for n, e in spec.nodes.items() if get_node(e.node or n).retrieves)
        for spec in list_specs()
    }
    assert retrieving == {
        "crag": ["correct", "retrieve"],
        "premise": ["search"],
        "rag": ["retrieve"],
        "srr": ["search"],
    }


def test_conflicting_filters_are_rejected() -> None:
    spec = """
name: two
entry: sketch
nodes:
  sketch: {}
  search: {params: {filters: {tenant: a}}}
  filter: {}
  reflect: {}
  aggregate: {}
  retrieve: {params: {filters: {tenant: b}}}
  generate: {}
edges:
  - sketch -> search
  - search -> filter
  - filter -> reflect
  - aggregate -> retrieve
  - retrieve -> generate
  - generate -> END
routes:
  reflect: {router: reflect_verdict, map: {good: aggregate, bad: sketch, exhausted: aggregate}}
"""
    with pytest.raises(GraphSpecError, match="retrieve outside the first scope"):
        parse_spec(spec)
