"""`agentrag premise`: LeanSearch-style premise retrieval over Lean 4 / Mathlib sources.

``index`` builds a premise knowledge base (one chunk per declaration), ``search`` queries it
(standard: hybrid retrieval, optional reranking; ``--reasoning``: the ``premise`` graph), and
``eval`` scores it on MathlibQR or MathlibMPR.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrag.cli._common import CountProgress, PlainProgress, console, err_console, handle_errors, state

if TYPE_CHECKING:
    from agentrag.premise.corpus import IndexProgress, PremiseIndexReport
    from agentrag.premise.search import PremiseHit, PremiseResult, PremiseSearcher

app = typer.Typer(
    help="Premise retrieval over Lean 4 sources (LeanSearch v2 style): index, search, eval.",
    no_args_is_help=True,
)

DEFAULT_KB = "premises"

KBOption = Annotated[str, typer.Option("--kb", help="Premise knowledge base name.")]
RoundsOption = Annotated[
    int | None,
    typer.Option(
        "--max-rounds", min=1, help="Reasoning mode: rounds per query (default [budgets] max_rounds)."
    ),
]
SecondsOption = Annotated[
    float | None,
    typer.Option(
        "--max-seconds",
        min=0.001,
        help="Reasoning mode: wall time per query; the loop ends after the round that runs out "
        "(default [budgets] max_wall_s).",
    ),
]
HydeOption = Annotated[
    str | None,
    typer.Option(
        "--hyde",
        help="Also search with a hypothetical Lean declaration the generator writes (HyDE): "
        "off, natural (natural-language queries) or all. Default: the \\[premise] hyde setting.",
    ),
]


def _hyde_mode(value: str | None) -> str:
    from agentrag.errors import ConfigError

    mode = state.settings().premise.hyde if value is None else value
    if mode not in ("off", "natural", "all"):
        raise ConfigError(f"unknown HyDE mode {mode!r}", hint="use --hyde off, natural or all")
    return mode


def _open(name: str, *, create: bool) -> Any:
    from agentrag.kb import KnowledgeBase

    # Premise knowledge bases index and query with the [premise] lexical settings (Lean analyzer).
    return KnowledgeBase.open(state.settings().for_premises(), name, create=create)


class _IndexProgressView:
    """A rich progress bar over source files, fed by IndexProgress events."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]index"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files · {task.fields[decls]} declarations · {task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("[dim]{task.description}"),
            console=err_console,
        )
        self.task: Any = None
        self._t0 = 0.0

    def __enter__(self) -> _IndexProgressView:
        import time

        self._t0 = time.perf_counter()
        self.progress.__enter__()
        self.task = self.progress.add_task("", total=None, decls=0, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, event: IndexProgress) -> None:
        import time

        elapsed = time.perf_counter() - self._t0
        rate = f"{event.declarations / elapsed:,.0f} decl/s" if elapsed > 0 else ""
        self.progress.update(
            self.task,
            total=event.files_total,
            completed=event.files_done,
            decls=f"{event.declarations:,}",
            rate=rate,
            description=event.current[-48:],
        )


def _index_summary(report: PremiseIndexReport) -> None:
    from rich.table import Table

    table = Table(title=f"premise knowledge base [bold]{report.kb}[/]")
    for col in ("files", "declarations", "added", "unchanged", "replaced", "removed", "truncated"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{report.files:,}",
        f"{report.declarations:,}",
        f"{report.added:,}",
        f"{report.unchanged:,}",
        f"{report.replaced:,}",
        f"{report.removed:,}",
        f"{report.truncated:,}",
    )
    console.print(table)
    rate = report.chunks_added / report.embed_seconds if report.embed_seconds else 0.0
    console.print(
        f"{report.seconds:.1f}s in all · embedding {report.embed_seconds:.1f}s"
        + (f" ({rate:,.0f} declarations/s)" if rate else "")
        + f" · BM25 {report.index_seconds:.1f}s"
    )
    console.print(
        f"index: {report.documents:,} declarations, {report.chunks:,} chunks, "
        f"{report.disk_bytes / 1e6:,.1f} MB on disk"
    )
    if report.failed:
        console.print(f"[yellow]{len(report.failed)} file(s) could not be extracted[/]:")
        for f in report.failed[:10]:
            console.print(f"  {f['path']}: {f['reason']}", highlight=False)


