"""Prism reranking quality on SciFact train with the local model: nDCG@10 of the top-20.

For the first ``--queries`` train queries (by id), the RRF top-20 (MiniLM dense + bm25s, built
here) is reranked by:

- Embedding PRF (MiniLM, the reranker's defaults), for reference;
- Prism, exact format zero-shot (``PrismConfig()``);
- Prism, general-model settings (``PrismConfig.for_general_models()``: two worked examples,
  single-newline think block).

Scores only (no evidence generation): ranking needs the first token alone. Per-query scores are
written to bench/results/prism_scifact_<config>.json so a rerun resumes.

Run: /work/main/.venv/bin/python bench/prism_scifact.py [--queries 100] [--depth 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from _scifact import REPO, embedder, first_stage, load_scifact, run_of

from agentrag.llm import LLMClient
from agentrag.rerank import EmbeddingPRFReranker, PrismConfig, PrismReranker
from agentrag.scoring.metrics import ir_metrics, ir_metrics_per_query
from agentrag.settings import LLMEndpoint, Settings
from agentrag.types import Passage

MEASURES = ["ndcg@10", "recall@10", "mrr"]
RESULTS = REPO / "bench" / "results"


def passages_for(data, hits, n):
    return [
        Passage(id=d, text=data.texts[d], title=data.titles[d], source=f"scifact/{d}") for d, _ in hits[:n]
    ]


async def prism_scores(name, reranker, data, cands, qids, depth) -> dict[str, list[tuple[str, float]]]:
    path = RESULTS / f"prism_scifact_{name}_d{depth}.json"
    done: dict[str, list[tuple[str, float]]] = json.loads(path.read_text()) if path.exists() else {}
    t0 = time.perf_counter()
    todo = [q for q in qids if q not in done]
    for i, q in enumerate(todo, start=1):
        result = await reranker.arerank(data.queries[q], passages_for(data, cands[q], depth))
        if result.fallback:
            raise SystemExit(f"reranking failed for query {q}: {result.fallback_reason}")
        done[q] = [(p.id, p.score) for p in result.passages]
        if i % 10 == 0 or i == len(todo):
            path.write_text(json.dumps(done))
            rate = (time.perf_counter() - t0) / i
            print(f"  [{name}] {i}/{len(todo)} queries, {rate:.1f} s/query", flush=True)
    return {q: done[q] for q in qids}


async def main_async(args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = load_scifact()
    stages = first_stage(data)
    qids = sorted(data.queries, key=int)[: args.queries]
    qrels = {q: data.qrels[q] for q in qids}
    cands = {q: stages["rrf"][q][: args.depth] for q in qids}
    s = Settings.load(config=None)
    llm = LLMClient(
        LLMEndpoint(
            model=s.generator.model, api_base=s.generator.api_base, max_concurrency=32, timeout_s=600
        ),
        role="bench",
    )

    rows = {"first stage (RRF dense+bm25s)": cands}
    prf = EmbeddingPRFReranker(embedder())
    prf_runs = {}
    for q in qids:
        r = await prf.arerank(data.queries[q], passages_for(data, cands[q], args.depth))
        prf_runs[q] = [(p.id, p.score) for p in r.passages]
    rows["+ embedding PRF (k=1, b=0.3, input)"] = prf_runs

    configs = {"prism": PrismConfig(generate_evidence=False)}
    configs["general"] = PrismConfig.for_general_models(generate_evidence=False)
    for name in args.configs:
        t0 = time.perf_counter()
        rows[f"+ Prism rerank ({name})"] = await prism_scores(
            name, PrismReranker(llm, configs[name]), data, cands, qids, args.depth
        )
        print(f"  [{name}] {time.perf_counter() - t0:.0f}s", flush=True)

    print(f"\nSciFact train, first {len(qids)} queries (by id), reranking the RRF top-{args.depth}")
    print(f"{'run':40s} " + " ".join(f"{m:>10s}" for m in MEASURES))
    base = None
    for label, run in rows.items():
        m = ir_metrics(qrels, run_of(run), MEASURES)
        base = base or m
        print(
            f"{label:40s} "
            + " ".join(f"{m[k]:10.4f}" for k in MEASURES)
            + f"   ΔnDCG@10 {m['ndcg@10'] - base['ndcg@10']:+.4f}"
        )
    # How often Prism's scores tie (a sign the model put no probability on yes/no).
    for name in args.configs:
        run = rows[f"+ Prism rerank ({name})"]
        ties = sum(len({round(s, 6) for _, s in hits}) == 1 for hits in run.values())
        per_q = ir_metrics_per_query(qrels, run_of(run), ["ndcg@10"])
        base_q = ir_metrics_per_query(qrels, run_of(cands), ["ndcg@10"])
        better = sum(per_q[q]["ndcg@10"] > base_q[q]["ndcg@10"] + 1e-9 for q in per_q)
        worse = sum(per_q[q]["ndcg@10"] < base_q[q]["ndcg@10"] - 1e-9 for q in per_q)
        print(
            f"Prism ({name}): {ties} queries with all scores tied; "
            f"better on {better}, worse on {worse} queries"
        )
    print(f"LLM usage: {llm.usage.calls} calls, {llm.usage.prompt_tokens} prompt tokens")
    await llm.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--configs", nargs="+", default=["prism", "general"], choices=["prism", "general"])
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    Path(RESULTS).mkdir(parents=True, exist_ok=True)
    main()
