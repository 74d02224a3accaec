from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from agentrag import __version__
from agentrag.cli import app


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "models" in result.output


def test_console_entry_point_runs_without_heavy_imports() -> None:
    # A fresh interpreter: `agentrag --help` must not import the heavy stack (startup time is
    # measured in bench/cli_startup.py; here we check the cause, not the clock).
    code = (
        "import sys; sys.argv = ['agentrag', '--help']\n"
        "from agentrag.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'litellm', 'chromadb', 'sentence_transformers', 'langgraph', 'bm25s')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agentrag", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"agentrag {__version__}"


def test_ask_with_a_mistyped_kb_fails_and_creates_nothing(tmp_path) -> None:
    from typer.testing import CliRunner

    from agentrag.cli import app
    from agentrag.cli._common import state

    state._settings = None
    try:
        res = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "ask", "anything?", "--kb", "nosuch"])
    finally:
        state._settings = None
    assert res.exit_code == 1
    out = " ".join(res.output.split())  # rich wraps at the runner's 80 columns
    assert "kb.not_found" in out and "agentrag ingest PATH --kb NAME" in out
    assert not (tmp_path / "kb" / "nosuch").exists()


def test_ask_uses_the_configured_default_kb(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from agentrag.cli import app
    from agentrag.cli._common import state

    # With [kb] default_name = "notes", ingest and ask agree on the name without --kb.
    monkeypatch.setenv("AGENTRAG_KB__DEFAULT_NAME", "notes")
    state._settings = None
    try:
        res = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "ask", "anything?"])
    finally:
        state._settings = None
    out = " ".join(res.output.split())
    assert res.exit_code == 1 and "no knowledge base named 'notes'" in out
