"""Compile a :class:`~agentrag.graph.spec.GraphSpec` into a LangGraph ``StateGraph`` and run it.

Every node is wrapped so that, whatever it does, the run keeps its books: a trace event at
start and end, seconds per node, LLM calls and tokens added to the budget counters, and
progress events on LangGraph's custom stream (``{"kind": "node", ...}``; the ``generate`` node
adds ``{"kind": "token", ...}``).

Example:
    >>> from agentrag.graph import load_graph
    >>> graph = load_graph("rag")
    >>> print(graph.mermaid().splitlines()[0])
    graph TD
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# Imported for real (not under TYPE_CHECKING): LangGraph reads node signatures' type hints to
# decide what to inject, so `Runtime` must resolve at run time.
from langgraph.runtime import Runtime

from agentrag.graph.context import RunContext
from agentrag.graph.registry import get_node, get_router
from agentrag.graph.spec import END, GraphSpec, load_spec
from agentrag.state import BudgetState, RAGState
from agentrag.types import TraceEvent

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from agentrag.settings import Settings

__all__ = ["Graph", "GraphEvent", "load_graph", "open_checkpointer"]


@dataclass(frozen=True, kw_only=True)
class GraphEvent:
    """One item of a streamed run."""

    kind: Literal["node", "token", "state"]
    """``node``: a node started or ended; ``token``: answer text; ``state``: the final state."""

    node: str = ""
    """Node id (for ``node`` and ``token``)."""

    event: str = ""
    """``start`` / ``end`` for nodes."""

    text: str = ""
    """Token text, or the node's summary line."""

    data: dict[str, Any] | None = None
    """Extra details (elapsed seconds, counts)."""

    state: RAGState | None = None
    """The final state (``kind == "state"``)."""


