"""BM25 alone over a whole Mathlib declaration dump: corpus-text and analyzer variants on MathlibQR.

Fast iteration on the lexical side of premise search (no embedding): each variant builds the
project's own :class:`agentrag.retrieve.bm25.BM25Index` over every declaration and scores the
946 MathlibQR queries (nDCG@10, Recall@10 per style, the formula of
:mod:`agentrag.premise.evaluate`). The figures the project reports come from
``agentrag premise eval`` over a real index; this bench only picks what to try there.

Measured on mpenciak/mathlib4 @5352afcc (246,413 declarations; 2026-11-30, loaded 2-core box),
nDCG@10 over all 946 queries (q1a_lean / q1b_latex / q1c_natural per style):

    base (prose analyzer, k1 1.5)   0.295  (0.305 / 0.194 / 0.385)  R@10 0.415
    lean analyzer                   0.320  (0.359 / 0.244 / 0.403)  R@10 0.438
    lean, no stopwords              0.313;  lean, no stemming 0.308
    lean + module path as words     0.316  (kept out: natural -0.021)
    lean + name words twice         0.321
    lean, b 0.5 / 0.9               0.320 / 0.316
    lean, k1 1.0 / 0.8 / 0.5        0.335 / 0.339 / 0.342   -> [premise.bm25] k1 = 0.8

Example::

    python bench/premise_extract.py --root /tmp/mathlib --dump /tmp/decls.jsonl
    python bench/premise_lexical.py --decls /tmp/decls.jsonl --variant base --variant lean
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict
from pathlib import Path

from agentrag.premise.evaluate import read_mathlibqr
from agentrag.premise.extract import Declaration
from agentrag.retrieve.bm25 import BM25Index
from agentrag.settings import BM25Settings

DEFAULT_GOLD = Path("/work/shared/data/mathlib/MathlibQR.json")

VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    # name: (text kind, BM25Settings overrides)
    "base": ("retrieval", {}),
    "lean": ("retrieval", {"analyzer": "lean"}),
    "lean-nostop": ("retrieval", {"analyzer": "lean", "stopwords": None}),
    "lean-nostem": ("retrieval", {"analyzer": "lean", "stemmer": None}),
    "corpus": ("corpus", {}),
    "lean-b05": ("retrieval", {"analyzer": "lean", "b": 0.5}),
    "lean-b09": ("retrieval", {"analyzer": "lean", "b": 0.9}),
    "lean-k1": ("retrieval", {"analyzer": "lean", "k1": 1.0}),
    "lean-k08": ("retrieval", {"analyzer": "lean", "k1": 0.8}),
    "lean-k05": ("retrieval", {"analyzer": "lean", "k1": 0.5}),
    "lean-k08-b05": ("retrieval", {"analyzer": "lean", "k1": 0.8, "b": 0.5}),
    "name2-lean": ("name2", {"analyzer": "lean"}),
    "corpus-lean": ("corpus", {"analyzer": "lean"}),
}


def _text(decl: Declaration, kind: str) -> str:
    if kind == "retrieval":
        return decl.retrieval_text()
    text = decl.retrieval_text()
    if kind == "name2":  # the name's words twice (a crude field boost)
        return text.split("\n", 2)[1] + "\n" + text
    # "corpus": the module path as words after the header (LeanSearch v2's rows carry it)
    lines = text.split("\n")
    module = " ".join(decl.module.removeprefix("Mathlib.").split("."))
    return "\n".join([*lines[:2], module, *lines[2:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decls", required=True, type=Path, help="JSON lines from premise_extract --dump")
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), required=True)
    args = parser.parse_args()

    decls = [Declaration.model_validate_json(line) for line in args.decls.open()]
    names = [d.name for d in decls]
    queries = read_mathlibqr(args.gold)
    print(f"{len(decls)} declarations, {len(queries)} queries")
    for variant in args.variant:
        kind, overrides = VARIANTS[variant]
        cfg = BM25Settings(**overrides)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        index = BM25Index.build(
            [_text(d, kind) for d in decls], list(range(1, len(decls) + 1)), cfg, version=1
        )
        built = time.perf_counter() - t0
        per_style: dict[str, list[tuple[float, float]]] = defaultdict(list)
        t1 = time.perf_counter()
        for q in queries:
            ranking = [names[row - 1] for row, _ in index.search(q.query, 10)]
            gold = q.gold[0]
            pos = ranking.index(gold) + 1 if gold in ranking else None
            ndcg = 1 / math.log2(pos + 1) if pos else 0.0
            per_style[q.style].append((ndcg, 1.0 if pos else 0.0))
        searched = time.perf_counter() - t1
        everything = [x for rows in per_style.values() for x in rows]
        cells = [f"{sum(n for n, _ in everything) / len(everything):.3f}"]
        for style in sorted(per_style):
            rows = per_style[style]
            cells.append(f"{style}={sum(n for n, _ in rows) / len(rows):.3f}")
        recall = sum(r for _, r in everything) / len(everything)
        print(
            f"{variant:20s} nDCG@10 {' '.join(cells)}  R@10 {recall:.3f}"
            f"  (build {built:.0f}s, search {searched:.0f}s)"
        )


if __name__ == "__main__":
    main()
