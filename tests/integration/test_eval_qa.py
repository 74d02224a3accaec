"""`eval qa` end to end: 3 HotpotQA questions, the rag graph, the real vLLM server and reranker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrag.evaluation.data import read_hotpotqa
from agentrag.evaluation.qa import QA_METRICS, QAParts, arun_qa
from agentrag.llm import LLMClient

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


async def test_eval_qa_three_questions(
    tmp_path: Path, shared_data: Path, e2e_settings, embedder, llm_endpoint, real_reranker
) -> None:
    data = shared_data / "hotpotqa" / "dev250.jsonl"
    items = read_hotpotqa(data, limit=3)
    parts = QAParts(e2e_settings, embedder=embedder, llm=LLMClient(llm_endpoint), reranker=real_reranker)
    out = tmp_path / "qa"
    report = await arun_qa(items, ["rag"], parts=parts, data=data, out_dir=out)
    [row] = report.rows
    assert (row.name, row.n, row.errors) == ("rag", 3, 0)
    assert set(row.metrics) == set(QA_METRICS)
    assert all(0.0 <= v <= 1.0 for v in row.metrics.values()), row.metrics
    assert row.costs["llm_calls"] >= 2 and row.costs["tokens"] > 0  # rerank + generate at least
    # The agent saw its own question's paragraphs only: its ranking names 10 of them at most.
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 3
    for rec, item in zip(records, items, strict=True):
        assert rec["case"] == item.id
        ids = {p.id for p in item.paragraphs}
        assert rec["data"]["paragraphs"] and set(rec["data"]["paragraphs"]) <= ids
        assert rec["data"]["outcome"] in {"answered", "abstained", "budget_exhausted"}
    for name in ("results.json", "report.md", "report.png"):
        assert (out / name).is_file()
    assert "| rag | 3 |" in (out / "report.md").read_text()
    # Rerun: everything from the cache, nothing asked of the server.
    llm = parts.llm
    assert isinstance(llm, LLMClient)
    calls = llm.usage.calls
    again = await arun_qa(items, ["rag"], parts=parts, data=data, out_dir=out)
    assert again.reused == 3 and again.rows[0].metrics == row.metrics
    assert llm.usage.calls == calls
