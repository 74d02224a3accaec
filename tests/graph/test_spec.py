"""Graph specs: shipped ones load; bad ones fail at load, naming the line and the problem."""

from __future__ import annotations

import textwrap

import pytest

from agentrag.errors import GraphSpecError
from agentrag.graph import list_specs, load_graph, parse_spec

GOOD = """\
name: t
entry: a
nodes:
  a: {node: retrieve, params: {k: 5}}
  b: {node: generate}
edges:
  - a -> b
  - b -> END
"""


def problems(text: str) -> str:
    with pytest.raises(GraphSpecError) as info:
        parse_spec(textwrap.dedent(text), source="t.yaml")
    return str(info.value)


def test_shipped_graphs_load_and_compile() -> None:
    names = {s.name for s in list_specs()}
    assert names == {"rag", "crag", "srr", "premise"}
    for name in names:
        graph = load_graph(name)
        assert graph.mermaid().startswith("graph TD")


def test_good_spec() -> None:
    spec = parse_spec(GOOD)
    assert spec.successors("a") == ["b"]


def test_unknown_node_and_bad_param_name_their_lines() -> None:
    text = GOOD.replace("node: generate", "node: generat").replace("k: 5", "k: -1")
    out = problems(text)
    assert "t.yaml:5: unknown node 'generat'" in out
    assert "t.yaml:4:" in out and "param k" in out


def test_unreachable_node() -> None:
    out = problems(
        GOOD.replace("  b: {node: generate}", "  b: {node: generate}\n  c: {node: rerank}").replace(
            "  - b -> END", "  - b -> END\n  - c -> END"
        )
    )
    assert "node 'c' is unreachable from entry 'a'" in out
    assert "t.yaml:6:" in out


def test_route_outcome_not_mapped() -> None:
    out = problems("""\
    name: t
    entry: gate
    nodes:
      gate: {node: crag_gate}
      gen: {node: generate}
    edges:
      - gen -> END
    routes:
      gate:
        router: crag_action
        map: {correct: gen, ambiguous: gen, incorrect: gen, maybe: gen}
    """)
    assert "outcome 'exhausted' of router 'crag_action' is not mapped" in out
    assert "has no outcome 'maybe'" in out
    assert "t.yaml:11:" in out


def test_missing_end_and_no_exit_loops() -> None:
    out = problems("""\
    name: t
    entry: a
    nodes:
      a: {node: retrieve}
      b: {node: rerank}
    edges:
      - a -> b
      - b -> a
    """)
    assert "no path from 'a' reaches END" in out


def test_edges_and_structure_errors() -> None:
    out = problems("""\
    name: t
    entry: zz
    nodes:
      a: {node: retrieve}
    edges:
      - a -> nowhere
      - a => b
    """)
    assert "entry 'zz' is not a node" in out
    assert "'nowhere' is not a node" in out
    assert "is not of the form 'a -> b'" in out
    assert "t.yaml:7:" in out


def test_two_outgoing_edges_and_no_outgoing() -> None:
    out = problems(GOOD.replace("  - b -> END", "  - a -> END"))
    assert "node 'a' has 2 outgoing edges" in out
    assert "node 'b' has no outgoing edge" in out


def test_yaml_and_schema_errors() -> None:
    assert "not valid YAML" in problems("name: [unclosed\n")
    out = problems("name: t\nentry: a\nnodes: {a: {node: retrieve, parms: {}}}\nedges: ['a -> END']\n")
    assert "parms" in out and "Extra inputs" in out


def test_load_by_path_and_unknown_name(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD)
    assert load_graph(path).name == "t"
    with pytest.raises(GraphSpecError, match="no graph named 'nope'") as info:
        load_graph("nope")
    assert "rag" in info.value.hint
