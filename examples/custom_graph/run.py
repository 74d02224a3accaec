"""A custom graph from YAML with a node registered by this script.

``graph.yaml`` (next to this file) is the standard RAG pipeline plus ``source_allowlist``, a node
defined and registered below: after reranking it keeps only evidence whose source file name
matches the spec's glob patterns, and records everything else as dropped (with the reason), so
the answer can only cite trusted documents.

Usage::

    python examples/custom_graph/run.py --show          # validate and print the graph (no LLM)
    python examples/custom_graph/run.py [QUESTION]      # ingest examples/docs and ask

The knowledge base lives under ``$AGENTRAG_DATA_DIR`` (default: a fresh temporary folder); the
generator is whatever the settings name (the local vLLM server by default).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agentrag import Agent, Settings
from agentrag.graph import load_graph, load_spec, node
from agentrag.types import Dropped

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph import RunContext
    from agentrag.state import RAGState

HERE = Path(__file__).resolve().parent
SPEC = HERE / "graph.yaml"
DOCS = HERE.parent / "docs"
QUESTION = "How long is the Aurora K2 warranty and what does it cover?"


class AllowlistParams(BaseModel):
    """Parameters of ``source_allowlist`` (validated when the spec loads)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patterns: list[str] = Field(min_length=1)
    """Glob patterns on the source's file name; evidence from other sources is dropped."""


@node("source_allowlist", params=AllowlistParams, uses_llm=False)
async def source_allowlist(
    state: RAGState, runtime: Runtime[RunContext], params: AllowlistParams
) -> dict[str, Any]:
    """Keep evidence from allowlisted sources only; drop the rest with the reason."""
    kept, dropped = [], []
    for item in state.evidence:
        name = Path(item.source).name
        if any(fnmatch.fnmatch(name, pattern) for pattern in params.patterns):
            kept.append(item)
        else:
            dropped.append(
                Dropped(
                    passage_id=item.passage_id,
                    stage="source_allowlist",
                    score=item.relevance.p,
                    reason=f"{name} is not allowlisted ({', '.join(params.patterns)})",
                )
            )
    # `dropped` is append-only (a LangGraph reducer adds what a node returns): return only the
    # new records. `_event` is the node's one-line summary, which the graph wrapper moves into
    # the trace.
    return {
        "evidence": kept,
        "dropped": dropped,
        "_event": {"message": f"kept {len(kept)}, dropped {len(dropped)} by source", "data": {}},
    }


def main(argv: list[str]) -> int:
    """Show the custom graph, or run a question through it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=QUESTION)
    parser.add_argument("--show", action="store_true", help="print the validated graph and exit")
    args = parser.parse_args(argv)

    spec = load_spec(SPEC)  # validates node names and params against the registry
    if args.show:
        print(f"graph {spec.name}: {spec.description}")
        print(load_graph(spec).mermaid())
        return 0

    overrides: dict[str, Any] = {}
    if not os.environ.get("AGENTRAG_DATA_DIR"):
        overrides["data_dir"] = Path(tempfile.mkdtemp(prefix="agentrag-custom-graph-"))
    settings = Settings.load(**overrides)
    with Agent.from_settings(settings, kb="custom-graph", graph=spec, checkpoint="none") as agent:
        agent.ingest([DOCS])
        answer = agent.ask(args.question)

    print(f"graph: {answer.graph}")
    print(f"outcome: {answer.outcome}")
    print(f"answer: {' '.join(answer.text.split())}")
    for c in answer.citations:
        print(f"citation [{c.marker}] {c.source}:{c.start}-{c.end}")
    for ev in answer.evidence:
        print(f"evidence p={ev.relevance} {ev.source}")
    for d in answer.dropped:
        print(f"dropped {d.stage}: {d.reason}")
    nodes = [e.node for e in answer.trace if e.event == "end"]
    print(f"trace: {' -> '.join(nodes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
