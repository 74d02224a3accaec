"""Draw a graph spec as a PNG, offline.

LangGraph's ``draw_mermaid_png`` calls the mermaid.ink web service (no network here) and
``draw_png`` needs the graphviz C library; this draws with matplotlib instead: nodes in layers
by their distance from the entry, forward edges straight, loop-back edges curved on the side,
routed edges dashed and labelled with their outcome.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from agentrag.graph.spec import END, GraphSpec

__all__ = ["draw_png", "layers"]

START = "START"


def layers(spec: GraphSpec) -> dict[str, int]:
    """Layer (row) of every node: breadth-first distance from START; END last."""
    depth = {START: 0, spec.entry: 1}
    queue = deque([spec.entry])
    while queue:
        node = queue.popleft()
        for nxt in spec.successors(node):
            if nxt != END and nxt not in depth:
                depth[nxt] = depth[node] + 1
                queue.append(nxt)
    depth[END] = max(depth.values()) + 1
    return depth


def _edges(spec: GraphSpec) -> list[tuple[str, str, str]]:
    out = [(START, spec.entry, "")]
    out += [(a, b, "") for a, b in spec.parsed_edges()]
    for node, route in spec.routes.items():
        targets: dict[str, list[str]] = {}
        for outcome, target in route.map.items():
            targets.setdefault(target, []).append(outcome)
        out += [(node, target, " / ".join(outcomes)) for target, outcomes in targets.items()]
    return out


def draw_png(spec: GraphSpec, path: Path, *, dpi: int = 150) -> Path:
    """Write ``spec`` as a PNG to ``path`` and return it."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    depth = layers(spec)
    rows: dict[int, list[str]] = {}
    for node in [START, *spec.nodes, END]:
        rows.setdefault(depth.get(node, max(depth.values())), []).append(node)
    width = max(len(r) for r in rows.values())
    pos: dict[str, tuple[float, float]] = {}
    for level, names in rows.items():
        for i, name in enumerate(names):
            pos[name] = ((i - (len(names) - 1) / 2) * 3.2, -level * 1.6)

    fig, ax = plt.subplots(figsize=(max(6.0, 3.0 * width + 2), 1.4 * len(rows) + 1))
    ax.set_axis_off()
    box_w, box_h = 2.4, 0.7
    for name, (x, y) in pos.items():
        terminal = name in {START, END}
        label = name if terminal or spec.node_name(name) == name else f"{name}\n({spec.node_name(name)})"
        ax.add_patch(
            FancyBboxPatch(
                (x - box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.05,rounding_size=0.3" if terminal else "round,pad=0.05",
                facecolor="#e8e8e8" if terminal else "#ece9ff",
                edgecolor="#4b3f9e",
                linewidth=1.2,
            )
        )
        ax.text(x, y, label, ha="center", va="center", fontsize=9)
    for a, b, label in _edges(spec):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        backward = y1 >= y0
        if backward:
            # A loop back up: leave and enter on the right side, bowed out.
            start, end, style = (x0 + box_w / 2, y0), (x1 + box_w / 2, y1), "arc3,rad=-0.6"
        else:
            start, end, style = (x0, y0 - box_h / 2), (x1, y1 + box_h / 2), "arc3,rad=0.0"
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                connectionstyle=style,
                arrowstyle="-|>",
                mutation_scale=12,
                linestyle="--" if label else "-",
                color="#333333",
                linewidth=1.0,
            )
        )
        if label:
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            if backward:
                mx += 1.0
            ax.text(
                mx,
                my,
                label,
                fontsize=7,
                color="#7a2e00",
                ha="center",
                va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
            )
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 2.0, max(xs) + 3.5)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
    ax.set_title(f"{spec.name}: {spec.description}" if spec.description else spec.name, fontsize=9, wrap=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
