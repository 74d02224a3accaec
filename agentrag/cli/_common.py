"""Shared CLI plumbing: settings from the global options, error rendering, consoles.

Everything heavy is imported inside the functions that need it so `agentrag --help` stays
instant.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

import typer
from rich.console import Console

from agentrag.errors import AgentragError

if TYPE_CHECKING:
    from agentrag.kb import IngestProgress
    from agentrag.premise.corpus import IndexProgress

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


class CLIState:
    """Global options, filled by the app callback."""

    config: Path | None = None
    data_dir: Path | None = None
    verbose: int = 0
    _settings: Any = None

    def settings(self) -> Any:
        """Settings from the file / environment, with the global options applied (cached)."""
        if self._settings is None:
            from agentrag.settings import Settings

            overrides: dict[str, Any] = {}
            if self.data_dir is not None:
                overrides["data_dir"] = self.data_dir
            self._settings = Settings.load(self.config if self.config else "auto", **overrides)
        return self._settings


state = CLIState()


def setup_logging(verbose: int) -> None:
    """Route library logging to stderr through rich (WARNING by default, -v INFO, -vv DEBUG)."""
    from rich.logging import RichHandler

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = RichHandler(console=err_console, show_path=False, show_time=verbose > 1)
    root = logging.getLogger("agentrag")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def render_error(exc: AgentragError) -> None:
    """Print an error with its code and hint, the way every command does."""
    from rich.markup import escape

    # Messages and hints are plain text that often names settings sections ("[embedder]").
    err_console.print(f"[bold red]error[/] [dim]{exc.code}[/]: {escape(exc.message)}", highlight=False)
    if exc.hint:
        err_console.print(f"[yellow]hint[/]: {escape(exc.hint)}", highlight=False)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into a readable message and exit code 1 (no traceback unless -vv)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except AgentragError as exc:
            if state.verbose > 1:
                err_console.print_exception()
            render_error(exc)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


class CountProgress(Generic[T]):
    """A rich progress bar over a known number of items, fed ``(done, total, item)``.

    Args:
        total: Items expected.
        label: Bold text before the bar.
        status: What to show about the last item (its time, a failure, ...).
    """

    def __init__(self, total: int, label: str, status: Callable[[T], str]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.total = total
        self.status = status
        self.task: Any = None

    def __enter__(self) -> CountProgress[T]:
        self.progress.__enter__()
        self.task = self.progress.add_task("", total=self.total, status="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, done: int, total: int, item: T) -> None:
        self.progress.update(self.task, completed=done, total=total, status=self.status(item))


class PlainProgress:
    """Progress as plain lines on stderr, for logs and pipes (no terminal to redraw a bar on).

    A line at most every ``every_s`` seconds, and at the end: ``label done/total (pct) elapsed
    ETA``. Fed ``(done, total, item)`` like :class:`CountProgress` (``status`` says what to show
    about the last item), or ingest / premise-index events.
    """

    def __init__(
        self, label: str, *, status: Callable[[Any], str] | None = None, every_s: float = 10.0
    ) -> None:
        self.label = label
        self.status = status
        self.every_s = every_s
        self.t0 = time.monotonic()
        self.last = -every_s

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _line(self, done: float, total: float, unit: str, extra: str = "", *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every_s:
            return
        self.last = now
        elapsed = now - self.t0
        share = done / total if total else 0.0
        eta = f", ETA {elapsed / share - elapsed:.0f}s" if 0 < share < 1 else ""
        fmt = ",.2f" if unit == "MiB read" else ",.0f"
        where = f"{done:{fmt}}/{total:{fmt}} {unit} ({100 * share:.0f}%)" if total else f"{done:{fmt}} {unit}"
        print(f"{self.label}: {where}{extra}, {elapsed:.0f}s elapsed{eta}", file=sys.stderr, flush=True)

    def __call__(self, done: int, total: int, record: Any) -> None:
        last = f", {self.status(record)}" if self.status is not None else ""
        self._line(done, total, "queries", last, final=done == total)

    def ingest(self, event: IngestProgress) -> None:
        """An ingest event (:class:`agentrag.kb.IngestProgress`)."""
        rate = f", {event.chunks_embedded / event.embed_seconds:.1f} chunks/s" if event.embed_seconds else ""
        self._line(
            event.bytes_done / 2**20,
            event.bytes_total / 2**20,
            "MiB read",
            f", {event.chunks_embedded:,} chunks embedded{rate}",
            final=bool(event.bytes_total) and event.bytes_done >= event.bytes_total,
        )

    def index(self, event: IndexProgress) -> None:
        """A premise-index event (:class:`agentrag.premise.corpus.IndexProgress`)."""
        elapsed = time.monotonic() - self.t0
        rate = f", {event.declarations / elapsed:,.0f} declarations/s" if elapsed > 0 else ""
        self._line(
            event.files_done,
            event.files_total,
            "files",
            f", {event.declarations:,} declarations{rate}",
            final=event.files_done >= event.files_total,
        )
