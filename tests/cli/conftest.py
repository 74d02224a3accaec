"""CLI tests run commands in-process through typer's CliRunner, with clean global state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentrag.cli import app
from agentrag.cli._common import state


@pytest.fixture(autouse=True)
def _fresh_cli_state(monkeypatch: pytest.MonkeyPatch, embedder):
    for key in [k for k in os.environ if k.startswith("AGENTRAG_")]:
        monkeypatch.delenv(key)
    # In-process commands share the session's real MiniLM (loading it per command is slow);
    # a subprocess test builds its own from settings, as a user's shell would.
    import agentrag.embed

    monkeypatch.setattr(agentrag.embed, "embedder_from_settings", lambda settings: embedder)
    state._settings = None
    yield
    state._settings = None


def invoke(data: Path, *args: str) -> Result:
    """Run ``agentrag --data-dir DATA ARGS...`` in-process (settings re-read each time)."""
    state._settings = None
    return CliRunner().invoke(app, ["--data-dir", str(data), *args])
