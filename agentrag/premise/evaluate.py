"""Premise-retrieval benchmarks: MathlibQR and MathlibMPR readers, their metrics, a resumable runner.

**MathlibQR** (LeanSearch v2): 200 Mathlib declarations, each asked for in up to six query
styles (``q1a_lean``, ``q1b_latex``, ``q1c_natural``, ``q2_slogan``, ``q3_nickname``,
``q4_special_case``; empty styles are not queries: 946 in all), one gold ``full_name`` each.
With one relevant declaration, ``nDCG@k = 1 / log2(pos + 1)`` when the gold is at 1-based
position ``pos <= k`` (else 0) and ``Recall@k`` is 1 or 0; both are averaged per style and over
all queries. They are computed by trec_eval through :mod:`agentrag.scoring.metrics` (with one
relevant document its ``ndcg_cut`` is exactly that formula).

**MathlibMPR** (LeanSearch v2's released ``benchmark/MathlibMPR.json``): a JSON list of
problems ``{"id", "pr", "formal_main_result", "NL_main_result", "formal_statement",
"premise_group": [{"kind": "original" | "alternative", "docs": [names]}]}``. A group is hit at
``k`` when any of its names is in the top ``k`` (names compared after dropping a ``Module::``
prefix and a ``::<n>`` index suffix, as the release does). Per problem, ``recall_group@k`` = hit
groups / all groups, macro-averaged; ``covered@k`` = 1 when every ``original`` group is hit, or
when there are ``alternative`` groups and every one of them is hit (the release's "some
complete proof route has every premise group hit"; with only original groups: all hit). The
query is the informal statement followed by the formal one.

:func:`run_eval` searches every query (concurrently), appends each finished record to
``records.jsonl`` in the output folder at once, and on a rerun with the same configuration
reuses what is there: an interrupted evaluation resumes where it stopped. The folder name
carries a hash of everything that decides a result (data file, knowledge base version, embedder,
mode, k, reranker, generator), so a changed setup never reads stale records.

Example:
    >>> queries = read_mathlibqr("MathlibQR.json", styles=["q3_nickname"])  # doctest: +SKIP
    >>> report = run_eval(searcher, queries, EvalConfig(format="mathlibqr", k=10),
    ...                   out_dir="runs/qr")                                 # doctest: +SKIP
    >>> report.overall["ndcg@10"], report.by_style["q3_nickname"]["recall@10"]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentrag._async import run_sync
from agentrag.errors import AgentragError, ConfigError
from agentrag.evaluation.runner import append_line, file_hash, read_models

if TYPE_CHECKING:
    from agentrag.kb import KnowledgeBase
    from agentrag.premise.search import PremiseSearcher

__all__ = [
    "QR_STYLES",
    "EvalConfig",
    "EvalFormat",
    "EvalQuery",
    "EvalRecord",
    "EvalReport",
    "PremiseGroup",
    "arun_eval",
    "comparison_markdown",
    "config_from_spec",
    "detect_format",
    "mpr_scores",
    "names_in_kb",
    "qr_position",
    "read_eval_data",
    "read_mathlibmpr",
    "read_mathlibqr",
    "report_markdown",
    "run_eval",
    "short_name",
    "summarize",
]

log = logging.getLogger(__name__)

EvalFormat = Literal["mathlibqr", "mpr"]

QR_STYLES: tuple[str, ...] = (
    "q1a_lean",
    "q1b_latex",
    "q1c_natural",
    "q2_slogan",
    "q3_nickname",
    "q4_special_case",
)
"""MathlibQR's query styles, in the release's order."""

MPR_STYLE = "mpr"
"""The style label of MathlibMPR queries (the benchmark has one query per problem)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class PremiseGroup(_Frozen):
    """One MathlibMPR premise group: alternative names for one premise."""

    kind: Literal["original", "alternative"] = "original"
    """``original``: a premise of the merged proof; ``alternative``: of another known route."""

    docs: list[str] = Field(min_length=1)
    """Names any one of which counts as a hit."""