@app.command()
@handle_errors
def index(
    directory: Annotated[
        Path, typer.Argument(help="Root of a Lean source tree (for Mathlib: the folder holding Mathlib/).")
    ],
    kb: KBOption = DEFAULT_KB,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", "-i", help="Glob relative to DIR (repeatable; default **/*.lean)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", "-x", help="fnmatch pattern of files to leave out (repeatable; default .lake/*, .*)."
        ),
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="Remove indexed declarations that are gone from the tree.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Extract the declarations of Lean sources and index them (one chunk per declaration).

    Re-indexing an unchanged tree embeds nothing; changed declarations are replaced.
    """
    from agentrag.premise.corpus import index_tree

    base = _open(kb, create=True)
    try:
        if quiet or as_json:
            report = index_tree(base, directory, include=include, exclude=exclude, prune=prune)
        elif not err_console.is_terminal:
            # No terminal to redraw a bar on (a log, a pipe): a plain line every 10 s.
            report = index_tree(
                base,
                directory,
                include=include,
                exclude=exclude,
                prune=prune,
                progress=PlainProgress("index").index,
            )
        else:
            with _IndexProgressView() as view:
                report = index_tree(
                    base, directory, include=include, exclude=exclude, prune=prune, progress=view
                )
    finally:
        base.close()
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _index_summary(report)


def _searcher(kb: str) -> PremiseSearcher:
    from agentrag.premise.search import PremiseSearcher

    settings = state.settings().for_premises()
    return PremiseSearcher(_open(kb, create=False), settings=settings)


def _print_hits(hits: list[PremiseHit]) -> None:
    if not hits:
        err_console.print("no declarations found")
        return
    for hit in hits:
        scores = " ".join(f"{key}={val:.3f}" for key, val in hit.scores.items())
        where = f"{hit.module}:{hit.line}" if hit.module else hit.path
        console.print(
            f"[bold]{hit.rank:>2}.[/] [bold cyan]{hit.name}[/] [dim]{hit.kind}[/] {where}  [dim]{scores}[/]",
            highlight=False,
            soft_wrap=True,  # one line per hit: easy to grep, the terminal wraps it
        )
        sig = " ".join(hit.signature.split())
        if sig:
            console.print(
                "    " + (sig if len(sig) <= 220 else sig[:219] + "…"), highlight=False, soft_wrap=True
            )


@app.command()
@handle_errors
def search(
    query: Annotated[str, typer.Argument(help="A statement, description, name or Lean notation.")],
    kb: KBOption = DEFAULT_KB,
    k: Annotated[int, typer.Option("-k", min=1, help="Declarations to show.")] = 10,
    rerank: Annotated[
        bool, typer.Option("--rerank", help="Rerank the retrieved candidates ([rerank] settings).")
    ] = False,
    reasoning: Annotated[
        bool,
        typer.Option(
            "--reasoning", help="Reasoning mode: the premise graph (sketch, search, filter, reflect)."
        ),
    ] = False,
    mode: Annotated[str, typer.Option(help="Standard-mode retrieval: hybrid, bm25 or dense.")] = "hybrid",
    candidates: Annotated[int, typer.Option(min=1, help="Candidates handed to the reranker.")] = 50,
    hyde: HydeOption = None,
    max_rounds: RoundsOption = None,
    max_seconds: SecondsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Search a premise knowledge base: full names, kind, module:line, signature and scores."""
    from agentrag._async import run_sync
    from agentrag.errors import ConfigError

    if mode not in ("hybrid", "bm25", "dense"):
        raise ConfigError(f"unknown retrieval mode {mode!r}", hint="use hybrid, bm25 or dense")
    if reasoning and rerank:
        raise ConfigError("--rerank applies to the standard mode only", hint="drop --rerank or --reasoning")
    if not reasoning and (max_rounds is not None or max_seconds is not None):
        raise ConfigError("--max-rounds and --max-seconds apply to --reasoning", hint="add --reasoning")
    budget = {"max_rounds": max_rounds, "max_wall_s": max_seconds}
    hyde_mode = _hyde_mode(hyde)
    searcher = _searcher(kb)

    async def go() -> PremiseResult:
        try:
            return await searcher.arun(
                query,
                k=k,
                mode="reasoning" if reasoning else "standard",
                search_mode=mode,  # type: ignore[arg-type]
                rerank=rerank,
                candidates=candidates,
                hyde=hyde_mode,  # type: ignore[arg-type]
                budget={key: val for key, val in budget.items() if val is not None} or None,
            )
        finally:
            await searcher.aclose()

    try:
        if reasoning and not as_json:
            with err_console.status("reasoning: sketch → search → filter → reflect …"):
                result = run_sync(go())
        elif hyde_mode != "off" and not as_json:
            with err_console.status("HyDE: the generator writes a hypothetical declaration …"):
                result = run_sync(go())
        else:
            result = run_sync(go())
    finally:
        searcher.kb.close()
    hits = result.hits
    if result.hyde:
        err_console.print(f"[dim]HyDE: {result.hyde}[/]", highlight=False, soft_wrap=True)
    for line in result.errors:
        err_console.print(f"[yellow]degraded[/] {line}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps([h.model_dump() for h in hits], indent=2, ensure_ascii=False))
    else:
        _print_hits(hits)


DEFAULT_DATA = Path("/work/shared/data/mathlib/MathlibQR.json")


@app.command("eval")
@handle_errors
def evaluate(
    data: Annotated[
        Path, typer.Option("--data", help="Benchmark file (MathlibQR.json or MathlibMPR.json).")
    ] = DEFAULT_DATA,
    fmt: Annotated[
        str | None, typer.Option("--format", help="mathlibqr or mpr (default: detected from the file).")
    ] = None,
    kb: KBOption = DEFAULT_KB,
    k: Annotated[int, typer.Option("-k", min=1, help="Cut-off of the metrics.")] = 10,
    configs: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            help="Configurations to run on the same queries and compare in one table (repeatable or "
            "comma-separated): bm25|dense|hybrid with +rerank, +hyde, +hyde-all; or reasoning. "
            "Replaces --mode/--retrieval/--rerank/--hyde.",
        ),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="standard or reasoning.")] = "standard",
    retrieval: Annotated[
        str, typer.Option("--retrieval", help="Standard-mode retrieval: hybrid, bm25 or dense.")
    ] = "hybrid",
    rerank: Annotated[bool, typer.Option("--rerank", help="Standard mode: rerank the candidates.")] = False,
    candidates: Annotated[int, typer.Option(min=1, help="Candidates handed to the reranker.")] = 50,
    hyde: HydeOption = None,
    max_rounds: RoundsOption = None,
    max_seconds: SecondsOption = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N queries.")] = None,
    styles: Annotated[
        list[str] | None,
        typer.Option("--styles", help="MathlibQR styles to run (repeatable or comma-separated)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Run folder (default <data_dir>/premise-eval/<run key>); with several --config, one "
            "sub-folder per configuration and comparison.md.",
        ),
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Queries in flight.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report(s) as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score premise search on MathlibQR (nDCG@k, Recall@k per style) or MathlibMPR (group recall, covered).

    Per-query results are kept in the run folder: an interrupted eval resumes where it stopped.
    Several ``--config`` run one after another on the same queries and end with one table, e.g.
    ``agentrag premise eval --kb mathlib -c bm25,dense,hybrid,hybrid+rerank``.
    """
    from agentrag.errors import ConfigError
    from agentrag.premise.evaluate import (
        EvalConfig,
        EvalFormat,
        comparison_markdown,
        config_from_spec,
        read_eval_data,
        report_markdown,
        run_eval,
    )

    if fmt not in (None, "mathlibqr", "mpr"):
        raise ConfigError(f"unknown format {fmt!r}", hint="use mathlibqr or mpr")
    specs = [c.strip() for item in configs or [] for c in item.split(",") if c.strip()]
    if specs and (mode != "standard" or retrieval != "hybrid" or rerank or hyde is not None):
        raise ConfigError(
            "--config replaces --mode, --retrieval, --rerank and --hyde",
            hint="spell each configuration as --config, e.g. -c hybrid -c hybrid+rerank -c reasoning",
        )
    if len(set(specs)) != len(specs):
        raise ConfigError(f"a configuration is given twice in {specs}", hint="give each --config once")
    if mode not in ("standard", "reasoning"):
        raise ConfigError(f"unknown mode {mode!r}", hint="use standard or reasoning")
    if retrieval not in ("hybrid", "bm25", "dense"):
        raise ConfigError(f"unknown retrieval {retrieval!r}", hint="use hybrid, bm25 or dense")
    style_list = [s.strip() for item in styles or [] for s in item.split(",") if s.strip()]
    queries = read_eval_data(data, fmt, style_list or None)  # type: ignore[arg-type]
    if limit is not None:
        queries = queries[:limit]
    if not queries:
        raise ConfigError(f"no queries in {data}", hint="check --styles and --limit")
    fmt_used: EvalFormat = "mpr" if queries[0].groups else "mathlibqr"
    # Every configuration is checked before the first one runs (a typo fails now, not in an hour).
    if specs:
        runs = [
            (
                spec,
                config_from_spec(
                    spec,
                    k=k,
                    candidates=candidates,
                    fmt=fmt_used,
                    max_rounds=max_rounds,
                    max_seconds=max_seconds,
                ),
            )
            for spec in specs
        ]
    else:
        single = EvalConfig(
            format=fmt_used,
            mode=mode,
            search_mode=retrieval,
            rerank=rerank,
            candidates=candidates,
            k=k,
            hyde=_hyde_mode(hyde),
            max_rounds=max_rounds if mode == "reasoning" else None,
            max_seconds=max_seconds if mode == "reasoning" else None,
        )
        runs = [("", single)]
    if (max_rounds is not None or max_seconds is not None) and all(c.mode != "reasoning" for _, c in runs):
        raise ConfigError(
            "--max-rounds and --max-seconds apply to the reasoning mode",
            hint="add --mode reasoning (or -c reasoning)",
        )
    searcher = _searcher(kb)
    reports = []
    try:
        for spec, config in runs:
            folder = (out / spec if spec and len(runs) > 1 else out) if out is not None else None
            label = f"eval {spec}" if spec else "eval"

            def go(progress: Any, config: EvalConfig = config, folder: Path | None = folder) -> Any:
                return run_eval(
                    searcher,
                    queries,
                    config,
                    data=data,
                    out_dir=folder,
                    concurrency=concurrency,
                    progress=progress,
                )

            if quiet or as_json:
                report = go(None)
            elif not err_console.is_terminal:
                report = go(PlainProgress(label, status=_eval_status))
            else:
                with CountProgress(len(queries), label, _eval_status) as view:
                    report = go(view)
            reports.append((spec or config.search_mode, report))
    finally:
        searcher.kb.close()
    if as_json:
        if len(reports) == 1:
            typer.echo(reports[0][1].model_dump_json(indent=2))
        else:
            typer.echo(json.dumps({name: r.model_dump(mode="json") for name, r in reports}, indent=2))
        return
    from rich.markdown import Markdown

    if len(reports) == 1:
        report = reports[0][1]
        console.print(Markdown(report_markdown(report)))
        extra = f" ({report.reused} reused from an earlier run)" if report.reused else ""
        console.print(f"[dim]records and reports in {report.out_dir}{extra}[/]", highlight=False)
        return
    table = comparison_markdown(reports)
    console.print(Markdown(table))
    if out is not None:
        (out / "comparison.md").write_text(table)
    for name, report in reports:
        extra = f", {report.reused} reused" if report.reused else ""
        console.print(f"[dim]{name}: {report.out_dir}{extra}[/]", highlight=False)


def _eval_status(record: Any) -> str:
    if record.error:
        return f"failed: {record.error[:40]}"
    if record.warnings:
        return f"degraded: {record.warnings[0][:40]}"
    return f"last {record.seconds:.1f}s"
