"""Premise reasoning mode end to end: the premise graph over a real premise knowledge base.

With a scripted model (what the graph does with a plan, the filter's picks and the budget) and,
in the slow test, the real default model on the cpu plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentrag.premise.evaluate import EvalConfig, EvalQuery, arun_eval
from agentrag.premise.search import PremiseSearcher
from tests.support.fakes import FakeLLM

LATTICE = "a partial order in which any two elements have both a join and a meet"
PLAN = {
    "definition_queries": ["lattice"],
    "highlevel_queries": ["partial order with joins and meets", "semilattice sup and inf"],
    "steps": [
        {"description": "joins", "reasoning": "r", "queries": ["join semilattice"]},
        {"description": "meets", "reasoning": "r", "queries": []},
        {"description": "both", "reasoning": "r", "queries": ["lattice"]},
    ],
}


def _keep_first_two(messages: list[dict[str, str]]) -> dict[str, Any]:
    return {"keep": [0, 1]}


async def test_reasoning_eval_runs_the_cpu_plan(premise_kb: Any, tmp_path: Path) -> None:
    settings, kb = premise_kb
    cpu = settings.model_copy(update={"profile": "cpu"})
    llm = FakeLLM(structured={"_PlanOut": PLAN, "_Keep": _keep_first_two, "_Verdict": {"verdict": "good"}})
    searcher = PremiseSearcher(kb, settings=cpu, llm=llm)
    query = EvalQuery(id="L_q1c_natural", query=LATTICE, style="q1c_natural", gold=["Lattice"])
    report = await arun_eval(
        searcher, [query], EvalConfig(mode="reasoning", k=10), data=_data(tmp_path), out_dir=tmp_path / "run"
    )
    assert report.n == 1 and report.errors == 0 and report.degraded == 0
    record = json.loads((tmp_path / "run" / "records.jsonl").read_text().splitlines()[0])
    assert record["retrieved"] and "Lattice" in record["retrieved"][:4]
    # The cpu plan: one round, so one plan, one filter call per distinct query, no judge.
    assert llm.calls["_PlanOut"] == 1 and "_Verdict" not in llm.calls
    assert llm.calls["_Keep"] == 5  # the question + 4 distinct plan queries ("lattice" twice)
    assert report.setup["profile"] == "cpu" and json.loads(report.setup["graph_budgets"])["max_rounds"] == 1


def _data(tmp_path: Path) -> Path:
    # The run key hashes the benchmark file; the queries are passed in.
    path = tmp_path / "qr.json"
    path.write_text("[]")
    return path


@pytest.mark.slow
async def test_reasoning_with_the_real_default_model(premise_kb: Any, default_llm_server: str) -> None:
    settings, kb = premise_kb
    endpoint = settings.generator.model_copy(update={"api_base": [default_llm_server]})
    cpu = settings.model_copy(update={"profile": "cpu", "generator": endpoint})
    searcher = PremiseSearcher(kb, settings=cpu)
    try:
        result = await searcher.arun(LATTICE, k=5, mode="reasoning")
    finally:
        await searcher.aclose()
    assert result.errors == [] and result.hits, result
    # The hits the filter kept, fused over the plan's queries (aggregate scores, best first).
    # Which ones it keeps is the model's judgement: on MathlibQR the 1.5B's reasoning mode
    # scores below standard mode (README), so no particular declaration is asserted here.
    scores = [h.scores["aggregate"] for h in result.hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    ids = kb.manifest.live_ids_by_rowids(kb.manifest.live_rowids().tolist())
    assert {h.name for h in result.hits} <= {c.metadata["name"] for c in kb.get(list(ids.values()))}
