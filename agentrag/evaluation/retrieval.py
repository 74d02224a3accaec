"""Retrieval evaluation on a BEIR folder: configurations side by side, resumable.

The corpus is ingested into a knowledge base named after the folder (``beir-<folder>-<hash>``); a
rerun finds its documents unchanged and embeds nothing. Each configuration ranks every query:

- ``bm25``, ``dense``, ``hybrid`` (the knowledge base's fusion, ``[retrieval] fusion``);
- ``hybrid+prf``: the hybrid list, its head reranked by :class:`EmbeddingPRFReranker`;
- ``hybrid+prism``: the head reranked by the Prism LLM reranker (``[reranker]`` endpoint; slow
  on CPU, so its head is shorter by default);
- ``hybrid+cross-encoder``: the head reranked by a local cross-encoder (needs a model path).

Chunks are collapsed to documents by their BEIR ``_id`` (a document's best chunk stands for
it); the top ``depth`` (default 100) documents are kept per query and scored by trec_eval
through :mod:`agentrag.scoring.metrics`: nDCG@10, Recall@10, Recall@100, MRR and MAP (plus
nDCG@k and Recall@k for another ``k``).

Example:
    >>> data = read_beir("/work/shared/data/scifact").limited(50)        # doctest: +SKIP
    >>> kb, _ = open_beir_kb(settings, data)                               # doctest: +SKIP
    >>> systems = build_systems(["bm25", "hybrid"], kb, settings)          # doctest: +SKIP
    >>> report = run_sync(arun_retrieval(data, systems, out_dir=Path("runs/scifact")))  # doctest: +SKIP
    >>> report.rows[1].metrics["ndcg@10"]                                  # doctest: +SKIP
    0.69
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agentrag.errors import ConfigError
from agentrag.evaluation.report import EvalReport, ReportRow, write_reports
from agentrag.evaluation.runner import Job, JobRecord, arun_jobs, file_hash, fingerprint

if TYPE_CHECKING:
    from agentrag.evaluation.data import BeirData
    from agentrag.kb import IngestProgress, IngestReport, KnowledgeBase
    from agentrag.rerank.base import Reranker
    from agentrag.settings import Settings
    from agentrag.types import Passage

__all__ = [
    "CONFIGS",
    "DEFAULT_CONFIGS",
    "KBSystem",
    "RetrievalSystem",
    "arun_retrieval",
    "build_systems",
    "doc_id",
    "measures_for",
    "open_beir_kb",
]

CONFIGS = ("bm25", "dense", "hybrid", "hybrid+prf", "hybrid+prism", "hybrid+cross-encoder")
"""Configuration names ``--config`` accepts."""

DEFAULT_CONFIGS = ("bm25", "dense", "hybrid", "hybrid+prf")
"""What runs when none is named (the offline ones; Prism needs the LLM server and is slow)."""


class RetrievalSystem(Protocol):
    """Something that ranks a corpus's document ids for a query."""

    name: str
    """Report row name."""

    def describe(self) -> dict[str, Any]:
        """Everything that decides its rankings (hashed into the cache key)."""
        ...

    async def arank(self, query: str, depth: int) -> list[str]:
        """Document ids, best first, at most ``depth``."""
        ...


def doc_id(passage: Passage) -> str:
    """The BEIR ``_id`` of a chunk (the JSONL loader keeps it as ``row_id``, and in the source)."""
    row = passage.metadata.get("row_id")
    return str(row) if row is not None else passage.source.rsplit("#", 1)[-1]


