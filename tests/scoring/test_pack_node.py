"""The pack_context node: the optimiser wired to evidence, Dropped records and the generator's tokenizer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agentrag.graph import RunContext
from agentrag.nodes.pack import PackParams, expected_udcg, pack_context, token_counter
from agentrag.state import RAGState
from agentrag.types import Evidence, Relevance


def ev(pid: str, p: float | None, text: str = "Some evidence text about the question.") -> Evidence:
    origin = "reranker" if p is not None else "fallback"
    return Evidence(passage_id=pid, text=text, relevance=Relevance(p=p, origin=origin))


def runtime(settings: Any, llm: Any) -> Any:
    return SimpleNamespace(context=RunContext(settings=settings, llm=llm, usage=llm.usage))


async def test_known_by_gain_unknown_in_retrieval_order_distractors_dropped(settings, fake_llm) -> None:
    items = [ev("u1", None), ev("low", 0.1), ev("mid", 0.5), ev("u2", None), ev("top", 0.9)]
    state = RAGState(question="q", evidence=items)
    out = await pack_context(state, runtime(settings, fake_llm), PackParams(tokenizer="estimate"))
    assert [e.passage_id for e in out["context"]] == ["top", "mid", "u1", "u2"]
    [drop] = out["dropped"]
    assert drop.passage_id == "low" and drop.stage == "pack_context" and "distractor" in drop.reason
    data = out["_event"]["data"]
    assert data["unknown_relevance"] == 2 and "ESTIMATE" in data["tokenizer_note"]
    # What is reported is what was optimised: the best context of the evidence.
    assert out["udcg"] == pytest.approx(expected_udcg(items))


async def test_a_reranker_fallback_does_not_empty_the_context(settings, fake_llm) -> None:
    # Every relevance unknown (the reranker failed): retrieval order, nothing dropped as a distractor.
    state = RAGState(question="q", evidence=[ev(f"p{i}", None) for i in range(3)])
    out = await pack_context(state, runtime(settings, fake_llm), PackParams(tokenizer="estimate"))
    assert [e.passage_id for e in out["context"]] == ["p0", "p1", "p2"] and out["dropped"] == []


@pytest.mark.slow
async def test_budget_in_the_served_models_tokens(settings) -> None:
    """Real LLMClient to the local server's address; without a server the model folder's tokenizer counts."""
    from agentrag.llm import LLMClient
    from agentrag.models.setup import default_model_dir

    folder = settings.server.model_path or default_model_dir(settings.server)
    if not (folder / "tokenizer.json").exists():
        pytest.skip(f"no served model folder at {folder}")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    llm = LLMClient.from_settings(settings, "generator")
    counter, how = await token_counter(settings, llm)
    assert counter.name.startswith(("vllm:", "hf:")), how
    text = "Zygomorphic flowers of Lamiaceae, 1.5e-3 mol/L, über-naïve tokens! " * 3
    items = [ev(f"p{i}", 0.9 - i * 0.1, text) for i in range(5)]
    cost = len(tok(f"[1] {text}\n", add_special_tokens=False)["input_ids"])
    budget = 3 * cost + cost // 2  # room for three, not four
    out = await pack_context(
        RAGState(question="q", evidence=items), runtime(settings, llm), PackParams(token_budget=budget)
    )
    assert [e.passage_id for e in out["context"]] == ["p0", "p1", "p2"]
    assert out["_event"]["data"]["tokens"] == 3 * cost <= budget
    assert {d.passage_id for d in out["dropped"]} == {"p3", "p4"}
    assert all("token" in d.reason or "slots" in d.reason for d in out["dropped"])
