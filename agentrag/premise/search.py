"""Premise search over a premise knowledge base: LeanSearch v2's standard and reasoning modes.

* **standard**: hybrid retrieval (BM25 + dense, fused) over the declarations; with a reranker,
  ``candidates`` hits are retrieved and reordered by it (LeanSearch v2 reranks the ANN top
  50-200 with a yes/no LLM reranker). The default reranker is the one ``[rerank]`` names, with
  evidence generation off (a premise hit needs a score, not a rewrite).
* **reasoning**: the ``premise`` graph (``graphs/premise.yaml``: sketch -> search -> filter ->
  reflect, at most four rounds, then rank fusion of the final round) through
  :meth:`agentrag.agent.Agent.asearch`, on the local generator.

* **HyDE** (standard mode, ``hyde=`` or ``[premise] hyde``): the generator writes the Lean
  declaration a (natural-language) query describes; the searcher retrieves with the query and
  with that hypothesis concurrently and fuses the two rankings by reciprocal rank
  (:mod:`agentrag.premise.hyde`). A failed generation leaves the query's own ranking and an
  error in :attr:`PremiseResult.errors`.

Hits are declarations: a name retrieved twice (the same full name declared in two files, or
by two chunks) counts once, at its best position.

Example:
    >>> from agentrag.kb import KnowledgeBase
    >>> from agentrag.settings import Settings
    >>> settings = Settings.load()
    >>> kb = KnowledgeBase.open(settings, "mathlib")                          # doctest: +SKIP
    >>> searcher = PremiseSearcher(kb, settings=settings)                     # doctest: +SKIP
    >>> for hit in searcher.search("a prime number is at least two", k=3):    # doctest: +SKIP
    ...     print(hit.rank, hit.name, f"{hit.module}:{hit.line}")
    1 Nat.Prime.two_le Mathlib.Data.Nat.Prime.Defs:80
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentrag._async import run_sync
from agentrag.errors import ConfigError, LLMError
from agentrag.premise.hyde import HydeMode, hyde_applies, hypothesize

if TYPE_CHECKING:
    from agentrag.agent import Agent
    from agentrag.graph.context import ChatModel
    from agentrag.kb import KnowledgeBase
    from agentrag.rerank import Reranker
    from agentrag.settings import Settings
    from agentrag.stores.filters import FilterLike
    from agentrag.types import Passage

__all__ = ["PremiseHit", "PremiseMode", "PremiseResult", "PremiseSearcher", "premise_hits"]

log = logging.getLogger(__name__)

PremiseMode = Literal["standard", "reasoning"]


class PremiseHit(BaseModel):
    """One retrieved declaration."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    rank: int = Field(ge=1)
    """1-based position in the result list."""

    name: str
    """Full Lean name (``Nat.Prime.two_le``)."""

    kind: str = ""
    """Declaration kind (``theorem``, ``def``, ``instance``, ``structure``, ``field``, ...)."""

    module: str = ""
    """Lean module (``Mathlib.Data.Nat.Prime.Defs``)."""

    path: str = ""
    """Source path relative to the indexed tree's root."""

    line: int = 0
    """Line of the declaration keyword (1-based)."""

    signature: str = ""
    """Binders and type."""

    score: float = 0.0
    """The score the list is ordered by (the last stage's)."""

    scores: dict[str, float] = Field(default_factory=dict)
    """Score per stage (``bm25``, ``dense``, ``convex``/``rrf``, ``rerank``, ``aggregate``)."""

    text: str = ""
    """The indexed text (header, name words, docstring, signature)."""

    id: str = ""
    """Chunk id in the knowledge base."""

    @classmethod
    def from_passage(cls, passage: Passage, rank: int) -> PremiseHit:
        """The hit a retrieved premise chunk stands for."""
        meta = passage.metadata
        name = str(meta.get("name") or passage.source.rsplit("#", 1)[-1])
        return cls(
            rank=rank,
            name=name,
            kind=str(meta.get("kind", "")),
            module=str(meta.get("module", "")),
            path=str(meta.get("path", "")),
            line=int(meta.get("decl_line", 0) or 0),
            signature=str(meta.get("signature", "")),
            score=passage.score,
            scores=passage.scores.as_dict(),
            text=passage.text,
            id=passage.id,
        )


