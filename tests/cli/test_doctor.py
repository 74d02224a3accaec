"""`agentrag doctor`: each problem reported with what to do; a healthy setup says so."""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrag.cli import app
from agentrag.cli._common import state


@pytest.fixture(autouse=True)
def _fresh_cli_state(monkeypatch: pytest.MonkeyPatch, embedder):
    for key in [k for k in os.environ if k.startswith("AGENTRAG_")]:
        monkeypatch.delenv(key)
    import agentrag.embed

    monkeypatch.setattr(agentrag.embed, "embedder_from_settings", lambda settings: embedder)
    state._settings = None
    yield
    state._settings = None


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # Wide enough that rich does not fold the table's cells across lines.
    from agentrag.cli._common import console

    monkeypatch.setattr(console, "width", 400)


def invoke(data: Path, *args: str):
    state._settings = None
    return CliRunner().invoke(app, ["--data-dir", str(data), "doctor", *args])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ingest(data: Path, tmp_path: Path, name: str = "notes") -> None:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "a.md").write_text("The Aurora K2 warranty lasts two years and covers the motor.")
    state._settings = None
    res = CliRunner().invoke(app, ["--data-dir", str(data), "ingest", str(docs), "--kb", name])
    assert res.exit_code == 0, res.output


def row(output: str, needle: str) -> str:
    lines = [line for line in output.splitlines() if needle in line]
    assert lines, f"no row with {needle!r} in:\n{output}"
    return lines[0]


def test_unreachable_server_and_an_out_of_step_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    ingest(data, tmp_path)
    # A second knowledge base recorded as built with another embedder: it cannot be opened
    # with these settings, and the doctor says so instead of crashing.
    ingest(data, tmp_path, "other")
    with sqlite3.connect(data / "kb" / "other" / "manifest.sqlite") as db:
        db.execute("UPDATE meta SET value = 'some-other-model' WHERE key = 'embedder'")
    port = free_port()  # nothing listens there
    monkeypatch.setenv("AGENTRAG_GENERATOR__API_BASE", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("AGENTRAG_RERANKER__API_BASE", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("AGENTRAG_GENERATOR__MAX_RETRIES", "0")

    res = invoke(data)
    assert res.exit_code == 1, res.output
    gen = row(res.output, "generator")
    assert "✗" in gen and str(port) in gen
    assert "✓" in row(res.output, "embedder")
    assert "✓" in row(res.output, "notes") and "1 documents, 1 chunks" in row(res.output, "notes")
    other = row(res.output, "other")
    assert "✗" in other and "some-other-model" in other and "same [embedder] settings" in other
    assert "3 problem(s)" in res.output


@pytest.mark.slow
def test_healthy_against_the_real_server(
    tmp_path: Path, vllm_server: str, server_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local server the doctor checks is the tests' model server.
    monkeypatch.setenv("AGENTRAG_SERVER__MODEL", server_settings.model)
    monkeypatch.setenv("AGENTRAG_SERVER__PORT", str(server_settings.port))
    data = tmp_path / "data"
    ingest(data, tmp_path)
    res = invoke(data)
    assert res.exit_code == 0, res.output
    assert "all good" in res.output
    assert server_settings.served_name in row(res.output, "generator")
    assert "1 documents, 1 chunks" in row(res.output, "notes")

    # A model name the server does not serve: named, with what it does serve.
    monkeypatch.setenv("AGENTRAG_GENERATOR__MODEL", "hosted_vllm/no-such-model")
    res = invoke(data)
    assert res.exit_code == 1, res.output
    gen = row(res.output, "generator")
    assert "✗" in gen and server_settings.served_name in gen and "no-such-model" in res.output


def test_errors_print_settings_sections_literally(capsys: pytest.CaptureFixture[str]) -> None:
    from agentrag.cli._common import render_error
    from agentrag.errors import StoreError

    render_error(StoreError("built with [other] embedder", hint="use the same [embedder] settings"))
    err = capsys.readouterr().err
    assert "built with [other] embedder" in err and "use the same [embedder] settings" in err
