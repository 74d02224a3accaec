"""Ingest one file in its own process and print the peak RSS (for the bounded-memory test).

    python -m tests.support.memory_driver DATA_DIR FILE

Real embedded Chroma and real bm25s; the embedder is the deterministic bag-of-words fake
(embedding ~40k chunks with MiniLM on a 2-core CPU takes far too long for a test). Prints
``REPORT {json}`` with the ingest report, ``peak_rss_mb`` (``ru_maxrss`` at the end) and
``pipeline_peak_rss_mb`` (``ru_maxrss`` at the last progress event, before the BM25 rebuild).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from agentrag.kb import KnowledgeBase
from agentrag.settings import Settings
from tests.support.fake_embedder import FakeEmbedder


def main() -> None:
    data_dir, path = Path(sys.argv[1]), Path(sys.argv[2])
    settings = Settings.load(config=None, data_dir=data_dir)
    kb = KnowledgeBase.open(settings, "mem", embedder=FakeEmbedder(max_tokens=254))
    pipeline_peak = [0.0]

    def progress(_event: object) -> None:
        # Peak so far while reading, chunking, embedding and writing (the BM25 rebuild over
        # the whole knowledge base comes after the last event).
        pipeline_peak[0] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    report = kb.ingest([path], progress=progress)
    hits = kb.search("needle sentence about a purple walrus", k=1, mode="bm25")
    stats = kb.stats()
    kb.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out = {
        "report": report.model_dump(mode="json"),
        "peak_rss_mb": peak_mb,
        "pipeline_peak_rss_mb": pipeline_peak[0],
        "top": hits[0].text if hits else "",
        "chunks": stats.chunks,
    }
    print("REPORT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
