"""Search a premise knowledge base in standard mode (hybrid retrieval; no LLM unless --rerank/--hyde).

Usage::

    python examples/premise/search_premises.py "every Kan complex is a quasicategory" [-k 5]
        [--kb premises] [--mode hybrid|bm25|dense] [--rerank] [--hyde off|natural|all]

Prints one line per declaration: rank, full name, kind, module:line and the retrieval scores,
then its signature. Same as ``agentrag premise search``. With ``--hyde natural`` a
natural-language query is also searched with the Lean declaration the local model guesses for
it (printed first; a failed generation is printed as ``degraded`` and the query is searched
alone).
"""

from __future__ import annotations

import argparse
import sys

from agentrag import KnowledgeBase, Settings
from agentrag.premise.search import PremiseSearcher


def main(argv: list[str]) -> int:
    """Run one premise query and print the hits."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query")
    parser.add_argument("-k", type=int, default=5, help="declarations to show")
    parser.add_argument("--kb", default="premises", help="premise knowledge base name")
    parser.add_argument("--mode", choices=["hybrid", "bm25", "dense"], default="hybrid")
    parser.add_argument("--rerank", action="store_true", help="rerank with the [reranker] model (yes/no)")
    parser.add_argument("--hyde", choices=["off", "natural", "all"], help="HyDE (default: [premise] hyde)")
    args = parser.parse_args(argv)

    settings = Settings.load().for_premises()  # the Lean analyzer on the BM25 side
    # create=False: a typo in --kb should fail, not search a new, empty knowledge base.
    with KnowledgeBase.open(settings, args.kb, create=False) as kb:
        searcher = PremiseSearcher(kb, settings=settings)
        result = searcher.run(args.query, k=args.k, search_mode=args.mode, rerank=args.rerank, hyde=args.hyde)
    if result.hyde:
        print(f"HyDE: {result.hyde}")
    for error in result.errors:
        print(f"degraded: {error}", file=sys.stderr)
    hits = result.hits
    if not hits:
        print("no declarations found")
        return 1
    for hit in hits:
        scores = " ".join(f"{key}={val:.3f}" for key, val in hit.scores.items())
        print(f"{hit.rank}. {hit.name} [{hit.kind}] {hit.module}:{hit.line} {scores}")
        print(f"     {' '.join(hit.signature.split())[:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