class EvalQuery(_Frozen):
    """One benchmark query and its gold."""

    id: str
    """Unique id (MathlibQR: ``<declaration id>_<style>``, as the release names them)."""

    query: str
    """The query text."""

    style: str
    """MathlibQR query style, or ``mpr``."""

    gold: list[str] = Field(default_factory=list)
    """MathlibQR: the one gold full name."""

    groups: list[PremiseGroup] = Field(default_factory=list)
    """MathlibMPR: the premise groups."""

    meta: dict[str, str] = Field(default_factory=dict)
    """Context for reading results (difficulty, kind, declaration id, PR number)."""


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}", hint="check the --data path") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}", hint="pass the benchmark's JSON file") from None


def read_mathlibqr(path: str | Path, styles: Sequence[str] | None = None) -> list[EvalQuery]:
    """MathlibQR queries: one per non-empty style of each declaration.

    Args:
        path: ``MathlibQR.json``.
        styles: Keep only these styles (default: all six).

    Raises:
        ConfigError: The file is unreadable, not MathlibQR, or a style is unknown.

    Example:
        >>> qs = read_mathlibqr("/work/shared/data/mathlib/MathlibQR.json")  # doctest: +SKIP
        >>> len(qs), qs[0].id, qs[0].gold                                    # doctest: +SKIP
        (946, 'O1_q1a_lean', ['Lattice'])
    """
    wanted = tuple(styles or QR_STYLES)
    unknown = [s for s in wanted if s not in QR_STYLES]
    if unknown:
        raise ConfigError(f"unknown MathlibQR style(s) {unknown}", hint=f"use some of {', '.join(QR_STYLES)}")
    rows = _load_json(Path(path))
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "full_name" in r for r in rows):
        raise ConfigError(
            f"{path} is not MathlibQR (a JSON list of rows with full_name and q1a_lean ... q4_special_case)",
            hint="for MathlibMPR use --format mpr",
        )
    out: list[EvalQuery] = []
    for row in rows:
        for style in wanted:
            text = str(row.get(style) or "").strip()
            if not text:
                continue
            out.append(
                EvalQuery(
                    id=f"{row['id']}_{style}",
                    query=text,
                    style=style,
                    gold=[str(row["full_name"])],
                    meta={
                        "decl": str(row["id"]),
                        "difficulty": str(row.get("difficulty", "")),
                        "kind": str(row.get("kind", "")),
                        "file": str(row.get("file", "")),
                    },
                )
            )
    return out


def read_mathlibmpr(path: str | Path) -> list[EvalQuery]:
    """MathlibMPR problems as queries (informal statement, then the formal statement).

    Raises:
        ConfigError: The file is unreadable or a row does not have the released fields.
    """
    rows = _load_json(Path(path))
    if not isinstance(rows, list):
        raise ConfigError(f"{path} is not MathlibMPR (a JSON list of problems)", hint="check --format")
    out: list[EvalQuery] = []
    for i, row in enumerate(rows):
        try:
            groups = [PremiseGroup.model_validate(g) for g in row["premise_group"]]
            informal = str(row.get("NL_main_result") or "").strip()
            formal = str(row.get("formal_statement") or "").strip()
            query = "\n\n".join(part for part in (informal, formal) if part)
            if not query or not groups:
                raise ValueError("no statement or no premise groups")
            out.append(
                EvalQuery(
                    id=str(row["id"]),
                    query=query,
                    style=MPR_STYLE,
                    groups=groups,
                    meta={
                        "pr": str(row.get("pr", "")),
                        "main_result": str(row.get("formal_main_result", "")),
                    },
                )
            )
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise ConfigError(
                f"{path}: row {i} is not a MathlibMPR problem ({exc})",
                hint='each row needs "id", "NL_main_result"/"formal_statement" and "premise_group": '
                '[{"kind": "original", "docs": [...]}]',
            ) from None
    return out


def detect_format(path: str | Path) -> EvalFormat:
    """``mpr`` if the file's rows carry ``premise_group``, else ``mathlibqr``."""
    rows = _load_json(Path(path))
    if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "premise_group" in rows[0]:
        return "mpr"
    return "mathlibqr"


def read_eval_data(
    path: str | Path, fmt: EvalFormat | None = None, styles: Sequence[str] | None = None
) -> list[EvalQuery]:
    """Queries from a MathlibQR or MathlibMPR file (format detected when not given)."""
    fmt = fmt or detect_format(path)
    if fmt == "mpr":
        if styles:
            raise ConfigError("MathlibMPR has no query styles", hint="drop --styles")
        return read_mathlibmpr(path)
    return read_mathlibqr(path, styles)


