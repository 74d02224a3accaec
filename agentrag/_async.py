"""Sync wrappers over async code without nest_asyncio.

Coroutines submitted from synchronous code run on one long-lived event loop in a daemon thread.
One loop for the whole process means clients that cache per-loop resources (HTTP sessions,
semaphores) keep working across calls, and calling from inside a running loop (a notebook, an
async framework) does not raise "event loop is already running".
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop  # noqa: PLW0603 - one loop per process, created on first use
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="agentrag-loop", daemon=True)
            thread.start()
            if _loop is None:
                atexit.register(shutdown)
            _loop = loop
        return _loop


def shutdown(timeout: float = 5.0) -> None:
    """Close the HTTP pools opened on the background loop, then stop the loop.

    Runs at interpreter exit (registered with :mod:`atexit` when the loop starts) and from the
    CLI's exit path. Closing the pools while the loop still runs means no client is left for
    a ``__del__`` at interpreter shutdown, when imports (and so their cleanup) can deadlock.
    Safe to call twice; waits at most ``timeout`` seconds.
    """
    global _loop
    with _lock:
        loop, _loop = _loop, None
    if loop is None or loop.is_closed():
        return

    async def close_clients() -> None:
        from agentrag.llm.transport import aclose_shared

        await aclose_shared()

    if loop.is_running():
        future = asyncio.run_coroutine_threadsafe(close_clients(), loop)
        try:
            future.result(timeout=timeout)
        except Exception:  # best effort at exit (a timeout included)
            future.cancel()
        loop.call_soon_threadsafe(loop.stop)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code and return its result.

    Raises:
        RuntimeError: When called from the background loop itself (that would deadlock; call
            the async API with ``await`` there).
    """
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("run_sync() called from agentrag's own event loop; await the coroutine instead")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
