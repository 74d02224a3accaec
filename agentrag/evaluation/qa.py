"""Question-answering evaluation on HotpotQA: shipped graphs side by side, resumable.

Each question gets its own small knowledge base of its own context paragraphs (distractor
setting: 10 paragraphs, 2 of them supporting), and the agent answers from it. One knowledge
base per question is the setting HotpotQA defines (the task is to find the 2 supporting
paragraphs among the 10 given); a pooled knowledge base of all loaded questions would make a
question's difficulty depend on which others were loaded (``--limit``), so cached results
would not be comparable across runs. The per-question base lives in memory (vectors) and a
temporary folder (manifest, BM25); BM25 statistics over 10 paragraphs are weak, which the
hybrid's dense side makes up for.

Per question and graph: exact match, token F1 and answer containment against the gold
answers (:mod:`agentrag.scoring.metrics`, SQuAD normalisation); ``sp_recall@2`` and ``@5``, the
share of supporting paragraphs among the first 2 / 5 distinct paragraphs the agent ended with (its packed
context in order, then the passages it dropped, in the order it dropped them); ``udcg``, the
agent's own UDCG of its packed context (run-time proxy labels, 0 when the graph does not
score it); and the costs: LLM calls, tokens and wall time.

Example:
    >>> items = read_hotpotqa("/work/shared/data/hotpotqa/dev250.jsonl", limit=10)  # doctest: +SKIP
    >>> report = run_sync(arun_qa(items, ["rag"], settings=settings,
    ...                           data=path, out_dir=Path("runs/qa")))              # doctest: +SKIP
    >>> report.rows[0].metrics["f1"], report.rows[0].costs["llm_calls"]            # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrag.errors import ConfigError, LLMConnectionError
from agentrag.evaluation.report import EvalReport, ReportRow, write_reports
from agentrag.evaluation.runner import Job, JobRecord, arun_jobs, file_hash, fingerprint

if TYPE_CHECKING:
    from agentrag.embed.base import Embedder
    from agentrag.evaluation.data import QAItem
    from agentrag.graph.context import ChatModel
    from agentrag.graph.spec import GraphSpec
    from agentrag.rerank.base import Reranker
    from agentrag.settings import Settings
    from agentrag.types import Answer

__all__ = [
    "GRAPHS",
    "QA_COSTS",
    "QA_METRICS",
    "SP_CUTOFFS",
    "VARIANTS",
    "QAParts",
    "Variant",
    "arun_qa",
    "case_scores",
    "paragraph_order",
    "score_answer",
    "variant_spec",
]

GRAPHS = ("rag", "crag", "srr")
"""The shipped question-answering graphs."""


@dataclass(frozen=True)
class Variant:
    """A graph as the ablation runs it: a shipped graph with one thing changed.

    Variants answer "does this node earn its place on the model we serve?": each differs from
    its graph (as the profile plans it) in one respect, and the report puts them side by side.
    """

    graph: str
    """The shipped graph it starts from."""

    about: str
    """What differs, in a phrase (the CLI help lists it)."""

    keep: tuple[str, ...] = ()
    """Nodes run although the profile's plan leaves them out."""

    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Node id → parameters merged over the plan's."""

    rerank: dict[str, Any] = field(default_factory=dict)
    """``[rerank]`` settings for this variant's reranker (its own model client)."""

    gold_only: bool = False
    """The knowledge base holds the supporting paragraphs only: the reader's ceiling, what the
    generator does when retrieval is perfect."""


VARIANTS: dict[str, Variant] = {
    "rag": Variant("rag", "the graph as the profile plans it"),
    "crag": Variant("crag", "the graph as the profile plans it"),
    "srr": Variant("srr", "the graph as the profile plans it"),
    "rag+rewrite": Variant("rag", "with the query rewrite (one LLM call)", keep=("rewrite",)),
    "rag-rerank": Variant(
        "rag", "the retrieval score as relevance, no reranker model", rerank={"kind": "retrieval"}
    ),
    "rag+yesno": Variant("rag", "reranked by the LLM's yes/no first token", rerank={"kind": "yesno"}),
    "rag+prism": Variant(
        "rag",
        "Prism reranker with evidence extracts (one generation per kept passage)",
        rerank={"kind": "prism", "generate_evidence": True},
    ),
    "crag+refine": Variant("crag", "with strip refinement (decompose, score, recompose)", keep=("refine",)),
    "rag@gold": Variant(
        "rag", "the supporting paragraphs only (retrieval made perfect: the reader's ceiling)", gold_only=True
    ),
    "rag-pack": Variant(
        "rag", "reranked order while it fits, no UDCG packing", params={"pack": {"strategy": "in_order"}}
    ),
}
"""What ``agentrag eval qa --graph`` accepts: the shipped graphs and their ablations."""

