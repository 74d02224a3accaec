"""Prism reranking of 20 candidates against the real local vLLM: wall time vs one single-passage call.

For each of ``--queries`` SciFact train queries (RRF top-20 candidates):

- single: one candidate's scoring call alone (1 token of generation), cold for that query;
- batch: the 20 candidates of the *next* query scored together (``PrismReranker.ascore``,
  every request in flight at once), also cold for that query;
- sequential (first query only): the 20 calls one after another, for scale;
- evidence: a full ``arerank(top_n=5)`` reports its scoring and evidence phases separately;
  the baseline is one evidence generation for one passage alone.

Ratios are medians measured in the same run. The prompt's shared prefix (system + examples +
instruction) is warm for every measurement; the query and documents are not.

Run: /work/main/.venv/bin/python bench/prism_latency.py [--queries 6] [--config general|prism]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _scifact import first_stage, load_scifact

from agentrag.llm import LLMClient
from agentrag.rerank import PrismConfig, PrismReranker
from agentrag.settings import LLMEndpoint, Settings
from agentrag.types import Passage


def passages_for(data, hits, n):
    return [
        Passage(id=d, text=data.texts[d], title=data.titles[d], source=f"scifact/{d}") for d, _ in hits[:n]
    ]


async def main_async(args) -> None:
    data = load_scifact()
    stages = first_stage(data)
    qids = sorted(data.queries, key=int)[: 2 * args.queries + 2]
    s = Settings.load(config=None)
    endpoint = LLMEndpoint(
        model=s.generator.model,
        api_base=s.generator.api_base,
        max_concurrency=32,
        timeout_s=600,
        max_tokens=512,
    )
    llm = LLMClient(endpoint, role="bench")
    base_cfg = PrismConfig.for_general_models() if args.config == "general" else PrismConfig()
    reranker = PrismReranker(llm, base_cfg.model_copy(update={"generate_evidence": False}))
    explainer = PrismReranker(llm, base_cfg)

    # Warm the prefix shared by every prompt (system, examples, instruction) and the connection.
    await reranker.ascore("warm-up query", [Passage(id="w", text="warm-up document", source="w")])

    single, batch, ratios = [], [], []
    for i in range(args.queries):
        q1, q2 = qids[2 * i], qids[2 * i + 1]
        p1 = passages_for(data, stages["rrf"][q1], 1)
        p2 = passages_for(data, stages["rrf"][q2], 20)
        t0 = time.perf_counter()
        await reranker.ascore(data.queries[q1], p1)
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        await reranker.ascore(data.queries[q2], p2)
        t_batch = time.perf_counter() - t0
        single.append(t_single)
        batch.append(t_batch)
        ratios.append(t_batch / t_single)
        print(
            f"query pair {i + 1}: single {t_single:6.2f}s   20 concurrent {t_batch:6.2f}s   "
            f"ratio {t_batch / t_single:5.2f}"
        )

    # Sequential, for scale (one query, cold).
    q_seq = qids[2 * args.queries]
    seq_passages = passages_for(data, stages["rrf"][q_seq], 20)
    t0 = time.perf_counter()
    for p in seq_passages:
        await reranker.ascore(data.queries[q_seq], [p])
    t_seq = time.perf_counter() - t0

    # Evidence phase: one alone vs five together (scores and evidence timed separately).
    q_ev = qids[2 * args.queries + 1]
    ev_passages = passages_for(data, stages["rrf"][q_ev], 20)
    one = await explainer.arerank(data.queries[q_ev], ev_passages[:1], top_n=1)
    full = await explainer.arerank(data.queries[q_ev], ev_passages, top_n=5)
    n_fb = sum(e.fallback for e in full.evidence)

    sm, bm = statistics.median(single), statistics.median(batch)
    print()
    print(f"config: {args.config}   model: {llm.model}   prompt tokens so far: {llm.usage.prompt_tokens}")
    print(f"scoring, 1 passage (median of {args.queries}):       {sm:7.2f} s")
    print(
        f"scoring, 20 passages concurrently (median):  {bm:7.2f} s   ratio {bm / sm:5.2f}x  "
        f"(median of ratios {statistics.median(ratios):.2f}x)"
    )
    print(f"scoring, 20 passages one after another:      {t_seq:7.2f} s   ratio {t_seq / sm:5.2f}x")
    print(f"evidence, 1 passage alone:                   {one.timings['evidence']:7.2f} s")
    print(
        f"arerank(20, top_n=5): scoring {full.timings['score']:.2f} s + "
        f"evidence for 5 {full.timings['evidence']:.2f} s (evidence ratio to one alone "
        f"{full.timings['evidence'] / one.timings['evidence']:.2f}x; {n_fb} of 5 fell back)"
    )
    await llm.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=6)
    parser.add_argument("--config", choices=["general", "prism"], default="general")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
