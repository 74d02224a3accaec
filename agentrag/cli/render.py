"""Rich rendering of answers for `ask` and `chat`: sources, dropped distractors, budget line, trace."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from agentrag.types import Answer


def _span(start: int | None, end: int | None) -> str:
    return f"{start}-{end}" if start is not None and end is not None else "-"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sources_table(answer: Answer) -> Table:
    """The evidence the answer was generated from, with scores and what each contributes."""
    cited = {c.marker for c in answer.citations}
    table = Table(title="sources", title_justify="left", show_lines=False, expand=True)
    table.add_column("#", justify="right", style="bold")
    table.add_column("source (chars)", overflow="fold", ratio=2)
    table.add_column("p(rel)", justify="right")
    table.add_column("evidence", overflow="fold", ratio=5)
    for i, ev in enumerate(answer.evidence, start=1):
        marker = f"[{i}]" + ("*" if i in cited else "")
        where = f"{ev.title + ' — ' if ev.title else ''}{ev.source} ({_span(ev.start, ev.end)})"
        text = _short(ev.text)
        if ev.contribution:
            text = f"[italic]{_short(ev.contribution, 120)}[/]\n{text}"
        if ev.fallback:
            text += " [dim](passage text; no extract)[/]"
        table.add_row(marker, where, str(ev.relevance), text)
    return table


def dropped_table(answer: Answer, limit: int = 10) -> Table:
    """Passages kept out of the context, and why."""
    table = Table(title=f"dropped ({len(answer.dropped)})", title_justify="left", expand=True)
    table.add_column("passage", overflow="fold", ratio=2)
    table.add_column("stage")
    table.add_column("why", overflow="fold", ratio=5)
    for d in answer.dropped[:limit]:
        table.add_row(d.passage_id[:40], d.stage, d.reason)
    if len(answer.dropped) > limit:
        table.add_row("…", "", f"{len(answer.dropped) - limit} more (/sources all)")
    return table


def budget_line(answer: Answer) -> str:
    """UDCG, context tokens used of the budget, LLM usage, time, outcome."""
    packed = next((e for e in reversed(answer.trace) if e.event == "end" and "token_budget" in e.data), None)
    context = (
        f"context {packed.data['tokens']}/{packed.data['token_budget']} tokens" if packed else "context -"
    )
    udcg = f"UDCG {answer.udcg:.3f}" if answer.udcg is not None else "UDCG -"
    u = answer.usage
    return (
        f"{udcg} · {context} · {u.calls} LLM calls, {u.total_tokens} tokens · "
        f"{answer.timings.get('total', 0.0):.1f}s · {answer.graph} · {answer.outcome}"
    )


def trace_table(answer: Answer) -> Table:
    """Node by node: time, LLM calls, what happened."""
    table = Table(title="trace", title_justify="left", expand=True)
    table.add_column("t (s)", justify="right")
    table.add_column("node")
    table.add_column("secs", justify="right")
    table.add_column("calls", justify="right")
    table.add_column("what", overflow="fold", ratio=4)
    for e in answer.trace:
        if e.event != "end":
            continue
        table.add_row(
            f"{e.elapsed_s:.2f}",
            e.node,
            f"{e.data.get('seconds', 0):.2f}",
            str(e.data.get("llm_calls", 0)),
            e.message,
        )
    return table


def citations_block(answer: Answer) -> str:
    """Citations as lines: ``[n] source:start-end "quote"``."""
    lines = []
    for c in answer.citations:
        lines.append(f'[{c.marker}] {c.source}:{c.start}-{c.end}  "{_short(c.quote, 100)}"')
    return "\n".join(lines)


EXIT_CODES = {"answered": 0, "abstained": 0, "budget_exhausted": 0, "degraded": 3, "failed": 4}
"""``agentrag ask``'s exit code per outcome (1 is an error before the run, 130 an interrupt).
``budget_exhausted`` with no answer text exits 5."""


def exit_code(answer: Answer) -> int:
    """The exit code of ``agentrag ask`` for this answer (see :data:`EXIT_CODES`)."""
    if answer.outcome == "budget_exhausted" and not answer.text.strip():
        return 5
    return EXIT_CODES.get(answer.outcome, 1)


_CODE = re.compile(r"\b([a-z]+\.[a-z_]+)\b")
_NAME = re.compile(r"\b([A-Z][A-Za-z]+Error)\b")


def _hint_for(line: str) -> str:
    """The fix for one ``errors`` line: the hint of the error code or class it names."""
    from agentrag import errors

    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.AgentragError)
    ]
    by_code = {c.code: c for c in classes}
    by_name = {c.__name__: c for c in classes}
    if "(fix: " in line:
        return line.rsplit("(fix: ", 1)[1].rstrip(")")
    for match in _CODE.finditer(line):
        if match.group(1) in by_code and by_code[match.group(1)].default_hint:
            return by_code[match.group(1)].default_hint
    for match in _NAME.finditer(line):
        if match.group(1) in by_name and by_name[match.group(1)].default_hint:
            return by_name[match.group(1)].default_hint
    if "budget" in line:
        return errors.BudgetExhaustedError.default_hint
    return "check the model servers (`agentrag models status`) and run again with -v for details"


def problems(answer: Answer) -> list[dict[str, str]]:
    """What failed during the run and how to fix it: ``[{"error": line, "fix": hint}]``."""
    return [{"error": line, "fix": _hint_for(line)} for line in answer.errors]


def print_problems(console: Console, answer: Answer) -> None:
    """The outcome and, for each failure, what failed and how to fix it."""
    from rich.markup import escape

    if answer.outcome in ("answered", "abstained") and not answer.errors:
        return
    what = {
        "degraded": "the answer is degraded: a model call failed and a step fell back",
        "failed": "no answer: a model call failed and nothing could stand in for it",
        "budget_exhausted": "the run stopped at its budget",
    }.get(answer.outcome, answer.outcome)
    console.print(f"[bold red]{answer.outcome}[/]: {escape(what)}", highlight=False)
    for item in problems(answer):
        console.print(f"  [red]failed[/]: {escape(item['error'])}", highlight=False)
        console.print(f"  [yellow]fix[/]: {escape(item['fix'])}", highlight=False)


def print_details(console: Console, answer: Answer, *, sources: bool = True, dropped: bool = True) -> None:
    """Everything after the streamed answer."""
    if sources and answer.evidence:
        console.print(sources_table(answer))
    if dropped and answer.dropped:
        console.print(dropped_table(answer, limit=5))
    console.print(f"[dim]{budget_line(answer)}[/]", highlight=False)
