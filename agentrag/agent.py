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
from agentrag.errors import AgentragError, ConfigError, InvalidArgumentError
from agentrag.settings import Settings
from agentrag.state import ChatTurn, RAGState
from agentrag.types import Answer, Outcome, Passage, Usage

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agentrag.embed import Embedder
    from agentrag.graph import Graph, GraphSpec, Retriever, RunContext
    from agentrag.graph.context import ChatModel
    from agentrag.rerank import Reranker
    from agentrag.stores.filters import Filter, FilterLike

__all__ = ["Agent", "AgentEvent", "check_filters", "check_question", "check_thread_id"]

log = logging.getLogger(__name__)

_MAX_QUESTION_CHARS = 20_000
_CALL_LIMITS = ("llm_calls", "tokens", "wall_time")


def check_question(question: object, *, what: str = "question") -> str:
    """The question, stripped; a typed error for anything that is not a non-empty string.

    Raises:
        InvalidArgumentError: ``None``, a non-string, an empty or blank string, or an
            unreasonably long one.
    """
    if not isinstance(question, str):
        raise InvalidArgumentError(
            f"the {what} must be a string, not {type(question).__name__}",
            hint='e.g. agent.ask("What does the warranty cover?")',
            value=question,
        )
    text = question.strip()
    if not text:
        raise InvalidArgumentError(f"the {what} is empty", hint="ask something")
    if len(text) > _MAX_QUESTION_CHARS:
        raise InvalidArgumentError(
            f"the {what} is {len(text):,} characters long (at most {_MAX_QUESTION_CHARS:,})",
            hint="ask a question; put long documents in the knowledge base (agentrag ingest)",
        )
    return text


def check_thread_id(thread_id: object) -> str | None:
    """A thread id: None or a non-empty string of at most 200 characters.

    Raises:
        InvalidArgumentError: Anything else.
    """
    if thread_id is None:
        return None
    if not isinstance(thread_id, str) or not thread_id.strip() or len(thread_id) > 200:
        raise InvalidArgumentError(
            f"thread_id must be a non-empty string (at most 200 characters), not {thread_id!r:.60}",
            hint='e.g. thread_id="support-42", or leave it out for a one-off question',
        )
    return thread_id


def check_filters(filters: object) -> Filter | None:
    """A request's metadata filter as a typed :data:`~agentrag.stores.filters.Filter`.

    Raises:
        InvalidArgumentError: Not a filter or a ``{field: value | [values]}`` mapping.
    """
    if filters is None:
        return None
    from pydantic import ValidationError

    from agentrag.stores.filters import to_filter

    try:
        return to_filter(filters)  # type: ignore[arg-type]
    except (TypeError, ValueError, ValidationError, AgentragError) as exc:
        raise InvalidArgumentError(
            f"invalid filters {filters!r:.120}: {str(exc).splitlines()[0][:200]}",
            hint='a mapping of metadata field to value or list of values, e.g. {"tenant": "a"}, '
            "or agentrag.stores.filters.Eq / In / Range combined with & and |",
        ) from None


