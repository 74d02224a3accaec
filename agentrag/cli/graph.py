"""`agentrag graph`: list, show (Mermaid + PNG) and validate graph specs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentrag.cli._common import console, handle_errors

app = typer.Typer(help="Graph specs: list, show (Mermaid + PNG), validate.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_graphs() -> None:
    """The shipped graphs and what they do."""
    from rich.table import Table

    from agentrag.graph.spec import list_specs

    table = Table("name", "nodes", "loop budget", "description")
    for spec in list_specs():
        rounds = spec.budgets.get("max_rounds")
        table.add_row(
            spec.name, str(len(spec.nodes)), f"{rounds} rounds" if rounds else "-", spec.description
        )
    console.print(table)


@app.command()
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="A shipped graph name or a path to a YAML spec.")],
    png: Annotated[Path | None, typer.Option(help="Where to write the PNG (default ./<name>.png).")] = None,
    no_png: Annotated[bool, typer.Option("--no-png", help="Print the Mermaid text only.")] = False,
) -> None:
    """Validate a graph, print it as Mermaid and draw it as a PNG."""
    from agentrag.graph import load_graph
    from agentrag.graph.draw import draw_png

    graph = load_graph(name)
    typer.echo(graph.mermaid())
    if not no_png:
        out = draw_png(graph.spec, png or Path(f"{graph.name}.png"))
        console.print(f"[dim]drawn to {out}[/]", highlight=False)


@app.command()
@handle_errors
def validate(path: Annotated[Path, typer.Argument(help="A YAML graph spec.")]) -> None:
    """Check a spec: nodes, parameters, edges, routes, reachability."""
    from agentrag.graph.spec import load_spec

    spec = load_spec(path)
    console.print(f"[green]ok[/]: {spec.name} ({len(spec.nodes)} nodes, {len(spec.routes)} routes)")
