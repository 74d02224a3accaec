"""The runtime context of a graph run: the clients nodes use, never stored in state.

LangGraph passes it to every node as ``runtime.context`` (its ``Runtime`` pattern), so the
state stays plain data and checkpoints stay trivial.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from agentrag.types import Passage, Usage

if TYPE_CHECKING:
    from agentrag.embed import Embedder
    from agentrag.llm import Completion, Message, TokenDistribution, YesNo
    from agentrag.rerank import Reranker
    from agentrag.settings import Settings

__all__ = ["ChatModel", "PromptSet", "Retriever", "RunContext"]

M = TypeVar("M", bound=BaseModel)


@runtime_checkable
class ChatModel(Protocol):
    """What nodes need from an LLM. :class:`agentrag.llm.LLMClient` is the real one."""

    usage: Usage

    async def chat(
        self, messages: Sequence[Message], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> Completion:
        """A chat completion."""
        ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
    ) -> AsyncIterator[str]:
        """Stream a chat completion as text deltas."""
        ...

    async def structured(
        self,
        messages: Sequence[Message],
        output: type[M],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> M:
        """A schema-constrained answer parsed into ``output``."""
        ...

    async def first_token(
        self, messages: Sequence[Message] | None = None, *, prompt: str | None = None, top_logprobs: int = 20
    ) -> TokenDistribution:
        """Distribution of the first generated token."""
        ...

    async def yes_no(
        self,
        messages: Sequence[Message] | None = None,
        *,
        prompt: str | None = None,
        yes: Sequence[str] = ("yes",),
        no: Sequence[str] = ("no",),
        exact: bool = False,
    ) -> YesNo:
        """P(yes) at the first token."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """Anything that answers a query with passages (a knowledge base, another index, a search tool)."""

    async def asearch(
        self, query: str, k: int | None = None, mode: Any = None, filters: Any = None
    ) -> list[Passage]:
        """The top-``k`` passages for ``query`` (``mode``: hybrid / bm25 / dense; ``filters``: metadata)."""
        ...


@dataclass(frozen=True)
class PromptSet:
    """The prompt templates of a run: a user's folders first, then the shipped ``prompts/``."""

    dirs: tuple[Path, ...] = ()
    """Folders searched before the defaults (see :func:`agentrag.prompts.prompt_dirs`)."""

    def messages(self, name: str, **variables: Any) -> list[dict[str, str]]:
        """Render the chat template ``name`` into messages."""
        from agentrag.prompts import load_prompt

        return load_prompt(name, dirs=self.dirs).messages(**variables)


@dataclass(kw_only=True)
class RunContext:
    """Clients for one run (or one agent; cheap to copy per run with a fresh usage meter)."""

    settings: Settings
    """Settings in force."""

    llm: ChatModel
    """The generator (answers, plans, judgements)."""

    retriever: Retriever | None = None
    """The knowledge base searched by ``retrieve``."""

    reranker: Reranker | None = None
    """Scores passages (``rerank``, ``refine``)."""

    embedder: Embedder | None = None
    """For embedding-based strip scoring."""

    retrievers: dict[str, Retriever] = field(default_factory=dict)
    """Other named sources for corrective retrieval (``correct`` with ``source: name``)."""

    usage: Usage = field(default_factory=Usage)
    """The meter the LLM clients of this run add to (budgets read it)."""

    prompts: PromptSet = field(default_factory=PromptSet)
    """Prompt templates (the shipped ones, or a user folder that overrides them)."""

    extras: dict[str, Any] = field(default_factory=dict)
    """Room for user nodes' own clients."""
