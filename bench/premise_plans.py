"""Reasoning-mode plans on the served model: how many are valid and usable.

Sends the premise sketch prompt (``prompts/sketch_premise.jinja``) for the first N natural-language
MathlibQR statements to the configured generator with the plan's JSON schema (the same call the
``sketch`` node makes), all at once, and counts: valid plans (schema-conformant JSON), usable
plans (valid, and no query that repeats another, copies the statement or stutters:
:func:`agentrag.nodes.srr.degenerate_queries`), queries per plan and seconds per plan.

Measured 2026-12-01, Qwen2.5-Coder-1.5B bf16 on the 2-core CPU, the first 20 ``q1c_natural``
statements, ``--concurrency 4 --schema bounded``:

    prompt with examples, 1-2 queries per step       valid 20/20, usable 0/20, 27.5 s per plan
    no examples (one leaked into plans), "all queries different"   20/20, 0/20, 17.4 s
    ... and a step may add 0 queries (shipped)       valid 20/20, usable 2/20, 7.1 s per plan

Every unusable plan repeats earlier queries in its steps (the sketch node drops the repeats
before searching, so what is searched is distinct; what repeats costs decoding time).

Example::

    AGENTRAG_SERVER__PORT=8402 AGENTRAG_SERVER__SERVED_NAME=qwen2.5-coder-1.5b \\
        python bench/premise_plans.py --queries 20 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentrag.errors import LLMError
from agentrag.llm import LLMClient
from agentrag.nodes.srr import _PlanOut, degenerate_queries
from agentrag.prompts import load_prompt
from agentrag.settings import Settings
from agentrag.state import Plan, PlanStep

DEFAULT_DATA = Path("/work/shared/data/mathlib/MathlibQR.json")


# The schema before string bounds (lists bounded, strings not): the baseline of this bench.
class _OldStep(BaseModel):
    description: str = Field(max_length=300)
    reasoning: str = Field(max_length=300)
    queries: list[str] = Field(min_length=1, max_length=2)


class _OldPlanOut(BaseModel):
    definition_queries: list[str] = Field(min_length=1, max_length=3)
    highlevel_queries: list[str] = Field(min_length=2, max_length=4)
    steps: list[_OldStep] = Field(min_length=3, max_length=7)


SCHEMAS: dict[str, type[BaseModel]] = {"unbounded-strings": _OldPlanOut, "bounded": _PlanOut}


async def _plan(
    llm: LLMClient, statement: str, gate: asyncio.Semaphore, schema: type[BaseModel]
) -> tuple[Plan | None, float, str]:
    messages = load_prompt("sketch_premise").messages(
        question=statement, previous=[], feedback="", max_queries=20
    )
    async with gate:
        t0 = time.perf_counter()
        try:
            out: Any = await llm.structured(messages, schema, max_tokens=700)
        except LLMError as exc:
            return None, time.perf_counter() - t0, str(exc)[:120]
        seconds = time.perf_counter() - t0
    plan = Plan(
        definition_queries=out.definition_queries,
        highlevel_queries=out.highlevel_queries,
        steps=[
            PlanStep(description=s.description, reasoning=s.reasoning, queries=s.queries) for s in out.steps
        ],
    )
    return plan, seconds, ""


async def main_async(args: argparse.Namespace) -> None:
    rows = json.loads(args.data.read_text())
    statements = [r["q1c_natural"] for r in rows if r.get("q1c_natural")][: args.queries]
    settings = Settings.load()
    llm = LLMClient(settings.generator, role="bench")
    for name in args.schema:
        await _run(llm, statements, name, args)


async def _run(llm: LLMClient, statements: list[str], name: str, args: argparse.Namespace) -> None:
    print(f"== schema {name}")
    gate = asyncio.Semaphore(args.concurrency)
    before = llm.usage.model_copy()
    t0 = time.perf_counter()
    results = await asyncio.gather(*(_plan(llm, s, gate, SCHEMAS[name]) for s in statements))
    wall = time.perf_counter() - t0
    valid = usable = 0
    for statement, (plan, seconds, error) in zip(statements, results, strict=True):
        if plan is None:
            print(f"INVALID ({seconds:.0f}s) {statement[:60]!r}: {error}")
            continue
        valid += 1
        # All of the plan's queries, repeats included (Plan.queries() would already drop them).
        raw = [*plan.definition_queries, *plan.highlevel_queries, *(q for s in plan.steps for q in s.queries)]
        bad = degenerate_queries(raw, statement)
        usable += not bad
        print(f"{'ok' if not bad else 'DEGENERATE'} ({seconds:.0f}s, {len(raw)} queries) {statement[:60]!r}")
        if bad or args.verbose:
            print("   ", raw if args.verbose else bad)
    n = len(statements)
    print(f"\n{n} statements: valid {valid}/{n} ({valid / n:.0%}), usable {usable}/{n} ({usable / n:.0%}); ")
    print(f"wall {wall:.0f}s at concurrency {args.concurrency} ({wall / n:.1f}s per plan); {llm.model}")
    prompt = llm.usage.prompt_tokens - before.prompt_tokens
    completion = llm.usage.completion_tokens - before.completion_tokens
    print(f"tokens: {prompt} prompt, {completion} completion\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--schema", action="append", choices=sorted(SCHEMAS), help="repeatable (default: both)"
    )
    args = parser.parse_args()
    args.schema = args.schema or ["unbounded-strings", "bounded"]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
