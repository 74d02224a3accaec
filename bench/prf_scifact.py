"""Embedding-PRF reranking on SciFact train: nDCG@10 before and after, for several (k, β).

First stages (built here: MiniLM dense top-100, bm25s top-100, RRF of both), then
``EmbeddingPRFReranker`` over each query's top-``depth`` candidates, with feedback from the
dense cosine ranking (``dense``) or from the first stage's own order (``input``).

Run: /work/main/.venv/bin/python bench/prf_scifact.py [--depth 100] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _scifact import first_stage, load_scifact, run_of

from agentrag.rerank import EmbeddingPRFReranker
from agentrag.scoring.metrics import ir_metrics
from agentrag.types import Passage

MEASURES = ["ndcg@10", "recall@10", "recall@100", "mrr"]
SETTINGS = [
    (0, 0.0),
    (1, 0.3),
    (1, 0.5),
    (2, 0.5),
    (3, 0.3),
    (3, 0.5),
    (3, 1.0),
    (5, 0.5),
    (5, 1.0),
    (10, 0.5),
]


async def rerank_all(reranker, data, candidates, depth):
    out = {}
    for q, hits in candidates.items():
        passages = [
            Passage(id=d, text=data.texts[d], title=data.titles[d], source=f"scifact/{d}")
            for d, _ in hits[:depth]
        ]
        result = await reranker.arerank(data.queries[q], passages)
        out[q] = [(p.id, p.score) for p in result.passages]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=100, help="candidates reranked per query")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the embedder")
    args = parser.parse_args()

    data = load_scifact()
    stages = first_stage(data, depth=100, threads=args.threads)
    print(
        f"SciFact train: {len(data.queries)} queries, {len(data.doc_ids)} docs; reranking top-{args.depth}\n"
    )
    print(f"{'run':44s} " + " ".join(f"{m:>10s}" for m in MEASURES))
    for name, cands in stages.items():
        m = ir_metrics(data.qrels, run_of(cands), MEASURES)
        print(f"{'first stage: ' + name:44s} " + " ".join(f"{m[k]:10.4f}" for k in MEASURES), flush=True)

    from _scifact import embedder

    emb = embedder(args.threads)
    for stage in ("dense", "rrf", "bm25"):
        base = ir_metrics(data.qrels, run_of(stages[stage]), MEASURES)
        for feedback in ("dense", "input"):
            for k, beta in SETTINGS:
                if k == 0 and feedback == "input":
                    continue
                reranker = EmbeddingPRFReranker(emb, k=k, beta=beta, feedback=feedback)
                t0 = time.perf_counter()
                reranked = asyncio.run(rerank_all(reranker, data, stages[stage], args.depth))
                m = ir_metrics(data.qrels, run_of(reranked), MEASURES)
                label = (
                    f"{stage} + PRF k={k} b={beta:g} fb={feedback}" if k else f"{stage} + dense cosine rerank"
                )
                delta = m["ndcg@10"] - base["ndcg@10"]
                print(
                    f"{label:44s} "
                    + " ".join(f"{m[x]:10.4f}" for x in MEASURES)
                    + f"   ΔnDCG@10 {delta:+.4f}  ({time.perf_counter() - t0:.0f}s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
