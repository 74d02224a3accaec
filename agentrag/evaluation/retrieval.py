"""Retrieval evaluation on a BEIR folder: configurations side by side, resumable.

The corpus is ingested into a knowledge base named after the folder (``beir-<folder>-<hash>``); a
rerun finds its documents unchanged and embeds nothing. Each configuration ranks every query:

- ``bm25``, ``dense``, ``hybrid`` (the knowledge base's fusion, ``[retrieval] fusion``);
- ``hybrid+prf``: the hybrid list, its head reranked by :class:`EmbeddingPRFReranker`;
- ``hybrid+prism``: the head reranked by the Prism LLM reranker (``[reranker]`` endpoint; slow
  on CPU, so its head is shorter by default);
- ``hybrid+yesno``: the same head reranked by P(yes) at the first token of a plain chat
  question (:class:`~agentrag.rerank.yesno.YesNoReranker`), the scorer for instruction models
  not trained on Prism's format;
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

import difflib
import hashlib
import json
import math
import re
import time
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
    "check_configs",
    "doc_id",
    "measures_for",
    "open_beir_kb",
]

CONFIGS = (
    "bm25",
    "dense",
    "hybrid",
    "hybrid-rrf",
    "hybrid-tmm",
    "hybrid-minmax",
    "hybrid+prf",
    "hybrid+prism",
    "hybrid+yesno",
    "hybrid+cross-encoder",
)
"""Configuration names ``--config`` accepts. ``hybrid`` uses ``[retrieval]`` as configured;
``hybrid-rrf``, ``hybrid-tmm`` and ``hybrid-minmax`` force one fusion (RRF, or the convex
combination with that normalisation; α and RRF k from ``[retrieval]``)."""

_FUSION_VARIANTS: dict[str, tuple[str, str | None]] = {
    "hybrid-rrf": ("rrf", None),
    "hybrid-tmm": ("convex", "tmm"),
    "hybrid-minmax": ("convex", "minmax"),
}

DEFAULT_CONFIGS = ("bm25", "dense", "hybrid")
"""What runs when none is named: the offline retrievers. Not ``hybrid+prf``: embedding PRF after
hybrid measured -0.015 nDCG@10 on SciFact train (it helps only after BM25 alone); not Prism,
which needs the LLM server and is slow on a CPU."""


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
        fusion: Literal["rrf", "convex"] | None = None,
        normalization: Literal["minmax", "tmm"] | None = None,
    ) -> None:
        self.name = name
        self.kb = kb
        self.mode = mode
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        self.fusion = fusion
        self.normalization = normalization

    def fusion_setup(self) -> dict[str, Any]:
        """The fusion this system ranks with (fusion, α, normalisation, RRF k and weights)."""
        if self.mode != "hybrid":
            return {"fusion": self.mode}
        cfg = self.kb.retrieval
        return {
            "fusion": self.fusion or cfg.fusion,
            "alpha": cfg.alpha,
            "normalization": self.normalization or cfg.normalization,
            "missing": "min",
            "rrf_k": cfg.rrf_k,
            "rrf_weights": list(cfg.rrf_weights),
            "candidates": "= chunks searched",
        }

    def describe(self) -> dict[str, Any]:
        """Mode, fusion settings, embedder, knowledge base size, reranker."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "kb": self.kb.name,
            "chunks": self.kb.count(),
            "embedder": self.kb.embedder.name,
            "retrieval": self.kb.retrieval.model_dump(mode="json"),
            "fusion": self.fusion_setup(),
            "doc_depth": "distinct-docs-v1",
        }
        if self.reranker is not None:
            out["reranker"] = self.reranker.name
            out["rerank_depth"] = self.rerank_depth
        return out

    async def _search(self, query: str, chunks: int) -> list[Passage]:
        return await self.kb.asearch(
            query,
            k=chunks,
            mode=self.mode,
            candidates=chunks,
            fusion=self.fusion,
            normalization=self.normalization,
        )

    async def arank(self, query: str, depth: int) -> list[str]:
        """Top ``depth`` distinct documents, best first.

        Documents are split into chunks, so ``depth`` chunks hold fewer documents: the search
        starts at 1.5 x ``depth`` chunks and doubles until ``depth`` distinct documents are
        found or the corpus has no more hits (Recall@100 and MAP then count 100 documents).
        """
        chunks = math.ceil(depth * 1.5)
        while True:
            hits = await self._search(query, chunks)
            if len(_dedupe([doc_id(p) for p in hits])) >= depth or len(hits) < chunks:
                break
            chunks *= 2
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


