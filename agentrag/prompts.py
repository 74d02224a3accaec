"""Prompt templates: Jinja2 files under ``prompts/``, one per LLM role, with declared variables.

Each template starts with a Jinja comment holding a small YAML header, then one block per chat
role (``system``, ``user``, optionally ``assistant`` for a prefilled turn) or a single ``prompt``
block for a raw completion prompt::

    {#-
    description: Answer from numbered evidence, citing it.
    variables: [question, evidence]
    -#}
    {% block system %}You answer questions from the evidence given ...{% endblock %}
    {% block user %}Question: {{ question }} ...{% endblock %}

Loading checks that the template uses no variable it does not declare; rendering checks that
every declared variable is given (and fails on any undefined name: StrictUndefined).

A user may point ``prompts_dir`` at a folder of their own; files there win over the shipped
ones with the same name.

Example:
    >>> lib = PromptLibrary()
    >>> msgs = lib.messages("generate", question="Who?", evidence=[], history=[])
    >>> [m["role"] for m in msgs]
    ['system', 'user']
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agentrag.errors import PromptError
from agentrag.resources import prompts_dir

__all__ = ["Prompt", "PromptLibrary", "default_library"]

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Prompt:
    """A loaded, checked template."""

    name: str
    """File stem (``generate`` for ``generate.j2``)."""

    description: str
    """What the prompt is for."""

    variables: tuple[str, ...]
    """Variables the caller must pass."""

    path: Path
    """Where it was loaded from."""

    template: Any
    """The compiled Jinja2 template."""

    def _context(self, values: dict[str, Any]) -> Any:
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise PromptError(
                f"prompt {self.name!r} needs {', '.join(missing)} (declared in {self.path})",
                hint="pass every declared variable when rendering",
            )
        return self.template.new_context(values)

    def messages(self, **values: Any) -> list[dict[str, str]]:
        """Render the role blocks into chat messages (empty blocks are left out)."""
        ctx = self._context(values)
        out = []
        for role in _ROLES:
            block = self.template.blocks.get(role)
            if block is None:
                continue
            text = _render_block(block, ctx, self)
            if text:
                out.append({"role": role, "content": text})
        if not out:
            raise PromptError(f"prompt {self.name!r} has no system/user block", hint=f"see {self.path}")
        return out

    def text(self, **values: Any) -> str:
        """Render the ``prompt`` block (a raw completion prompt, sent as is)."""
        block = self.template.blocks.get("prompt")
        if block is None:
            raise PromptError(f"prompt {self.name!r} has no 'prompt' block", hint=f"see {self.path}")
        return _render_block(block, self._context(values), self, strip=False)


def _render_block(block: Any, ctx: Any, prompt: Prompt, *, strip: bool = True) -> str:
    from jinja2 import UndefinedError

    try:
        text = "".join(block(ctx))
    except UndefinedError as exc:
        raise PromptError(f"prompt {prompt.name!r}: {exc.message}", hint=f"see {prompt.path}") from None
    return text.strip() if strip else text


class PromptLibrary:
    """Loads templates from a user folder (optional) and the shipped ``prompts/``.

    Args:
        user_dir: A folder whose ``*.j2`` files override shipped ones by name.
    """

    def __init__(self, user_dir: Path | None = None) -> None:
        self.dirs = [d for d in (user_dir, prompts_dir()) if d is not None]
        self._cache: dict[str, Prompt] = {}

    def names(self) -> list[str]:
        """Every prompt name available."""
        return sorted({p.stem for d in self.dirs if d.is_dir() for p in d.glob("*.j2")})

    def get(self, name: str) -> Prompt:
        """Load (once) and check the template ``name``.

        Raises:
            PromptError: Missing file, bad header, or a variable used but not declared.
        """
        if name not in self._cache:
            for folder in self.dirs:
                path = folder / f"{name}.j2"
                if path.is_file():
                    self._cache[name] = _load(path)
                    break
            else:
                raise PromptError(
                    f"no prompt template {name!r} in {', '.join(map(str, self.dirs))}",
                    hint=f"available: {', '.join(self.names())}",
                )
        return self._cache[name]

    def messages(self, name: str, **values: Any) -> list[dict[str, str]]:
        """Shorthand for ``get(name).messages(**values)``."""
        return self.get(name).messages(**values)

    def text(self, name: str, **values: Any) -> str:
        """Shorthand for ``get(name).text(**values)``."""
        return self.get(name).text(**values)


@functools.cache
def _environment() -> Any:
    from jinja2 import Environment, StrictUndefined

    # Prompts are not HTML: no autoescape. keep_trailing_newline so raw prompts end exactly.
    return Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _load(path: Path) -> Prompt:
    from jinja2 import TemplateSyntaxError, meta

    source = path.read_text()
    header: dict[str, Any] = {}
    stripped = source.lstrip()
    if stripped.startswith("{#"):
        end = stripped.find("#}")
        if end < 0:
            raise PromptError(f"{path}: the header comment is not closed")
        try:
            header = yaml.safe_load(stripped[2:end].strip("-").strip()) or {}
        except yaml.YAMLError as exc:
            raise PromptError(f"{path}: the header is not valid YAML: {exc}") from None
    if not isinstance(header, dict) or "variables" not in header:
        raise PromptError(
            f"{path}: the template must start with a header comment declaring its variables",
            hint="{#- description: ...\\nvariables: [a, b] -#}",
        )
    declared = tuple(header.get("variables") or ())
    env = _environment()
    try:
        used = meta.find_undeclared_variables(env.parse(source))
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        raise PromptError(f"{path}:{exc.lineno}: {exc.message}") from None
    undeclared = sorted(used - set(declared))
    if undeclared:
        raise PromptError(
            f"{path}: uses undeclared variable(s) {', '.join(undeclared)}",
            hint="add them to the header's variables list",
        )
    return Prompt(
        name=path.stem,
        description=str(header.get("description", "")),
        variables=declared,
        path=path,
        template=template,
    )


@functools.cache
def default_library() -> PromptLibrary:
    """The shipped prompts (cached)."""
    return PromptLibrary()