SP_CUTOFFS = (2, 5)
"""Cut-offs of supporting-paragraph recall (2 = exactly the two supporting ones first)."""

QA_METRICS = ["em", "f1", "contains", *(f"sp_recall@{k}" for k in SP_CUTOFFS), "udcg"]
"""Quality columns of the QA report."""

QA_COSTS = ["llm_calls", "tokens"]
"""Cost columns (means per question)."""


class QAParts:
    """The models shared by every question of a run (loaded on first use).

    Args:
        settings: Endpoints and reranker settings.
        embedder: Default: the settings' embedder.
        llm: The generator. Default: the settings' generator endpoint.
        reranker: Default: the settings' reranker.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        llm: ChatModel | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        from agentrag.embed import embedder_from_settings
        from agentrag.llm import LLMClient
        from agentrag.rerank import reranker_from_settings

        self.settings = settings
        self.embedder = embedder or embedder_from_settings(settings)
        self.llm = llm or LLMClient.from_settings(settings, "generator")
        self.reranker = (
            reranker if reranker is not None else reranker_from_settings(settings, embedder=self.embedder)
        )
        self._rerankers: dict[str, Reranker | None] = {}

    def reranker_for(self, variant: Variant) -> Reranker | None:
        """The variant's reranker: the shared one, or one built from its ``[rerank]`` overrides."""
        if not variant.rerank:
            return self.reranker
        key = repr(sorted(variant.rerank.items()))
        if key not in self._rerankers:
            from agentrag.rerank import reranker_from_settings

            cfg = self.settings.rerank.model_copy(update=variant.rerank)
            settings = self.settings.model_copy(update={"rerank": cfg})
            self._rerankers[key] = reranker_from_settings(settings, embedder=self.embedder)
        return self._rerankers[key]

    def describe(self) -> dict[str, Any]:
        """What decides the answers besides the graph and the question."""
        from agentrag.profiles import resolve

        return {
            "embedder": self.embedder.name,
            "generator": str(getattr(getattr(self.llm, "endpoint", None), "model", type(self.llm).__name__)),
            "reranker": getattr(self.reranker, "name", "none"),
            "profile": resolve(self.settings).name,  # it changes the graphs' plans
            "rerank": self.settings.rerank.model_dump(mode="json"),
            "retrieval": self.settings.retrieval.model_dump(mode="json"),
            "budgets": self.settings.budgets.model_dump(mode="json"),
            "kb": self.settings.kb.model_dump(mode="json"),
        }


_TRANSPORT = ("LLMConnectionError", "LLMTimeoutError", "LLMServerError", "LLMRateLimitError")


def _check_server(answer: Answer) -> None:
    """Refuse an answer shaped by an unreachable server: it would be cached as a real result.

    Nodes degrade on LLM failures (keep the question, skip reranking, abstain), which is right
    for a user and wrong for an evaluation: the graph's quality is not what such a run measures.
    Fallbacks caused by the model's own output (a parse failure) are part of what is measured.
    """
    transport = [e for e in answer.errors if any(name in e for name in _TRANSPORT)]
    if transport or answer.outcome == "failed" or answer.usage.calls == 0:
        why = transport[0] if transport else f"outcome {answer.outcome}, {answer.usage.calls} LLM calls"
        raise LLMConnectionError(f"the run did not reach the model server ({why[:200]})")


def paragraph_order(answer: Answer, paragraph_of: dict[str, str]) -> list[str]:
    """Distinct paragraph ids in the order the agent ended with: context, then dropped."""
    ids = [e.passage_id for e in answer.evidence] + [d.passage_id for d in answer.dropped]
    order: list[str] = []
    for pid in ids:
        # Evidence ids may carry a ``#strip`` suffix after the chunk id.
        para = paragraph_of.get(pid) or paragraph_of.get(pid.split("#")[0])
        if para is not None and para not in order:
            order.append(para)
    return order


