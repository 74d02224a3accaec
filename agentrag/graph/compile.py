"""Compile a :class:`~agentrag.graph.spec.GraphSpec` into a LangGraph ``StateGraph`` and run it.

Every node is wrapped so that, whatever it does, the run keeps its books: a trace event at
start and end, seconds per node, model calls (answered and failed attempts) and tokens added
to the budget counters, and progress events on LangGraph's custom stream
(``{"kind": "node", ...}``; the ``generate`` node adds ``{"kind": "token", ...}``).

The budget is checked before every node that calls a model: when calls, tokens or wall time
are used up, the node is skipped (a ``budget`` trace event says which limit) and
``budget.exhausted`` names the limit, so the run ends ``budget_exhausted`` instead of
overrunning. LangGraph's recursion limit is derived from ``max_rounds`` so that a
budget-respecting run never reaches it.

Example:
    >>> from agentrag.graph import load_graph
    >>> graph = load_graph("rag")
    >>> print(graph.mermaid().splitlines()[0])
    graph TD
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# Imported for real (not under TYPE_CHECKING): LangGraph reads node signatures' type hints to
# decide what to inject, so `Runtime` must resolve at run time.
from langgraph.runtime import Runtime

from agentrag.errors import AgentragError, BudgetExhaustedError
from agentrag.graph.context import RunContext
from agentrag.graph.registry import get_node, get_router
from agentrag.graph.spec import END, GraphSpec, load_spec
from agentrag.state import RESET, BudgetState, RAGState
from agentrag.types import TraceEvent

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from agentrag.settings import Budget, Settings

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
    """The final state (``kind == "state"``): the last one reached when the run failed."""

    error: AgentragError | None = None
    """Why the run stopped early (``kind == "state"``), or None when it reached its end."""


def _wrap(node_id: str, spec: GraphSpec) -> Any:
    definition = get_node(spec.node_name(node_id))
    params = definition.params.model_validate(spec.nodes[node_id].params)

    async def run(state: RAGState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = runtime.context
        writer = runtime.stream_writer
        if definition.uses_llm:
            stop = state.budget.over_calls()
            if stop is not None:
                return _skipped(node_id, state, stop, writer)
        calls0, tokens0 = _calls(ctx), ctx.usage.total_tokens
        t0 = time.perf_counter()
        start = TraceEvent(node=node_id, event="start", elapsed_s=state.budget.elapsed())
        writer({"kind": "node", "node": node_id, "event": "start"})
        update = await definition.fn(state, runtime, params)
        took = time.perf_counter() - t0
        summary = update.pop("_event", {}) or {}
        calls = _calls(ctx) - calls0
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
        # Append-only records: a node returns only its new ones (the reducer appends them).
        writer({"kind": "node", "node": node_id, "event": "end", "text": end.message, "data": data})
        return {
            **update,
            "budget": budget,
            "timings": timings,
            # Append-only (a reducer adds these to the state's trace): only this node's events.
            "trace": [*update.get("trace", []), start, end],
        }

    run.__name__ = node_id
    return run


def _calls(ctx: RunContext) -> int:
    # Failed attempts count too: a failing server must not get unlimited retries.
    return ctx.usage.calls + ctx.usage.failed_calls


def _skipped(node_id: str, state: RAGState, stop: str, writer: Any) -> dict[str, Any]:
    b = state.budget
    used = {
        "llm_calls": f"{b.llm_calls}/{b.max_llm_calls} model calls",
        "tokens": f"{b.tokens}/{b.max_tokens} tokens",
        "wall_time": f"{b.elapsed():.1f}/{b.max_wall_s:g} s",
    }[stop]
    message = f"skipped: budget used up ({used})"
    writer({"kind": "node", "node": node_id, "event": "budget", "text": message})
    return {
        "budget": b.model_copy(update={"exhausted": b.exhausted or stop}),
        "trace": [
            TraceEvent(
                node=node_id, event="budget", message=message, elapsed_s=b.elapsed(), data={"limit": stop}
            )
        ],
    }


def _plain(values: Any) -> Any:
    # The input payload carries {RESET: [...]} markers; a state read back never does.
    if isinstance(values, dict):
        return {k: (v[RESET] if isinstance(v, dict) and RESET in v else v) for k, v in values.items()}
    return values


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

    def limits(self, settings: Settings, overrides: Mapping[str, Any] | None = None) -> Budget:
        """This graph's limits: settings' ``[budgets]``, the spec's ``budgets``, ``overrides``.

        Raises:
            InvalidArgumentError: An unknown key or a bad value in any of them.
        """
        limits = settings.budgets.override(self.spec.budgets, where=f"budgets of graph {self.name!r}")
        return limits.override(overrides, where="budget")

    def budget(self, settings: Settings, overrides: Mapping[str, Any] | None = None) -> BudgetState:
        """A fresh budget (counters at zero) under :meth:`limits`."""
        return BudgetState.start(self.limits(settings, overrides))

    def recursion_limit(self, budget: Budget) -> int:
        """A LangGraph step limit no budget-respecting run can reach.

        Loops end by budget (rounds), so the limit is set above the longest possible run:
        every node once per round, plus slack. Hitting it would mean a bug in a router.
        """
        return (len(self.spec.nodes) + 2) * (int(budget.max_rounds) + 2) + 25

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
        from langgraph.errors import GraphRecursionError

        budget = state.budget if state is not None else None
        if budget is None and thread_id is not None:
            previous, _ = await self.aget_state(thread_id)
            budget = previous.budget if previous is not None else None
        config = self._config(thread_id, budget or BudgetState())
        payload: dict[str, Any] | None = None
        if state is not None:
            payload = state.model_dump()
            # A new run on a thread starts its records afresh (the reducer would append them
            # to the previous turn's).
            for name in ("trace", "dropped", "errors"):
                payload[name] = {RESET: payload[name]}
        last: Any = payload
        error: AgentragError | None = None
        stream = self.app.astream(payload, config, context=context, stream_mode=["custom", "values"])  # type: ignore[call-overload]
        try:
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
        except AgentragError as exc:
            error = exc
        except GraphRecursionError:
            # Should be unreachable (the limit is derived from max_rounds); never let it out raw.
            error = BudgetExhaustedError(
                f"graph {self.name!r} exceeded its step limit ({config['recursion_limit']} steps)",
                hint="a router kept looping; lower max_rounds or check the graph's routes",
            )
        if last is None:
            if error is not None:
                raise error
            raise BudgetExhaustedError(f"graph {self.name!r} produced no state")  # pragma: no cover
        final = RAGState.model_validate(_plain(last))
        yield GraphEvent(kind="state", state=final, error=error)

    async def ainvoke(
        self, state: RAGState | None, *, context: RunContext, thread_id: str | None = None
    ) -> RAGState:
        """Run to the end and return the final state (see :meth:`astream`).

        Raises:
            AgentragError: The run stopped on an error (a model call that failed after its
                retries and that no node could fall back from).
        """
        final: RAGState | None = None
        async for event in self.astream(state, context=context, thread_id=thread_id):
            if event.kind == "state":
                if event.error is not None:
                    raise event.error
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
