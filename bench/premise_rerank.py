"""LLM yes/no reranking of premise candidates on MathlibQR: does the served model discriminate?

For a spread sample of MathlibQR declarations (every ``--every``-th row, all its styles), the
premise knowledge base's hybrid top ``--depth`` declarations are scored by the yes/no reranker
(:class:`agentrag.rerank.YesNoReranker`, one first-token call per candidate, a query's calls in
flight together) with each ``--prompt`` template, and the rankings are scored per style:

- ``retrieval``: the hybrid order (what standard mode returns without reranking);
- ``rerank``: P(yes) alone (what ``--rerank`` does);
- ``blend w``: ``w * P(yes) + (1 - w) * retrieval score`` (min-max normalised per query);
- ``rrf``: reciprocal-rank fusion of the two orders (k 60).

The upper bound is Recall@depth: reranking only reorders the candidates. Scores are kept in
``--out`` per prompt, so a rerun resumes and other mixes can be computed without the model.

Measured 2026-12-01 (whole Mathlib tree, 246,413 declarations; Qwen2.5-Coder-1.5B bf16 on the
2-core CPU; every 20th row: 44 queries, 20 candidates each, 17.3 s per query, 880 calls),
nDCG@10 / Recall@10:

    ranking     q1a_lean      q1b_latex     q1c_natural   q2_slogan     q3_nickname   all
    retrieval   0.363/0.400   0.082/0.200   0.386/0.500   0.436/0.667   0.800/0.800   0.369/0.477
    rerank      0.350/0.400   0.133/0.200   0.226/0.400   0.194/0.444   0.163/0.400   0.220/0.364
    blend 0.25  0.363/0.400   0.112/0.300   0.393/0.500   0.436/0.667   0.726/0.800   0.369/0.500
    blend 0.5   0.363/0.400   0.110/0.300   0.400/0.500   0.431/0.667   0.700/0.800   0.366/0.500
    rrf         0.400/0.400   0.130/0.200   0.392/0.500   0.326/0.444   0.461/0.800   0.329/0.432
    ceiling (recall@20)                                                               0.568

The 1.5B does not tell the declaration a request describes from its neighbours: alone it loses
0.149 nDCG@10, blended it is neutral at best. Premise reranking stays opt-in (``--rerank``).

Run (the default model on :8400, the full Mathlib knowledge base)::

    AGENTRAG_DATA_DIR=/work/data/premise-full python bench/premise_rerank.py --kb mathlib \\
        --every 20 --depth 20 --prompt rerank_yesno_premise --prompt rerank_yesno
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from agentrag.kb import KnowledgeBase
from agentrag.llm import LLMClient
from agentrag.premise.evaluate import QR_STYLES, read_mathlibqr
from agentrag.premise.search import premise_hits
from agentrag.rerank.yesno import YesNoReranker
from agentrag.scoring.metrics import ir_metrics_per_query, run_from_rankings
from agentrag.settings import Settings
from agentrag.types import Passage

DEFAULT_DATA = Path("/work/shared/data/mathlib/MathlibQR.json")
BLENDS = (0.25, 0.5, 0.75)


def _minmax(xs: list[float]) -> list[float]:
    lo, hi = min(xs), max(xs)
    return [(x - lo) / (hi - lo) if hi > lo else 0.0 for x in xs]


def _order(scores: list[float], names: list[str]) -> list[str]:
    """Names by score, best first (ties keep the retrieval order)."""
    return [names[i] for i in sorted(range(len(names)), key=lambda i: (-scores[i], i))]


def rankings(row: dict[str, Any]) -> dict[str, list[str]]:
    """Every ranking of one query's candidates (names, best first)."""
    names: list[str] = row["names"]
    retr = _minmax(row["retrieval"])
    p = row["p_yes"]
    order = {"retrieval": names, "rerank": _order(p, names)}
    for w in BLENDS:
        order[f"blend {w}"] = _order([w * a + (1 - w) * b for a, b in zip(p, retr, strict=True)], names)
    rr = {n: 1 / (60 + i) for i, n in enumerate(names)}
    for i, n in enumerate(order["rerank"]):
        rr[n] += 1 / (60 + i)
    order["rrf"] = sorted(names, key=lambda n: -rr[n])
    return order


