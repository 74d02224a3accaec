"""Execution profiles: how many LLM calls each shipped graph may spend on this machine.

A profile is ``cpu`` or ``gpu``. ``Settings.profile`` (``AGENTRAG_PROFILE``, ``profile = "cpu"``
in ``agentrag.toml``) names one, or ``auto`` (default) picks ``gpu`` when a CUDA device is
visible and ``cpu`` otherwise. Override it when the model server is elsewhere (a remote GPU
server: ``profile = "gpu"``).

Why it matters: on a 2-core CPU a 1.5B model decodes ~3 tokens/s and prefills ~150 tokens/s,
so every LLM call costs seconds. The ``cpu`` plan answers ``rag`` with one LLM call (the
answer itself):

- ``rewrite`` is left out (the question is the search query; with the 1.5B the rewrite gave
  +0.009 F1 on 49 HotpotQA questions for a second call, ~8 s);
- the reranker, unless ``[rerank] kind`` is set explicitly, is ``retrieval``: the hybrid
  retrieval score is the relevance (origin ``retriever``), no generation at all. The LLM
  yes/no scorer (``yesno``) with the 1.5B: SciFact train (30 queries, head of 10) nDCG@10
  0.555 -> 0.578, but HotpotQA F1 0.425 -> 0.291 on 20 questions at 12 calls each; Prism's
  own prompt: SciFact 0.555 -> 0.532. Neither pays on CPU;
- crag leaves strip refinement out (-0.053 F1 on 50 HotpotQA questions);
- evidence generation is off (the passage is the evidence);
- the packed context is smaller (prefill is the cost of the answer call) and answers shorter.

The ``gpu`` plan changes nothing: the graphs' own parameters (the full Prism path) run.

The plan is data: :data:`PLANS` maps profile → graph name → node params to merge and nodes to
leave out. It applies to specs whose ``name`` is a shipped graph's (``rag``, ``crag``, ``srr``,
``premise``);
a node it names that the spec lacks is ignored, so a custom spec of the same name is safe.

Example:
    >>> from agentrag.settings import Settings
    >>> from agentrag.profiles import resolve
    >>> resolve(Settings.load(config=None, profile="cpu")).name
    'cpu'
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Collection

    from agentrag.graph.spec import GraphSpec
    from agentrag.settings import Settings

__all__ = ["PLANS", "GraphPlan", "Profile", "apply", "resolve"]

ProfileName = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class GraphPlan:
    """How a profile changes one shipped graph."""

    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Node id → parameters merged over the spec's own."""

    skip: tuple[str, ...] = ()
    """Nodes left out; each must have one way in and one way out (it is bypassed)."""

    budgets: dict[str, Any] = field(default_factory=dict)
    """Budget overrides merged over the spec's ``budgets``."""


_CPU_PACK = {"token_budget": 900, "max_items": 5}
_CPU_GENERATE = {"max_tokens": 160}

PLANS: dict[ProfileName, dict[str, GraphPlan]] = {
    "cpu": {
        # One LLM call: the answer.
        "rag": GraphPlan(
            skip=("rewrite",),
            params={"rerank": {"top_n": 6}, "pack": _CPU_PACK, "generate": _CPU_GENERATE},
        ),
        # The gate and its corrections still spend calls; one corrective round at most. The
        # gate reads relative retrieval scores, whose best is 1: it takes the "correct" branch
        # unless a calibration (`agentrag kb calibrate`) maps them to probabilities. Strip
        # refinement is left out: with the 1.5B it cost 0.053 F1 on 50 HotpotQA questions
        # (`eval qa --graph crag --graph crag+refine`; cut sentences lose the bridge facts).
        "crag": GraphPlan(
            skip=("rewrite", "refine"),
            params={
                "rerank": {"top_n": 6},
                "refine": {"scorer": "embedding"},  # when kept (crag+refine): MiniLM cosine
                "pack": _CPU_PACK,
                "generate": _CPU_GENERATE,
            },
            budgets={"max_rounds": 1},
        ),
        # Plan, filter and reflect are LLM calls per round: fewer queries, one round.
        "srr": GraphPlan(
            params={
                "sketch": {"max_queries": 3, "max_tokens": 300},
                "rerank": {"top_n": 5},
                "pack": _CPU_PACK,
                "generate": _CPU_GENERATE,
            },
            budgets={"max_rounds": 1},
        ),
        # Premise reasoning mode: one round of a short plan; each query's filter call sees 10
        # hits (its prompt is the cost), and the last round is not judged (reflect).
        "premise": GraphPlan(
            params={"sketch": {"max_queries": 6}, "filter": {"max_hits": 10}},
            budgets={"max_rounds": 1},
        ),
    },
    "gpu": {},
}
"""Profile → graph name → plan. ``gpu`` runs the graphs as written."""


