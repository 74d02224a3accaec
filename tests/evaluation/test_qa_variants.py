"""Ablation variants of `eval qa`: each is its graph as the profile plans it, with one change."""

from __future__ import annotations

import pytest

from agentrag.errors import ConfigError
from agentrag.evaluation.qa import GRAPHS, VARIANTS, QAParts, variant_spec
from agentrag.graph import load_graph
from agentrag.settings import Settings


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_compiles_under_both_profiles(name: str, profile: str) -> None:
    settings = Settings.load(config=None, profile=profile)
    spec = variant_spec(name, settings)
    assert spec.name == name  # the Agent must not apply the profile a second time
    load_graph(spec)  # LangGraph refuses dangling edges or unreachable nodes


def test_variants_change_one_thing() -> None:
    cpu = Settings.load(config=None, profile="cpu")
    rag = variant_spec("rag", cpu)
    assert "rewrite" not in rag.nodes  # the cpu plan leaves it out ...
    with_rewrite = variant_spec("rag+rewrite", cpu)
    assert with_rewrite.entry == "rewrite" and set(with_rewrite.nodes) == {*rag.nodes, "rewrite"}
    assert with_rewrite.nodes["generate"] == rag.nodes["generate"]  # ... the rest of the plan holds
    no_pack = variant_spec("rag-pack", cpu)
    assert no_pack.nodes["pack"].params == {**rag.nodes["pack"].params, "strategy": "in_order"}
    assert no_pack.edges == rag.edges
    for name in GRAPHS:
        assert not VARIANTS[name].rerank and not VARIANTS[name].params and not VARIANTS[name].keep


def test_unknown_variant_is_a_config_error_with_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        variant_spec("rag-rewrite-typo", Settings.load(config=None, profile="cpu"))
    assert "rag+yesno" in (err.value.hint or "")


def test_a_variant_gets_its_own_reranker_and_the_graphs_share_one() -> None:
    settings = Settings.load(config=None, profile="cpu")
    parts = QAParts(settings, embedder=object(), llm=object(), reranker=None)  # type: ignore[arg-type]
    assert parts.reranker_for(VARIANTS["rag"]) is parts.reranker  # the shared one
    yesno = parts.reranker_for(VARIANTS["rag+yesno"])
    assert yesno is not None and yesno.name.startswith("yesno")
    assert parts.reranker_for(VARIANTS["rag+yesno"]) is yesno  # built once
    assert parts.reranker_for(VARIANTS["rag-rerank"]).name.startswith("retrieval")  # type: ignore[union-attr]


def test_the_cli_help_names_every_variant() -> None:
    from typer.testing import CliRunner

    from agentrag.cli.app import app

    out = CliRunner().invoke(app, ["eval", "qa", "--help"], terminal_width=400).output
    for name in VARIANTS:
        assert name in out, name
