"""SciFact retrieval quality: BM25, dense, RRF and convex combination through the real KB.

Run: .venv/bin/python bench/scifact_retrieval.py [--configs default,...] [--out bench/results/scifact]

The corpus is ingested with `KnowledgeBase.ingest` (Chroma embedded, MiniLM, bm25s) exactly as
a user would; every query goes through `KnowledgeBase.asearch` for the BM25 and dense lists
(depth 300 chunks); fusion uses the library's own `rrf` / `convex` on those chunk lists, and
document scores are the best chunk's (a chunk hit is a hit on its abstract). The hybrid numbers
are checked against `asearch(mode="hybrid")` on a sample of queries.

Queries: SciFact TRAIN (the test split is withheld). They are split in two halves with a fixed
seed; α (convex) and the dense weight (RRF) are tuned on half A and reported on half B, where
every other method is reported too. Metrics (nDCG@10, Recall@100) come from the project's
`agentrag.scoring.metrics` (trec_eval through pytrec_eval), the same code `agentrag eval` uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentrag.embed import SentenceTransformerEmbedder  # noqa: E402
from agentrag.kb import KnowledgeBase  # noqa: E402
from agentrag.retrieve.fusion import convex, rrf  # noqa: E402
from agentrag.settings import Settings  # noqa: E402

DEPTH = 300

CONFIGS: dict[str, dict] = {
    # name: settings overrides (kb / retrieval tables)
    "default": {},
    "bm25-text-only": {"retrieval": {"bm25": {"include_title": False}}},
    "bm25-no-stem": {"retrieval": {"bm25": {"stemmer": None}}},
    "no-title-embed": {"kb": {"embed_title": False}},
    "chunk128": {"kb": {"chunking": {"chunk_tokens": 128, "overlap_tokens": 32}}},
    "chunk254-no-overlap": {"kb": {"chunking": {"overlap_tokens": 0}}},
}


def find_data() -> Path:
    for parent in ROOT.parents:
        if (parent / "shared" / "data" / "scifact").is_dir():
            return parent / "shared" / "data" / "scifact"
    raise SystemExit("shared/data/scifact not found")


def load_queries(data: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    from agentrag.evaluation.data import read_beir

    beir = read_beir(data, "train")
    return beir.queries, beir.qrels


def doc_of(source: str) -> str:
    return source.rsplit("#", 1)[1]


def to_docs(chunk_scores: dict[str, float], chunk_doc: dict[str, str]) -> dict[str, float]:
    best: dict[str, float] = {}
    for cid, s in chunk_scores.items():
        d = chunk_doc[cid]
        if s > best.get(d, float("-inf")):
            best[d] = s
    return best


def evaluate(qrels: dict, run: dict, qids: list[str]) -> tuple[float, float]:
    from agentrag.scoring.metrics import ir_metrics

    q = {k: qrels[k] for k in qids}
    r = {k: dict(sorted(run.get(k, {}).items(), key=lambda kv: -kv[1])[:100]) for k in qids}
    res = ir_metrics(q, r, ["ndcg@10", "recall@100"])
    return res["ndcg@10"], res["recall@100"]


def build_settings(base: Path, name: str) -> Settings:
    overrides = CONFIGS[name]
    return Settings.load(config=None, data_dir=base / name, **overrides)


async def collect(kb: KnowledgeBase, queries: dict[str, str]):
    bm25, dense, chunk_doc = {}, {}, {}
    sem = asyncio.Semaphore(8)

    async def one(qid: str, text: str) -> None:
        async with sem:
            b, d = await asyncio.gather(
                kb.asearch(text, k=DEPTH, mode="bm25", candidates=DEPTH),
                kb.asearch(text, k=DEPTH, mode="dense", candidates=DEPTH),
            )
        bm25[qid] = [(p.id, p.scores.bm25 or 0.0) for p in b]
        dense[qid] = [(p.id, p.scores.dense or 0.0) for p in d]
        for p in (*b, *d):
            chunk_doc[p.id] = doc_of(p.source)

    await asyncio.gather(*(one(q, t) for q, t in queries.items()))
    return bm25, dense, chunk_doc


def doc_lists(lists: dict[str, list[tuple[str, float]]], chunk_doc: dict[str, str]) -> dict:
    """Each side's chunk list collapsed to documents (best chunk), for fusion per document."""
    out = {}
    for qid, hits in lists.items():
        best = to_docs(dict(hits), chunk_doc)
        out[qid] = sorted(best.items(), key=lambda kv: -kv[1])
    return out