def score_answer(
    answer_text: str, gold: Sequence[str], order: Sequence[str], supporting: set[str]
) -> dict[str, float]:
    """EM, F1, containment, and the share of ``supporting`` among the first k of ``order``."""
    from agentrag.scoring.metrics import qa_scores

    # Citation markers are not answer words: "[1]" would count as a token "1" against F1.
    out = qa_scores(re.sub(r"\[\d+(?:\s*[,;]\s*\d+)*\]", " ", answer_text), list(gold))
    for k in SP_CUTOFFS:
        out[f"sp_recall@{k}"] = len(set(order[:k]) & supporting) / len(supporting) if supporting else 0.0
    return out


def case_scores(item: QAItem, data: dict[str, Any]) -> dict[str, float]:
    """A question's metrics from its record (computed at report time: new metrics need no rerun)."""
    if not data:  # a failed job scores 0
        return dict.fromkeys(QA_METRICS, 0.0)
    supporting = {p.id for p in item.paragraphs if p.supporting}
    out = score_answer(
        str(data.get("answer", "")), item.answers, list(data.get("paragraphs", [])), supporting
    )
    out["udcg"] = float(data.get("udcg", 0.0))
    return out


def variant_spec(name: str, settings: Settings) -> GraphSpec:
    """The graph a variant runs: its shipped graph, the profile's plan, then the variant's change.

    The result is named after the variant, so :class:`~agentrag.agent.Agent` does not apply the
    profile a second time (plans apply to the shipped names only).

    Raises:
        ConfigError: An unknown variant.
    """
    from agentrag import profiles
    from agentrag.graph.spec import load_spec

    variant = _variant(name)
    spec = profiles.apply(load_spec(variant.graph), profiles.resolve(settings), keep=variant.keep)
    nodes = dict(spec.nodes)
    for node_id, params in variant.params.items():
        if node_id not in nodes:
            raise ConfigError(f"variant {name!r} changes node {node_id!r}, which {variant.graph!r} lacks")
        nodes[node_id] = nodes[node_id].model_copy(update={"params": {**nodes[node_id].params, **params}})
    return spec.model_copy(update={"name": name, "nodes": nodes})


def _prompts() -> dict[str, str]:
    """Hashes of the prompt templates in use, by name (the first directory holding each wins)."""
    from agentrag.prompts import SUFFIX, prompt_dirs

    out: dict[str, str] = {}
    for folder in prompt_dirs():
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            out.setdefault(f"prompt:{path.stem}", file_hash(path))
    return out


def _variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ConfigError(f"unknown graph or variant {name!r}", hint=f"use some of {', '.join(VARIANTS)}")
    return VARIANTS[name]


async def _answer_one(
    item: QAItem, graph: str, spec: GraphSpec, parts: QAParts, root: Path
) -> dict[str, Any]:
    from agentrag.agent import Agent
    from agentrag.ingest.loaders import Document
    from agentrag.kb import KnowledgeBase
    from agentrag.stores.memory import MemoryStore

    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", item.id)[:60]
    settings = parts.settings.model_copy(update={"data_dir": root / f"{graph}-{slug}"})
    kb = KnowledgeBase.open(settings, "q", embedder=parts.embedder, store=MemoryStore())
    try:
        docs = [
            Document(
                source=f"hotpotqa/{item.id}/{p.id}", title=p.title, text=p.text, metadata={"paragraph": p.id}
            )
            for p in item.paragraphs
            if p.supporting or not VARIANTS[graph].gold_only
        ]
        await asyncio.to_thread(kb.ingest_documents, docs)
        chunks = kb.get(kb.index_ids()["manifest"])
        paragraph_of = {c.id: str(c.metadata.get("paragraph")) for c in chunks}
        agent = Agent(
            settings=settings,
            knowledge_base=kb,
            graph=spec,
            llm=parts.llm,
            reranker=parts.reranker_for(VARIANTS[graph]),
            embedder=parts.embedder,
            checkpoint="none",
        )
        try:
            answer = await agent.aask(item.question)
        finally:
            await agent.aclose()
    finally:
        kb.close()
    _check_server(answer)
    # CRAG's gate decisions, one per round (correct / ambiguous / incorrect): the action counts
    # the ablation reports come from these.
    actions = [
        t.message.split()[0] for t in answer.trace if t.node == "gate" and t.event == "end" and t.message
    ]
    return {
        **({"crag_actions": actions} if actions else {}),
        "answer": answer.text,
        "outcome": answer.outcome,
        "paragraphs": paragraph_order(answer, paragraph_of),
        "udcg": float(answer.udcg or 0.0),
        "llm_calls": answer.usage.calls,
        "tokens": answer.usage.total_tokens,
    }


