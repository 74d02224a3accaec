"""`agentrag doctor`: check the model server, the models and the knowledge bases; say what to do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from agentrag.cli._common import console, handle_errors, state


@dataclass(frozen=True, kw_only=True)
class Check:
    """One line of the report."""

    area: str
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _guard(area: str, name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
    from agentrag.errors import AgentragError

    try:
        out = fn()
    except AgentragError as exc:
        return [Check(area=area, name=name, ok=False, detail=exc.message, fix=exc.hint)]
    except Exception as exc:  # a doctor reports, it does not crash
        return [Check(area=area, name=name, ok=False, detail=f"{type(exc).__name__}: {exc}")]
    return out if isinstance(out, list) else [out]


def check_server(settings: Any) -> list[Check]:
    """The local vLLM install and model, when an endpoint points at the local server."""
    from agentrag.models.setup import default_model_dir, venv_python

    server = settings.server
    local = f"http://{server.host}:{server.port}/v1"
    if local not in settings.generator.api_base + settings.reranker.api_base:
        return []
    checks = [
        Check(
            area="server",
            name="vLLM venv",
            ok=venv_python(server).exists(),
            detail=str(venv_python(server)),
            fix="agentrag models setup",
        ),
    ]
    model = server.model_path or default_model_dir(server)
    checks.append(
        Check(
            area="server",
            name="served model folder",
            ok=model.exists(),
            detail=str(model),
            fix="agentrag models setup (or set [server] model_path)",
        )
    )
    return checks


def check_endpoint(settings: Any, role: str) -> list[Check]:
    """The endpoint answers and serves the configured model name."""
    from agentrag._async import run_sync
    from agentrag.llm import LLMClient

    client = LLMClient.from_settings(settings, role)
    served = run_sync(client.served_models())
    want = (client.model or "").split("/", 1)[-1]
    out = []
    for base, names in served.items():
        ok = want in names
        out.append(
            Check(
                area="models",
                name=f"{role} @ {base}",
                ok=ok,
                detail=f"serves {', '.join(names) or 'nothing'}",
                fix="" if ok else f"serve {want!r} there, or set [{role}] model to one of {names}",
            )
        )
    return out


def check_embedder(settings: Any) -> Check:
    """The embedding model loads offline and embeds."""
    from agentrag.embed import embedder_from_settings

    emb = embedder_from_settings(
        settings.model_copy(update={"embedder": settings.embedder.model_copy(update={"cache": False})})
    )
    vec = emb.embed_query("doctor")
    return Check(
        area="models",
        name="embedder",
        ok=vec.shape[0] == emb.dim,
        detail=f"{emb.name}, {emb.dim}-d",
        fix="set [embedder] model to a local folder",
    )


def check_kbs(settings: Any) -> list[Check]:
    """Every knowledge base: indexes complete and in step, nothing left mid-write."""
    from agentrag.kb import KnowledgeBase

    names = KnowledgeBase.list_names(settings)
    if not names:
        return [
            Check(
                area="kb",
                name="knowledge bases",
                ok=True,
                detail=f"none under {settings.data_dir}",
                fix="agentrag ingest PATH",
            )
        ]
    from agentrag.errors import StoreError

    out = []
    for name in names:
        try:
            with KnowledgeBase.open(settings, name, create=False) as kb:
                s = kb.stats()
        except StoreError as exc:  # e.g. built with another embedder than the settings name
            out.append(Check(area="kb", name=name, ok=False, detail=exc.message, fix=exc.hint))
            continue
        problems = []
        if s.store_count != s.chunks:
            problems.append(f"vector store has {s.store_count} of {s.chunks} chunks")
        if not s.bm25_current or s.bm25_chunks != s.chunks:
            problems.append(f"BM25 index has {s.bm25_chunks} of {s.chunks} chunks")
        if s.unsettled_documents:
            problems.append(f"{s.unsettled_documents} documents left by an interrupted ingest")
        out.append(
            Check(
                area="kb",
                name=name,
                ok=not problems,
                detail="; ".join(problems) or f"{s.documents} documents, {s.chunks} chunks, {s.store}",
                fix=f"agentrag kb sync {name}  (repairs and brings both indexes in step)" if problems else "",
            )
        )
        out.append(check_calibration(settings, name))
    return out


def check_calibration(settings: Any, name: str) -> Check:
    """Whether the configured reranker's scores are probabilities on this knowledge base.

    A fitted calibration (``agentrag kb calibrate``) makes them so; Prism's P(yes) is a
    probability without one (uncalibrated); any other reranker's raw scores are not, so
    CRAG's probability thresholds would read a cosine or a logit: that is flagged.
    """
    from agentrag.scoring.calibration import find_calibration, list_calibrations

    kb_dir = settings.kb_dir(name)
    kind = settings.rerank.kind
    label = f"{name} calibration"
    fitted = list_calibrations(kb_dir)
    if kind == "none":
        return Check(
            area="kb", name=label, ok=True, detail=f"no reranker; {len(fitted)} calibration(s) stored"
        )
    from agentrag.rerank import reranker_from_settings

    # Only the name is needed: nothing loads (models load on first use).
    reranker = reranker_from_settings(settings)
    scorer = reranker.name if reranker is not None else kind
    cal = find_calibration(kb_dir, scorer)
    if cal is not None:
        brier = f", Brier {cal.fit_brier:.3f}" if cal.fit_brier is not None else ""
        return Check(
            area="kb",
            name=label,
            ok=True,
            detail=f"calibrated for {scorer} ({cal.method}, {cal.n_pairs} pairs{brier})",
        )
    others = (
        f"; calibrated for other rerankers: {', '.join(c.score_name for _, c in fitted)}" if fitted else ""
    )
    fix = f"agentrag kb calibrate {name} --data <BEIR folder | labelled pairs>  (or --judge)"
    if kind == "prism":
        return Check(
            area="kb",
            name=label,
            ok=True,
            detail=f"not calibrated; {scorer} P(yes) used as is{others}",
            fix=fix,
        )
    return Check(
        area="kb",
        name=label,
        ok=False,
        detail=f"not calibrated for {scorer}: its raw scores are not probabilities{others}",
        fix=fix,
    )


@handle_errors
def doctor(
    skip_models: Annotated[bool, typer.Option("--skip-models", help="Do not load the embedder.")] = False,
) -> None:
    """Check the model server, the models and the knowledge bases, and say what to do."""
    from rich.markup import escape
    from rich.table import Table

    settings = state.settings()
    checks: list[Check] = []
    checks += _guard("server", "local vLLM", lambda: check_server(settings))
    checks += _guard("models", "generator", lambda: check_endpoint(settings, "generator"))
    if settings.reranker != settings.generator:
        checks += _guard("models", "reranker", lambda: check_endpoint(settings, "reranker"))
    if not skip_models:
        checks += _guard("models", "embedder", lambda: check_embedder(settings))
    checks += _guard("kb", "knowledge bases", lambda: check_kbs(settings))
    table = Table("", "area", "check", "detail", "what to do", expand=True)
    for c in checks:
        # Details and hints are plain text (hints name settings sections like "[embedder]").
        table.add_row(
            "[green]✓[/]" if c.ok else "[red]✗[/]",
            c.area,
            escape(c.name),
            escape(c.detail),
            "" if c.ok else escape(c.fix),
        )
    console.print(table)
    failed = [c for c in checks if not c.ok]
    if failed:
        console.print(f"[red]{len(failed)} problem(s)[/]")
        raise typer.Exit(1)
    console.print("[green]all good[/]")
