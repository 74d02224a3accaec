"""`eval qa` (3 HotpotQA questions, rag) and `eval retrieval` with Prism against the real vLLM server."""

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


async def test_eval_qa_ablation_variants_side_by_side(
    tmp_path: Path, shared_data: Path, e2e_settings, embedder, llm_endpoint, real_reranker
) -> None:
    """A variant runs the real graph with its one change and is cached under its own key."""
    data = shared_data / "hotpotqa" / "dev250.jsonl"
    items = read_hotpotqa(data, limit=2)
    parts = QAParts(e2e_settings, embedder=embedder, llm=LLMClient(llm_endpoint), reranker=real_reranker)
    out = tmp_path / "qa"
    report = await arun_qa(items, ["rag", "rag-pack", "rag@gold"], parts=parts, data=data, out_dir=out)
    assert [(r.name, r.n, r.errors) for r in report.rows] == [
        ("rag", 2, 0),
        ("rag-pack", 2, 0),
        ("rag@gold", 2, 0),
    ]
    assert all(r.costs["llm_calls"] >= 1 for r in report.rows)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    prints = {r["system"]: r["key"].split("/")[1] for r in records}
    assert prints["rag"] != prints["rag-pack"]
    # The reader's ceiling saw the supporting paragraphs and nothing else.
    supporting = {item.id: {p.id for p in item.paragraphs if p.supporting} for item in items}
    for rec in records:
        if rec["system"] == "rag@gold":
            assert set(rec["data"]["paragraphs"]) <= supporting[rec["case"]]
    assert "| rag-pack | 2 |" in (out / "report.md").read_text()


async def test_eval_retrieval_with_prism_reranking(
    tmp_path: Path, shared_data: Path, e2e_settings, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hybrid+prism on 3 SciFact queries and 40 abstracts: the real LLM reorders the head."""
    import agentrag.embed
    from agentrag.evaluation.data import read_beir
    from agentrag.evaluation.retrieval import arun_retrieval, build_systems, open_beir_kb

    monkeypatch.setattr(agentrag.embed, "embedder_from_settings", lambda settings: embedder)
    src = shared_data / "scifact"
    root = tmp_path / "scifact3"
    (root / "qrels").mkdir(parents=True)
    head, *rows = (src / "qrels" / "train.tsv").read_text().splitlines()
    qids = list(dict.fromkeys(r.split("\t")[0] for r in rows))[:3]
    kept = [r for r in rows if r.split("\t")[0] in qids]
    (root / "qrels" / "train.tsv").write_text("\n".join([head, *kept]) + "\n")
    queries = [q for q in (src / "queries.jsonl").read_text().splitlines() if json.loads(q)["_id"] in qids]
    (root / "queries.jsonl").write_text("\n".join(queries) + "\n")
    gold = {r.split("\t")[1] for r in kept}
    corpus = (src / "corpus.jsonl").read_text().splitlines()
    docs = [d for d in corpus if json.loads(d)["_id"] in gold] + corpus[:40]
    (root / "corpus.jsonl").write_text("\n".join(dict.fromkeys(docs)) + "\n")

    data = read_beir(root)
    kb, _ = open_beir_kb(e2e_settings, data)
    try:
        systems = build_systems(["hybrid", "hybrid+prism", "hybrid+yesno"], kb, e2e_settings, prism_depth=5)
        report = await arun_retrieval(data, systems, out_dir=tmp_path / "out", concurrency=1)
    finally:
        kb.close()
    hybrid, prism, yesno = report.rows
    for row in (prism, yesno):
        assert (row.n, row.errors) == (3, 0), row.name
        assert all(0.0 <= v <= 1.0 for v in row.metrics.values())
        # Only the head is reordered: recall@100 cannot change.
        assert row.metrics["recall@100"] == hybrid.metrics["recall@100"]
    assert (prism.name, yesno.name) == ("hybrid+prism", "hybrid+yesno")
    for q in data.queries:
        assert q in report.per_case["hybrid+prism"]
    records = [json.loads(x) for x in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    ranks = {(r["system"], r["case"]): r["data"]["ranking"] for r in records}
    for q in data.queries:
        # Reranking reorders, never adds or loses documents.
        assert sorted(ranks["hybrid+prism", q]) == sorted(ranks["hybrid", q])
        assert sorted(ranks["hybrid+yesno", q]) == sorted(ranks["hybrid", q])