class PremiseResult(BaseModel):
    """A search's hits and how they were found."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    hits: list[PremiseHit] = Field(default_factory=list)
    """The declarations, best first."""

    hyde: str = ""
    """The hypothetical declaration searched with (empty: HyDE did not run or failed)."""

    errors: list[str] = Field(default_factory=list)
    """Steps that failed and were skipped (the hits are then those of a reduced search)."""

    @property
    def degraded(self) -> bool:
        """A step failed and the search fell back."""
        return bool(self.errors)


def _minmax(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    return [(v - lo) / (hi - lo) if hi > lo else 0.0 for v in values]


def blend(retrieved: Sequence[Passage], reranked: Sequence[Passage], weight: float) -> list[Passage]:
    """The reranked passages ordered by ``weight * rerank + (1 - weight) * retrieval`` score.

    Both scores are min-max normalised over the candidates; ties keep the retrieval order.
    ``weight`` 1 keeps the reranker's order (its passages are returned as they are).

    Example:
        >>> from agentrag.types import Passage
        >>> got = [Passage(id=i, text=i, source=i, score=s) for i, s in (("a", 0.9), ("b", 0.5), ("c", 0.1))]
        >>> by_llm = [p.model_copy(update={"score": s}) for p, s in zip(got[::-1], (0.9, 0.3, 0.2))]
        >>> [p.id for p in blend(got, by_llm, 1.0)], [p.id for p in blend(got, by_llm, 0.5)]
        (['c', 'b', 'a'], ['a', 'c', 'b'])
    """
    if weight >= 1.0 or not reranked:
        return list(reranked)
    position = {p.id: i for i, p in enumerate(retrieved)}
    base = _minmax([p.score for p in retrieved])
    by_id = {p.id: base[i] for i, p in enumerate(retrieved)}
    model = _minmax([p.score for p in reranked])
    mixed = [weight * m + (1 - weight) * by_id.get(p.id, 0.0) for p, m in zip(reranked, model, strict=True)]
    order = sorted(range(len(reranked)), key=lambda i: (-mixed[i], position.get(reranked[i].id, i)))
    return [reranked[i].model_copy(update={"score": mixed[i]}) for i in order]


def premise_hits(passages: Iterable[Passage], k: int | None = None) -> list[PremiseHit]:
    """Passages as declarations, best first, each name once (at its best position), top ``k``."""
    hits: list[PremiseHit] = []
    seen: set[str] = set()
    for p in passages:
        hit = PremiseHit.from_passage(p, rank=len(hits) + 1)
        if hit.name in seen:
            continue
        seen.add(hit.name)
        hits.append(hit)
        if k is not None and len(hits) >= k:
            break
    return hits


class PremiseSearcher:
    """Searches a premise knowledge base in standard or reasoning mode.

    Args:
        kb: A knowledge base built by :func:`agentrag.premise.corpus.index_tree`.
        settings: Settings (retrieval defaults, ``[rerank]``, the generator endpoint, budgets).
        reranker: For ``rerank=True``. Default: ``[rerank]`` settings with evidence generation off.
        llm: The reasoning mode's model. Default: the settings' generator.
        graph: The reasoning graph (a shipped name, a spec file or a ``GraphSpec``).
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        *,
        settings: Settings,
        reranker: Reranker | None = None,
        llm: ChatModel | None = None,
        graph: Any = "premise",
    ) -> None:
        self.kb = kb
        self.settings = settings
        self._reranker = reranker
        self._llm = llm
        self._graph = graph
        self._agent: Agent | None = None
        self._hyde_llm: ChatModel | None = llm

    @property
    def reranker(self) -> Reranker:
        """The reranker for ``rerank=True`` (built from settings on first use).

        ``[rerank] kind`` when set; otherwise the yes/no reranker with ``[premise]
        rerank_prompt`` on the ``[reranker]`` endpoint.

        Raises:
            ConfigError: ``[rerank] kind = "none"`` and no reranker was given.
        """
        if self._reranker is None and "kind" not in self.settings.rerank.model_fields_set:
            # Premises get their own yes/no question unless [rerank] kind says otherwise: the
            # shipped Prism formats put no mass on yes/no with the local instruction models.
            from agentrag.llm import LLMClient
            from agentrag.rerank.yesno import YesNoReranker

            self._reranker = YesNoReranker(
                LLMClient.from_settings(self.settings, "reranker"),
                max_document_tokens=self.settings.rerank.max_document_tokens,
                template=self.settings.premise.rerank_prompt,
            )
        if self._reranker is None:
            from agentrag.rerank import reranker_from_settings

            cfg = self.settings.rerank.model_copy(update={"generate_evidence": False})
            built = reranker_from_settings(
                self.settings.model_copy(update={"rerank": cfg}),
                embedder=self.kb.embedder,
                kb_dir=self.kb.directory,
            )
            if built is None:
                raise ConfigError(
                    "reranking was asked for but [rerank] kind is 'none'",
                    hint="set [rerank] kind (prism, embedding, cross-encoder, vllm), or do not rerank",
                )
            self._reranker = built
        return self._reranker

    @property
    def hyde_llm(self) -> ChatModel:
        """The model that writes HyDE declarations: ``llm`` if given, else the settings' generator."""
        if self._hyde_llm is None:
            from agentrag.llm import LLMClient

            self._hyde_llm = LLMClient.from_settings(self.settings, "generator")
        return self._hyde_llm

    @property
    def agent(self) -> Agent:
        """The reasoning-mode agent (the ``premise`` graph over this knowledge base; no checkpoints)."""
        if self._agent is None:
            from agentrag.agent import Agent

            self._agent = Agent(
                settings=self.settings,
                knowledge_base=self.kb,
                graph=self._graph,
                llm=self._llm,
                checkpoint="none",
            )
        return self._agent

    async def asearch(
        self,
        query: str,
        *,
        k: int = 10,
        mode: PremiseMode = "standard",
        search_mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
        rerank: bool = False,
        candidates: int = 50,
        budget: dict[str, Any] | None = None,
        filters: FilterLike | None = None,
        hyde: HydeMode | None = None,
    ) -> list[PremiseHit]:
        """Find the declarations that match ``query``.

        Args:
            query: A statement, a description, a name or Lean notation.
            k: Declarations to return.
            mode: ``standard`` or ``reasoning``.
            search_mode: Retrieval of the standard mode: ``hybrid``, ``bm25`` or ``dense``.
            rerank: Standard mode: rerank ``candidates`` retrieved hits.
            candidates: Hits handed to the reranker (LeanSearch v2: 50-200).
            budget: Reasoning mode: overrides of the run's limits (``{"max_rounds": 2}``).
            filters: Metadata filter applied to every retrieval (both modes), e.g.
                ``{"module": "Mathlib.Topology.Basic"}``.
            hyde: Standard mode: ``off``, ``natural`` or ``all`` (default ``[premise] hyde``).

        Returns:
            At most ``k`` hits, best first. The reasoning graph returns at most its
            ``aggregate`` node's ``top_k`` (20 in ``premise.yaml``).

        Example:
            >>> hits = await searcher.asearch("Nat.Prime.two_le", k=5, rerank=True)  # doctest: +SKIP
        """
        result = await self.arun(
            query,
            k=k,
            mode=mode,
            search_mode=search_mode,
            rerank=rerank,
            candidates=candidates,
            budget=budget,
            filters=filters,
            hyde=hyde,
        )
        return result.hits

    async def arun(
        self,
        query: str,
        *,
        k: int = 10,
        mode: PremiseMode = "standard",
        search_mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
        rerank: bool = False,
        candidates: int = 50,
        budget: dict[str, Any] | None = None,
        filters: FilterLike | None = None,
        hyde: HydeMode | None = None,
    ) -> PremiseResult:
        """:meth:`asearch`, also saying what HyDE wrote and which steps failed."""
        if mode == "reasoning":
            passages = await self.agent.asearch(query, budget=budget, filters=filters)
            return PremiseResult(hits=premise_hits(passages, k))
        if mode != "standard":
            raise ConfigError(f"unknown premise search mode {mode!r}", hint="use standard or reasoning")
        # Several chunks may share a name; fetch a little more than k so k names survive.
        depth = max(candidates, k) if rerank else k + max(5, k // 2)
        hyde_mode: HydeMode = self.settings.premise.hyde if hyde is None else hyde
        if hyde_mode not in ("off", "natural", "all"):
            raise ConfigError(f"unknown HyDE mode {hyde_mode!r}", hint="use off, natural or all")
        errors: list[str] = []
        hypothesis = ""
        if hyde_applies(hyde_mode, query):
            passages, hypothesis, hyde_passages = await self._hyde_search(
                query, depth=depth, search_mode=search_mode, filters=filters, errors=errors
            )
            if hyde_passages:
                from agentrag.nodes.query import merge_rankings

                passages = merge_rankings([passages, hyde_passages], k=depth)
        else:
            passages = await self.kb.asearch(query, k=depth, mode=search_mode, filters=filters)
        if rerank and passages:
            result = await self.reranker.arerank(query, passages)
            if result.fallback:
                log.warning("reranking failed (%s); kept the retrieval order", result.fallback_reason)
                errors.append(f"rerank: {result.fallback_reason}")
            else:
                passages = blend(passages, result.passages, self.settings.premise.rerank_weight)
        return PremiseResult(hits=premise_hits(passages, k), hyde=hypothesis, errors=errors)

    async def _hyde_search(
        self,
        query: str,
        *,
        depth: int,
        search_mode: Literal["hybrid", "bm25", "dense"],
        filters: FilterLike | None,
        errors: list[str],
    ) -> tuple[list[Passage], str, list[Passage]]:
        """The query's own ranking, the hypothesis, and its ranking (empty when it failed)."""
        import asyncio

        async def guess() -> str:
            try:
                return await hypothesize(self.hyde_llm, query)
            except LLMError as exc:
                # A generator that is down or slow costs the HyDE half of the search, not the search.
                log.warning("HyDE generation failed (%s); searched with the query alone", exc.message)
                errors.append(f"hyde: {exc.message}")
                return ""

        # The query's own retrieval runs while the model writes.
        own, hypothesis = await asyncio.gather(
            self.kb.asearch(query, k=depth, mode=search_mode, filters=filters), guess()
        )
        if not hypothesis:
            if not errors:
                errors.append("hyde: the model wrote no declaration")
            return own, "", []
        theirs = await self.kb.asearch(hypothesis, k=depth, mode=search_mode, filters=filters)
        return own, hypothesis, theirs

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: PremiseMode = "standard",
        search_mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
        rerank: bool = False,
        candidates: int = 50,
        budget: dict[str, Any] | None = None,
        filters: FilterLike | None = None,
        hyde: HydeMode | None = None,
    ) -> list[PremiseHit]:
        """Blocking :meth:`asearch`."""
        return run_sync(
            self.asearch(
                query,
                k=k,
                mode=mode,
                search_mode=search_mode,
                rerank=rerank,
                candidates=candidates,
                budget=budget,
                filters=filters,
                hyde=hyde,
            )
        )

    def run(
        self,
        query: str,
        *,
        k: int = 10,
        mode: PremiseMode = "standard",
        search_mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
        rerank: bool = False,
        candidates: int = 50,
        budget: dict[str, Any] | None = None,
        filters: FilterLike | None = None,
        hyde: HydeMode | None = None,
    ) -> PremiseResult:
        """Blocking :meth:`arun`."""
        return run_sync(
            self.arun(
                query,
                k=k,
                mode=mode,
                search_mode=search_mode,
                rerank=rerank,
                candidates=candidates,
                budget=budget,
                filters=filters,
                hyde=hyde,
            )
        )

    async def aclose(self) -> None:
        """Close what the reasoning agent opened on this loop (the knowledge base stays open)."""
        if self._agent is not None:
            await self._agent.aclose()
