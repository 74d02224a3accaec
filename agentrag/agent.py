"""The Python agent API: ask questions of your documents with your own models.

Example:
    >>> from agentrag import Agent
    >>> agent = Agent.from_settings(graph="crag")                  # doctest: +SKIP
    >>> agent.ingest(["docs/"])                                     # doctest: +SKIP
    >>> answer = agent.ask("What does the warranty cover?")         # doctest: +SKIP
    >>> print(answer.text)                                          # doctest: +SKIP
    The warranty covers manufacturing defects for two years [1].
    >>> answer.citations[0].source, answer.citations[0].quote       # doctest: +SKIP
    ('docs/warranty.md', 'Manufacturing defects are covered for two years ...')

Async, with streaming::

    async for event in agent.astream("What does the warranty cover?", thread_id="t1"):
        if event.kind == "token":
            print(event.text, end="", flush=True)
        elif event.kind == "answer":
            print(event.answer.citations)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentrag._async import run_sync
from agentrag.errors import ConfigError
from agentrag.settings import Settings
from agentrag.state import ChatTurn, RAGState
from agentrag.types import Answer, Passage, Usage

if TYPE_CHECKING:
    from agentrag.embed import Embedder
    from agentrag.graph import Graph, GraphSpec, Retriever, RunContext
    from agentrag.graph.context import ChatModel
    from agentrag.rerank import Reranker

__all__ = ["Agent", "AgentEvent"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class AgentEvent:
    """One item of :meth:`Agent.astream`."""

    kind: Literal["node", "token", "answer"]
    """``node``: a node started/ended; ``token``: answer text as generated; ``answer``: the end."""

    node: str = ""
    """Node id (``node`` and ``token`` events)."""

    event: str = ""
    """``start`` or ``end`` (``node`` events)."""

    text: str = ""
    """The token, or the node's one-line summary."""

    data: dict[str, Any] | None = None
    """Node details: seconds, LLM calls, tokens, counts."""

    answer: Answer | None = None
    """The final answer (``answer`` event)."""


