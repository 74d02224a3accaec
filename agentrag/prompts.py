"""Prompt templates: Jinja2 files under ``prompts/``, one per LLM role, with declared variables.

A template starts with a header, a Jinja comment holding YAML::

    {#-
    role: rerank_prism
    description: Prism-style evidence reranking (raw ChatML prompt).
    kind: raw                 # raw: one string for /v1/completions; chat: a list of messages
    required: [instruction, query, document]
    optional: {examples: []}  # variables with defaults
    -#}

The loader checks, when a template is loaded, that every variable it uses is declared and every
declared variable is used; and, when it is rendered, that every required variable is given and
nothing undeclared is passed (a typo in a variable name is an error, not an empty string).
Rendering uses ``StrictUndefined``, so an attribute missing from a passed object fails too.

A ``chat`` template marks each message with a line ``<<system>>``, ``<<user>>`` or
``<<assistant>>``; :meth:`PromptTemplate.messages` splits the rendered text there.

Templates are found, first match wins, in: directories passed explicitly, ``$AGENTRAG_PROMPTS``
(``os.pathsep``-separated), the repository's ``prompts/`` (a source checkout) and
``agentrag/_data/prompts`` (an installed wheel).

Example:
    >>> from agentrag.prompts import load_prompt
    >>> tpl = load_prompt("udcg_abstain")
    >>> sorted(tpl.required)
    ['passage', 'question']
    >>> tpl.messages(question="Who wrote Hamlet?", passage="Shakespeare wrote it.")[0]["role"]
    'system'
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentrag.errors import PromptError

if TYPE_CHECKING:
    import jinja2

__all__ = ["PromptTemplate", "load_prompt", "prompt_dirs", "render_prompt"]

log = logging.getLogger(__name__)

PROMPTS_ENV = "AGENTRAG_PROMPTS"
SUFFIX = ".jinja"
_HEADER = re.compile(r"\A\{#-?(?P<body>.*?)-?#\}", re.DOTALL)
_ROLE_LINE = re.compile(r"^<<(system|user|assistant)>>[ \t]*$", re.MULTILINE)


def prompt_dirs(extra: Sequence[Path | str] = ()) -> list[Path]:
    """Directories searched for templates, in order (only those that exist).

    Args:
        extra: Directories to search first (a user's own copies).
    """
    candidates = [Path(p).expanduser() for p in extra]
    env = os.environ.get(PROMPTS_ENV)
    if env:
        candidates += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    package = Path(__file__).resolve().parent
    # A source checkout keeps prompts/ beside the package; the wheel carries a copy inside it
    # (pyproject's force-include).
    candidates += [package.parent / "prompts", package / "_data" / "prompts"]
    seen: set[Path] = set()
    out = []
    for path in candidates:
        if path.is_dir() and path not in seen:
            seen.add(path)
            out.append(path)
    return out


@dataclass(frozen=True, kw_only=True)
class PromptTemplate:
    """A loaded, checked template. Build it with :func:`load_prompt`."""

    name: str
    """File name without ``.jinja``."""

    path: Path
    """Where it was loaded from."""

    role: str
    """The LLM role it serves (from the header)."""

    description: str
    """What the prompt is for (from the header)."""

    kind: Literal["raw", "chat"]
    """``raw``: one string sent verbatim; ``chat``: messages split on ``<<role>>`` lines."""

    required: frozenset[str]
    """Variables that must be passed."""

    optional: Mapping[str, Any] = field(default_factory=dict)
    """Variables that may be passed, with their defaults."""

    _template: jinja2.Template | None = field(default=None, repr=False, compare=False)

    def render(self, **variables: Any) -> str:
        """Render to text.

        Raises:
            PromptError: A required variable is missing, an undeclared one is passed, or the
                template touched something undefined.
        """
        import jinja2

        missing = self.required - variables.keys()
        if missing:
            raise PromptError(
                f"prompt {self.name!r} needs {sorted(missing)} (declared required in {self.path})",
                hint=f"pass every required variable: {sorted(self.required)}",
            )
        unknown = variables.keys() - self.required - self.optional.keys()
        if unknown:
            raise PromptError(
                f"prompt {self.name!r} does not declare {sorted(unknown)}",
                hint=f"declared: required {sorted(self.required)}, optional {sorted(self.optional)}",
            )
        assert self._template is not None
        try:
            return self._template.render({**self.optional, **variables})
        except jinja2.UndefinedError as exc:
            raise PromptError(f"rendering prompt {self.name!r} failed: {exc}") from exc

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        """Render a ``chat`` template into ``[{"role", "content"}, ...]``.

        Raises:
            PromptError: The template is not a chat template or has no ``<<role>>`` marker.
        """
        if self.kind != "chat":
            raise PromptError(f"prompt {self.name!r} is a {self.kind} template, not chat")
        text = self.render(**variables)
        parts = _ROLE_LINE.split(text)
        # split() with one group gives [before, role, body, role, body, ...]
        if parts[0].strip():
            raise PromptError(f"prompt {self.name!r} has text before its first <<role>> line")
        out = []
        for role, body in zip(parts[1::2], parts[2::2], strict=True):
            out.append({"role": role, "content": body.strip("\n")})
        if not out:
            raise PromptError(f"prompt {self.name!r} has no <<system>>/<<user>>/<<assistant>> line")
        return out


def _environment() -> jinja2.Environment:
    import jinja2

    # keep_trailing_newline: raw prompts end exactly where the model's answer begins, and a
    # newline there changes the tokens the model sees.
    return jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # prompts are plain text, not HTML
    )


def _find(name: str, dirs: Sequence[Path]) -> Path:
    for directory in dirs:
        path = directory / f"{name}{SUFFIX}"
        if path.is_file():
            return path
    raise PromptError(
        f"no prompt template {name!r} in {[str(d) for d in dirs] or 'any prompts directory'}",
        hint=f"expected a file {name}{SUFFIX} under prompts/ (or set ${PROMPTS_ENV})",
    )


def _parse(name: str, path: Path) -> PromptTemplate:
    import jinja2
    import jinja2.meta
    import yaml

    source = path.read_text(encoding="utf-8")
    match = _HEADER.match(source)
    if match is None:
        raise PromptError(
            f"prompt {path} has no header",
            hint="start the file with {#- role: ..., required: [...] -#} (YAML inside a Jinja comment)",
        )
    try:
        header = yaml.safe_load(match.group("body")) or {}
    except yaml.YAMLError as exc:
        raise PromptError(f"prompt {path}: the header is not valid YAML ({exc})") from exc
    if not isinstance(header, dict):
        raise PromptError(f"prompt {path}: the header must be a YAML mapping")
    required = header.get("required") or []
    optional = header.get("optional") or {}
    kind = header.get("kind", "raw")
    if not isinstance(required, list) or not all(isinstance(v, str) for v in required):
        raise PromptError(f"prompt {path}: 'required' must be a list of variable names")
    if not isinstance(optional, dict):
        raise PromptError(f"prompt {path}: 'optional' must map variable names to defaults")
    if kind not in ("raw", "chat"):
        raise PromptError(f"prompt {path}: 'kind' must be raw or chat, not {kind!r}")
    overlap = set(required) & set(optional)
    if overlap:
        raise PromptError(f"prompt {path}: {sorted(overlap)} declared both required and optional")

    env = _environment()
    try:
        parsed = env.parse(source)
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"prompt {path}: line {exc.lineno}: {exc.message}") from exc
    used = jinja2.meta.find_undeclared_variables(parsed)
    declared = set(required) | set(optional)
    if used - declared:
        raise PromptError(
            f"prompt {path} uses undeclared variables {sorted(used - declared)}",
            hint="add them to the header's required or optional list",
        )
    if declared - used:
        raise PromptError(
            f"prompt {path} declares variables it never uses: {sorted(declared - used)}",
            hint="remove them from the header (or use them in the template)",
        )
    return PromptTemplate(
        name=name,
        path=path,
        role=str(header.get("role", name)),
        description=str(header.get("description", "")),
        kind=kind,
        required=frozenset(required),
        optional=dict(optional),
        _template=template,
    )


@functools.lru_cache(maxsize=128)
def _parse_cached(name: str, path: Path, mtime_ns: int) -> PromptTemplate:
    # Keyed by modification time too: an edited template is re-read, an unchanged one is not.
    return _parse(name, path)


def load_prompt(name: str, *, dirs: Sequence[Path | str] = ()) -> PromptTemplate:
    """Find, parse and check the template ``name`` (parsed once per file version).

    Args:
        name: File name without ``.jinja``, e.g. ``"rerank_prism"``.
        dirs: Directories searched before the defaults (see :func:`prompt_dirs`).

    Raises:
        PromptError: Not found, no/invalid header, syntax error, or declared and used
            variables disagree.
    """
    path = _find(name, prompt_dirs(dirs))
    return _parse_cached(name, path, path.stat().st_mtime_ns)


def render_prompt(name: str, /, **variables: Any) -> str:
    """Shortcut: ``load_prompt(name).render(**variables)``."""
    return load_prompt(name).render(**variables)
