"""`agentrag models`: set up, serve, inspect and stop the local vLLM server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from agentrag.cli._common import console, err_console, handle_errors, state

app = typer.Typer(help="Local model serving with vLLM (setup, serve, status, stop).", no_args_is_help=True)


def _server(**updates: Any) -> Any:
    server = state.settings().server
    updates = {k: v for k, v in updates.items() if v is not None}
    return server.model_copy(update=updates) if updates else server


@app.command()
@handle_errors
def setup(
    vllm_spec: Annotated[
        str | None, typer.Option(help="pip requirement for vLLM (e.g. 'vllm' on a GPU machine).")
    ] = None,
    torch_spec: Annotated[
        str | None, typer.Option(help="pip requirement for torch, installed first.")
    ] = None,
    no_default_model: Annotated[
        bool, typer.Option("--no-default-model", help="Skip preparing SmolLM2-135M-Instruct.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Redo every step.")] = False,
) -> None:
    """Create the vLLM server's venv and prepare the default local model.

    Idempotent: finished steps are skipped, an interrupted setup resumes where it stopped.
    """
    import time

    from agentrag.models.setup import run_setup

    server = _server(vllm_spec=vllm_spec, torch_spec=torch_spec)
    console.print(f"server home: [bold]{server.home}[/]")
    t0 = time.perf_counter()
    status_ctx: list[Any] = []

    def on_step(step: Any, what: str, seconds: float) -> None:
        if what == "skipped":
            console.print(f"  [dim]✓ {step.description} (already done)[/]")
        elif what == "start":
            ctx = console.status(f"  {step.description} ...")
            ctx.__enter__()
            status_ctx.append(ctx)
        else:
            if status_ctx:
                status_ctx.pop().__exit__(None, None, None)
            console.print(f"  [green]✓[/] {step.description} [dim]({seconds:.0f}s)[/]")

    try:
        logf = run_setup(server, default_model=not no_default_model, force=force, on_step=on_step)
    finally:
        while status_ctx:
            status_ctx.pop().__exit__(None, None, None)
    console.print(f"[green]setup complete[/] in {time.perf_counter() - t0:.0f}s (log: {logf})")
    console.print("next: [bold]agentrag models serve[/]")


@app.command()
@handle_errors
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default: settings server.port).")] = None,
    model: Annotated[
        Path | None, typer.Option(help="A Hugging Face model folder (default: the prepared SmolLM2).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Served model name (default: settings server.served_name).")
    ] = None,
    max_model_len: Annotated[
        int | None, typer.Option(help="Context length (default: settings server.max_model_len).")
    ] = None,
    embedding: Annotated[
        bool, typer.Option("--embedding", help="Serve an embedding model (/v1/embeddings).")
    ] = False,
    extra: Annotated[
        list[str] | None,
        typer.Option("--vllm-arg", help="Extra vLLM flag, repeatable (e.g. --vllm-arg=--runner=pooling)."),
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return without waiting for health.")] = False,
) -> None:
    """Start vLLM in the background on 127.0.0.1 and wait until it answers."""
    import time

    from agentrag.models.server import serve as start

    server = _server()
    t0 = time.perf_counter()
    with console.status("starting vLLM ...") as spinner:
        info = start(
            server,
            port=port,
            model_path=model,
            served_name=name,
            max_model_len=max_model_len,
            embedding=embedding,
            extra_args=extra,
            wait=not no_wait,
            on_wait=lambda s: spinner.update(f"starting vLLM ... {s:.0f}s (log: {server.home / 'run'})"),
        )
    took = time.perf_counter() - t0
    state_word = "started" if not no_wait else "starting"
    console.print(
        f"[green]{state_word}[/] {info.served_name} at [bold]{info.url}[/] "
        f"(pid {info.pid}, {took:.0f}s; log {info.log_path or 'n/a'})"
    )


@app.command()
@handle_errors
def status(
    port: Annotated[int | None, typer.Option(help="Only this port.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show local servers: running, healthy, which models they serve."""
    from dataclasses import asdict

    from agentrag.models.server import status as get_status
    from agentrag.models.setup import default_model_dir, venv_python

    server = _server()
    rows = get_status(server, port=port)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2, default=str))
        return
    from rich.table import Table

    ok, missing = "[green]ok[/]", "[red]missing[/] (agentrag models setup)"
    console.print(
        f"venv: {ok if venv_python(server).exists() else missing}  "
        f"default model: {ok if default_model_dir(server).exists() else missing}"
    )
    table = Table("port", "url", "process", "health", "serves", "note")
    for r in rows:
        proc = f"pid {r.info.pid}" if r.running and r.info else ("external" if r.healthy else "-")
        table.add_row(
            str(r.port),
            r.url,
            proc,
            "[green]healthy[/]" if r.healthy else "[red]down[/]",
            ", ".join(r.served) or "-",
            r.problem,
        )
    console.print(table)


@app.command()
@handle_errors
def stop(
    port: Annotated[int | None, typer.Option(help="Port (default: settings server.port).")] = None,
    all_ports: Annotated[bool, typer.Option("--all", help="Stop every server we started.")] = False,
) -> None:
    """Stop a server started by `agentrag models serve`."""
    from agentrag.models.server import status as get_status
    from agentrag.models.server import stop as stop_server

    server = _server()
    ports = [r.port for r in get_status(server) if r.info is not None] if all_ports else [port or server.port]
    for p in ports:
        if stop_server(server, port=p):
            console.print(f"stopped the server on port {p}")
        else:
            err_console.print(f"no server of ours on port {p}")
