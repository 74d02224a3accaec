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

from agentrag.cli._common import console, err_console, handle_errors, state

if TYPE_CHECKING:
    from agentrag.premise.corpus import IndexProgress, PremiseIndexReport
    from agentrag.premise.search import PremiseHit

app = typer.Typer(
    help="Premise retrieval over Lean 4 sources (LeanSearch v2 style): index, search, eval.",
    no_args_is_help=True,
)

DEFAULT_KB = "premises"

KBOption = Annotated[str, typer.Option("--kb", help="Premise knowledge base name.")]


def _open(name: str, *, create: bool) -> Any:
    from agentrag.kb import KnowledgeBase

    return KnowledgeBase.open(state.settings(), name, create=create)


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
    directory: Annotated[Path, typer.Argument(help="Root of a Lean source tree (for Mathlib: the folder holding Mathlib/).")],
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
        else:
            with _IndexProgressView() as view:
                report = index_tree(base, directory, include=include, exclude=exclude, prune=prune, progress=view)
    finally:
        base.close()
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _index_summary(report)
