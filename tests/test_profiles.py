"""Profiles: resolution and the per-graph plans applied to the shipped specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrag import profiles
from agentrag.graph import load_graph
from agentrag.graph.spec import load_spec
from agentrag.settings import Settings


def test_explicit_profile_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRAG_PROFILE", "gpu")
    profile = profiles.resolve(Settings.load(config=None, data_dir=tmp_path))
    assert profile.name == "gpu" and "settings" in profile.reason
    assert profiles.resolve(Settings.load(config=None, profile="cpu")).name == "cpu"


def test_auto_detects_this_machine() -> None:
    profile = profiles.resolve(Settings.load(config=None, profile="auto"))
    has_driver = Path("/proc/driver/nvidia/version").exists()
    assert profile.name in ("cpu", "gpu") and profile.reason
    if not has_driver:
        assert profile.name == "cpu"


@pytest.mark.parametrize("name", ["rag", "crag", "srr"])
def test_plans_compile_and_keep_the_graph_connected(name: str) -> None:
    spec = load_spec(name)
    cpu = profiles.apply(spec, profiles.Profile("cpu", "test"))
    graph = load_graph(cpu)  # LangGraph refuses dangling edges or unreachable nodes
    assert graph.spec.nodes["generate"].params["max_tokens"] == 160
    assert cpu.budgets.get("max_rounds") == (None if name == "rag" else 1)
    if name in ("rag", "crag"):
        assert "rewrite" not in cpu.nodes and cpu.entry == "retrieve"
        assert not any("rewrite" in e for e in cpu.edges)
    # gpu: the graph as written.
    assert profiles.apply(spec, profiles.Profile("gpu", "test")) == spec


def test_the_premise_reasoning_plan_on_cpu() -> None:
    spec = load_spec("premise")
    cpu = load_graph(profiles.apply(spec, profiles.Profile("cpu", "test"))).spec
    assert cpu.nodes["sketch"].params["max_queries"] == 6 and cpu.nodes["filter"].params["max_hits"] == 10
    assert cpu.budgets["max_rounds"] == 1 and cpu.nodes["search"].params == spec.nodes["search"].params
    assert profiles.apply(spec, profiles.Profile("gpu", "test")) == spec


def test_unknown_graph_and_missing_nodes_are_left_alone() -> None:
    spec = load_spec("premise").model_copy(update={"name": "my-premise"})
    assert profiles.apply(spec, profiles.Profile("cpu", "test")) == spec
    rag = load_spec("rag")
    trimmed = rag.model_copy(update={"nodes": {k: v for k, v in rag.nodes.items() if k != "pack"}})
    out = profiles.apply(trimmed, profiles.Profile("cpu", "test"))
    assert "pack" not in out.nodes


def test_a_skipped_route_target_hands_its_routes_to_its_successor() -> None:
    crag = profiles.apply(load_spec("crag"), profiles.Profile("cpu", "test"))
    assert "refine" not in crag.nodes
    assert crag.routes["gate"].map == {
        "correct": "pack",
        "ambiguous": "correct",
        "incorrect": "correct",
        "exhausted": "pack",
    }
    assert not any("refine" in e for e in crag.edges)
    load_graph(crag)
    # Kept on request (the ablation's crag+refine): the graph as written, but for rewrite.
    kept = profiles.apply(load_spec("crag"), profiles.Profile("cpu", "test"), keep=("refine",))
    assert kept.routes["gate"].map["correct"] == "refine" and "refine -> pack" in kept.edges
    load_graph(kept)
