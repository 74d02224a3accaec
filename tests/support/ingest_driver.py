"""Run one real ingest in its own process (for the kill-and-resume tests).

    python -m tests.support.ingest_driver DATA_DIR CORPUS CACHE [--batch N] [--step N] [--prune]

Real Chroma (embedded), real MiniLM (with the persistent test embedding cache), real bm25s.
Prints the IngestReport as JSON on success. ``AGENTRAG_CRASH_AT`` makes it SIGKILL itself at a
crash point (agentrag._faults).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agentrag.embed import SentenceTransformerEmbedder
from agentrag.kb import KnowledgeBase
from agentrag.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("cache", type=Path)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--step", type=int, default=512)
    parser.add_argument("--prune", action="store_true")
    args = parser.parse_args()
    settings = Settings.load(config=None, data_dir=args.data_dir, kb={"embed_batch": args.batch})
    kb = KnowledgeBase.open(settings, "crash", embedder=SentenceTransformerEmbedder(cache_path=args.cache))
    kb.write_step = args.step
    report = kb.ingest([args.corpus], prune=args.prune)
    kb.close()
    print("REPORT " + json.dumps(report.model_dump(mode="json")), flush=True)


if __name__ == "__main__":
    main()
