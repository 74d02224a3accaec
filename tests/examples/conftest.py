"""Helpers for the example tests: load an example file as a module, run one as a subprocess."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def load_example(relative: str) -> ModuleType:
    """Import ``examples/<relative>`` (examples are scripts, not a package)."""
    path = EXAMPLES / relative
    name = "example_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up by name
    spec.loader.exec_module(module)
    return module


def run_example(
    relative: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<relative>`` with this interpreter from the repo root; fail on a non-zero exit.

    The repo root goes first on ``PYTHONPATH`` so the examples import this checkout's
    ``agentrag`` (not another editable install), and ``AGENTRAG_*`` variables of the calling
    shell are dropped so only ``env`` configures the run.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRAG_") or k == "AGENTRAG_HOME"}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / relative), *args],
        cwd=REPO,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{relative} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc
