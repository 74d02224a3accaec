"""Quickstart: ingest a folder into a knowledge base and ask it a question through the Python API.

Usage::

    python examples/quickstart.py [DATA_DIR] [QUESTION]

``DATA_DIR`` (default ``$AGENTRAG_DATA_DIR``, else a fresh temporary folder) holds the knowledge
base; every other setting comes from ``agentrag.toml`` / ``AGENTRAG_*`` as usual, so the local
vLLM server started by ``agentrag models serve`` answers. The output is one labelled section per
part of the :class:`~agentrag.Answer`: the text, citations (source + character span + quote),
the evidence, UDCG and the passages dropped as distractors.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from agentrag import Agent, Settings

DOCS = Path(__file__).resolve().parent / "docs"
QUESTION = "How long is the Aurora K2 warranty and what does it cover?"


def main(argv: list[str]) -> int:
    """Ingest ``examples/docs`` and ask one question; print the answer and where it came from."""
    data_dir = Path(argv[0]) if argv else None
    if data_dir is None and not os.environ.get("AGENTRAG_DATA_DIR"):
        # No place given: keep the demo's knowledge base out of the current folder.
        data_dir = Path(tempfile.mkdtemp(prefix="agentrag-quickstart-"))
    question = argv[1] if len(argv) > 1 else QUESTION

    settings = Settings.load(**({"data_dir": data_dir} if data_dir else {}))
    # "memory" checkpoints: a one-shot script has no conversation to resume later.
    with Agent.from_settings(settings, kb="quickstart", graph="rag", checkpoint="memory") as agent:
        report = agent.ingest([DOCS])
        print(
            f"ingested: {report.added} added, {report.unchanged} unchanged, "
            f"{report.chunks_added} chunks into {settings.data_dir}"
        )
        answer = agent.ask(question)

    print(f"question: {answer.question}")
    print(f"outcome: {answer.outcome}")
    print(f"answer: {' '.join(answer.text.split())}")
    print(f"citations: {len(answer.citations)}")
    for c in answer.citations:
        quote = " ".join(c.quote.split())
        print(f'  [{c.marker}] {c.source}:{c.start}-{c.end} "{quote[:100]}"')
    print(f"evidence: {len(answer.evidence)}")
    for i, ev in enumerate(answer.evidence, start=1):
        span = f"{ev.start}-{ev.end}" if ev.start is not None and ev.end is not None else "-"
        print(f"  ({i}) p={ev.relevance} {ev.source}:{span} {' '.join(ev.text.split())[:80]}")
    print(f"udcg: {answer.udcg:.3f}" if answer.udcg is not None else "udcg: -")
    print(f"dropped: {len(answer.dropped)}")
    for d in answer.dropped:
        print(f"  {d.passage_id[:16]} {d.stage}: {d.reason}")
    usage = answer.usage
    print(f"usage: {usage.calls} LLM calls, {usage.total_tokens} tokens, {answer.timings['total']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
