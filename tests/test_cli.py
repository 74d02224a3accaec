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
