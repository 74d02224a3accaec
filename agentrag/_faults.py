"""Crash points: named places where a test can have the process kill itself (SIGKILL).

``AGENTRAG_CRASH_AT=name`` (or ``name:N``, the N-th time it is reached) makes
:func:`crashpoint` send SIGKILL to its own process there, the way a power cut or the OOM killer
would end it. The kill-and-resume tests use it to hit each window of the two-phase write
exactly; without the variable a crash point is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["CRASH_ENV", "crashpoint"]

CRASH_ENV = "AGENTRAG_CRASH_AT"

_lock = threading.Lock()
_hits: dict[str, int] = {}


def crashpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``AGENTRAG_CRASH_AT`` names this point (and count)."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        reached = _hits[name] >= int(nth or 1)
    if reached:
        os.kill(os.getpid(), signal.SIGKILL)
