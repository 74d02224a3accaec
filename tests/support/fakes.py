"""Fakes for unit tests of graph logic: an LLM, a retriever and a reranker with scripted behaviour.

They implement the same protocols as the real parts (ChatModel, Retriever, Reranker), so the
nodes under test run their real code paths; only the model's judgement is scripted. The real
parts are exercised against real servers in the integration tests.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from agentrag.errors import LLMServerError
from agentrag.llm import Completion, TokenDistribution, YesNo, current_usage_scope
from agentrag.rerank.base import RerankResult, fallback_result, select
from agentrag.types import Evidence, Passage, StageScores, Usage

Script = dict[str, Any] | Callable[[list[dict[str, str]]], dict[str, Any]]


def _text(messages: Sequence[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


class FakeLLM:
    """Structured answers by output type name; chat answers by a function; failures on demand.

    Args:
        structured: ``{"_Rewrite": {...} or fn(messages) -> dict}``.
        answer: ``fn(messages) -> str`` for chat / stream.
        fail: ``{"_Verdict": {2}}``: the 2nd call for that type raises a server error
            (``"chat"`` for chat/stream).
    """

    def __init__(
        self,
        structured: dict[str, Script] | None = None,
        answer: Callable[[list[dict[str, str]]], str] | None = None,
        fail: dict[str, set[int]] | None = None,
        p_yes: Callable[[str], float] | None = None,
    ) -> None:
        self.structured_scripts = structured or {}
        self.answer = answer or (lambda _m: "The answer is in the evidence [1].")
        self.fail = fail or {}
        self.p_yes = p_yes or (lambda _t: 0.5)
        self.usage = Usage()
        self.calls: dict[str, int] = {}
        self.log: list[tuple[str, list[dict[str, str]]]] = []

    def _count(self, kind: str, messages: Sequence[dict[str, str]]) -> None:
        self.calls[kind] = self.calls.get(kind, 0) + 1
        self.log.append((kind, list(messages)))
        run = current_usage_scope()  # count on the per-run meter too, as the real client does
        if self.calls[kind] in self.fail.get(kind, set()):
            self.usage.add_failure()
            if run is not None:
                run.add_failure()
            raise LLMServerError(f"injected failure of {kind} call {self.calls[kind]}")
        self.usage.add("fake", 10, 5)
        if run is not None and run is not self.usage:
            run.add("fake", 10, 5)

    async def chat(self, messages, *, max_tokens=None, temperature=None, **_: Any) -> Completion:
        self._count("chat", messages)
        return Completion(text=self.answer(list(messages)), finish_reason="stop", model="fake")

    async def stream(self, messages, *, max_tokens=None, temperature=None, **_: Any) -> AsyncIterator[str]:
        self._count("chat", messages)
        text = self.answer(list(messages))
        for i, word in enumerate(text.split(" ")):
            yield word if i == 0 else " " + word

    async def structured(
        self, messages, output: type[BaseModel], *, max_tokens=None, temperature=None
    ) -> Any:
        name = output.__name__
        self._count(name, messages)
        script = self.structured_scripts.get(name)
        if script is None:
            raise AssertionError(f"FakeLLM has no script for {name}")
        data = script(list(messages)) if callable(script) else script
        return output.model_validate(data)

    async def first_token(self, messages=None, *, prompt=None, top_logprobs=20) -> TokenDistribution:
        text = prompt if prompt is not None else _text(messages or [])
        self._count("first_token", messages or [{"role": "user", "content": text}])
        p = min(max(self.p_yes(text), 1e-6), 1 - 1e-6)
        return TokenDistribution(
            token="yes" if p >= 0.5 else "no", top={"yes": math.log(p), "no": math.log(1 - p)}
        )

    async def yes_no(self, messages=None, *, prompt=None, yes=("yes",), no=("no",), exact=False) -> YesNo:
        dist = await self.first_token(messages, prompt=prompt)
        return dist.yes_no(yes, no, exact=exact)


@dataclass
class FakeRetriever:
    """Keyword-overlap search over fixed passages (for logic tests; real retrieval is tested elsewhere)."""

    passages: list[Passage]
    queries: list[str] = field(default_factory=list)
    filters_seen: list[Any] = field(default_factory=list)

    async def asearch(
        self, query: str, *, k: int = 10, mode: str = "hybrid", filters: Any = None
    ) -> list[Passage]:
        from agentrag.stores.filters import to_filter

        self.queries.append(query)
        self.filters_seen.append(filters)
        flt = to_filter(filters)
        words = set(re.findall(r"\w+", query.lower()))
        scored = []
        for p in self.passages:
            if flt is not None and not flt.matches(p.metadata):
                continue
            overlap = len(words & set(re.findall(r"\w+", p.text.lower())))
            if overlap:
                scored.append((overlap, p))
        scored.sort(key=lambda t: -t[0])
        return [
            p.model_copy(update={"score": float(s), "scores": StageScores(bm25=s)}) for s, p in scored[:k]
        ]


class FakeReranker:
    """Relevance from a function of the passage text; evidence = the passage text.

    Follows the :class:`~agentrag.rerank.Reranker` contract: ``passages`` are the kept ones
    (with ``scores.rerank`` and ``relevance``), the rest are ``dropped``. With ``fail=True`` it
    fails the way the real rerankers do: a fallback result (retrieval order, relevance unknown),
    not an exception; ``fail="raise"`` raises instead (a reranker outside that contract).
    """

    def __init__(self, relevance: Callable[[str], float], fail: bool | Literal["raise"] = False) -> None:
        self.relevance = relevance
        self.fail = fail
        self.seen: list[str] = []

    @property
    def name(self) -> str:
        return "fake"

    async def ascore(self, query: str, passages: Sequence[Passage]) -> list[float]:
        if self.fail:
            raise LLMServerError("injected reranker failure")
        self.seen += [p.id for p in passages]
        return [self.relevance(p.text) for p in passages]

    async def arerank(
        self,
        query: str,
        passages: Sequence[Passage],
        *,
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> RerankResult:
        if self.fail is True:
            return fallback_result(
                self.name,
                passages,
                top_n=top_n,
                reason="scoring failed (llm.server: injected reranker failure); kept the retrieval order",
            )
        scores = await self.ascore(query, passages)
        kept, dropped = select(passages, scores, top_n=top_n, threshold=threshold)
        evidence = [
            Evidence(
                passage_id=p.id,
                text=p.text,
                relevance=p.relevance,
                source=p.source,
                title=p.title,
                start=p.start,
                end=p.end,
            )
            for p in kept
        ]
        return RerankResult(passages=kept, evidence=evidence, dropped=dropped, reranker=self.name)


def passage(pid: str, text: str, *, source: str = "doc.txt", start: int = 0, title: str = "") -> Passage:
    return Passage(
        id=pid, text=text, source=source, title=title, start=start, end=start + len(text), doc_id=source
    )
