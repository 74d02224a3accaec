"""`agentrag ingest` and `agentrag kb`: build, inspect, sync and delete knowledge bases."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrag.cli._common import console, err_console, handle_errors, state

if TYPE_CHECKING:
    from agentrag.kb import IngestProgress, IngestReport

app = typer.Typer(help="Knowledge bases: list, stats, search, sync, delete.", no_args_is_help=True)

KBOption = Annotated[
    str | None, typer.Option("--kb", help="Knowledge base name (default: [kb] default_name).")
]


def _open(name: str | None, *, create: bool) -> Any:
    from agentrag.kb import KnowledgeBase

    return KnowledgeBase.open(state.settings(), name, create=create)


class _ProgressView:
    """A rich progress bar fed by IngestProgress events (ETA by bytes read)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[files]} files · {task.fields[chunks]} chunks · {task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self.task: Any = None

    def __enter__(self) -> _ProgressView:
        self.progress.__enter__()
        self.task = self.progress.add_task("ingest", total=None, files="0/0", chunks=0, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, event: IngestProgress) -> None:
        rate = (
            f"{event.chunks_embedded / event.embed_seconds:.1f} chunks/s" if event.embed_seconds > 0 else ""
        )
        self.progress.update(
            self.task,
            total=event.bytes_total or None,
            completed=event.bytes_done,
            description=Path(event.current).name[:32] or "ingest",
            files=f"{event.files_done}/{event.files_total}",
            chunks=event.chunks_embedded,
            rate=rate,
        )


def _summary(report: IngestReport, name: str) -> None:
    from rich.table import Table

    table = Table(title=f"knowledge base [bold]{name}[/]", show_header=True)
    for col in ("added", "unchanged", "replaced", "removed", "skipped", "chunks +", "chunks -"):
        table.add_column(col, justify="right")
    table.add_row(
        str(report.added),
        str(report.unchanged),
        str(report.replaced),
        str(report.removed),
        str(len(report.skipped)),
        str(report.chunks_added),
        str(report.chunks_removed),
    )
    console.print(table)
    rate = report.chunks_added / report.embed_seconds if report.embed_seconds else 0.0
    console.print(
        f"{report.seconds:.1f}s in all · embedding {report.embed_seconds:.1f}s"
        + (f" ({rate:.1f} chunks/s)" if rate else "")
        + f" · BM25 index {report.index_seconds:.2f}s"
    )
    if report.recovered:
        console.print(
            f"[yellow]recovered[/] {report.recovered} document(s) left unfinished by an interrupted run"
        )
    if report.skipped:
        reasons = Counter(s.reason for s in report.skipped)
        console.print("[yellow]skipped[/]:")
        for s in report.skipped[:20]:
            console.print(f"  {s.source}: {s.reason}", highlight=False)
        if len(report.skipped) > 20:
            console.print(f"  … and {len(report.skipped) - 20} more")
            for reason, n in reasons.most_common(5):
                console.print(f"  {n} × {reason}", highlight=False)


@handle_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to add.")],
    kb: KBOption = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", "-i", help="Glob a file must match (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", "-x", help="Glob of files/folders to leave out (repeatable)."),
    ] = None,
    sync: Annotated[
        bool, typer.Option("--sync", help="Also remove documents under PATHS whose files are gone.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Add files and folders to a knowledge base (unchanged ones are skipped)."""
    base = _open(kb, create=True)
    try:
        if quiet or as_json:
            report = base.ingest(paths, include=include, exclude=exclude, prune=sync)
        else:
            with _ProgressView() as view:
                report = base.ingest(paths, include=include, exclude=exclude, prune=sync, progress=view)
    finally:
        base.close()
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _summary(report, base.name)
    if report.missing:
        for path in report.missing:
            err_console.print(f"[red]error[/]: no such file or directory: {path}", highlight=False)
        raise typer.Exit(1)


@app.command("list")
@handle_errors
def list_kbs(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the knowledge bases in the data directory."""
    from agentrag.kb import KnowledgeBase

    names = KnowledgeBase.list_names(state.settings())
    if as_json:
        typer.echo(json.dumps(names))
    elif not names:
        err_console.print(f"no knowledge bases under {state.settings().data_dir}")
    else:
        for name in names:
            console.print(name)


@app.command()
@handle_errors
def stats(
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Documents, chunks, index health and disk use of a knowledge base."""
    base = _open(name, create=False)
    try:
        st = base.stats()
    finally:
        base.close()
    if as_json:
        typer.echo(st.model_dump_json(indent=2))
        return
    healthy = st.chunks == st.store_count == st.bm25_chunks and st.bm25_current and not st.unsettled_documents
    console.print(f"[bold]{st.name}[/] ({st.path})")
    console.print(f"  store       {st.store}   embedder {st.embedder}")
    console.print(f"  documents   {st.documents}")
    console.print(f"  chunks      {st.chunks} (store {st.store_count}, bm25 {st.bm25_chunks})")
    console.print(f"  disk        {st.disk_bytes / 1e6:.1f} MB")
    console.print(
        f"  health      {'[green]ok[/]' if healthy else '[yellow]needs sync[/] (agentrag kb sync)'}"
    )
    for root in st.roots:
        console.print(f"  root        {root}")
    from agentrag.scoring.calibration import list_calibrations

    fitted = list_calibrations(st.path)
    for _, cal in fitted:
        console.print(f"  calibrated  {cal.score_name} ({cal.method}, {cal.n_pairs} pairs)", highlight=False)
    if not fitted:
        console.print(f"  calibrated  no (agentrag kb calibrate {st.name} --data ...)", highlight=False)


@app.command()
@handle_errors
def sync(
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-read every path ingested before: add new, replace changed, remove deleted files."""
    base = _open(name, create=False)
    try:
        if as_json:
            report = base.sync()
        else:
            with _ProgressView() as view:
                report = base.sync(progress=view)
    finally:
        base.close()
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _summary(report, name)


@app.command()
@handle_errors
def delete(
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a knowledge base (its vectors, index and manifest)."""
    from agentrag.kb import KnowledgeBase

    if not yes and not typer.confirm(f"delete knowledge base {name!r}?"):
        raise typer.Exit(1)
    KnowledgeBase.delete(state.settings(), name)
    console.print(f"deleted {name}")


@app.command()
@handle_errors
def search(
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", min=1, help="Passages to show (at least 1).")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, bm25 or dense.")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Search a knowledge base and show the passages with their scores."""
    base = _open(name, create=False)
    try:
        passages = base.search(query, k=k, mode=mode)
    finally:
        base.close()
    if as_json:
        typer.echo(json.dumps([p.model_dump() for p in passages], indent=2))
        return
    for i, p in enumerate(passages, start=1):
        scores = " ".join(f"{key}={val:.3f}" for key, val in p.scores.as_dict().items())
        console.print(f"[bold]{i}.[/] {p.source} [{p.start}:{p.end}] [dim]{scores}[/]", highlight=False)
        console.print("   " + p.text[:300].replace("\n", " "), highlight=False)


@app.command()
@handle_errors
def calibrate(
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="A BEIR folder (qrels give the labels), labelled pairs (.jsonl: query, text, label), "
            "or unlabelled queries (.jsonl with query, or .txt one a line; needs --judge).",
        ),
    ],
    method: Annotated[
        str, typer.Option(help="isotonic (a few hundred pairs) or platt (few pairs).")
    ] = "isotonic",
    queries: Annotated[int, typer.Option("--queries", help="Queries used at most.")] = 200,
    depth: Annotated[int, typer.Option("--depth", help="Retrieved passages scored per query.")] = 10,
    split: Annotated[str | None, typer.Option(help="BEIR qrels split (default: the folder's first).")] = None,
    mode: Annotated[
        str, typer.Option(help="Retrieval mode of the candidates: hybrid, bm25, dense.")
    ] = "hybrid",
    judge: Annotated[
        bool, typer.Option("--judge", help="Label unlabelled queries' passages with the generator LLM.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Fit the reranker's score -> P(relevant) map for a knowledge base and store it with the KB.

    CRAG's gate thresholds and the rerank threshold then read as probabilities. The map is
    per reranker (its name: model and settings) and is used whenever that reranker runs on
    this knowledge base.
    """
    from agentrag._async import run_sync
    from agentrag.errors import ConfigError
    from agentrag.rerank import reranker_from_settings
    from agentrag.scoring.calibration import acalibrate_kb

    if method not in ("isotonic", "platt"):
        raise ConfigError(f"unknown method {method!r}", hint="isotonic or platt")
    if mode not in ("hybrid", "bm25", "dense"):
        raise ConfigError(f"unknown mode {mode!r}", hint="hybrid, bm25 or dense")
    settings = state.settings()
    base = _open(name, create=False)
    try:
        # Raw scores only: a calibration the reranker already has must not be applied twice.
        reranker = reranker_from_settings(settings, embedder=base.embedder)
        if reranker is None:
            raise ConfigError(
                "[rerank] kind is none: there is no reranker score to calibrate",
                hint="set [rerank] kind (embedding needs no LLM)",
            )
        llm_judge = None
        if judge:
            from agentrag.llm import LLMClient
            from agentrag.scoring.judge import LLMJudge

            llm_judge = LLMJudge(LLMClient.from_settings(settings, "generator"))
        from rich.progress import Progress

        with Progress(console=err_console, transient=True, disable=as_json) as bar:
            task = bar.add_task(f"calibrating {reranker.name[:40]}", total=None)
            report = run_sync(
                acalibrate_kb(
                    base,
                    reranker,
                    data,
                    method=method,  # type: ignore[arg-type]
                    max_queries=queries,
                    depth=depth,
                    split=split,
                    mode=mode,  # type: ignore[arg-type]
                    judge=llm_judge,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            )
    finally:
        base.close()
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    cal = report.calibration
    console.print(f"[bold]{name}[/]: calibrated {cal.score_name}", highlight=False)
    console.print(
        f"  {cal.method} on {cal.n_pairs} pairs ({cal.n_positive} relevant) from {report.queries} queries",
        highlight=False,
    )
    if report.labels == "llm-judge":
        console.print("  [yellow]labels: LLM-judged by the generator, not gold relevance judgements[/]")
    else:
        console.print("  labels: gold (from the data)")
    if report.held_out_brier is not None:
        console.print(
            f"  held out ({report.held_out_pairs} pairs, every 5th query): Brier {report.held_out_brier:.4f} "
            f"(raw scores {report.raw_brier:.4f}), ECE {report.held_out_ece:.4f}",
            highlight=False,
        )
    console.print(f"  stored in {report.path}", highlight=False)