def outcome_of(state: RAGState) -> Outcome:
    """How a run ended, from its final state.

    A node that fell back after a failed model call leaves a line in ``errors``: the run is
    then ``degraded`` (an abstention or an answer built around a failure is never reported as
    a clean one). No answer at all is ``budget_exhausted`` when a limit stopped it, else
    ``failed``.
    """
    if state.outcome is None or not state.answer.strip():
        # No answer. A failure explains it before a limit does; a loop that ran out of rounds
        # still reaches generate, so only the call limits can leave a run without an answer.
        if not state.errors and state.budget.exhausted in _CALL_LIMITS:
            return "budget_exhausted"
        return "failed"
    if state.errors and state.outcome in ("answered", "abstained", "budget_exhausted"):
        return "degraded"
    return state.outcome


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
        # One-shot asks (no thread_id) run without a checkpointer: nobody can resume or continue
        # a random thread, and writing each to checkpoints.sqlite grew it without bound.
        self._one_shot: Graph | None = None
        self._holding: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

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

    async def _graph(self, *, saved: bool = True) -> Graph:
        from agentrag.graph import load_graph, open_checkpointer
        from agentrag.llm.transport import shared_transport

        loop = asyncio.get_running_loop()
        if loop not in self._holding:
            # This agent uses the loop's shared pool until aclose(): the pool stays open while
            # any agent on the loop still holds it (their calls may be in flight).
            shared_transport().hold()
            self._holding.add(loop)
        if not saved:
            if self._one_shot is None:
                self._one_shot = load_graph(self.spec, checkpointer=None)
            return self._one_shot
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
        self,
        graph: Graph,
        question: str,
        thread_id: str | None,
        budget: Mapping[str, Any] | None,
        filters: Filter | None = None,
    ) -> RAGState:
        question = check_question(question)
        limits = graph.budget(self.settings, budget)
        history: list[ChatTurn] = []
        if thread_id is not None and self.checkpoint != "none":
            previous, _ = await graph.aget_state(thread_id)
            if previous is not None:
                history = list(previous.history)
                if previous.answer:
                    history.append(ChatTurn(question=previous.question, answer=previous.answer))
        return RAGState(question=question, history=history, budget=limits, filters=filters)

    # ------------------------------------------------------------------ asking

    async def astream(
        self,
        question: str | None,
        *,
        thread_id: str | None = None,
        budget: Mapping[str, Any] | None = None,
        filters: FilterLike | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """Ask, yielding node events and answer tokens as they happen, then the answer.

        Args:
            question: The question. ``None`` resumes ``thread_id``'s interrupted run.
            thread_id: Conversation id: earlier turns of the thread are context for this one,
                and the run is checkpointed under it. Default: a fresh id.
            budget: Overrides of this run's limits, e.g. ``{"max_rounds": 2}`` (keys of
                :class:`~agentrag.settings.Budget`).
            filters: Metadata filter every retrieval of the run applies (e.g.
                ``{"tenant": "a"}``): nothing outside it reaches a prompt or the answer.

        Raises:
            InvalidArgumentError: A bad question, thread id, budget or filter (before any work).
        """
        from agentrag._deadline import deadline_scope
        from agentrag.llm import usage_scope

        if question is None and thread_id is None:
            raise InvalidArgumentError(
                "question is None and there is no thread to resume",
                hint="pass a question, or thread_id= of an interrupted run to resume it",
            )
        if question is not None:
            check_question(question)
        check_thread_id(thread_id)
        flt = check_filters(filters)
        one_shot = thread_id is None and question is not None
        graph = await self._graph(saved=not one_shot)
        graph.limits(self.settings, budget)  # validate before any work
        thread = thread_id or uuid.uuid4().hex
        state = (
            None
            if question is None
            else await self._initial_state(graph, question, None if one_shot else thread, budget, flt)
        )
        run_usage = Usage()
        t0 = time.perf_counter()
        final: RAGState | None = None
        error: AgentragError | None = None
        # max_wall_s bounds the whole run: every model call inside clamps its timeout and retries to it.
        wall_s = state.budget.max_wall_s if state is not None else self.settings.budgets.max_wall_s
        with usage_scope(run_usage), deadline_scope(wall_s):
            async for event in graph.astream(
                state,
                context=self._context(run_usage),
                thread_id=thread if self.checkpoint != "none" and not one_shot else None,
            ):
                if event.kind == "state":
                    final, error = event.state, event.error
                else:
                    yield AgentEvent(
                        kind="token" if event.kind == "token" else "node",
                        node=event.node,
                        event=event.event,
                        text=event.text,
                        data=event.data,
                    )
        assert final is not None
        if error is not None and not _model_failure(error):
            raise error
        yield AgentEvent(
            kind="answer",
            answer=self._answer(final, run_usage, time.perf_counter() - t0, graph.name, error),
        )

    def _answer(
        self,
        state: RAGState,
        usage: Usage,
        seconds: float,
        graph: str,
        error: AgentragError | None = None,
    ) -> Answer:
        errors = list(state.errors)
        outcome = outcome_of(state)
        if error is not None:
            # The run stopped on a failed model call no node could fall back from.
            errors.append(f"{error.code}: {error.message}" + (f" (fix: {error.hint})" if error.hint else ""))
            outcome = "budget_exhausted" if error.code.startswith("budget.") else "failed"
        return Answer(
            question=state.question,
            text=state.answer if error is None else "",
            outcome=outcome,
            citations=state.citations,
            evidence=state.context or state.evidence,
            dropped=state.dropped,
            udcg=state.udcg,
            usage=usage.snapshot(),
            timings={**state.timings, "total": round(seconds, 4)},
            trace=state.trace,
            graph=graph,
            errors=errors,
        )

    async def aask(
        self,
        question: str,
        *,
        thread_id: str | None = None,
        budget: Mapping[str, Any] | None = None,
        filters: FilterLike | None = None,
    ) -> Answer:
        """Ask a question; the answer comes with citations, evidence, UDCG, usage and a trace.

        A failed model call never raises mid-run and is never reported as an abstention: a
        node that fell back makes the outcome ``degraded``, no answer at all ``failed``, and
        ``Answer.errors`` says what failed and how to fix it. Arguments are checked first
        (see :meth:`astream`).

        Example:
            >>> answer = await agent.aask("Who wrote Hamlet?")   # doctest: +SKIP
            >>> answer.outcome, answer.citations[0].quote        # doctest: +SKIP
            ('answered', 'Hamlet is a tragedy written by William Shakespeare')
        """
        answer: Answer | None = None
        if question is None:
            raise InvalidArgumentError(
                "the question must be a string, not None", hint="use aresume(thread_id) to finish a run"
            )
        async for event in self.astream(question, thread_id=thread_id, budget=budget, filters=filters):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer

    def ask(
        self,
        question: str,
        *,
        thread_id: str | None = None,
        budget: Mapping[str, Any] | None = None,
        filters: FilterLike | None = None,
    ) -> Answer:
        """Blocking :meth:`aask`."""
        return run_sync(self.aask(question, thread_id=thread_id, budget=budget, filters=filters))

    async def aresume(self, thread_id: str) -> Answer:
        """Finish a run that was interrupted (crash, cancellation) from its last checkpoint."""
        if check_thread_id(thread_id) is None:
            raise InvalidArgumentError("aresume needs the thread_id of the run to finish")
        answer: Answer | None = None
        async for event in self.astream(None, thread_id=thread_id):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer

    async def asearch(
        self,
        query: str,
        *,
        budget: Mapping[str, Any] | None = None,
        filters: FilterLike | None = None,
    ) -> list[Passage]:
        """Run a search graph (e.g. ``premise``) and return its ranked results.

        For graphs that end without an answer; the results are the fused hits (or the
        candidates when the graph produced no fused list).

        Raises:
            InvalidArgumentError: A bad query, budget or filter.
        """
        from agentrag.llm import usage_scope

        check_question(query, what="query")
        flt = check_filters(filters)
        graph = await self._graph()
        state = await self._initial_state(graph, query, None, budget, flt)
        run_usage = Usage()
        with usage_scope(run_usage):
            final = await graph.ainvoke(state, context=self._context(run_usage))
        return final.results or final.candidates

    def search(
        self,
        query: str,
        *,
        budget: Mapping[str, Any] | None = None,
        filters: FilterLike | None = None,
    ) -> list[Passage]:
        """Blocking :meth:`asearch`."""
        return run_sync(self.asearch(query, budget=budget, filters=filters))

    # ------------------------------------------------------------------ threads

    async def ahistory(self, thread_id: str) -> list[ChatTurn]:
        """The turns of a conversation so far."""
        if check_thread_id(thread_id) is None:
            raise InvalidArgumentError("ahistory needs a thread_id")
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
        """Close checkpointers, and the shared HTTP pool of the current loop if no other agent holds it.

        Agents on one loop share the pool: closing one while another's call is in flight would
        cut that call (an eval with ``--concurrency 2`` lost answers mid-stream this way).
        """
        from agentrag.llm.transport import aclose_shared, shared_transport

        loop = asyncio.get_running_loop()
        entry = self._per_loop.pop(loop, None)
        if entry is not None:
            await entry[1].aclose()
        transport = shared_transport()
        if loop in self._holding:
            self._holding.discard(loop)
            if not await transport.release():
                return  # other agents on this loop still use the pool
        elif transport.holders():
            return
        await aclose_shared()  # reopened on the next call

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


def _model_failure(error: AgentragError) -> bool:
    """Whether a run reports ``error`` as its outcome instead of raising.

    Model, embedding and budget failures become the outcome; bad input or configuration raises.
    """
    from agentrag.errors import EmbeddingError, LLMError, RerankError

    return isinstance(error, LLMError | EmbeddingError | RerankError) or error.code.startswith("budget.")


def _generator(settings: Settings) -> ChatModel:
    from agentrag.llm import LLMClient

    return LLMClient.from_settings(settings, "generator")
