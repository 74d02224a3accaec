"""The `agentrag` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentrag import __version__
from agentrag.cli import ask as ask_cli
from agentrag.cli import doctor as doctor_cli
from agentrag.cli import evaluate as eval_cli
from agentrag.cli import graph as graph_cli
from agentrag.cli import kb as kb_cli
from agentrag.cli import models as models_cli
from agentrag.cli import premise as premise_cli
from agentrag.cli._common import setup_logging, state

app = typer.Typer(
    name="agentrag",
    help="RAG agents over your own documents and your own models.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentrag {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Settings file (default: ./agentrag.toml or $AGENTRAG_CONFIG)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where knowledge bases and caches live (default .agentrag)."),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="-v info, -vv debug.")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """RAG agents over your own documents and your own models."""
    state.config = config
    state.data_dir = data_dir
    state.verbose = verbose
    setup_logging(verbose)


app.add_typer(models_cli.app, name="models")
app.command("ingest")(kb_cli.ingest)
app.add_typer(kb_cli.app, name="kb")
app.command("ask")(ask_cli.ask)
app.command("chat")(ask_cli.chat)
app.add_typer(graph_cli.app, name="graph")
app.command("doctor")(doctor_cli.doctor)
app.add_typer(premise_cli.app, name="premise")
app.add_typer(eval_cli.app, name="eval")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    finally:
        # Close HTTP pools while the event loop still runs: nothing left for a __del__ at exit.
        from agentrag._async import shutdown

        shutdown()