def _dedupe(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


class KBSystem:
    """A retrieval configuration over a knowledge base: a search mode and an optional reranker.

    Args:
        name: Report row name.
        kb: The knowledge base.
        mode: ``bm25``, ``dense`` or ``hybrid``.
        reranker: Reorders the head of the list (None: retrieval order).
        rerank_depth: Chunks reranked from the top; the rest keep their order behind them.
    """

    def __init__(
        self,
        name: str,
        kb: KnowledgeBase,
        mode: Literal["bm25", "dense", "hybrid"],
        *,
        reranker: Reranker | None = None,
        rerank_depth: int = 100,
    ) -> None:
        self.name = name
        self.kb = kb
        self.mode = mode
        self.reranker = reranker
        self.rerank_depth = rerank_depth

    def describe(self) -> dict[str, Any]:
        """Mode, fusion settings, embedder, knowledge base size, reranker."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "kb": self.kb.name,
            "chunks": self.kb.count(),
            "embedder": self.kb.embedder.name,
            "retrieval": self.kb.retrieval.model_dump(mode="json"),
        }
        if self.reranker is not None:
            out["reranker"] = self.reranker.name
            out["rerank_depth"] = self.rerank_depth
        return out

    async def arank(self, query: str, depth: int) -> list[str]:
        """Top ``depth`` documents: search ~1.5x as many chunks (long abstracts split), collapse."""
        chunks = math.ceil(depth * 1.5)
        hits = await self.kb.asearch(query, k=chunks, mode=self.mode, candidates=chunks)
        if self.reranker is not None and hits:
            head, tail = hits[: self.rerank_depth], hits[self.rerank_depth :]
            result = await self.reranker.arerank(query, head, top_n=None, threshold=None)
            by_id = {p.id: p for p in head}
            order = _dedupe(
                [p.id for p in result.passages]
                + [d.passage_id for d in result.dropped]
                + [p.id for p in head]
            )
            hits = [by_id[i] for i in order if i in by_id] + tail
        return _dedupe([doc_id(p) for p in hits])[:depth]


def open_beir_kb(
    settings: Settings,
    data: BeirData,
    *,
    name: str | None = None,
    progress: Callable[[IngestProgress], None] | None = None,
) -> tuple[KnowledgeBase, IngestReport]:
    """Open (or create) the knowledge base of a BEIR corpus and bring it up to date.

    Args:
        settings: Data directory, embedder, chunking, retrieval defaults.
        data: The BEIR data (its ``corpus.jsonl`` is ingested).
        name: Knowledge base name (default ``beir-<folder name>-<hash of its path>``).
        progress: Ingest progress callback.

    Returns:
        The knowledge base and what the ingest did (``unchanged`` = everything on a rerun).
    """
    from agentrag.kb import KnowledgeBase

    root = data.root.resolve()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", root.name).strip("-") or "corpus"
    # The path's hash keeps two folders with the same name (say two copies of "scifact" with
    # different corpora) out of one knowledge base; the same folder always maps to the same one.
    where = hashlib.sha256(root.as_posix().encode()).hexdigest()[:6]
    kb = KnowledgeBase.open(settings, name or f"beir-{slug}-{where}")
    try:
        report = kb.ingest([data.corpus], progress=progress)
    except BaseException:
        kb.close()
        raise
    return kb, report


def build_systems(
    names: Sequence[str],
    kb: KnowledgeBase,
    settings: Settings,
    *,
    cross_encoder: Path | None = None,
    rerank_depth: int = 100,
    prism_depth: int = 20,
) -> list[KBSystem]:
    """The configurations named, over ``kb``. Models load on first use.

    Raises:
        ConfigError: An unknown name, or ``hybrid+cross-encoder`` without a model path.
    """
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ConfigError(f"unknown configuration(s) {unknown}", hint=f"use some of {', '.join(CONFIGS)}")
    systems: list[KBSystem] = []
    for name in _dedupe(names):
        if name in ("bm25", "dense", "hybrid"):
            systems.append(KBSystem(name, kb, name))  # type: ignore[arg-type]
        elif name == "hybrid+prf":
            from agentrag.rerank.embedding import EmbeddingPRFReranker

            systems.append(
                KBSystem(
                    name, kb, "hybrid", reranker=EmbeddingPRFReranker(kb.embedder), rerank_depth=rerank_depth
                )
            )
        elif name == "hybrid+prism":
            from agentrag.llm import LLMClient
            from agentrag.rerank.prism import PrismConfig, PrismReranker

            # Ranking needs the first-token score only; evidence generation would cost minutes.
            prism = PrismReranker(
                LLMClient.from_settings(settings, "reranker"),
                PrismConfig(generate_evidence=False, max_document_chars=settings.rerank.max_document_chars),
            )
            systems.append(KBSystem(name, kb, "hybrid", reranker=prism, rerank_depth=prism_depth))
        else:
            if cross_encoder is None:
                raise ConfigError(
                    "hybrid+cross-encoder needs a local cross-encoder model",
                    hint="pass --cross-encoder PATH (a sentence-transformers cross-encoder folder)",
                )
            from agentrag.rerank.cross_encoder import CrossEncoderReranker

            ce = CrossEncoderReranker(cross_encoder, threads=settings.embedder.threads)
            systems.append(KBSystem(name, kb, "hybrid", reranker=ce, rerank_depth=rerank_depth))
    return systems


def measures_for(k: int) -> list[str]:
    """nDCG@10, Recall@10, Recall@100, MRR, MAP, and nDCG@k / Recall@k for another ``k``."""
    extra = [f"ndcg@{k}", f"recall@{k}"] if k not in (10, 100) else []
    return ["ndcg@10", *extra[:1], "recall@10", *extra[1:], "recall@100", "mrr", "map"]


async def arun_retrieval(
    data: BeirData,
    systems: Sequence[RetrievalSystem],
    *,
    out_dir: Path,
    k: int = 10,
    depth: int = 100,
    concurrency: int = 4,
    setup: dict[str, str] | None = None,
    progress: Callable[[int, int, JobRecord], None] | None = None,
) -> EvalReport:
    """Rank every query with every system, score, and write the reports into ``out_dir``.

    Rankings are cached in ``out_dir/records.jsonl`` (key: system, a hash of its description
    and of the data files, query id): an interrupted run resumes, and the reports of a resumed
    run are identical to an uninterrupted one's.

    Args:
        data: Queries and qrels (:func:`agentrag.evaluation.data.read_beir`).
        systems: The configurations, in report order.
        out_dir: Where ``records.jsonl``, ``results.json``, ``report.md``, ``report.png`` go.
        k: Extra cut-off for nDCG@k / Recall@k (10 and 100 are always there).
        depth: Documents kept per query (MRR and MAP look this deep).
        concurrency: Queries in flight.
        setup: Extra lines for the report header.
        progress: ``(done, total, record)`` after each query (see :func:`arun_jobs`).

    Returns:
        The report (also written).
    """
    from agentrag.scoring.metrics import ir_metrics_per_query, run_from_rankings

    depth = max(depth, k, 100)
    data_key = {
        "corpus": file_hash(data.corpus),
        "queries": file_hash(data.root / "queries.jsonl"),
        "depth": depth,
    }
    prints = {s.name: fingerprint({**s.describe(), **data_key}) for s in systems}
    by_name = {s.name: s for s in systems}
    jobs = [Job(system=s.name, fingerprint=prints[s.name], case=q) for s in systems for q in data.queries]

    async def work(job: Job) -> dict[str, Any]:
        return {"ranking": await by_name[job.system].arank(data.queries[job.case], depth)}

    done, reused = await arun_jobs(
        jobs, work, records=out_dir / "records.jsonl", concurrency=concurrency, progress=progress
    )
    measures = measures_for(k)
    rows: list[ReportRow] = []
    per_case: dict[str, dict[str, dict[str, float]]] = {}
    for s in systems:
        recs = [done[Job(system=s.name, fingerprint=prints[s.name], case=q).key] for q in data.queries]
        run = run_from_rankings({r.case: list(r.data.get("ranking", [])) for r in recs})
        scores = ir_metrics_per_query(data.qrels, run, measures)
        per_case[s.name] = scores
        n = len(recs)
        rows.append(
            ReportRow(
                name=s.name,
                n=n,
                errors=sum(1 for r in recs if r.error),
                metrics={m: sum(v[m] for v in scores.values()) / max(len(scores), 1) for m in measures},
                seconds=round(sum(r.seconds for r in recs), 3),
            )
        )
    report = EvalReport(
        kind="retrieval",
        data=str(data.root),
        split=data.split,
        cases=len(data.queries),
        columns=measures,
        rows=rows,
        setup={"depth": str(depth), **(setup or {})},
        per_case=per_case,
        reused=reused,
    )
    write_reports(out_dir, report)
    return report
