"""Hybrid fusion for premise search on MathlibQR: which combination of BM25 and dense wins?

Runs every MathlibQR query through the premise knowledge base's own search
(:meth:`agentrag.kb.KnowledgeBase.asearch`) once per fusion setting and scores nDCG@10 /
Recall@10 per style. To keep the choice honest the declarations are split in two halves by
position (even rows: ``tune``, odd rows: ``test``): a setting is chosen on ``tune`` and its
``test`` figure is the one to quote.

The numbers a user sees come from ``agentrag premise eval``; this bench only picks the setting.

Measured 2026-12-01 on the whole Mathlib tree (246,413 declarations, MiniLM onnx-int8, the Lean
BM25 analyzer), all 946 queries, nDCG@10 (all / tune / test):

    bm25 0.341 / 0.316 / 0.366         dense 0.293 / 0.289 / 0.297
    tmm a0.8 (default) 0.391 / 0.381 / 0.402     tmm a0.7 0.390 / 0.372 / 0.408
    tmm a0.6 0.382   tmm a0.5 0.372   tmm a0.4 0.367   minmax a0.5 0.374   minmax a0.3 0.371
    rrf 0.351 / 0.339 / 0.362
    tmm a0.8, 200 candidates a side 0.398 / 0.383 / 0.414   (a0.6, 200: 0.386)

tmm α 0.8 stays (best on ``tune``); 200 candidates a side gains on both halves at the same
~21 ms per query: ``[premise] candidates = 200``.

Run::

    AGENTRAG_DATA_DIR=/work/data/premise-full python bench/premise_fusion.py --kb mathlib
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from agentrag.kb import KnowledgeBase
from agentrag.premise.evaluate import QR_STYLES, read_mathlibqr
from agentrag.premise.search import premise_hits
from agentrag.scoring.metrics import ir_metrics_per_query, run_from_rankings
from agentrag.settings import Settings

DEFAULT_DATA = Path("/work/shared/data/mathlib/MathlibQR.json")

# name -> keyword arguments of KnowledgeBase.asearch
SETTINGS: dict[str, dict[str, Any]] = {
    "bm25": {"mode": "bm25"},
    "dense": {"mode": "dense"},
    "tmm a0.8 (default)": {"mode": "hybrid", "fusion": "convex", "normalization": "tmm", "alpha": 0.8},
    "tmm a0.7": {"mode": "hybrid", "fusion": "convex", "normalization": "tmm", "alpha": 0.7},
    "tmm a0.6": {"mode": "hybrid", "fusion": "convex", "normalization": "tmm", "alpha": 0.6},
    "tmm a0.5": {"mode": "hybrid", "fusion": "convex", "normalization": "tmm", "alpha": 0.5},
    "tmm a0.4": {"mode": "hybrid", "fusion": "convex", "normalization": "tmm", "alpha": 0.4},
    "minmax a0.5": {"mode": "hybrid", "fusion": "convex", "normalization": "minmax", "alpha": 0.5},
    "minmax a0.3": {"mode": "hybrid", "fusion": "convex", "normalization": "minmax", "alpha": 0.3},
    "rrf": {"mode": "hybrid", "fusion": "rrf"},
    "tmm a0.8 c200": {
        "mode": "hybrid",
        "fusion": "convex",
        "normalization": "tmm",
        "alpha": 0.8,
        "candidates": 200,
    },
    "tmm a0.6 c200": {
        "mode": "hybrid",
        "fusion": "convex",
        "normalization": "tmm",
        "alpha": 0.6,
        "candidates": 200,
    },
}


async def main_async(args: argparse.Namespace) -> None:
    settings = Settings.load().for_premises()
    queries = read_mathlibqr(args.data)
    decls = list(dict.fromkeys(q.meta["decl"] for q in queries))
    half = {d: ("tune" if i % 2 == 0 else "test") for i, d in enumerate(decls)}
    gold = {q.id: q.gold[0] for q in queries}
    style_of = {q.id: q.style for q in queries}
    kb = KnowledgeBase.open(settings, args.kb)
    names = args.setting or list(SETTINGS)
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            kwargs = SETTINGS[name]
            t0 = time.perf_counter()
            rankings: dict[str, list[str]] = {}
            for q in queries:
                passages = await kb.asearch(q.query, k=15, **kwargs)
                rankings[q.id] = [h.name for h in premise_hits(passages, 10)]
            per_q = ir_metrics_per_query(
                {q: {gold[q]: 1} for q in rankings}, run_from_rankings(rankings), ["ndcg@10", "recall@10"]
            )
            rows: dict[str, list[float]] = {}
            for q in queries:
                m = per_q[q.id]
                for key in (style_of[q.id], "all", half[q.meta["decl"]]):
                    row = rows.setdefault(key, [0.0, 0.0, 0.0])
                    row[0] += m["ndcg@10"]
                    row[1] += m["recall@10"]
                    row[2] += 1
            results[name] = {key: (a / n, b / n) for key, (a, b, n) in rows.items()}
            secs = (time.perf_counter() - t0) / len(queries)
            print(f"{name}: nDCG@10 {results[name]['all'][0]:.4f}  ({secs * 1000:.0f} ms/query)", flush=True)
    finally:
        kb.close()
    cols = [*(s for s in QR_STYLES if s in results[names[0]]), "all", "tune", "test"]
    print("\nnDCG@10 / Recall@10; tune = even MathlibQR rows, test = odd rows\n")
    print("| setting | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name in names:
        cells = [f"{results[name][c][0]:.3f} / {results[name][c][1]:.3f}" for c in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", default="mathlib")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument(
        "--setting", action="append", choices=list(SETTINGS), help="Settings to run (default all)."
    )
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
