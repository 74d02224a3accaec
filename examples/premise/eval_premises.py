"""Evaluate premise search on a MathlibQR-format file (nDCG@k and Recall@k per query style).

Usage::

    python examples/premise/eval_premises.py QR_FILE [--kb premises] [-k 10]
        [--retrieval hybrid|bm25|dense] [--out RUN_DIR]

Per-query records go to ``RUN_DIR/records.jsonl`` (default under the data directory), so an
interrupted run resumes. Prints the markdown report. Same as ``agentrag premise eval``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentrag import KnowledgeBase, Settings
from agentrag.premise.evaluate import EvalConfig, read_eval_data, report_markdown, run_eval
from agentrag.premise.search import PremiseSearcher


def main(argv: list[str]) -> int:
    """Score standard-mode premise search on a benchmark file and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="MathlibQR.json (or a file in its format)")
    parser.add_argument("--kb", default="premises", help="premise knowledge base name")
    parser.add_argument("-k", type=int, default=10, help="cut-off of the metrics")
    parser.add_argument("--retrieval", choices=["hybrid", "bm25", "dense"], default="hybrid")
    parser.add_argument("--out", type=Path, default=None, help="run folder")
    args = parser.parse_args(argv)

    queries = read_eval_data(args.data, "mathlibqr")
    config = EvalConfig(format="mathlibqr", mode="standard", search_mode=args.retrieval, k=args.k)
    settings = Settings.load().for_premises()  # the Lean analyzer on the BM25 side
    with KnowledgeBase.open(settings, args.kb, create=False) as kb:
        searcher = PremiseSearcher(kb, settings=settings)
        report = run_eval(searcher, queries, config, data=args.data, out_dir=args.out)
    print(report_markdown(report))
    overall = report.overall
    print(
        f"overall: n={report.n} errors={report.errors} "
        + " ".join(f"{key}={overall[key]:.3f}" for key in sorted(overall) if key != "n")
    )
    print(f"records: {report.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