def check_configs(names: Sequence[str], *, cross_encoder: Path | None = None) -> list[str]:
    """The configuration names, deduplicated, checked before anything slow happens.

    Raises:
        ConfigError: An unknown name, ``hybrid+cross-encoder`` without a model path, or a
            model path that is not a folder.
    """
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        close = {
            n: difflib.get_close_matches(n, CONFIGS, n=1, cutoff=0.6) for n in unknown if n not in CONFIGS
        }
        guess = "; ".join(f"{n!r} -> did you mean {c[0]!r}?" for n, c in close.items() if c)
        raise ConfigError(
            f"unknown configuration(s) {unknown}" + (f" ({guess})" if guess else ""),
            hint=f"use some of {', '.join(CONFIGS)}",
        )
    if not names:
        raise ConfigError("no configuration to run", hint=f"use some of {', '.join(CONFIGS)}")
    if "hybrid+cross-encoder" in names:
        if cross_encoder is None:
            raise ConfigError(
                "hybrid+cross-encoder needs a local cross-encoder model",
                hint="pass --cross-encoder PATH (a sentence-transformers cross-encoder folder)",
            )
        if not Path(cross_encoder).is_dir():
            raise ConfigError(
                f"--cross-encoder {cross_encoder} is not a folder",
                hint="pass a sentence-transformers cross-encoder folder (config.json, weights)",
            )
    return _dedupe(names)


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
    systems: list[KBSystem] = []
    for name in check_configs(names, cross_encoder=cross_encoder):
        if name in ("bm25", "dense", "hybrid"):
            systems.append(KBSystem(name, kb, name))  # type: ignore[arg-type]
        elif name in _FUSION_VARIANTS:
            fusion, norm = _FUSION_VARIANTS[name]
            systems.append(
                KBSystem(name, kb, "hybrid", fusion=fusion, normalization=norm)  # type: ignore[arg-type]
            )
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
        elif name == "hybrid+yesno":
            from agentrag.llm import LLMClient
            from agentrag.rerank.yesno import YesNoReranker

            yesno = YesNoReranker(
                LLMClient.from_settings(settings, "reranker"),
                max_document_tokens=settings.rerank.max_document_tokens,
            )
            systems.append(KBSystem(name, kb, "hybrid", reranker=yesno, rerank_depth=prism_depth))
        else:
            assert cross_encoder is not None  # check_configs
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

    # One system at a time, so each one's wall time is its own. Wall time is kept per system
    # fingerprint in walls.json and added up over resumed runs.
    walls_file = out_dir / "walls.json"
    walls: dict[str, float] = json.loads(walls_file.read_text()) if walls_file.exists() else {}
    done: dict[str, JobRecord] = {}
    reused = 0
    offset = 0
    for s in systems:
        mine = [j for j in jobs if j.system == s.name]

        def step(n: int, _total: int, record: JobRecord, base: int = offset) -> None:
            if progress is not None:
                progress(base + n, len(jobs), record)

        t0 = time.perf_counter()
        got, again = await arun_jobs(
            mine, work, records=out_dir / "records.jsonl", concurrency=concurrency, progress=step
        )
        if again < len(mine):
            key = f"{s.name}:{prints[s.name]}"
            walls[key] = walls.get(key, 0.0) + time.perf_counter() - t0
            walls_file.write_text(json.dumps(walls, indent=1))
        done.update(got)
        reused += again
        offset += len(mine)
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
                seconds=round(walls.get(f"{s.name}:{prints[s.name]}", 0.0), 3),
            )
        )
    report = EvalReport(
        kind="retrieval",
        data=str(data.root),
        split=data.split,
        cases=len(data.queries),
        columns=measures,
        rows=rows,
        setup={"depth": f"{depth} distinct documents", **_fusion_lines(systems), **(setup or {})},
        per_case=per_case,
        reused=reused,
    )
    write_reports(out_dir, report)
    return report


def _fusion_lines(systems: Sequence[RetrievalSystem]) -> dict[str, str]:
    """One report header line per hybrid system: its fusion, α, normalisation and RRF k."""
    out: dict[str, str] = {}
    for s in systems:
        describe = getattr(s, "fusion_setup", None)
        if describe is None:
            continue
        f = describe()
        if f.get("fusion") == "convex":
            out[f"fusion {s.name}"] = (
                f"convex, alpha {f['alpha']}, normalization {f['normalization']}, missing side = its min"
            )
        elif f.get("fusion") == "rrf":
            out[f"fusion {s.name}"] = f"rrf, k {f['rrf_k']}, weights (bm25, dense) {tuple(f['rrf_weights'])}"
    return out
