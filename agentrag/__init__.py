"""agentrag: RAG agents over your own documents and your own models.

The public surface, imported lazily (``import agentrag`` stays cheap; heavy libraries load when
first used)::

    from agentrag import Agent, Settings
    agent = Agent.from_settings()
    answer = agent.ask("What does the warranty cover?")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentrag import _offline

_offline.apply()

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentEvent",
    "AgentragError",
    "Answer",
    "Citation",
    "Evidence",
    "KnowledgeBase",
    "Passage",
    "Settings",
    "__version__",
]

_LAZY = {
    "Agent": "agentrag.agent",
    "AgentEvent": "agentrag.agent",
    "AgentragError": "agentrag.errors",
    "Answer": "agentrag.types",
    "Citation": "agentrag.types",
    "Evidence": "agentrag.types",
    "KnowledgeBase": "agentrag.kb",
    "Passage": "agentrag.types",
    "Settings": "agentrag.settings",
}

if TYPE_CHECKING:
    from agentrag.agent import Agent, AgentEvent
    from agentrag.errors import AgentragError
    from agentrag.kb import KnowledgeBase
    from agentrag.settings import Settings
    from agentrag.types import Answer, Citation, Evidence, Passage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentrag' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
