"""Ingest one file in its own process and print the peak RSS (for the bounded-memory test).

    python -m tests.support.memory_driver DATA_DIR FILE

Real embedded Chroma and real bm25s; the embedder is the deterministic bag-of-words fake
(embedding ~40k chunks with MiniLM on a 2-core CPU takes far too long for a test). Prints
``REPORT {json}`` with the ingest report, ``peak_rss_mb`` (the peak at the end) and
``pipeline_peak_rss_mb`` (the peak at the last progress event, before the BM25 rebuild).

The peak is ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own
address space. Not ``ru_maxrss``: Linux carries the parent's peak across fork and exec into
it, so under a large pytest process every child reported the parent's ~1.8 GB.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agentrag.kb import KnowledgeBase
from agentrag.settings import Settings
from tests.support.fake_embedder import FakeEmbedder


def peak_rss_mb() -> float:
    """The high-water mark of this process's resident memory, in MB (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main() -> None:
    data_dir, path = Path(sys.argv[1]), Path(sys.argv[2])
    settings = Settings.load(config=None, data_dir=data_dir)
    kb = KnowledgeBase.open(settings, "mem", embedder=FakeEmbedder(max_tokens=254))
    pipeline_peak = [0.0]

    def progress(_event: object) -> None:
        # Peak so far while reading, chunking, embedding and writing (the BM25 rebuild over
        # the whole knowledge base comes after the last event).
        pipeline_peak[0] = peak_rss_mb()

    report = kb.ingest([path], progress=progress)
    hits = kb.search("needle sentence about a purple walrus", k=1, mode="bm25")
    stats = kb.stats()
    kb.close()
    peak_mb = peak_rss_mb()
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