# ------------------------------------------------------------------------------------ metrics


def qr_position(ranking: Sequence[str], gold: str) -> int | None:
    """1-based position of ``gold`` in ``ranking`` (None when absent)."""
    for i, name in enumerate(ranking, start=1):
        if name == gold:
            return i
    return None


def short_name(doc_id: str) -> str:
    """A declaration name from a LeanSearch doc id: ``Mathlib.Foo::Foo.bar::3`` -> ``Foo.bar``."""
    head, _, tail = doc_id.rpartition("::")
    if head and tail.isdigit():
        doc_id = head
    return doc_id.rsplit("::", 1)[-1]


def mpr_scores(ranking: Sequence[str], groups: Sequence[PremiseGroup], k: int) -> dict[str, Any]:
    """MathlibMPR scores of one ranking at ``k``.

    Returns:
        ``{"recall_group": hit groups / all groups, "covered": 0 or 1, "hit": [bool per group]}``.

    Example:
        >>> g = [PremiseGroup(docs=["a", "a'"]), PremiseGroup(docs=["b"]),
        ...      PremiseGroup(kind="alternative", docs=["c"])]
        >>> mpr_scores(["x", "a'", "c"], g, k=3)
        {'recall_group': 0.6666666666666666, 'covered': 1, 'hit': [True, False, True]}
    """
    top = {short_name(d) for d in ranking[:k]}
    hit = [any(short_name(d) in top for d in g.docs) for g in groups]
    original = [h for h, g in zip(hit, groups, strict=True) if g.kind == "original"]
    alternative = [h for h, g in zip(hit, groups, strict=True) if g.kind == "alternative"]
    covered = all(original) or (bool(alternative) and all(alternative))
    return {"recall_group": sum(hit) / max(len(groups), 1), "covered": int(covered), "hit": hit}


def _cutoffs(k: int) -> list[int]:
    return sorted({c for c in (1, 5, 10) if c < k} | {k})


def summarize(
    records: Sequence[EvalRecord], queries: Mapping[str, EvalQuery], k: int
) -> dict[str, dict[str, float]]:
    """Mean metrics per style and over all queries (``"all"``), with ``n`` per row.

    MathlibQR: ``ndcg@c`` and ``recall@c`` for c in (1, 5, 10, k) up to k, through
    :func:`agentrag.scoring.metrics.ir_metrics_per_query` (trec_eval). MathlibMPR:
    ``recall_group@c`` and ``covered@c`` (percent is left to the reader: values are in [0, 1]).
    """
    from agentrag.scoring.metrics import ir_metrics_per_query, run_from_rankings

    cuts = _cutoffs(k)
    per_query: dict[str, dict[str, float]] = {}
    qr = [r for r in records if queries[r.id].gold]
    if qr:
        qrels = {r.id: {queries[r.id].gold[0]: 1} for r in qr}
        run = run_from_rankings({r.id: r.retrieved[:k] for r in qr})
        measures = [f"{m}@{c}" for c in cuts for m in ("ndcg", "recall")]
        per_query.update(ir_metrics_per_query(qrels, run, measures))
    for r in records:
        q = queries[r.id]
        if q.groups:
            row: dict[str, float] = {}
            for c in cuts:
                s = mpr_scores(r.retrieved, q.groups, c)
                row[f"recall_group@{c}"] = s["recall_group"]
                row[f"covered@{c}"] = float(s["covered"])
            per_query[r.id] = row
    by_style: dict[str, list[dict[str, float]]] = {}
    for r in records:
        by_style.setdefault(r.style, []).append(per_query[r.id])
        by_style.setdefault("all", []).append(per_query[r.id])
    out: dict[str, dict[str, float]] = {}
    order = [s for s in (*QR_STYLES, MPR_STYLE) if s in by_style] + ["all"]
    for style in order:
        rows = by_style.get(style, [])
        if not rows:
            continue
        keys = rows[0].keys()
        out[style] = {"n": float(len(rows)), **{key: sum(r[key] for r in rows) / len(rows) for key in keys}}
    return out


