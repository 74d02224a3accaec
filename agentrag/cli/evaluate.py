"""`agentrag eval`: side-by-side retrieval (BEIR) and question-answering (HotpotQA) evaluations.

Both commands cache each finished query under ``--out`` (``records.jsonl``): an interrupted run
resumes where it stopped and writes the same ``results.json``, ``report.md`` and ``report.png``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrag.cli._common import CountProgress, PlainProgress, console, err_console, handle_errors, state

if TYPE_CHECKING:
    from agentrag.evaluation.report import EvalReport
    from agentrag.evaluation.runner import JobRecord

app = typer.Typer(
    help="Side-by-side evaluations with JSON, Markdown and PNG reports: retrieval (BEIR), qa (HotpotQA).",
    no_args_is_help=True,
)

OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Report folder (default <data_dir>/eval/<kind>-<data name>). Reruns resume here."
    ),
]
LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N queries.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _slug(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", path.resolve().name).strip("-") or "data"


def _status(record: JobRecord) -> str:
    what = f"failed: {record.error[:40]}" if record.error else f"{record.seconds:.1f}s"
    return f"{record.system} · {what}"


def _show(report: EvalReport, out: Path) -> None:
    from rich.markdown import Markdown

    from agentrag.evaluation.report import report_markdown

    text = report_markdown(report)
    if console.is_terminal:
        console.print(Markdown(text))
    else:
        # Piped or redirected: the markdown itself, whole (rich would squeeze the table into
        # 80 columns and cut every cell).
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    extra = f" ({report.reused} results reused from an earlier run)" if report.reused else ""
    console.print(f"[dim]results.json, report.md, report.png in {out}{extra}[/]", highlight=False)


def _check_out(out: Path) -> None:
    """Fail now, not after the ingest, when the report folder cannot be written."""
    from agentrag.errors import ConfigError

    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--out {out}: {probe} is a file", hint="pass a folder for the reports")
    if not os.access(probe, os.W_OK):
        raise ConfigError(f"--out {out}: {probe} is not writable", hint="pass a folder you can write")


@app.command("retrieval")
@handle_errors
def retrieval(
    data: Annotated[
        Path, typer.Option("--data", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")
    ],
    split: Annotated[
        str | None,
        typer.Option("--split", help="Qrels split (default: test, dev or train, whichever exists)."),
    ] = None,
    configs: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            help="Configuration to run (repeatable): bm25, dense, hybrid, hybrid-rrf, hybrid-tmm, "
            "hybrid-minmax, hybrid+prf, hybrid+prism, hybrid+yesno, hybrid+cross-encoder. "
            "Default: bm25, dense, hybrid.",
        ),
    ] = None,
    k: Annotated[
        int, typer.Option("-k", min=1, help="Extra cut-off for nDCG@k / Recall@k (10, 100 always).")
    ] = 10,
    limit: LimitOption = None,
    out: OutOption = None,
    kb: Annotated[
        str | None, typer.Option("--kb", help="Knowledge base name (default beir-<folder>-<path hash>).")
    ] = None,
    cross_encoder: Annotated[
        Path | None,
        typer.Option("--cross-encoder", help="Local cross-encoder folder for hybrid+cross-encoder."),
    ] = None,
    rerank_depth: Annotated[int, typer.Option(min=1, help="Chunks reranked by prf / cross-encoder.")] = 100,
    prism_depth: Annotated[
        int, typer.Option(min=1, help="Chunks reranked by Prism / yesno (an LLM call each).")
    ] = 20,
    concurrency: Annotated[int, typer.Option(min=1, help="Queries in flight.")] = 4,
    quiet: QuietOption = False,
) -> None:
    """Score retrieval configurations side by side on a BEIR folder (nDCG@10, Recall@10/100, MRR, MAP).

    The corpus is ingested into a knowledge base once (a rerun embeds nothing).

    Example: agentrag eval retrieval --data shared/data/scifact --config bm25 --config hybrid --limit 100
    """
    from agentrag._async import run_sync
    from agentrag.evaluation.data import read_beir
    from agentrag.evaluation.retrieval import (
        DEFAULT_CONFIGS,
        arun_retrieval,
        build_systems,
        check_configs,
        open_beir_kb,
    )

    # Everything that can be checked is checked before the ingest (minutes to hours on CPU).
    names = [c.strip() for item in configs or DEFAULT_CONFIGS for c in item.split(",") if c.strip()]
    check_configs(names, cross_encoder=cross_encoder)
    settings = state.settings()
    if kb is not None:
        settings.kb_dir(kb)  # raises ConfigError on a bad name
    beir = read_beir(data, split).limited(limit)
    out = out or settings.data_dir / "eval" / f"retrieval-{_slug(data)}-{beir.split}"
    _check_out(out)
    plain = not quiet and not err_console.is_terminal
    if quiet:
        base, ingest = open_beir_kb(settings, beir, name=kb)
    elif plain:
        base, ingest = open_beir_kb(settings, beir, name=kb, progress=PlainProgress("ingest").ingest)
    else:
        from agentrag.cli.kb import _ProgressView

        with _ProgressView() as ingest_view:
            base, ingest = open_beir_kb(settings, beir, name=kb, progress=ingest_view)
    try:
        if ingest.added or ingest.replaced:
            err_console.print(
                f"[dim]knowledge base {base.name}: +{ingest.added} documents "
                f"({ingest.unchanged} unchanged) in {ingest.seconds:.0f}s[/]"
            )
        systems = build_systems(
            names,
            base,
            settings,
            cross_encoder=cross_encoder,
            rerank_depth=rerank_depth,
            prism_depth=prism_depth,
        )
        setup = {"kb": base.name, "embedder": base.embedder.name}

        def go(progress: Any) -> EvalReport:
            return run_sync(
                arun_retrieval(
                    beir, systems, out_dir=out, k=k, concurrency=concurrency, setup=setup, progress=progress
                )
            )

        if quiet:
            report = go(None)
        elif plain:
            report = go(PlainProgress("retrieval", status=_status))
        else:
            with CountProgress(len(systems) * len(beir.queries), "retrieval", _status) as view:
                report = go(view)
    finally:
        base.close()
    _show(report, out)


@app.command("qa")
@handle_errors
def qa(
    data: Annotated[Path, typer.Option("--data", help="HotpotQA file (release JSON or IRCoT JSONL).")],
    graphs: Annotated[
        list[str] | None,
        typer.Option(
            "--graph",
            help="Graph or ablation variant (repeatable): rag, crag, srr; rag+rewrite (with the "
            "query rewrite), rag-rerank (retrieval score as relevance), rag+yesno (LLM yes/no "
            "reranker), rag+prism (Prism with evidence), rag-pack (no UDCG packing), crag+refine "
            "(with strip refinement), rag@gold (the "
            "supporting paragraphs only: the reader's ceiling). Default rag.",
        ),
    ] = None,
    limit: LimitOption = None,
    out: OutOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Questions in flight.")] = 1,
    quiet: QuietOption = False,
) -> None:
    """Answer HotpotQA questions with graphs side by side (EM, F1, containment, UDCG, cost).

    Each question gets a knowledge base of its own 10 context paragraphs (the distractor setting).

    Variants answer whether a node earns its place on the served model: each changes one thing
    in its graph as the profile plans it (see agentrag.evaluation.qa.VARIANTS).

    Example: agentrag eval qa --data shared/data/hotpotqa/dev250.jsonl --graph rag --graph rag-pack --limit 10
    """
    from agentrag._async import run_sync
    from agentrag.evaluation.data import read_hotpotqa
    from agentrag.evaluation.qa import QAParts, arun_qa

    settings = state.settings()
    items = read_hotpotqa(data, limit=limit)
    names = [g.strip() for item in graphs or ["rag"] for g in item.split(",") if g.strip()]
    out = out or settings.data_dir / "eval" / f"qa-{_slug(data)}"
    parts = QAParts(settings)
    from agentrag.profiles import resolve

    profile = resolve(settings)
    kind = settings.rerank.kind if "kind" in settings.rerank.model_fields_set else profile.rerank_kind
    setup = {"generator": str(settings.generator.model), "reranker": kind, "profile": profile.name}

    def go(progress: Any) -> EvalReport:
        return run_sync(
            arun_qa(
                items,
                names,
                parts=parts,
                data=data,
                out_dir=out,
                concurrency=concurrency,
                setup=setup,
                progress=progress,
            )
        )

    if quiet:
        report = go(None)
    elif not err_console.is_terminal:
        report = go(PlainProgress("qa", status=_status))
    else:
        with CountProgress(len(names) * len(items), "qa", _status) as view:
            report = go(view)
    _show(report, out)
