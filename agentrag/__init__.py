"""agentrag: RAG agent orchestration over local models."""

from __future__ import annotations

from agentrag import _offline

_offline.apply()

__version__ = "0.1.0"
