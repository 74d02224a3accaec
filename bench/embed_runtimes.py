"""Embedding runtimes side by side, in one run: quality on SciFact train and throughput.

For each runtime (torch fp32, ONNX Runtime fp32, ONNX Runtime int8, OpenVINO at the CPU's float
precision: bf16 on a bf16 CPU) over the same model
(all-MiniLM-L6-v2 from its package), with no vector cache:

- SciFact train, dense only, whole abstracts (title + newline + text, cut at the model's window):
  nDCG@10 and Recall@10 over the 809 train queries, and documents/s while embedding the corpus.
- Mathlib declarations: the premise indexer's fitted texts of the first ``--decls`` declarations
  of the tree (path order), texts/s.
- Cosine of each runtime's vectors to torch's on both sets (min / mean).

Usage::

    python bench/embed_runtimes.py --mathlib /work/data/mathlib4 --decls 2000 --threads 2

Runtimes run one after another; on a shared machine the figures are noisy, the ratios within one
run are what to read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scifact import REPO, load_scifact


def ndcg_recall_at_10(
    scores: np.ndarray, doc_ids: list[str], qids: list[str], qrels: dict[str, dict[str, int]]
) -> tuple[float, float]:
    nd, rc = [], []
    for row, qid in zip(scores, qids, strict=True):
        top = np.argsort(-row)[:10]
        rel = qrels[qid]
        gains = [1.0 if rel.get(doc_ids[i], 0) > 0 else 0.0 for i in top]
        dcg = sum(g / np.log2(r + 2) for r, g in enumerate(gains))
        n_rel = sum(1 for v in rel.values() if v > 0)
        idcg = sum(1 / np.log2(r + 2) for r in range(min(n_rel, 10)))
        nd.append(dcg / idcg if idcg else 0.0)
        rc.append(sum(gains) / n_rel if n_rel else 0.0)
    return float(np.mean(nd)), float(np.mean(rc))


def mathlib_texts(root: Path, n: int) -> list[str]:
    from agentrag.embed import SentenceTransformerEmbedder
    from agentrag.premise.corpus import TextFitter
    from agentrag.premise.extract import iter_tree

    emb = SentenceTransformerEmbedder()
    fitter = TextFitter(emb.token_spans, emb.max_tokens)
    texts: list[str] = []
    for decl in iter_tree(root):
        texts.append(fitter.fit(decl)[0])
        if len(texts) >= n:
            break
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mathlib", type=Path, default=Path("/work/data/mathlib4"))
    ap.add_argument("--decls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=None, help="default: each runtime's own")
    ap.add_argument("--runtimes", default="torch,onnx,onnx-int8,openvino")
    ap.add_argument(
        "--scifact-runtimes",
        default=None,
        help="runtimes scored on SciFact (default: all); the others only time Mathlib texts",
    )
    ap.add_argument(
        "--scifact-queries",
        type=int,
        default=0,
        help="score only the first N train queries over their relevant abstracts plus "
        "--scifact-distractors others (0: all 809 queries over the whole corpus)",
    )
    ap.add_argument("--scifact-distractors", type=int, default=500)
    ap.add_argument("--export-dir", type=Path, default=REPO / ".agentrag" / "cache" / "onnx")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    from agentrag.embed import SentenceTransformerEmbedder
    from agentrag.embed.onnx import OnnxEmbedder

    lean = mathlib_texts(args.mathlib, args.decls)
    scifact_rts = set((args.scifact_runtimes or args.runtimes).split(","))
    data = load_scifact() if scifact_rts & set(args.runtimes.split(",")) else None
    if data is not None and args.scifact_queries:
        # A smaller, still fixed task for a loaded machine: the first N queries (sorted ids),
        # their relevant abstracts, and the first M other abstracts of the corpus.
        keep_q = sorted(data.queries)[: args.scifact_queries]
        relevant = {d for q in keep_q for d in data.qrels.get(q, {})}
        others = [d for d in data.doc_ids if d not in relevant][: args.scifact_distractors]
        data.doc_ids = [d for d in data.doc_ids if d in relevant or d in set(others)]
        data.queries = {q: data.queries[q] for q in keep_q}
    if data is not None:
        print(f"SciFact: {len(data.queries)} queries over {len(data.doc_ids)} abstracts", flush=True)
    results: dict[str, dict[str, float]] = {}
    ref: dict[str, np.ndarray] = {}
    for rt in args.runtimes.split(","):
        if rt == "torch":
            emb: SentenceTransformerEmbedder = SentenceTransformerEmbedder(
                threads=args.threads, batch_size=args.batch_size or 64
            )
        else:
            emb = OnnxEmbedder(
                runtime=rt, export_dir=args.export_dir, threads=args.threads, batch_size=args.batch_size
            )  # type: ignore[arg-type]
        emb.embed_documents(["warm up"])  # load (and export, once) outside the timings
        row: dict[str, float] = {}
        dv = None
        t0 = time.perf_counter()
        lv = emb.embed_documents(lean)
        row["mathlib_texts_per_s"] = len(lean) / (time.perf_counter() - t0)
        if data is not None and rt in scifact_rts:
            docs = [data.document(d) for d in data.doc_ids]
            t0 = time.perf_counter()
            dv = emb.embed_documents(docs)
            row["scifact_docs_per_s"] = len(docs) / (time.perf_counter() - t0)
            qids = sorted(data.queries)
            qv = emb.embed_documents([data.queries[q] for q in qids])
            row["scifact_ndcg10"], row["scifact_recall10"] = ndcg_recall_at_10(
                qv @ dv.T, data.doc_ids, qids, data.qrels
            )
        # References: the first runtime's vectors (torch, or the fp32 ONNX export standing in
        # for it on SciFact when torch only times Mathlib texts).
        if "lean" not in ref:
            ref["lean"] = lv
        else:
            cos = (lv * ref["lean"]).sum(1)
            row["mathlib_cos_min"], row["mathlib_cos_mean"] = float(cos.min()), float(cos.mean())
        if dv is not None:
            if "sci" not in ref:
                ref["sci"] = dv
            else:
                cos = (dv * ref["sci"]).sum(1)
                row["scifact_cos_min"], row["scifact_cos_mean"] = float(cos.min()), float(cos.mean())
        results[rt] = row
        print(rt, json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
    base = results.get("torch", {}).get("mathlib_texts_per_s")
    print(
        "\n| runtime | Mathlib texts/s | × torch | SciFact docs/s | nDCG@10 | Recall@10 "
        "| cos min (Lean/SciFact) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for rt, row in results.items():
        speed = f"{row['mathlib_texts_per_s'] / base:.2f}" if base else "-"
        cos = (
            f"{row.get('mathlib_cos_min', 1):.4f} / {row.get('scifact_cos_min', 1):.4f}"
            if rt != "torch"
            else "-"
        )
        print(
            f"| {rt} | {row['mathlib_texts_per_s']:.1f} | {speed} | {row.get('scifact_docs_per_s', 0):.1f} "
            f"| {row.get('scifact_ndcg10', 0):.4f} | {row.get('scifact_recall10', 0):.4f} | {cos} |"
        )
    if args.out:
        args.out.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