class Agent:
    """A RAG agent: a graph over a knowledge base, a generator, and a reranker.

    Build it with :meth:`from_settings` (everything from ``agentrag.toml`` / environment) or
    from explicit parts.

    Args:
        settings: Settings in force (data directory, budgets, endpoints).
        knowledge_base: What ``retrieve`` searches: a :class:`~agentrag.kb.KnowledgeBase` or any
            :class:`~agentrag.graph.Retriever`.
        graph: A shipped graph name (``rag``, ``crag``, ``srr``, ``premise``), a spec file, or a
            :class:`~agentrag.graph.GraphSpec`.
        llm: The generator. Default: the settings' generator endpoint.
        reranker: Scores passages. Default: from settings (``[rerank]``).
        embedder: For embedding-based strip scoring (default: the knowledge base's).
        retrievers: Extra named sources for corrective retrieval.
        checkpoint: ``sqlite`` (threads survive restarts; under ``data_dir``), ``memory`` or
            ``none``.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        knowledge_base: Retriever | None = None,
        graph: str | Path | GraphSpec = "rag",
        llm: ChatModel | None = None,
        reranker: Reranker | None = None,
        embedder: Embedder | None = None,
        retrievers: dict[str, Retriever] | None = None,
        checkpoint: Literal["sqlite", "memory", "none"] = "sqlite",
    ) -> None:
        from agentrag import profiles
        from agentrag.graph.spec import GraphSpec, load_spec

        self.settings = settings or Settings.load()
        self.profile = profiles.resolve(self.settings)
        spec = graph if isinstance(graph, GraphSpec) else load_spec(graph)
        # The profile trims the shipped graphs' LLM calls (agentrag.profiles.PLANS).
        self.spec = profiles.apply(spec, self.profile)
        self.knowledge_base = knowledge_base
        self._llm = llm
        self.reranker = reranker
        self.embedder = embedder or getattr(knowledge_base, "embedder", None)
        self.retrievers = dict(retrievers or {})
        self.checkpoint = checkpoint
        # Checkpointers and compiled graphs hold loop-bound resources (aiosqlite); one per loop.
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[Graph, contextlib.AsyncExitStack]
        ] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        kb: str | None = None,
        graph: str | Path | GraphSpec = "rag",
        checkpoint: Literal["sqlite", "memory", "none"] = "sqlite",
        create: bool = True,
    ) -> Agent:
        """An agent over the knowledge base ``kb`` with the models the settings name.

        Nothing heavy loads here: the embedding model on first search, the LLM on first call.
        With ``create=False`` a knowledge base that does not exist raises
        :class:`~agentrag.errors.KBNotFoundError` instead of being created empty (a typo).
        """
        from agentrag.kb import KnowledgeBase
        from agentrag.rerank import reranker_from_settings

        settings = settings or Settings.load()
        knowledge_base = KnowledgeBase.open(settings, kb or settings.kb.default_name, create=create)
        llm = _generator(settings)
        reranker = reranker_from_settings(
            settings, embedder=knowledge_base.embedder, kb_dir=settings.kb_dir(knowledge_base.name)
        )
        return cls(
            settings=settings,
            knowledge_base=knowledge_base,
            graph=graph,
            llm=llm,
            reranker=reranker,
            checkpoint=checkpoint,
        )

    @property
    def llm(self) -> ChatModel:
        """The generator (built from settings on first use)."""
        if self._llm is None:
            self._llm = _generator(self.settings)
        return self._llm

    def with_graph(self, graph: str | Path | GraphSpec) -> Agent:
        """The same parts, another graph (cheap: clients and knowledge base are shared)."""
        return Agent(
            settings=self.settings,
            knowledge_base=self.knowledge_base,
            graph=graph,
            llm=self._llm,
            reranker=self.reranker,
            embedder=self.embedder,
            retrievers=self.retrievers,
            checkpoint=self.checkpoint,
        )

    # ------------------------------------------------------------------ internals

    async def _graph(self) -> Graph:
        from agentrag.graph import load_graph, open_checkpointer

        loop = asyncio.get_running_loop()
        entry = self._per_loop.get(loop)
        if entry is None:
            stack = contextlib.AsyncExitStack()
            saver = None
            if self.checkpoint != "none":
                saver = await stack.enter_async_context(open_checkpointer(self.settings, self.checkpoint))
            entry = (load_graph(self.spec, checkpointer=saver), stack)
            self._per_loop[loop] = entry
        return entry[0]

    def _context(self, usage: Usage) -> RunContext:
        from agentrag.graph import RunContext

        return RunContext(
            settings=self.settings,
            llm=self.llm,
            retriever=self.knowledge_base,
            reranker=self.reranker,
            embedder=self.embedder,
            retrievers=self.retrievers,
            usage=usage,
        )

    async def _initial_state(
        self, graph: Graph, question: str, thread_id: str | None, budget: dict[str, Any] | None
    ) -> RAGState:
        if not question or not question.strip():
            raise ConfigError("the question is empty", hint="ask something")
        limits = graph.budget(self.settings)
        if budget:
            limits = limits.model_copy(update=budget)
        history: list[ChatTurn] = []
        if thread_id is not None and self.checkpoint != "none":
            previous, _ = await graph.aget_state(thread_id)
            if previous is not None:
                history = list(previous.history)
                if previous.answer:
                    history.append(ChatTurn(question=previous.question, answer=previous.answer))
        return RAGState(question=question.strip(), history=history, budget=limits)

    # ------------------------------------------------------------------ asking

    async def astream(
        self,
        question: str | None,
        *,
        thread_id: str | None = None,
        budget: dict[str, Any] | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """Ask, yielding node events and answer tokens as they happen, then the answer.

        Args:
            question: The question. ``None`` resumes ``thread_id``'s interrupted run.
            thread_id: Conversation id: earlier turns of the thread are context for this one,
                and the run is checkpointed under it. Default: a fresh id.
            budget: Overrides of this run's limits, e.g. ``{"max_rounds": 2}``.
        """
        from agentrag.llm import usage_scope

        graph = await self._graph()
        thread = thread_id or uuid.uuid4().hex
        state = None if question is None else await self._initial_state(graph, question, thread, budget)
        run_usage = Usage()
        t0 = time.perf_counter()
        final: RAGState | None = None
        with usage_scope(run_usage):
            async for event in graph.astream(
                state,
                context=self._context(run_usage),
                thread_id=thread if self.checkpoint != "none" else None,
            ):
                if event.kind == "state":
                    final = event.state
                else:
                    yield AgentEvent(
                        kind="token" if event.kind == "token" else "node",
                        node=event.node,
                        event=event.event,
                        text=event.text,
                        data=event.data,
                    )
        assert final is not None
        yield AgentEvent(
            kind="answer", answer=self._answer(final, run_usage, time.perf_counter() - t0, graph.name)
        )

    def _answer(self, state: RAGState, usage: Usage, seconds: float, graph: str) -> Answer:
        return Answer(
            question=state.question,
            text=state.answer,
            outcome=state.outcome or ("answered" if state.answer else "failed"),
            citations=state.citations,
            evidence=state.context or state.evidence,
            dropped=state.dropped,
            udcg=state.udcg,
            usage=usage.snapshot(),
            timings={**state.timings, "total": round(seconds, 4)},
            trace=state.trace,
            graph=graph,
            errors=state.errors,
        )

    async def aask(
        self, question: str, *, thread_id: str | None = None, budget: dict[str, Any] | None = None
    ) -> Answer:
        """Ask a question; the answer comes with citations, evidence, UDCG, usage and a trace.

        Example:
            >>> answer = await agent.aask("Who wrote Hamlet?")   # doctest: +SKIP
            >>> answer.outcome, answer.citations[0].quote        # doctest: +SKIP
            ('answered', 'Hamlet is a tragedy written by William Shakespeare')
        """
        answer: Answer | None = None
        async for event in self.astream(question, thread_id=thread_id, budget=budget):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer

    def ask(
        self, question: str, *, thread_id: str | None = None, budget: dict[str, Any] | None = None
    ) -> Answer:
        """Blocking :meth:`aask`."""
        return run_sync(self.aask(question, thread_id=thread_id, budget=budget))

    async def aresume(self, thread_id: str) -> Answer:
        """Finish a run that was interrupted (crash, cancellation) from its last checkpoint."""
        answer: Answer | None = None
        async for event in self.astream(None, thread_id=thread_id):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer

    async def asearch(self, query: str, *, budget: dict[str, Any] | None = None) -> list[Passage]:
        """Run a search graph (e.g. ``premise``) and return its ranked results.

        For graphs that end without an answer; the results are the fused hits (or the
        candidates when the graph produced no fused list).
        """
        from agentrag.llm import usage_scope

        graph = await self._graph()
        state = await self._initial_state(graph, query, None, budget)
        run_usage = Usage()
        with usage_scope(run_usage):
            final = await graph.ainvoke(state, context=self._context(run_usage))
        return final.results or final.candidates

    def search(self, query: str, *, budget: dict[str, Any] | None = None) -> list[Passage]:
        """Blocking :meth:`asearch`."""
        return run_sync(self.asearch(query, budget=budget))

    # ------------------------------------------------------------------ threads

    async def ahistory(self, thread_id: str) -> list[ChatTurn]:
        """The turns of a conversation so far."""
        graph = await self._graph()
        state, _ = await graph.aget_state(thread_id)
        if state is None:
            return []
        turns = list(state.history)
        if state.answer:
            turns.append(ChatTurn(question=state.question, answer=state.answer))
        return turns

    # ------------------------------------------------------------------ knowledge

    def _kb(self) -> Any:
        if self.knowledge_base is None or not hasattr(self.knowledge_base, "ingest"):
            raise ConfigError(
                "this agent has no knowledge base to ingest into",
                hint="build it with Agent.from_settings() or pass knowledge_base=KnowledgeBase.open(...)",
            )
        return self.knowledge_base

    async def aingest(self, paths: Sequence[str | Path], **options: Any) -> Any:
        """Add files or folders to the knowledge base (see ``KnowledgeBase.aingest``)."""
        return await self._kb().aingest(paths, **options)

    def ingest(self, paths: Sequence[str | Path], **options: Any) -> Any:
        """Blocking :meth:`aingest`."""
        return run_sync(self.aingest(paths, **options))

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close checkpointers opened on the current loop."""
        loop = asyncio.get_running_loop()
        entry = self._per_loop.pop(loop, None)
        if entry is not None:
            await entry[1].aclose()

    def close(self) -> None:
        """Close everything opened by the blocking API and the knowledge base."""
        run_sync(self.aclose())
        closer = getattr(self.knowledge_base, "close", None)
        if callable(closer):
            closer()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _generator(settings: Settings) -> ChatModel:
    from agentrag.llm import LLMClient

    return LLMClient.from_settings(settings, "generator")