@dataclass(frozen=True)
class Profile:
    """The resolved profile and what it decides."""

    name: ProfileName
    """``cpu`` or ``gpu``."""

    reason: str
    """Why this profile: set in settings, or what detection found."""

    @property
    def rerank_kind(self) -> str:
        """The reranker used when ``[rerank] kind`` is not set explicitly."""
        return "retrieval" if self.name == "cpu" else "prism"

    @property
    def generate_evidence(self) -> bool:
        """Whether rerankers write evidence (one generation per kept passage)."""
        return self.name == "gpu"

    @property
    def min_evidence_chars(self) -> int:
        """Passages shorter than this are their own evidence (a rewrite would not pay)."""
        return 240

    def plan(self, graph: str) -> GraphPlan:
        """The plan for a shipped graph (empty for others)."""
        return PLANS[self.name].get(graph, GraphPlan())


def resolve(settings: Settings) -> Profile:
    """The profile in force: ``settings.profile``, or detected when ``auto``.

    Detection is cheap: without an NVIDIA driver on the machine torch is never imported.
    """
    if settings.profile != "auto":
        return Profile(settings.profile, f"profile = {settings.profile!r} in settings")
    return _detect()


@functools.cache
def _detect() -> Profile:
    # The driver's files exist before torch can see a device; checking them first keeps CPU
    # machines from paying for a torch import.
    if not (Path("/proc/driver/nvidia/version").exists() or os.environ.get("CUDA_VISIBLE_DEVICES")):
        return Profile("cpu", "no NVIDIA driver found")
    try:
        import torch
    except ImportError:
        return Profile("cpu", "torch is not installed")
    if torch.cuda.is_available():
        return Profile("gpu", f"CUDA device: {torch.cuda.get_device_name(0)}")
    return Profile("cpu", "torch sees no CUDA device")


def apply(spec: GraphSpec, profile: Profile, *, keep: Collection[str] = ()) -> GraphSpec:
    """The spec with the profile's plan for it: params merged, skipped nodes bypassed.

    A skipped node hands everything that led to it (the entry, edges, route outcomes) to its
    one successor. A node that routes, or that has several ways out, is kept (bypassing it
    would change the graph's logic).

    Args:
        spec: The graph.
        profile: The profile whose plan applies (by ``spec.name``).
        keep: Nodes to run although the plan skips them (the ablation ``rag+rewrite``).
    """
    plan = profile.plan(spec.name)
    if keep:
        plan = GraphPlan(
            params=plan.params, skip=tuple(n for n in plan.skip if n not in keep), budgets=plan.budgets
        )
    if not (plan.params or plan.skip or plan.budgets):
        return spec
    nodes = dict(spec.nodes)
    for node_id, params in plan.params.items():
        if node_id in nodes:
            entry = nodes[node_id]
            nodes[node_id] = entry.model_copy(update={"params": {**entry.params, **params}})
    edges = spec.parsed_edges()
    routes = dict(spec.routes)
    entry_id = spec.entry
    for node_id in plan.skip:
        outs = [b for a, b in edges if a == node_id]
        if node_id not in nodes or node_id in routes or len(outs) != 1:
            continue  # a router or a fork decides something: bypassing it would change the logic
        successor = outs[0]
        if node_id == entry_id:
            entry_id = successor
        ins = [a for a, b in edges if b == node_id]
        kept = [(a, b) for a, b in edges if node_id not in (a, b)]
        edges = list(dict.fromkeys([*kept, *((a, successor) for a in ins)]))
        # A route that led to the node now leads where the node would have gone.
        routes = {
            src: r.model_copy(update={"map": {k: successor if v == node_id else v for k, v in r.map.items()}})
            for src, r in routes.items()
        }
        del nodes[node_id]
    budgets = {**spec.budgets, **plan.budgets}
    return spec.model_copy(
        update={
            "nodes": nodes,
            "entry": entry_id,
            "edges": [f"{a} -> {b}" for a, b in edges],
            "routes": routes,
            "budgets": budgets,
            "description": f"{spec.description} [profile {profile.name}]".strip(),
        }
    )
