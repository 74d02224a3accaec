"""Warm ``ask`` latency on examples/docs: seconds, LLM calls and tokens per question, per model.

The knowledge base is built once from ``examples/docs`` in a temporary folder. Each model runs
the same graph and profile (settings': ``auto`` picks ``cpu`` without a GPU): one warm-up
question first (it loads the embedder and warms the server; a different question, so the
measured ones do not find their whole prompt in the prefix cache), then each measured question
once. Models run one after another in the same process, so their figures are comparable
within one run even on a loaded machine.

Targets (issue 9): the default model answers in <= 20 s with <= 3 LLM calls on 2 cores.

Run:
    .venv/bin/python bench/ask_latency.py \
        [--model qwen2.5-coder-1.5b=http://127.0.0.1:8402/v1] \
        [--model smollm2-135m=http://127.0.0.1:8400/v1] [--graph rag] [--profile auto] [--out r.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentrag import Agent
from agentrag.kb import KnowledgeBase
from agentrag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "examples" / "docs"
WARMUP = "How do I clean the burrs of the Aurora K2?"
QUESTIONS = [
    "How long is the Aurora K2 warranty and what does it cover?",
    "What does error E3 mean?",
]
DEFAULT_MODELS = [
    "qwen2.5-coder-1.5b=http://127.0.0.1:8402/v1",
    "smollm2-135m=http://127.0.0.1:8400/v1",
]


def _served(url: str, name: str) -> bool:
    import httpx

    try:
        data = httpx.get(f"{url}/models", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return any(m.get("id") == name for m in data.get("data", []))


async def _run_model(
    base: Settings, name: str, url: str, graph: str, questions: list[str]
) -> list[dict[str, Any]]:
    settings = base.model_copy(
        update={
            "generator": base.generator.model_copy(
                update={"model": f"hosted_vllm/{name}", "api_base": [url], "timeout_s": 300.0}
            ),
            "reranker": base.reranker.model_copy(update={"model": f"hosted_vllm/{name}", "api_base": [url]}),
        }
    )
    agent = Agent.from_settings(settings, kb="docs", graph=graph, checkpoint="none", create=False)
    rows = []
    try:
        await agent.aask(WARMUP)
        for question in questions:
            t0 = time.perf_counter()
            answer = await agent.aask(question)
            seconds = time.perf_counter() - t0
            rows.append(
                {
                    "model": name,
                    "profile": agent.profile.name,
                    "question": question,
                    "seconds": round(seconds, 2),
                    "llm_calls": answer.usage.calls,
                    "prompt_tokens": answer.usage.prompt_tokens,
                    "completion_tokens": answer.usage.completion_tokens,
                    "outcome": answer.outcome,
                    "answer": answer.text,
                    "citations": [f"[{c.marker}] {c.source}" for c in answer.citations],
                    "timings": answer.timings,
                }
            )
            print(
                f"  {name}: {seconds:6.1f} s, {answer.usage.calls} calls, "
                f"{answer.usage.total_tokens} tokens: {answer.text[:100]!r}",
                file=sys.stderr,
            )
    finally:
        await agent.aclose()
        agent.close()
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | profile | question | s | LLM calls | prompt tok | completion tok | outcome | cites |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['profile']} | {r['question'][:40]} | {r['seconds']:.1f} "
            f"| {r['llm_calls']} | {r['prompt_tokens']} | {r['completion_tokens']} | {r['outcome']} "
            f"| {', '.join(r['citations'])} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="served-name=base-url (repeatable)")
    parser.add_argument("--graph", default="rag")
    parser.add_argument("--profile", choices=["auto", "cpu", "gpu"], default=None)
    parser.add_argument("--question", action="append", help="measured question (repeatable)")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    models = args.model or DEFAULT_MODELS
    questions = args.question or QUESTIONS
    with tempfile.TemporaryDirectory(prefix="ask-latency-") as tmp:
        overrides: dict[str, Any] = {"data_dir": Path(tmp)}
        if args.profile:
            overrides["profile"] = args.profile
        base = Settings.load(config=None, **overrides)
        kb = KnowledgeBase.open(base, "docs", create=True)
        try:
            kb.ingest([DOCS])
        finally:
            kb.close()
        rows: list[dict[str, Any]] = []
        for spec in models:
            name, _, url = spec.partition("=")
            if not _served(url, name):
                print(f"  {name}: not served at {url}; skipped", file=sys.stderr)
                continue
            rows += await _run_model(base, name, url, args.graph, questions)
    print(_table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
