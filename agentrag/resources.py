"""Where the shipped graph specs (``graphs/``) live (prompts: :func:`agentrag.prompts.prompt_dirs`).

In a source checkout or an editable install they sit at the top of the repository; in a wheel
they are packaged under ``agentrag/_data/`` (pyproject's force-include). Both are looked up, the
packaged copy first.
"""

from __future__ import annotations

from pathlib import Path

from agentrag.errors import ConfigError

__all__ = ["graphs_dir"]

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(kind: str) -> Path:
    for candidate in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        f"the shipped {kind}/ folder is missing from this installation",
        hint="reinstall agentrag (pip install -e . from a checkout, or the wheel)",
    )


def graphs_dir() -> Path:
    """Folder of the shipped graph specs."""
    return _data_dir("graphs")