# ------------------------------------------------------------------------------------ running


class EvalConfig(_Frozen):
    """What an evaluation run searches with (everything that decides a record)."""

    format: EvalFormat = "mathlibqr"
    """Benchmark format."""

    mode: Literal["standard", "reasoning"] = "standard"
    """Premise search mode."""

    search_mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    """Standard-mode retrieval."""

    rerank: bool = False
    """Standard mode: rerank ``candidates`` hits."""

    candidates: int = Field(default=50, ge=1)
    """Hits reranked."""

    k: int = Field(default=10, ge=1)
    """Cut-off of the metrics (and results kept per query)."""

    hyde: Literal["off", "natural", "all"] = "off"
    """Standard mode: which queries also search with a hypothetical declaration (HyDE)."""

    max_rounds: int | None = Field(default=None, ge=1)
    """Reasoning mode: sketch-search-reflect rounds per query (default ``[budgets] max_rounds``)."""

    max_seconds: float | None = Field(default=None, gt=0)
    """Reasoning mode: wall time per query; the loop ends after the round that runs out
    (default ``[budgets] max_wall_s``)."""

    def budget(self) -> dict[str, Any] | None:
        """The reasoning run's budget overrides (None: the settings' budgets)."""
        out: dict[str, Any] = {}
        if self.max_rounds is not None:
            out["max_rounds"] = self.max_rounds
        if self.max_seconds is not None:
            out["max_wall_s"] = self.max_seconds
        return out or None


def config_from_spec(
    spec: str,
    *,
    k: int = 10,
    candidates: int = 50,
    fmt: EvalFormat = "mathlibqr",
    max_rounds: int | None = None,
    max_seconds: float | None = None,
) -> EvalConfig:
    """An evaluation configuration from its short name (``agentrag premise eval --config``).

    ``reasoning`` is the reasoning mode; otherwise a retrieval (``bm25``, ``dense``, ``hybrid``)
    followed by steps: ``+rerank`` (rerank ``candidates`` hits), ``+hyde`` (HyDE on
    natural-language queries), ``+hyde-all`` (HyDE on every query). ``max_rounds`` and
    ``max_seconds`` budget the reasoning mode (standard configurations ignore them).

    Raises:
        ConfigError: An unknown retrieval or step.

    Example:
        >>> c = config_from_spec("hybrid+rerank", candidates=20)
        >>> c.search_mode, c.rerank, c.candidates, c.hyde
        ('hybrid', True, 20, 'off')
        >>> config_from_spec("dense+hyde").hyde
        'natural'
    """
    hint = "use reasoning, or bm25|dense|hybrid followed by +rerank, +hyde or +hyde-all (e.g. hybrid+rerank)"
    name = spec.strip()
    if name == "reasoning":
        return EvalConfig(
            format=fmt,
            mode="reasoning",
            k=k,
            candidates=candidates,
            max_rounds=max_rounds,
            max_seconds=max_seconds,
        )
    retrieval, *steps = name.split("+")
    if retrieval not in ("hybrid", "bm25", "dense"):
        raise ConfigError(
            f"unknown premise eval configuration {spec!r}: no retrieval {retrieval!r}", hint=hint
        )
    unknown = [s for s in steps if s not in ("rerank", "hyde", "hyde-all")]
    if unknown or len(set(steps)) != len(steps) or {"hyde", "hyde-all"} <= set(steps):
        raise ConfigError(f"unknown premise eval configuration {spec!r}", hint=hint)
    hyde: Literal["off", "natural", "all"] = (
        "all" if "hyde-all" in steps else "natural" if "hyde" in steps else "off"
    )
    return EvalConfig(
        format=fmt,
        search_mode=retrieval,
        rerank="rerank" in steps,
        candidates=candidates,
        k=k,
        hyde=hyde,
    )


class EvalRecord(_Frozen):
    """The outcome of one query (one line of ``records.jsonl``)."""

    id: str
    """Query id."""

    style: str
    """Query style."""

    retrieved: list[str]
    """Names retrieved, best first (top k)."""

    seconds: float = 0.0
    """Wall time of the search."""

    error: str = ""
    """Why the search failed (then ``retrieved`` is empty and the query scores 0; not cached)."""

    hyde: str = ""
    """The hypothetical declaration searched with (HyDE), if any."""

    warnings: list[str] = Field(default_factory=list)
    """Steps that failed and were skipped (a degraded search: scored as it is, rerun on resume)."""


class EvalReport(BaseModel):
    """The result of an evaluation run."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    config: EvalConfig
    """How it was searched."""

    data: str
    """The benchmark file."""

    kb: str
    """Knowledge base name."""

    setup: dict[str, str] = Field(default_factory=dict)
    """What else decided the results: embedder, knowledge-base version, reranker, generator."""

    n: int = 0
    """Queries scored."""

    errors: int = 0
    """Queries whose search failed (scored 0)."""

    degraded: int = 0
    """Queries whose search skipped a failed step (HyDE, reranking) and fell back."""

    reused: int = 0
    """Records taken from an earlier (interrupted) run of the same configuration."""

    seconds: float = 0.0
    """Wall time of this run."""

    search_seconds: float = 0.0
    """Sum of per-query search times (all records, reused ones included)."""

    gold_in_corpus: int | None = None
    """Distinct gold names (MathlibQR) or group names (MPR) present in the knowledge base."""

    gold_total: int | None = None
    """Distinct gold names in the queries run."""

    by_style: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Metrics per style and ``all`` (``n`` = queries in the row)."""

    out_dir: str = ""
    """Where ``records.jsonl``, ``report.json`` and ``report.md`` are."""

    @property
    def overall(self) -> dict[str, float]:
        """The ``all`` row."""
        return self.by_style.get("all", {})


def names_in_kb(kb: KnowledgeBase, names: Iterable[str]) -> set[str]:
    """Which of ``names`` some live declaration in ``kb`` carries (one metadata scan)."""
    from agentrag.stores.filters import In

    wanted = sorted(set(names))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        rowids = kb.manifest.live_rowids(In(field="name", values=tuple(wanted[start : start + 500])))
        ids = kb.manifest.live_ids_by_rowids(rowids.tolist())
        found.update(str(c.metadata.get("name", "")) for c in kb.get(list(ids.values())))
    return found & set(wanted)


def _setup(searcher: PremiseSearcher, config: EvalConfig) -> dict[str, str]:
    kb = searcher.kb
    setup = {
        "embedder": kb.embedder.name,
        "kb_version": str(kb.manifest.version),
        "retrieval": searcher.settings.retrieval.model_dump_json(),
    }
    if config.mode == "standard" and config.rerank:
        setup["reranker"] = searcher.reranker.name
    if config.mode == "standard" and config.hyde != "off":
        setup["generator"] = str(searcher.settings.generator.model)
    if config.mode == "reasoning":
        spec = searcher.agent.spec
        setup["generator"] = str(searcher.settings.generator.model)
        setup["graph"] = str(getattr(spec, "name", ""))
        setup["budgets"] = searcher.settings.budgets.model_dump_json()
        # The graph as it runs: the profile's plan (e.g. one round on cpu) changes the results.
        setup["profile"] = searcher.agent.profile.name
        setup["graph_budgets"] = json.dumps(getattr(spec, "budgets", {}), sort_keys=True)
    return setup


def run_key(data: Path, kb: str, config: EvalConfig, setup: Mapping[str, str]) -> str:
    """A short folder name for a configuration: readable prefix + hash of everything."""
    # Fields left at their defaults leave the key of runs made before they existed unchanged.
    unset = {"hyde"} if config.hyde == "off" else set()
    unset |= {name for name in ("max_rounds", "max_seconds") if getattr(config, name) is None}
    dumped = config.model_dump(exclude=unset)
    blob = json.dumps(
        {"data": file_hash(data), "kb": kb, "config": dumped, "setup": dict(setup)},
        sort_keys=True,
    )
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    mode = (
        config.mode
        if config.mode == "reasoning"
        else config.search_mode
        + ("-rerank" if config.rerank else "")
        + (f"-hyde-{config.hyde}" if config.hyde != "off" else "")
    )
    return f"{config.format}-{kb}-{mode}-k{config.k}-{digest}"