def fuse_all(bm25, dense, chunk_doc, method: str, **kw) -> dict[str, dict[str, float]]:
    if kw.pop("per_doc", False):
        bm25, dense = doc_lists(bm25, chunk_doc), doc_lists(dense, chunk_doc)
        chunk_doc = {
            **{d: d for lst in bm25.values() for d, _ in lst},
            **{d: d for lst in dense.values() for d, _ in lst},
        }
    run = {}
    for qid in bm25:
        if method == "bm25":
            fused = dict(bm25[qid])
        elif method == "dense":
            fused = dict(dense[qid])
        elif method == "rrf":
            w = kw.get("w_dense", 1.0)
            fused = rrf([[i for i, _ in bm25[qid]], [i for i, _ in dense[qid]]], [1.0, w], k=60)
        else:
            fused = convex(dict(bm25[qid]), dict(dense[qid]), alpha=kw["alpha"], method=kw["norm"])
        run[qid] = to_docs(fused, chunk_doc)
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", default="default")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scifact")
    parser.add_argument("--cache", type=Path, default=ROOT / ".agentrag" / "test-cache" / "embeddings.sqlite")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = find_data()
    queries, qrels = load_queries(data)
    qids = sorted(queries)
    rng = random.Random(args.seed)
    shuffled = qids[:]
    rng.shuffle(shuffled)
    half_a, half_b = sorted(shuffled[: len(qids) // 2]), sorted(shuffled[len(qids) // 2 :])
    print(
        f"SciFact train: {len(qids)} queries with qrels; "
        f"tune on A ({len(half_a)}), report on B ({len(half_b)})"
    )

    embedder = SentenceTransformerEmbedder(cache_path=args.cache, threads=args.threads)
    summary = {}
    for name in args.configs.split(","):
        settings = build_settings(args.out, name)
        kb = KnowledgeBase.open(settings, "scifact", embedder=embedder)
        t0 = time.perf_counter()
        report = kb.ingest([data / "corpus.jsonl"])
        print(
            f"\n[{name}] ingest: +{report.added} docs, {report.chunks_added} chunks, "
            f"{report.unchanged} unchanged, {time.perf_counter() - t0:.0f}s; KB has {kb.count()} chunks"
        )
        t0 = time.perf_counter()
        bm25, dense, chunk_doc = asyncio.run(collect(kb, queries))
        print(f"[{name}] {len(queries)} queries x 2 sides in {time.perf_counter() - t0:.0f}s")

        grid = [round(0.05 * i, 2) for i in range(21)]
        best = {}
        for norm in ("minmax", "tmm"):
            scores = [
                (
                    evaluate(qrels, fuse_all(bm25, dense, chunk_doc, "convex", alpha=a, norm=norm), half_a)[
                        0
                    ],
                    a,
                )
                for a in grid
            ]
            best[norm] = max(scores)[1]
        w_grid = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0]
        best_w = max(
            (evaluate(qrels, fuse_all(bm25, dense, chunk_doc, "rrf", w_dense=w), half_a)[0], w)
            for w in w_grid
        )[1]

        methods = {
            "bm25": fuse_all(bm25, dense, chunk_doc, "bm25"),
            "dense": fuse_all(bm25, dense, chunk_doc, "dense"),
            "rrf (k=60, equal weights)": fuse_all(bm25, dense, chunk_doc, "rrf", w_dense=1.0),
            f"rrf (dense weight {best_w} tuned on A)": fuse_all(
                bm25, dense, chunk_doc, "rrf", w_dense=best_w
            ),
            "convex minmax α=0.5": fuse_all(bm25, dense, chunk_doc, "convex", alpha=0.5, norm="minmax"),
            f"convex minmax α={best['minmax']} (tuned on A)": fuse_all(
                bm25, dense, chunk_doc, "convex", alpha=best["minmax"], norm="minmax"
            ),
            f"convex tmm α={best['tmm']} (tuned on A)": fuse_all(
                bm25, dense, chunk_doc, "convex", alpha=best["tmm"], norm="tmm"
            ),
            "rrf per document (k=60)": fuse_all(bm25, dense, chunk_doc, "rrf", w_dense=1.0, per_doc=True),
            f"convex tmm α={best['tmm']} per document": fuse_all(
                bm25, dense, chunk_doc, "convex", alpha=best["tmm"], norm="tmm", per_doc=True
            ),
        }
        print(
            f"[{name}] {'method':42s} {'nDCG@10 B':>10s} {'R@100 B':>8s} "
            f"{'nDCG@10 all':>12s} {'R@100 all':>10s}"
        )
        rows = {}
        for label, run in methods.items():
            nb, rb = evaluate(qrels, run, half_b)
            na, ra = evaluate(qrels, run, qids)
            rows[label] = {"ndcg10_B": nb, "recall100_B": rb, "ndcg10_all": na, "recall100_all": ra}
            print(f"[{name}] {label:42s} {nb:10.4f} {rb:8.4f} {na:12.4f} {ra:10.4f}")
        summary[name] = {"rows": rows, "alpha": best, "rrf_dense_weight": best_w, "chunks": kb.count()}

        # The library path gives the same ranking as the offline fusion above.
        sample = half_b[:25]
        mismatches = 0
        for qid in sample:
            got = asyncio.run(
                kb.asearch(
                    queries[qid], k=10, mode="hybrid", fusion="convex", alpha=best["tmm"], candidates=DEPTH
                )
            )
            fused = convex(
                dict(bm25[qid]), dict(dense[qid]), alpha=best["tmm"], method=kb.retrieval.normalization
            )
            want = sorted(fused, key=lambda c: (-fused[c], c))[:10]
            mismatches += [p.id for p in got] != want
        print(
            f"[{name}] asearch(hybrid) agrees with offline fusion on "
            f"{len(sample) - mismatches}/{len(sample)} queries"
        )
        kb.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