def table(rows: dict[str, dict[str, Any]], gold: dict[str, str], style_of: dict[str, str], depth: int) -> str:
    """Markdown: nDCG@10 / Recall@10 per ranking and style, and Recall@depth."""
    per: dict[str, dict[str, list[float]]] = {}
    qrels = {q: {gold[q]: 1} for q in rows}
    rank_sets = {q: rankings(r) for q, r in rows.items()}
    names = list(next(iter(rank_sets.values())).keys())
    for name in names:
        run = run_from_rankings({q: rs[name][:10] for q, rs in rank_sets.items()})
        m = ir_metrics_per_query(qrels, run, ["ndcg@10", "recall@10"])
        for q, vals in m.items():
            for style in (style_of[q], "all"):
                cell = per.setdefault(name, {}).setdefault(style, [0.0, 0.0, 0.0])
                cell[0] += vals["ndcg@10"]
                cell[1] += vals["recall@10"]
                cell[2] += 1
    styles = [s for s in (*QR_STYLES, "all") if s in per["retrieval"]]
    recall_depth = {
        s: sum(gold[q] in rows[q]["names"] for q in rows if s in ("all", style_of[q]))
        / max(1, sum(1 for q in rows if s in ("all", style_of[q])))
        for s in styles
    }
    head = "| ranking | " + " | ".join(f"{s} (n={int(per['retrieval'][s][2])})" for s in styles) + " |"
    lines = [head, "|---|" + "---:|" * len(styles)]
    for name in names:
        cells = [
            f"{per[name][s][0] / per[name][s][2]:.3f} / {per[name][s][1] / per[name][s][2]:.3f}"
            for s in styles
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        f"| recall@{depth} (ceiling) | " + " | ".join(f"{recall_depth[s]:.3f}" for s in styles) + " |"
    )
    return "\n".join(lines)


async def score_all(args: argparse.Namespace) -> None:
    settings = Settings.load().for_premises()
    queries = read_mathlibqr(args.data)
    decl_order = list(dict.fromkeys(q.meta["decl"] for q in queries))
    sample = set(decl_order[:: args.every])
    queries = [q for q in queries if q.meta["decl"] in sample]
    gold = {q.id: q.gold[0] for q in queries}
    style_of = {q.id: q.style for q in queries}
    kb = KnowledgeBase.open(settings, args.kb)
    llm = LLMClient(settings.reranker, role="reranker")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        cands: dict[str, list[Passage]] = {}
        for q in queries:
            passages = await kb.asearch(q.query, k=args.depth + max(5, args.depth // 2), mode="hybrid")
            keep = {h.id for h in premise_hits(passages, args.depth)}
            cands[q.id] = [p for p in passages if p.id in keep]
        for prompt in args.prompt:
            path = args.out / f"{prompt}_d{args.depth}.json"
            done: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}
            reranker = YesNoReranker(llm, max_document_tokens=args.max_tokens, template=prompt)
            todo = [q for q in queries if q.id not in done]
            t0 = time.perf_counter()
            calls0 = llm.usage.calls
            for i, q in enumerate(todo, start=1):
                ps = cands[q.id]
                t = time.perf_counter()
                p_yes = await reranker.ascore(q.query, ps)
                done[q.id] = {
                    "names": [premise_hits([p])[0].name for p in ps],
                    "retrieval": [p.score for p in ps],
                    "p_yes": p_yes,
                    "seconds": time.perf_counter() - t,
                }
                path.write_text(json.dumps(done))
                if i % 5 == 0 or i == len(todo):
                    rate = (time.perf_counter() - t0) / i
                    print(f"[{prompt}] {i}/{len(todo)} queries, {rate:.1f} s/query", flush=True)
            rows = {q.id: done[q.id] for q in queries}
            secs = sum(r["seconds"] for r in rows.values()) / len(rows)
            print(
                f"\n## {prompt} — {len(rows)} queries, depth {args.depth}, {secs:.1f} s/query "
                f"({llm.usage.calls - calls0} calls this run), nDCG@10 / Recall@10\n"
            )
            print(table(rows, gold, style_of, args.depth), flush=True)
    finally:
        kb.close()
        await llm.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", default="mathlib")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument(
        "--every", type=int, default=20, help="Every N-th MathlibQR declaration (all its styles)."
    )
    ap.add_argument("--depth", type=int, default=20, help="Candidates reranked per query.")
    ap.add_argument("--max-tokens", type=int, default=160, help="Declaration text cut to this many tokens.")
    ap.add_argument("--prompt", action="append", help="Yes/no template(s) (repeatable).")
    ap.add_argument("--out", type=Path, default=Path("bench/results/premise_rerank"))
    args = ap.parse_args()
    args.prompt = args.prompt or ["rerank_yesno_premise"]
    asyncio.run(score_all(args))


if __name__ == "__main__":
    main()