def _wrap(node_id: str, spec: GraphSpec) -> Any:
    definition = get_node(spec.node_name(node_id))
    params = definition.params.model_validate(spec.nodes[node_id].params)

    async def run(state: RAGState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = runtime.context
        writer = runtime.stream_writer
        calls0, tokens0 = ctx.usage.calls, ctx.usage.total_tokens
        t0 = time.perf_counter()
        start = TraceEvent(node=node_id, event="start", elapsed_s=state.budget.elapsed())
        writer({"kind": "node", "node": node_id, "event": "start"})
        update = await definition.fn(state, runtime, params)
        took = time.perf_counter() - t0
        summary = update.pop("_event", {}) or {}
        calls = ctx.usage.calls - calls0
        tokens = ctx.usage.total_tokens - tokens0
        budget: BudgetState = update.get("budget", state.budget)
        budget = budget.model_copy(
            update={"llm_calls": budget.llm_calls + calls, "tokens": budget.tokens + tokens}
        )
        data = {"seconds": round(took, 3), "llm_calls": calls, "tokens": tokens, **summary.get("data", {})}
        end = TraceEvent(
            node=node_id,
            event="end",
            message=summary.get("message", ""),
            elapsed_s=budget.elapsed(),
            data=data,
        )
        timings = dict(state.timings)
        timings[node_id] = round(timings.get(node_id, 0.0) + took, 4)
        writer({"kind": "node", "node": node_id, "event": "end", "text": end.message, "data": data})
        return {
            **update,
            "budget": budget,
            "timings": timings,
            "trace": [*update.get("trace", state.trace), start, end],
        }

    run.__name__ = node_id
    return run


def _route(fn: Any) -> Any:
    # A plain closure: LangGraph inspects a router's type hints, and ours name RAGState only
    # under TYPE_CHECKING.
    def route(state: Any) -> str:
        return str(fn(state))

    return route


class Graph:
    """A compiled graph spec, ready to run.

    Args:
        spec: The validated spec.
        checkpointer: Saves state after every node (resume, threads). None: no persistence.
    """

    def __init__(self, spec: GraphSpec, *, checkpointer: BaseCheckpointSaver[Any] | None = None) -> None:
        from langgraph.graph import END as LG_END
        from langgraph.graph import START, StateGraph

        self.spec = spec
        builder: StateGraph[Any, Any, Any, Any] = StateGraph(RAGState, context_schema=RunContext)
        for node_id in spec.nodes:
            builder.add_node(node_id, _wrap(node_id, spec))
        builder.add_edge(START, spec.entry)
        for a, b in spec.parsed_edges():
            builder.add_edge(a, LG_END if b == END else b)
        for node_id, route in spec.routes.items():
            definition = get_router(route.router)
            mapping: dict[Hashable, str] = {k: (LG_END if v == END else v) for k, v in route.map.items()}
            builder.add_conditional_edges(node_id, _route(definition.fn), mapping)
        self.app = builder.compile(checkpointer=checkpointer, name=spec.name)

    @property
    def name(self) -> str:
        """The graph's name."""
        return self.spec.name

    def budget(self, settings: Settings) -> BudgetState:
        """A fresh budget: settings' defaults, overridden by the spec's ``budgets``."""
        defaults = settings.budgets.model_dump()
        overrides = {k: v for k, v in self.spec.budgets.model_dump().items() if v is not None}
        return BudgetState(**{**defaults, **overrides})

    def recursion_limit(self, budget: BudgetState) -> int:
        """A LangGraph step limit no budget-respecting run can reach.

        Loops end by budget (rounds), so the limit is set above the longest possible run:
        every node once per round, plus slack. Hitting it would mean a bug in a router.
        """
        return (len(self.spec.nodes) + 2) * (budget.max_rounds + 2) + 25

    def _config(self, thread_id: str | None, budget: BudgetState) -> dict[str, Any]:
        config: dict[str, Any] = {"recursion_limit": self.recursion_limit(budget)}
        if thread_id is not None:
            config["configurable"] = {"thread_id": thread_id}
        return config

    async def astream(
        self,
        state: RAGState | None,
        *,
        context: RunContext,
        thread_id: str | None = None,
    ) -> AsyncIterator[GraphEvent]:
        """Run the graph, yielding node events and answer tokens, then the final state.

        Args:
            state: Initial state. None resumes the thread's last checkpoint (after a crash or
                an interruption) from the node that did not finish.
            context: Clients for the run.
            thread_id: Checkpoint thread (needs a checkpointer).
        """
        budget = state.budget if state is not None else BudgetState()
        config = self._config(thread_id, budget)
        payload = state.model_dump() if state is not None else None
        last: Any = None
        stream = self.app.astream(payload, config, context=context, stream_mode=["custom", "values"])  # type: ignore[call-overload]
        async for mode, chunk in stream:
            if mode == "custom" and isinstance(chunk, dict):
                yield GraphEvent(
                    kind=chunk.get("kind", "node"),
                    node=chunk.get("node", ""),
                    event=chunk.get("event", ""),
                    text=chunk.get("text", ""),
                    data=chunk.get("data"),
                )
            elif mode == "values":
                last = chunk
        yield GraphEvent(kind="state", state=RAGState.model_validate(last))

    async def ainvoke(
        self, state: RAGState | None, *, context: RunContext, thread_id: str | None = None
    ) -> RAGState:
        """Run to the end and return the final state (see :meth:`astream`)."""
        final: RAGState | None = None
        async for event in self.astream(state, context=context, thread_id=thread_id):
            if event.kind == "state":
                final = event.state
        assert final is not None
        return final

    async def aget_state(self, thread_id: str) -> tuple[RAGState | None, tuple[str, ...]]:
        """The thread's last checkpointed state and the nodes still to run (empty when done)."""
        snapshot = await self.app.aget_state({"configurable": {"thread_id": thread_id}})
        values = snapshot.values
        return (RAGState.model_validate(values) if values else None), tuple(snapshot.next)

    def mermaid(self) -> str:
        """The graph as Mermaid flowchart text (routes labelled with their outcomes)."""
        lines = ["graph TD", "  START([start])", "  END_([end])"]
        for node_id in self.spec.nodes:
            label = (
                node_id
                if self.spec.node_name(node_id) == node_id
                else f"{node_id}<br/>({self.spec.node_name(node_id)})"
            )
            lines.append(f'  {node_id}["{label}"]')
        lines.append(f"  START --> {self.spec.entry}")
        for a, b in self.spec.parsed_edges():
            lines.append(f"  {a} --> {'END_' if b == END else b}")
        for node_id, route in self.spec.routes.items():
            for outcome, target in route.map.items():
                lines.append(f"  {node_id} -.->|{outcome}| {'END_' if target == END else target}")
        return "\n".join(lines)


def load_graph(
    name_or_path: str | Path | GraphSpec, *, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> Graph:
    """Load and compile a shipped graph (``rag``, ``crag``, ``srr``, ``premise``) or a spec file.

    Raises:
        GraphSpecError: The spec is invalid (every problem, with ``file:line``).
    """
    spec = name_or_path if isinstance(name_or_path, GraphSpec) else load_spec(name_or_path)
    return Graph(spec, checkpointer=checkpointer)


@contextlib.asynccontextmanager
async def open_checkpointer(
    settings: Settings, kind: Literal["sqlite", "memory"] = "sqlite", path: Path | None = None
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """A checkpointer: SQLite under ``data_dir/checkpoints.sqlite`` (default) or in memory."""
    if kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    db = path or settings.data_dir / "checkpoints.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        yield saver
