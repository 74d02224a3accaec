"""Orchestration overhead: each graph's wall time against its critical path of LLM calls.

A fake OpenAI-compatible server answers every call after a fixed latency L (bench/_fake_openai.py),
so the only costs are the LLM round trips and our own orchestration. For each shipped graph:

- waves: groups of overlapping LLM calls the server saw, i.e. the sequential round trips;
- critical path = waves x L (what the run would take if orchestration were free);
- ratio = wall time / critical path (target <= 1.10);
- cpu = the process's CPU time per run (our code, litellm, httpx, and the fake server when it
  runs in this process): on a shared, loaded machine the wall ratio mostly measures how long this
  process waits for a core, while CPU seconds per run compare two versions of the code fairly.

``--server`` places the fake server in this process's threads (as before: its request handling
takes this process's GIL and is billed as orchestration), in a child process (where a real
vLLM server runs: it only takes a share of the cores), or both, alternating per graph (default).
Measured 2026-12-01 on the idle 2-core box, ``--runs 7``, twice: thread / process server, rag
1.099 / 1.109-1.110, crag 1.114-1.115 / 1.110, srr 1.038-1.040 / 1.038-1.039 (the same within
noise: the in-process server was not what cost the overhead). On a loaded box the same code gave
rag 1.169, crag 1.159: the ratio mostly measures waits for a core.

Next to it, the same corrective flow written as LangGraph's CRAG tutorial does it: retrieve,
grade each document with one LLM call after another, generate. Its critical path is
(documents + 1) x L, and its wall time is printed as a ratio to our `crag` graph's.

Run: .venv/bin/python bench/graph_overhead.py [--latency 0.2] [--runs 5] [--docs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fake_openai import FakeOpenAI, FakeOpenAIProcess

from agentrag.types import Passage

# Either fake server: threads of this process, or a child process (where a real server runs).
Server = FakeOpenAI | FakeOpenAIProcess

QUESTIONS = [
    "Who designed the K2 grinder?",
    "How long is the warranty?",
    "Which setting is best for espresso?",
    "What does error E3 mean?",
    "How often should the burrs be cleaned?",
]


class ListRetriever:
    """In-memory retriever returning the same ranked passages for any query (no search cost)."""

    def __init__(self, n: int) -> None:
        self.passages = [
            Passage(
                id=f"p{i}",
                text=f"Passage {i}. The grinder has feature number {i}. It was designed in Ghent. "
                f"Cleaning every two weeks keeps burr {i} sharp.",
                source=f"doc{i}.txt",
                start=0,
                end=120,
                score=1.0 / (i + 1),
            )
            for i in range(n)
        ]

    async def asearch(
        self, query: str, k: int | None = None, mode: Any = None, filters: Any = None
    ) -> list[Passage]:
        return self.passages[: k or len(self.passages)]


def endpoint(api_base: str) -> Any:
    from agentrag.settings import LLMEndpoint

    return LLMEndpoint(model="hosted_vllm/fake", api_base=[api_base], max_concurrency=64, timeout_s=30)


async def run_graph(name: str, server: Server, docs: int, runs: int) -> dict[str, float]:
    from agentrag import Agent
    from agentrag.llm import LLMClient
    from agentrag.rerank import PrismReranker
    from agentrag.settings import Settings

    settings = Settings.load(config=None, data_dir=Path("/tmp/agentrag-bench-overhead"))
    llm = LLMClient(endpoint(server.api_base), role="generator")
    reranker = PrismReranker(LLMClient(endpoint(server.api_base), role="reranker"))
    agent = Agent(
        settings=settings,
        knowledge_base=ListRetriever(docs),
        graph=name,
        llm=llm,
        reranker=reranker,
        checkpoint="none",
    )
    await agent.aask(QUESTIONS[0])  # warm-up: imports, Router, template cache
    walls, cpus, waves, calls = [], [], [], []
    for i in range(runs):
        server.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        answer = await agent.aask(QUESTIONS[i % len(QUESTIONS)])
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        waves.append(server.waves())
        calls.append(answer.usage.calls)
    wall = statistics.median(walls)
    wave = statistics.median(waves)
    return {
        "wall": wall,
        "cpu": statistics.median(cpus),
        "waves": wave,
        "calls": statistics.median(calls),
        "critical": wave * server.latency,
    }


async def run_tutorial(server: Server, docs: int, runs: int) -> dict[str, float]:
    """LangGraph's CRAG tutorial flow: grade documents one LLM call after another."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from agentrag.llm import LLMClient

    llm = LLMClient(endpoint(server.api_base), role="tutorial")
    retriever = ListRetriever(docs)

    class State(TypedDict, total=False):
        question: str
        documents: list[Passage]
        generation: str

    async def retrieve(state: State) -> State:
        return {"documents": await retriever.asearch(state["question"], k=docs)}

    async def grade_documents(state: State) -> State:
        kept = []
        for doc in state["documents"]:  # the tutorial's loop: one grader call at a time
            verdict = await llm.yes_no(
                [
                    {
                        "role": "user",
                        "content": f"Document: {doc.text}\nQuestion: {state['question']}\nRelevant? yes/no",
                    }
                ]
            )
            if verdict.p_yes >= 0.5:
                kept.append(doc)
        return {"documents": kept}

    async def generate(state: State) -> State:
        context = "\n".join(d.text for d in state["documents"])
        out = await llm.chat(
            [{"role": "user", "content": f"{context}\n\n{state['question']}"}], max_tokens=64
        )
        return {"generation": out.text}

    graph = StateGraph(State)
    graph.add_node("retrieve", retrieve)
    graph.add_node("grade_documents", grade_documents)
    graph.add_node("generate", generate)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "grade_documents")
    graph.add_edge("grade_documents", "generate")
    graph.add_edge("generate", END)
    app = graph.compile()
    await app.ainvoke({"question": QUESTIONS[0]})
    walls, cpus, waves = [], [], []
    for i in range(runs):
        server.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        await app.ainvoke({"question": QUESTIONS[i % len(QUESTIONS)]})
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        waves.append(server.waves())
    wave = statistics.median(waves)
    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "waves": wave,
        "calls": docs + 1,
        "critical": wave * server.latency,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument(
        "--server",
        default="both",
        choices=["thread", "process", "both"],
        help="the fake server in this process's threads, in a child process, or both (alternating)",
    )
    args = parser.parse_args()
    kinds = ["thread", "process"] if args.server == "both" else [args.server]
    rows: dict[str, dict[str, dict[str, float]]] = {kind: {} for kind in kinds}
    with FakeOpenAI(latency=args.latency) as thread, FakeOpenAIProcess(latency=args.latency) as process:
        servers: dict[str, Server] = {"thread": thread, "process": process}
        for name in ("rag", "crag", "srr"):
            for kind in kinds:  # alternating, so drift on a shared box hits both alike
                rows[kind][name] = await run_graph(name, servers[kind], args.docs, args.runs)
        for kind in kinds:
            rows[kind]["tutorial-crag"] = await run_tutorial(servers[kind], args.docs, args.runs)
    print(
        f"fake server latency {args.latency * 1000:.0f} ms per call, {args.docs} candidates, "
        f"median of {args.runs} runs"
    )
    for kind in kinds:
        print(f"\nfake server in {'this process (threads)' if kind == 'thread' else 'a child process'}:")
        print(
            f"{'graph':14} {'LLM calls':>9} {'waves':>5} {'critical path':>13} {'wall':>8} "
            f"{'wall/critical':>13} {'cpu':>7} {'cpu ms/call':>11}"
        )
        for name, r in rows[kind].items():
            print(
                f"{name:14} {r['calls']:>9.0f} {r['waves']:>5.0f} {r['critical']:>12.2f}s {r['wall']:>7.2f}s "
                f"{r['wall'] / r['critical']:>13.3f} {r['cpu']:>6.2f}s {1000 * r['cpu'] / r['calls']:>11.1f}"
            )
        speedup = rows[kind]["tutorial-crag"]["wall"] / rows[kind]["crag"]["wall"]
        print(f"tutorial-style CRAG wall time / our crag wall time: {speedup:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
