"""Registries of nodes and routers that graph specs may name.

A node is an async function ``(state, runtime, params) -> partial update`` registered with a
pydantic model for its parameters; the graph spec's ``params`` are validated against it at
load time. A router reads the state and returns one of its declared outcomes; a spec must map
every outcome, so a route can never fall off the graph.

Example:
    >>> from pydantic import BaseModel
    >>> class EchoParams(BaseModel):
    ...     word: str = "hi"
    >>> @node("echo_example", params=EchoParams, uses_llm=False)
    ... async def echo(state, runtime, params):
    ...     return {"answer": params.word}
    >>> get_node("echo_example").params is EchoParams
    True
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict

from agentrag.errors import GraphSpecError

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import RunContext
    from agentrag.state import RAGState

__all__ = [
    "NoParams",
    "NodeDef",
    "NodeFn",
    "RouterDef",
    "get_node",
    "get_router",
    "node",
    "nodes",
    "router",
    "routers",
]


class NoParams(BaseModel):
    """For nodes without parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


NodeFn = Callable[["RAGState", "Runtime[RunContext]", Any], Awaitable[dict[str, Any]]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class NodeDef:
    """A registered node."""

    name: str
    """Name used in graph specs."""

    fn: NodeFn
    """The node function."""

    params: type[BaseModel]
    """Pydantic model of its parameters."""

    uses_llm: bool
    """Whether it calls an LLM (budget checks apply)."""

    retrieves: bool
    """Whether it searches a knowledge base (the request's filters apply; the spec validator
    checks that a filtered graph filters every such node)."""

    doc: str
    """First line of the function's docstring."""


@dataclass(frozen=True, kw_only=True)
class RouterDef:
    """A registered router."""

    name: str
    """Name used in graph specs."""

    fn: Callable[[RAGState], str]
    """Reads the state, returns an outcome."""

    outcomes: tuple[str, ...]
    """Every outcome it can return."""

    doc: str
    """First line of the function's docstring."""


_NODES: dict[str, NodeDef] = {}
_ROUTERS: dict[str, RouterDef] = {}


def node(
    name: str, *, params: type[BaseModel] = NoParams, uses_llm: bool = True, retrieves: bool = False
) -> Callable[[F], F]:
    """Register an async node function under ``name``.

    Args:
        name: Name used in graph specs.
        params: Pydantic model of its parameters.
        uses_llm: It calls a model (the budget is checked before it runs).
        retrieves: It searches a knowledge base (it must apply ``state.filters``).
    """

    def register(fn: F) -> F:
        if name in _NODES and _NODES[name].fn is not fn:
            raise GraphSpecError(f"node {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _NODES[name] = NodeDef(
            name=name,
            fn=fn,
            params=params,
            uses_llm=uses_llm,
            retrieves=retrieves,
            doc=doc[0] if doc else "",
        )
        return fn

    return register


def router(name: str, *, outcomes: tuple[str, ...]) -> Callable[[F], F]:
    """Register a router function under ``name`` with its possible outcomes."""

    def register(fn: F) -> F:
        doc = (fn.__doc__ or "").strip().splitlines()
        _ROUTERS[name] = RouterDef(name=name, fn=fn, outcomes=outcomes, doc=doc[0] if doc else "")
        return fn

    return register


def _load_builtins() -> None:
    # Importing the node modules registers them; done lazily so importing the registry (for
    # the CLI's `graph list`) stays cheap.
    import agentrag.nodes  # noqa: F401


def nodes() -> dict[str, NodeDef]:
    """All registered nodes (built-ins included)."""
    _load_builtins()
    return dict(_NODES)


def routers() -> dict[str, RouterDef]:
    """All registered routers (built-ins included)."""
    _load_builtins()
    return dict(_ROUTERS)


def get_node(name: str) -> NodeDef:
    """The node registered as ``name``.

    Raises:
        GraphSpecError: No such node (the message lists the known ones).
    """
    _load_builtins()
    try:
        return _NODES[name]
    except KeyError:
        raise GraphSpecError(f"unknown node {name!r}; known: {', '.join(sorted(_NODES))}") from None


def get_router(name: str) -> RouterDef:
    """The router registered as ``name``.

    Raises:
        GraphSpecError: No such router.
    """
    _load_builtins()
    try:
        return _ROUTERS[name]
    except KeyError:
        raise GraphSpecError(f"unknown router {name!r}; known: {', '.join(sorted(_ROUTERS))}") from None