async def arun_qa(
    items: Sequence[QAItem],
    graphs: Sequence[str],
    *,
    parts: QAParts,
    data: Path,
    out_dir: Path,
    concurrency: int = 1,
    setup: dict[str, str] | None = None,
    progress: Callable[[int, int, JobRecord], None] | None = None,
) -> EvalReport:
    """Answer every question with every graph, score, and write the reports into ``out_dir``.

    Args:
        items: The questions (:func:`agentrag.evaluation.data.read_hotpotqa`).
        graphs: Graph or variant names (:data:`VARIANTS`), in report order.
        parts: Models shared by all questions.
        data: The HotpotQA file (its hash is part of the cache key).
        out_dir: Where ``records.jsonl``, ``results.json``, ``report.md``, ``report.png`` go.
        concurrency: Questions in flight (the LLM server is the bottleneck; 1 on CPU).
        setup: Extra lines for the report header.
        progress: ``(done, total, record)`` after each question.

    Returns:
        The report (also written).

    Raises:
        ConfigError: An unknown graph or variant name.
    """
    graphs = list(dict.fromkeys(graphs))
    base = {**parts.describe(), "data": file_hash(data)}
    # What decides an answer is part of its cache key: the graph exactly as it runs (profile
    # plan and variant applied) and the prompt templates. A changed plan or prompt reruns.
    specs = {g: variant_spec(g, parts.settings) for g in graphs}
    prompts = _prompts()
    prints = {
        g: fingerprint(
            {
                **base,
                "graph": g,
                "variant": repr(VARIANTS[g]),  # its reranker and corpus are not in the spec
                "spec": specs[g].model_dump(mode="json"),
                **prompts,
            }
        )
        for g in graphs
    }
    by_id = {q.id: q for q in items}
    jobs = [Job(system=g, fingerprint=prints[g], case=q.id) for g in graphs for q in items]
    with tempfile.TemporaryDirectory(prefix="agentrag-qa-") as tmp:

        async def work(job: Job) -> dict[str, Any]:
            return await _answer_one(by_id[job.case], job.system, specs[job.system], parts, Path(tmp))

        done, reused = await arun_jobs(
            jobs, work, records=out_dir / "records.jsonl", concurrency=concurrency, progress=progress
        )
    rows: list[ReportRow] = []
    per_case: dict[str, dict[str, dict[str, float]]] = {}
    for g in graphs:
        recs = [done[Job(system=g, fingerprint=prints[g], case=q.id).key] for q in items]
        scores = {r.case: case_scores(by_id[r.case], r.data) for r in recs}
        costs = {r.case: {c: float(r.data.get(c, 0)) for c in QA_COSTS} for r in recs}
        per_case[g] = {q: {**scores[q], **costs[q]} for q in scores}
        n = max(len(recs), 1)
        rows.append(
            ReportRow(
                name=g,
                n=len(recs),
                errors=sum(1 for r in recs if r.error),
                metrics={m: sum(s[m] for s in scores.values()) / n for m in QA_METRICS},
                costs={c: sum(s[c] for s in costs.values()) / n for c in QA_COSTS},
                seconds=round(sum(r.seconds for r in recs), 3),
            )
        )
    report = EvalReport(
        kind="qa",
        data=str(data),
        cases=len(items),
        columns=list(QA_METRICS),
        cost_columns=list(QA_COSTS),
        rows=rows,
        setup=setup or {},
        per_case=per_case,
        reused=reused,
    )
    write_reports(out_dir, report)
    return report