def _read_records(path: Path) -> dict[str, EvalRecord]:
    # Partial lines (a run killed mid-write) are skipped by read_models: those queries rerun,
    # and so do degraded ones (a step fell back: the server may be back).
    return {rec.id: rec for rec in read_models(path, EvalRecord) if not rec.error and not rec.warnings}


def _prepare(
    folder: Path, data: Path, kb: str, config: EvalConfig, setup: Mapping[str, str]
) -> dict[str, EvalRecord]:
    """Create the run folder, record its configuration, and read the records already there."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(
            {"data": str(data), "kb": kb, "config": config.model_dump(), "setup": dict(setup)}, indent=2
        )
    )
    return _read_records(folder / "records.jsonl")


def _write_reports(folder: Path, report: EvalReport) -> None:
    (folder / "report.json").write_text(report.model_dump_json(indent=2))
    (folder / "report.md").write_text(report_markdown(report))


async def arun_eval(
    searcher: PremiseSearcher,
    queries: Sequence[EvalQuery],
    config: EvalConfig,
    *,
    data: str | Path,
    out_dir: str | Path | None = None,
    concurrency: int | None = None,
    progress: Callable[[int, int, EvalRecord], None] | None = None,
) -> EvalReport:
    """Search every query, score, and write ``records.jsonl``, ``report.json`` and ``report.md``.

    Args:
        searcher: Searches the premise knowledge base.
        queries: The benchmark queries (:func:`read_eval_data`).
        config: Mode, k, reranking.
        data: The benchmark file (its hash is part of the run key).
        out_dir: Folder of this run. Default: ``<data_dir>/premise-eval/<run key>``.
        concurrency: Queries in flight (default 4 in standard mode, 1 in reasoning mode).
        progress: Called with ``(done, total, record)`` after each query (reused ones first).

    Returns:
        The report (also written as JSON and markdown).
    """
    t0 = time.perf_counter()
    data_path = Path(data)
    setup = _setup(searcher, config)
    if out_dir is None:
        out_dir = (
            searcher.settings.data_dir / "premise-eval" / run_key(data_path, searcher.kb.name, config, setup)
        )
    folder = Path(out_dir)
    cached = await asyncio.to_thread(_prepare, folder, data_path, searcher.kb.name, config, setup)
    records_path = folder / "records.jsonl"
    by_id = {q.id: q for q in queries}
    done: dict[str, EvalRecord] = {q.id: cached[q.id] for q in queries if q.id in cached}
    todo = [q for q in queries if q.id not in done]
    total = len(queries)
    count = 0
    for rec in done.values():
        count += 1
        if progress is not None:
            progress(count, total, rec)
    limit = asyncio.Semaphore(concurrency or (1 if config.mode == "reasoning" else 4))
    write_lock = asyncio.Lock()

    async def one(q: EvalQuery) -> EvalRecord:
        async with limit:
            t = time.perf_counter()
            try:
                result = await searcher.arun(
                    q.query,
                    k=config.k,
                    mode=config.mode,
                    search_mode=config.search_mode,
                    rerank=config.rerank,
                    candidates=config.candidates,
                    hyde=config.hyde,
                    budget=config.budget(),
                )
                rec = EvalRecord(
                    id=q.id,
                    style=q.style,
                    retrieved=[h.name for h in result.hits],
                    seconds=time.perf_counter() - t,
                    hyde=result.hyde,
                    warnings=result.errors,
                )
            except AgentragError as exc:
                log.warning("query %s failed: %s", q.id, exc.message)
                rec = EvalRecord(
                    id=q.id, style=q.style, retrieved=[], seconds=time.perf_counter() - t, error=exc.message
                )
        nonlocal count
        async with write_lock:
            if not rec.error:
                append_line(records_path, rec.model_dump_json())
            done[q.id] = rec
            count += 1
            if progress is not None:
                progress(count, total, rec)
        return rec

    await asyncio.gather(*(one(q) for q in todo))
    records = [done[q.id] for q in queries]
    gold = {n for q in queries for n in q.gold} | {d for q in queries for g in q.groups for d in g.docs}
    present = await asyncio.to_thread(names_in_kb, searcher.kb, gold) if gold else set()
    report = EvalReport(
        config=config,
        data=str(data_path),
        kb=searcher.kb.name,
        setup={k: v for k, v in setup.items() if k != "retrieval"},
        n=len(records),
        errors=sum(1 for r in records if r.error),
        degraded=sum(1 for r in records if r.warnings),
        reused=len(queries) - len(todo),
        seconds=time.perf_counter() - t0,
        search_seconds=sum(r.seconds for r in records),
        gold_in_corpus=len(present) if gold else None,
        gold_total=len(gold) if gold else None,
        by_style=summarize(records, by_id, config.k),
        out_dir=str(folder),
    )
    await asyncio.to_thread(_write_reports, folder, report)
    return report


def run_eval(
    searcher: PremiseSearcher,
    queries: Sequence[EvalQuery],
    config: EvalConfig,
    *,
    data: str | Path,
    out_dir: str | Path | None = None,
    concurrency: int | None = None,
    progress: Callable[[int, int, EvalRecord], None] | None = None,
) -> EvalReport:
    """Blocking :func:`arun_eval`."""
    return run_sync(
        arun_eval(
            searcher, queries, config, data=data, out_dir=out_dir, concurrency=concurrency, progress=progress
        )
    )


def report_markdown(report: EvalReport) -> str:
    """The report as a markdown table (one row per style, then ``all``)."""
    k = report.config.k
    cuts = _cutoffs(k)
    mpr = report.config.format == "mpr"
    cols = [f"recall_group@{k}", f"covered@{k}"] if mpr else [f"ndcg@{k}", *(f"recall@{c}" for c in cuts)]
    c = report.config
    what = (
        "reasoning"
        if c.mode == "reasoning"
        else c.search_mode
        + (" + rerank" if c.rerank else "")
        + (f" + HyDE ({c.hyde})" if c.hyde != "off" else "")
    )
    per_query = report.search_seconds / report.n if report.n else 0.0
    lines = [
        f"**{'MathlibMPR' if mpr else 'MathlibQR'}** on `{report.kb}` · {what} · k={k} · "
        f"{report.n} queries · {report.seconds:.0f} s ({per_query:.2f} s/query)"
        + (f" · {report.errors} failed" if report.errors else "")
        + (f" · {report.degraded} degraded" if report.degraded else ""),
        "",
    ]
    if report.gold_total:
        lines += [f"Gold names in the corpus: {report.gold_in_corpus}/{report.gold_total}", ""]
    lines.append("| style | n | " + " | ".join(cols) + " |")
    lines.append("|---|---:|" + "---:|" * len(cols))
    for style, row in report.by_style.items():
        cells = " | ".join(f"{row.get(col, 0.0):.3f}" for col in cols)
        name = f"**{style}**" if style == "all" else style
        lines.append(f"| {name} | {int(row['n'])} | {cells} |")
    return "\n".join(lines) + "\n"


def comparison_markdown(runs: Sequence[tuple[str, EvalReport]]) -> str:
    """Several runs on the same queries in one table: a row per style, a column per run.

    Cells are ``nDCG@k / Recall@k`` (MathlibMPR: ``recall_group@k / covered@k``); the last row
    gives seconds per query.
    """
    if not runs:
        return ""
    k = runs[0][1].config.k
    mpr = runs[0][1].config.format == "mpr"
    first, second = (f"recall_group@{k}", f"covered@{k}") if mpr else (f"ndcg@{k}", f"recall@{k}")
    seen = {style for _, r in runs for style in r.by_style}
    styles = [s for s in (*QR_STYLES, MPR_STYLE, "all") if s in seen]
    lines = [
        f"{first} / {second} · {runs[0][1].kb}",
        "",
        "| style | n | " + " | ".join(name for name, _ in runs) + " |",
        "|---|---:|" + "---:|" * len(runs),
    ]
    for style in styles:
        n = max(int(r.by_style.get(style, {}).get("n", 0)) for _, r in runs)
        cells = []
        for _, r in runs:
            row = r.by_style.get(style)
            cells.append(f"{row.get(first, 0.0):.3f} / {row.get(second, 0.0):.3f}" if row else "–")
        label = f"**{style}**" if style == "all" else style
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    per_query = [f"{r.search_seconds / r.n:.2f}" if r.n else "–" for _, r in runs]
    lines.append("| s/query | | " + " | ".join(per_query) + " |")
    return "\n".join(lines) + "\n"
