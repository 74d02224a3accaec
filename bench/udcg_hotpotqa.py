"""UDCG vs nDCG@10 as predictors of answer correctness, HotpotQA dev250, local consumer model.

For each question: rank its 10 paragraphs (2 supporting) with a retriever (MiniLM dense by
default, or bm25s), take the top-k as the context, and compute

- UDCG of the context with gold labels (is_supporting), utilities u(p) = 1 − P(first token of
  NO-RESPONSE | question, p) from the local model through vLLM;
- UDCG with soft labels: P(supporting) from the retriever's score, calibrated (isotonic,
  2-fold cross-fitted over questions), the run-time proxy;
- nDCG@10 of the ranking of all 10 paragraphs, and Recall@k of the context;

then generate an answer from the context with the same local model and score it (EM, F1,
containment against every gold span). Reported: how each metric correlates with answer
correctness over the questions (Spearman with F1, point-biserial with containment and EM).

Run: /work/main/.venv/bin/python bench/udcg_hotpotqa.py [--questions 250] [--k 5] [--retriever dense|bm25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import numpy as np
from _scifact import REPO, embedder, shared_data

from agentrag.llm import LLMClient
from agentrag.prompts import load_prompt
from agentrag.scoring.calibration import Calibration
from agentrag.scoring.metrics import ir_metrics_per_query, qa_scores
from agentrag.scoring.udcg import UtilityScorer, udcg
from agentrag.settings import LLMEndpoint, Settings

RESULTS = REPO / "bench" / "results"


def rank_dense(rows, threads):
    emb = embedder(threads)
    out = []
    for row in rows:
        q = emb.embed_query(row["question_text"])
        docs = emb.embed_documents([f"{c['title']}\n{c['paragraph_text']}" for c in row["contexts"]])
        out.append([float(s) for s in docs @ q])
    return out


def rank_bm25(rows):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    # One index over all 2500 paragraphs (IDF from 10 paragraphs alone is meaningless), scores
    # read for each question's own 10.
    texts = [f"{c['title']}\n{c['paragraph_text']}" for row in rows for c in row["contexts"]]
    index = bm25s.BM25()
    index.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    out = []
    for i, row in enumerate(rows):
        q_tokens = bm25s.tokenize(
            row["question_text"], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )
        all_scores = index.get_scores(q_tokens[0])
        out.append([float(x) for x in all_scores[10 * i : 10 * i + 10]])
    return out


def cross_fitted_probabilities(scores, labels):
    """P(supporting) per paragraph from its retrieval score, isotonic, fitted on the other half."""
    n = len(scores)
    probs = [None] * n
    halves = [range(0, n, 2), range(1, n, 2)]
    for fit_half, apply_half in ((halves[0], halves[1]), (halves[1], halves[0])):
        cal = Calibration.fit(
            [s for i in fit_half for s in scores[i]],
            [t for i in fit_half for t in labels[i]],
            method="isotonic",
        )
        for i in apply_half:
            probs[i] = [float(p) for p in cal.predict(scores[i])]
    return probs


async def main_async(args) -> None:
    from scipy import stats

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = shared_data() / "hotpotqa" / "dev250.jsonl"
    rows = [json.loads(line) for line in path.open()][: args.questions]
    labels = [[bool(c["is_supporting"]) for c in row["contexts"]] for row in rows]
    t0 = time.perf_counter()
    scores = rank_dense(rows, args.threads) if args.retriever == "dense" else rank_bm25(rows)
    print(
        f"[rank] {args.retriever} over {len(rows)} questions in {time.perf_counter() - t0:.0f}s", flush=True
    )
    orders = [sorted(range(10), key=lambda j, s=s: -s[j]) for s in scores]
    soft = cross_fitted_probabilities(scores, labels)

    s = Settings.load(config=None)
    llm = LLMClient(
        LLMEndpoint(
            model=s.generator.model, api_base=s.generator.api_base, max_concurrency=16, timeout_s=600
        ),
        role="bench",
    )
    scorer = UtilityScorer(llm)
    answer_prompt = load_prompt("answer_from_context")

    async def per_question(i: int):
        row, order = rows[i], orders[i]
        context = [row["contexts"][j] for j in order[: args.k]]
        texts = [f"{c['title']}: {c['paragraph_text']}" for c in context]
        utilities = await scorer.autilities(row["question_text"], texts)
        messages = answer_prompt.messages(question=row["question_text"], passages=texts)
        answer = (await llm.chat(messages, max_tokens=args.max_tokens, temperature=0.0)).text.strip()
        return utilities, answer

    t0 = time.perf_counter()
    # Questions in waves so the server's batch stays full without queueing thousands of requests.
    outcomes = []
    wave = 8
    for start in range(0, len(rows), wave):
        outcomes += await asyncio.gather(
            *(per_question(i) for i in range(start, min(start + wave, len(rows))))
        )
        if (start // wave) % 5 == 4:
            print(f"[llm] {len(outcomes)}/{len(rows)} questions, {time.perf_counter() - t0:.0f}s", flush=True)
    print(f"[llm] utilities + answers in {time.perf_counter() - t0:.0f}s", flush=True)

    qrels = {str(i): {str(j): int(labels[i][j]) for j in range(10)} for i in range(len(rows))}
    run = {str(i): {str(j): -float(r) for r, j in enumerate(orders[i])} for i in range(len(rows))}
    ndcg = ir_metrics_per_query(qrels, run, ["ndcg@10"])

    records = []
    for i, (row, (utilities, answer)) in enumerate(zip(rows, outcomes, strict=True)):
        ctx = orders[i][: args.k]
        gold = [span for obj in row["answers_objects"] for span in obj["spans"]]
        qa = qa_scores(answer, gold)
        records.append(
            {
                "id": row["question_id"],
                "udcg": udcg([labels[i][j] for j in ctx], utilities),
                "udcg_soft": udcg([soft[i][j] for j in ctx], utilities),
                "ndcg@10": ndcg[str(i)]["ndcg@10"],
                f"recall@{args.k}": sum(labels[i][j] for j in ctx) / 2,
                "utilities": utilities,
                "relevant_in_context": [labels[i][j] for j in ctx],
                "answer": answer,
                "gold": gold,
                **qa,
            }
        )
    out_path = RESULTS / f"udcg_hotpotqa_{args.retriever}_k{args.k}.json"
    out_path.write_text(json.dumps(records, indent=1))

    util_rel = [
        u for r in records for u, rel in zip(r["utilities"], r["relevant_in_context"], strict=True) if rel
    ]
    util_irr = [
        u for r in records for u, rel in zip(r["utilities"], r["relevant_in_context"], strict=True) if not rel
    ]
    print(f"\nHotpotQA dev250: {len(records)} questions, retriever {args.retriever}, context top-{args.k}")
    print(
        f"consumer/generator: {llm.model}; {llm.usage.calls} calls, {llm.usage.prompt_tokens} prompt tokens"
    )
    print(
        f"utility u(p): relevant mean {statistics.mean(util_rel):.4f} (n={len(util_rel)}), "
        f"irrelevant mean {statistics.mean(util_irr):.4f} (n={len(util_irr)}), "
        f"min {min(util_rel + util_irr):.4f}"
    )
    abstained = sum("NO-RESPONSE" in r["answer"] for r in records)
    print(
        "answers: EM {:.3f}  F1 {:.3f}  contains {:.3f}  (abstained {})".format(
            *(statistics.mean(r[m] for r in records) for m in ("em", "f1", "contains")), abstained
        )
    )
    print(
        "\nmetric means: "
        + "  ".join(
            f"{m} {statistics.mean(r[m] for r in records):.4f}"
            for m in ("udcg", "udcg_soft", "ndcg@10", f"recall@{args.k}")
        )
    )
    print(f"\n{'metric':14s} {'Spearman(F1)':>18s} {'pb(contains)':>18s} {'pb(EM)':>18s}")
    for m in ("udcg", "udcg_soft", "ndcg@10", f"recall@{args.k}"):
        x = np.array([r[m] for r in records])
        cells = []
        for target, kind in (("f1", "spearman"), ("contains", "pb"), ("em", "pb")):
            y = np.array([r[target] for r in records])
            if np.ptp(x) == 0 or np.ptp(y) == 0:
                cells.append(f"{'n/a':>18s}")
                continue
            res = stats.spearmanr(x, y) if kind == "spearman" else stats.pointbiserialr(y, x)
            cells.append(f"{res.statistic:+8.3f} (p={res.pvalue:.3f})")
        print(f"{m:14s} " + " ".join(f"{c:>18s}" for c in cells))
    print(f"\nper-question records: {out_path}")
    await llm.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=250)
    parser.add_argument("--k", type=int, default=5, help="context size (top-k paragraphs)")
    parser.add_argument("--retriever", choices=["dense", "bm25"], default="dense")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=None)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
