"""Graph specs: YAML files that name nodes, their parameters, edges, routes and budgets.

A spec::

    name: rag
    description: rewrite -> hybrid retrieve -> rerank -> pack -> generate
    entry: rewrite
    nodes:
      rewrite: {params: {variants: 1}}      # node name defaults to the id
      retrieve: {params: {k: 30}}
      rank: {node: rerank, params: {top_n: 8}}
      pack: {node: pack_context}
      generate: {}
    edges:
      - rewrite -> retrieve
      - retrieve -> rank
      - rank -> pack
      - pack -> generate
      - generate -> END
    routes: {}                               # node id -> {router, map: {outcome: node id}}
    budgets: {max_rounds: 3}

Loading validates everything a run would otherwise discover late, and names the line:
unknown nodes or routers, bad parameters, edges to undefined nodes, a node with no way out or
two, route outcomes not mapped, unreachable nodes, no path to END.

Example:
    >>> spec = load_spec("rag")
    >>> spec.entry
    'rewrite'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentrag.errors import GraphSpecError
from agentrag.graph.registry import get_node, get_router
from agentrag.resources import graphs_dir

__all__ = [
    "END",
    "GraphSpec",
    "NodeEntry",
    "RouteEntry",
    "list_specs",
    "load_spec",
    "parse_spec",
]

END = "END"
_EDGE = re.compile(r"^\s*([\w.-]+)\s*->\s*([\w.-]+)\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class NodeEntry(_Strict):
    """A node of the graph."""

    node: str | None = None
    """Registered node name (default: the node's id in the spec)."""

    params: dict[str, Any] = Field(default_factory=dict)
    """Parameters, validated against the node's parameter model."""


class RouteEntry(_Strict):
    """Where a node goes next, decided by a router."""

    router: str
    """Registered router name."""

    map: dict[str, str]
    """Router outcome -> next node id (or ``END``)."""


class GraphSpec(_Strict):
    """A validated graph spec."""

    name: str
    """Graph name."""

    description: str = ""
    """One line for `agentrag graph list`."""

    entry: str
    """First node."""

    nodes: dict[str, NodeEntry]
    """Node id -> node."""

    edges: list[str] = Field(default_factory=list)
    """Static edges, ``"a -> b"`` (``b`` may be ``END``)."""

    routes: dict[str, RouteEntry] = Field(default_factory=dict)
    """Node id -> routed edge."""

    budgets: dict[str, Any] = Field(default_factory=dict)
    """Budget limits for runs of this graph (keys of :class:`~agentrag.settings.Budget`; unset
    ones come from settings)."""

    @field_validator("budgets")
    @classmethod
    def _known_limits(cls, value: dict[str, Any]) -> dict[str, Any]:
        from agentrag.errors import InvalidArgumentError
        from agentrag.settings import Budget

        try:
            Budget().override(value, where="budgets")
        except InvalidArgumentError as exc:
            raise ValueError(exc.message) from None
        return value

    source: str = ""
    """File it was loaded from (filled by the loader)."""

    def node_name(self, node_id: str) -> str:
        """Registered node name of a node id."""
        return self.nodes[node_id].node or node_id

    def parsed_edges(self) -> list[tuple[str, str]]:
        """Static edges as (source, target) pairs."""
        out = []
        for edge in self.edges:
            match = _EDGE.match(edge)
            if match is None:  # pragma: no cover - rejected by validation
                raise GraphSpecError(f"bad edge {edge!r}")
            out.append((match.group(1), match.group(2)))
        return out

    def successors(self, node_id: str) -> list[str]:
        """Where a node can go next."""
        if node_id in self.routes:
            return list(dict.fromkeys(self.routes[node_id].map.values()))
        return [b for a, b in self.parsed_edges() if a == node_id]


def _line_map(text: str) -> dict[tuple[Any, ...], int]:
    """YAML path (keys / indices) -> 1-based line, for error messages."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, key.value)
                lines[child] = key.start_mark.line + 1
                walk(value, child)
                lines[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


class _Problems:
    def __init__(self, source: str, lines: dict[tuple[Any, ...], int]) -> None:
        self.source = source
        self.lines = lines
        self.items: list[str] = []

    def add(self, path: tuple[Any, ...], message: str) -> None:
        line = None
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.lines:
                line = self.lines[path[:cut]]
                break
        where = f"{self.source}:{line}" if line is not None else self.source
        self.items.append(f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise GraphSpecError(
                f"invalid graph spec ({len(self.items)} problem(s)):\n  " + "\n  ".join(self.items),
                problems=self.items,
            )


def parse_spec(text: str, *, source: str = "<spec>") -> GraphSpec:
    """Parse and validate a spec from YAML text.

    Raises:
        GraphSpecError: Every problem found, each with ``file:line``.
    """
    try:
        raw = yaml.safe_load(text)
        lines = _line_map(text)
    except yaml.YAMLError as exc:
        raise GraphSpecError(f"{source}: not valid YAML: {exc}") from None
    problems = _Problems(source, lines)
    if not isinstance(raw, dict):
        problems.add((), "a graph spec is a mapping with name, entry, nodes, edges, routes")
        problems.raise_if_any()
    # `nodes: {x: }` (an empty entry) means "node x with defaults".
    if isinstance(raw.get("nodes"), dict):
        raw["nodes"] = {k: (v if v is not None else {}) for k, v in raw["nodes"].items()}
    try:
        spec = GraphSpec.model_validate({**raw, "source": source})
    except ValidationError as exc:
        for err in exc.errors():
            problems.add(tuple(err["loc"]), f"{'.'.join(map(str, err['loc']))}: {err['msg']}")
        problems.raise_if_any()
        raise  # pragma: no cover
    _check(spec, problems)
    problems.raise_if_any()
    return spec


def _check(spec: GraphSpec, problems: _Problems) -> None:
    ids = set(spec.nodes)
    if END in ids:
        problems.add(("nodes", END), f"{END!r} is reserved for the end of the graph")
    if spec.entry not in ids:
        problems.add(("entry",), f"entry {spec.entry!r} is not a node of this graph")

    for node_id, entry in spec.nodes.items():
        name = entry.node or node_id
        try:
            definition = get_node(name)
        except GraphSpecError as exc:
            problems.add(("nodes", node_id), exc.message)
            continue
        try:
            definition.params.model_validate(entry.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ("nodes", node_id, "params", *err["loc"])
                problems.add(
                    loc, f"node {node_id!r} ({name}): param {'.'.join(map(str, err['loc']))}: {err['msg']}"
                )

    outgoing: dict[str, int] = dict.fromkeys(ids, 0)
    for i, edge in enumerate(spec.edges):
        match = _EDGE.match(edge)
        if match is None:
            problems.add(("edges", i), f"edge {edge!r} is not of the form 'a -> b'")
            continue
        a, b = match.groups()
        if a not in ids:
            problems.add(("edges", i), f"edge {edge!r}: {a!r} is not a node")
        if b not in ids and b != END:
            problems.add(("edges", i), f"edge {edge!r}: {b!r} is not a node (or END)")
        if a in outgoing:
            outgoing[a] += 1
            if a in spec.routes:
                problems.add(("edges", i), f"node {a!r} has both a static edge and a route")

    for node_id, route in spec.routes.items():
        if node_id not in ids:
            problems.add(("routes", node_id), f"route from {node_id!r}, which is not a node")
        try:
            router_def = get_router(route.router)
        except GraphSpecError as exc:
            problems.add(("routes", node_id, "router"), exc.message)
            continue
        for outcome in router_def.outcomes:
            if outcome not in route.map:
                problems.add(
                    ("routes", node_id, "map"),
                    f"route from {node_id!r}: outcome {outcome!r} of router {route.router!r} is not mapped",
                )
        for outcome, target in route.map.items():
            if outcome not in router_def.outcomes:
                problems.add(
                    ("routes", node_id, "map", outcome),
                    f"route from {node_id!r}: {route.router!r} has no outcome {outcome!r} "
                    f"(it has {', '.join(router_def.outcomes)})",
                )
            if target not in ids and target != END:
                problems.add(
                    ("routes", node_id, "map", outcome), f"route target {target!r} is not a node (or END)"
                )
        if node_id in outgoing:
            outgoing[node_id] += 1

    for node_id, count in outgoing.items():
        if count == 0:
            problems.add(
                ("nodes", node_id),
                f"node {node_id!r} has no outgoing edge or route (add '{node_id} -> END'?)",
            )
        elif count > 1 and node_id not in spec.routes:
            problems.add(
                ("nodes", node_id), f"node {node_id!r} has {count} outgoing edges; use a route to branch"
            )
    if problems.items:
        return

    _check_filters(spec, problems)

    reachable = set(_walk(spec, spec.entry))
    for node_id in ids - reachable:
        problems.add(("nodes", node_id), f"node {node_id!r} is unreachable from entry {spec.entry!r}")
    if END not in reachable:
        problems.add(("edges",), f"no path from {spec.entry!r} reaches END")
    else:
        for node_id in sorted(reachable - {END}):
            if END not in set(_walk(spec, node_id)):
                problems.add(
                    ("nodes", node_id), f"node {node_id!r} can never reach END (a loop with no exit)"
                )


def _check_filters(spec: GraphSpec, problems: _Problems) -> None:
    """A graph whose retrievals are filtered must filter every one of them.

    The request's filter (``RAGState.filters``) reaches every retrieving node; a filter in a
    node's params only that node. So when any retrieving node carries a filter, each other one
    must carry the same filter, or it could fetch what the first one is scoped away from (e.g.
    corrective retrieval searching every tenant after a tenant-scoped ``retrieve``).
    """
    retrieving: dict[str, Any] = {}
    for node_id, entry in spec.nodes.items():
        definition = get_node(entry.node or node_id)
        if definition.retrieves:
            retrieving[node_id] = entry.params.get("filters")
    scoped = {k: v for k, v in retrieving.items() if v}
    if not scoped:
        return
    first_id, first = next(iter(scoped.items()))
    for node_id, value in retrieving.items():
        if not value:
            problems.add(
                ("nodes", node_id),
                f"node {node_id!r} retrieves without filters while {first_id!r} is filtered "
                f"({first}); give it the same 'filters' param (or pass the filter with the request)",
            )
        elif value != first:
            problems.add(
                ("nodes", node_id, "params", "filters"),
                f"node {node_id!r} filters {value} but {first_id!r} filters {first}; a loop could "
                "retrieve outside the first scope",
            )


def _walk(spec: GraphSpec, start: str) -> Iterator[str]:
    seen = {start}
    stack = [start]
    while stack:
        current = stack.pop()
        yield current
        if current == END:
            continue
        for nxt in spec.successors(current):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)


def _candidates(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise GraphSpecError(f"graph spec file {path} does not exist")
        return path
    found = graphs_dir() / f"{name_or_path}.yaml"
    if not found.is_file():
        known = ", ".join(sorted(p.stem for p in graphs_dir().glob("*.yaml")))
        raise GraphSpecError(
            f"no graph named {name_or_path!r}", hint=f"shipped graphs: {known}; or give a path to a YAML spec"
        )
    return found


def load_spec(name_or_path: str | Path) -> GraphSpec:
    """Load a shipped graph by name (``rag``, ``crag``, ``srr``, ``premise``) or a spec file by path.

    Raises:
        GraphSpecError: Not found, or invalid (every problem, with ``file:line``).
    """
    path = _candidates(name_or_path)
    return parse_spec(path.read_text(), source=str(path))


def list_specs() -> list[GraphSpec]:
    """Every shipped graph."""
    return [load_spec(p) for p in sorted(graphs_dir().glob("*.yaml"))]
