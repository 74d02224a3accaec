"""One wall-clock deadline per run, seen by every model call made inside it.

:func:`deadline_scope` sets an absolute :func:`time.monotonic` deadline in a context variable, so
asyncio tasks (LangGraph nodes, concurrent reranker calls) and worker threads started with
:func:`asyncio.to_thread` inherit it. The shared transport clamps each attempt's timeout to
:func:`remaining` and stops retrying when the next attempt could not finish in time, so a run
never outlives ``[budgets] max_wall_s`` by more than one scheduling step.

Example:
    >>> from agentrag._deadline import deadline_scope, remaining
    >>> with deadline_scope(None):
    ...     print(remaining())
    None
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

from agentrag.errors import DeadlineExceededError

__all__ = ["check", "clamp", "deadline_scope", "remaining"]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("agentrag_deadline", default=None)


@contextlib.contextmanager
def deadline_scope(seconds: float | None) -> Iterator[float | None]:
    """Run the block under a deadline ``seconds`` from now (``None``: no new limit).

    A nested scope can only tighten the deadline: an inner ``deadline_scope(600)`` inside a run
    with 5 s left still ends at the outer deadline.

    Yields:
        The absolute ``time.monotonic()`` deadline in force, or ``None``.
    """
    outer = _DEADLINE.get()
    deadline = outer
    if seconds is not None:
        mine = time.monotonic() + float(seconds)
        deadline = mine if outer is None else min(outer, mine)
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline (negative once passed), or ``None`` without one."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def check(what: str = "the run") -> None:
    """Raise when the current deadline has passed.

    Raises:
        DeadlineExceededError: No time left (code ``budget.wall_time``, not retryable).
    """
    left = remaining()
    if left is not None and left <= 0:
        raise DeadlineExceededError(f"{what} ran out of wall time (max_wall_s)", over_s=round(-left, 3))


def clamp(timeout: float, what: str = "the run") -> float:
    """``timeout`` cut to the time left; raises like :func:`check` when none is left."""
    check(what)
    left = remaining()
    return timeout if left is None else min(timeout, left)
