"""Side-by-side evaluation reports: ``results.json``, ``report.md`` and ``report.png``.

A report is built from cached job records only (never from this run's clock), so a resumed run
writes byte-identical files to an uninterrupted one. Wall time per row is the sum of its jobs'
recorded times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EvalReport", "ReportRow", "report_markdown", "write_plot", "write_reports"]


class ReportRow(BaseModel):
    """One configuration (retrieval) or graph (QA)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """Configuration or graph name."""

    n: int
    """Cases scored (failed ones count, as 0)."""

    errors: int = 0
    """Cases whose job failed."""

    metrics: dict[str, float] = Field(default_factory=dict)
    """Quality metrics (means over cases, in [0, 1])."""

    costs: dict[str, float] = Field(default_factory=dict)
    """Costs per case (means): LLM calls, tokens."""

    seconds: float = 0.0
    """Wall time (retrieval: of the whole configuration, added up over resumed runs; qa: sum of the
    cases' times)."""


class EvalReport(BaseModel):
    """What ``agentrag eval`` writes as ``results.json``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: Literal["retrieval", "qa"]
    """Which evaluation."""

    data: str
    """The data folder or file."""

    split: str = ""
    """BEIR split (retrieval)."""

    cases: int
    """Queries or questions per row."""

    columns: list[str]
    """Quality metric names, in table order."""

    cost_columns: list[str] = Field(default_factory=list)
    """Cost names, in table order."""

    rows: list[ReportRow] = Field(default_factory=list)
    """One per configuration, in the order asked for."""

    setup: dict[str, str] = Field(default_factory=dict)
    """What else decided the numbers (knowledge base, embedder, models, k)."""

    per_case: dict[str, dict[str, dict[str, float]]] = Field(default_factory=dict)
    """``{row name: {case id: {metric: value}}}``."""

    reused: int = Field(default=0, exclude=True)
    """Jobs taken from an earlier run's records (not written: reports do not depend on it)."""


def report_markdown(report: EvalReport) -> str:
    """A markdown table: rows are configurations, columns metrics, then costs and wall time."""
    title = "Retrieval" if report.kind == "retrieval" else "QA"
    split = f" ({report.split})" if report.split else ""
    lines = [f"**{title}** on `{report.data}`{split} · {report.cases} cases", ""]
    if report.setup:
        lines += ["Setup: " + " · ".join(f"{k}={v}" for k, v in report.setup.items()), ""]
    head = ["config", "n", *report.columns, *report.cost_columns, "wall s", "s/case"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|" + "---:|" * (len(head) - 1))
    for row in report.rows:
        cells = [row.name, str(row.n) + (f" ({row.errors} failed)" if row.errors else "")]
        cells += [f"{row.metrics.get(c, 0.0):.4f}" for c in report.columns]
        cells += [f"{row.costs.get(c, 0.0):.1f}" for c in report.cost_columns]
        cells += [f"{row.seconds:.1f}", f"{row.seconds / max(row.n, 1):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plot(report: EvalReport, path: Path) -> None:
    """A grouped bar chart (metric groups, one bar per configuration) as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt
    import numpy as np

    cols = report.columns
    n_rows = max(len(report.rows), 1)
    width = 0.8 / n_rows
    x = np.arange(len(cols))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(cols) + 2), 4.0), dpi=100)
    for i, row in enumerate(report.rows):
        ax.bar(
            x + (i - (n_rows - 1) / 2) * width, [row.metrics.get(c, 0.0) for c in cols], width, label=row.name
        )
    ax.set_xticks(x, cols)
    # Headroom above 1.0 keeps the legend off the bars (recall@100 sits near the top).
    ax.set_ylim(0, 1.15)
    ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("mean over cases")
    ax.set_title(f"{report.kind}: {Path(report.data).name} ({report.cases} cases)")
    ax.legend(fontsize="small", loc="upper center", ncols=min(n_rows, 6), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    # Fixed metadata keeps the PNG byte-identical across reruns.
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def write_reports(folder: Path, report: EvalReport) -> dict[str, Path]:
    """Write ``results.json``, ``report.md`` and ``report.png`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / "results.json",
        "markdown": folder / "report.md",
        "png": folder / "report.png",
    }
    paths["json"].write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(report_markdown(report), encoding="utf-8")
    write_plot(report, paths["png"])
    return paths
