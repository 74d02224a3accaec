"""Small helpers shared by the built-in nodes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import Retriever, RunContext
    from agentrag.state import RAGState
    from agentrag.stores.filters import Filter

log = logging.getLogger("agentrag.nodes")


def event(message: str, **data: Any) -> dict[str, Any]:
    """The summary a node returns under ``_event`` (the wrapper puts it in the trace)."""
    return {"_event": {"message": message, "data": data}}


def error_line(node: str, what: str, exc: BaseException) -> str:
    """One ``errors`` line for a fallback: ``node: what (ErrorType: first line of the error)``."""
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{node}: {what} ({type(exc).__name__}: {detail})"


def degraded(state: RAGState, node: str, what: str, exc: BaseException) -> list[str]:
    """Log a fallback and return the new ``errors`` record for it.

    ``errors`` is append-only (a LangGraph reducer adds what a node returns), so this returns
    only the new line, never the earlier ones.
    """
    line = error_line(node, what, exc)
    log.warning(line)
    return [line]


def scope(state: RAGState, own: Any = None) -> Filter | None:
    """The metadata filter a retrieving node applies (None: unfiltered).

    The request's (``state.filters``) and, when the node's params carry one too, both (AND).
    """
    from agentrag.stores.filters import to_filter

    mine = to_filter(own) if own else None
    if mine is not None and state.filters is not None:
        return mine & state.filters
    return mine if mine is not None else state.filters


def retriever(runtime: Runtime[RunContext], source: str | None = None) -> Retriever:
    """The knowledge base (or a named extra source) of this run."""
    from agentrag.errors import RetrievalError

    ctx = runtime.context
    if source:
        if source not in ctx.retrievers:
            raise RetrievalError(
                f"no retrieval source named {source!r}",
                hint=f"configured sources: {', '.join(ctx.retrievers) or 'none'}",
            )
        return ctx.retrievers[source]
    if ctx.retriever is None:
        raise RetrievalError(
            "this graph needs a knowledge base", hint="build the Agent with a knowledge base"
        )
    return ctx.retriever


def approx_tokens(text: str) -> int:
    """A tokenizer-free token estimate (~4 characters per token for English BPE vocabularies)."""
    return max(1, (len(text) + 3) // 4)
