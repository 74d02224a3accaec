"""The resumable runner: an interrupted evaluation reruns only what is missing, same reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentrag.errors import RetrievalError
from agentrag.evaluation.data import read_beir
from agentrag.evaluation.retrieval import arun_retrieval, measures_for
from agentrag.evaluation.runner import Job, JobRecord, arun_jobs, read_models
from tests.evaluation.test_data import write_beir


class Interrupt(Exception):
    """Stands for Ctrl-C arriving between two queries."""


class FakeSystem:
    """Ranks from a fixed table and counts the queries it was asked."""

    def __init__(self, name: str, table: dict[str, list[str]], fail: set[str] | None = None) -> None:
        self.name = name
        self.table = table
        self.fail = fail or set()
        self.asked: list[str] = []

    def describe(self) -> dict[str, Any]:
        return {"table": self.table}

    async def arank(self, query: str, depth: int) -> list[str]:
        self.asked.append(query)
        if query in self.fail:
            raise RetrievalError(f"cannot search {query!r}")
        return self.table[query][:depth]


TABLE = {"first": ["d0", "d1"], "second": ["d3", "d1", "d2"]}
REVERSED = {"first": ["d1", "d0"], "second": ["d1", "d2", "d3"]}


def systems() -> list[FakeSystem]:
    return [FakeSystem("good", TABLE), FakeSystem("worse", REVERSED)]


def interrupt_after(n: int):
    seen: list[str] = []

    def progress(done: int, total: int, record: JobRecord) -> None:
        seen.append(record.key)
        if len(seen) == n:
            raise Interrupt

    return progress


def files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("results.json", "report.md", "report.png")}


async def test_interrupted_run_resumes_with_identical_reports(tmp_path: Path) -> None:
    data = read_beir(write_beir(tmp_path / "beir"))
    out = tmp_path / "run"
    first = systems()
    with pytest.raises(Interrupt):
        await arun_retrieval(data, first, out_dir=out, concurrency=1, progress=interrupt_after(3))
    assert [len(s.asked) for s in first] == [2, 1]  # 3 of the 4 jobs ran, then the "Ctrl-C"
    assert len(list(read_models(out / "records.jsonl", JobRecord))) == 3
    assert not (out / "results.json").exists()

    resumed = systems()
    report = await arun_retrieval(data, resumed, out_dir=out, concurrency=1)
    assert [len(s.asked) for s in resumed] == [0, 1]  # only the missing job
    assert report.reused == 3
    assert [r.name for r in report.rows] == ["good", "worse"]
    good, worse = (r.metrics for r in report.rows)
    assert good["recall@10"] == 1.0 and good["mrr"] == 1.0 and good["map"] > worse["map"]
    assert worse["ndcg@10"] < good["ndcg@10"] and worse["mrr"] == pytest.approx(0.5)
    assert set(good) == set(measures_for(10)) == {"ndcg@10", "recall@10", "recall@100", "mrr", "map"}
    assert "| good | 2 |" in (out / "report.md").read_text()
    before = files(out)

    again = systems()
    report2 = await arun_retrieval(data, again, out_dir=out, concurrency=1)
    assert [len(s.asked) for s in again] == [0, 0] and report2.reused == 4
    assert files(out) == before  # byte for byte, the PNG included

    # An uninterrupted run elsewhere scores the same (only the wall times differ).
    fresh = await arun_retrieval(data, systems(), out_dir=tmp_path / "fresh", concurrency=1)
    assert fresh.per_case == report.per_case
    assert [r.metrics for r in fresh.rows] == [r.metrics for r in report.rows]
    assert json.loads(before["results.json"])["rows"][0]["name"] == "good"


async def test_changed_system_or_partial_line_is_recomputed(tmp_path: Path) -> None:
    data = read_beir(write_beir(tmp_path / "beir"))
    out = tmp_path / "run"
    await arun_retrieval(data, systems(), out_dir=out)
    # A kill mid-write leaves half a line: it is skipped, and that job reruns.
    records = out / "records.jsonl"
    lines = records.read_text().splitlines()
    records.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    rerun = systems()
    await arun_retrieval(data, rerun, out_dir=out)
    assert sum(len(s.asked) for s in rerun) == 1
    # Another table is another fingerprint: nothing is reused for it.
    changed = [FakeSystem("good", REVERSED)]
    report = await arun_retrieval(data, changed, out_dir=out)
    assert len(changed[0].asked) == 2 and report.rows[0].metrics["mrr"] == pytest.approx(0.5)


async def test_failed_jobs_score_zero_and_are_retried(tmp_path: Path) -> None:
    data = read_beir(write_beir(tmp_path / "beir"))
    out = tmp_path / "run"
    flaky = FakeSystem("good", TABLE, fail={"second"})
    report = await arun_retrieval(data, [flaky], out_dir=out)
    row = report.rows[0]
    assert row.errors == 1 and row.metrics["mrr"] == pytest.approx(0.5)
    assert "1 failed" in (out / "report.md").read_text()
    fixed = FakeSystem("good", TABLE)
    report = await arun_retrieval(data, [fixed], out_dir=out)
    assert fixed.asked == ["second"] and report.rows[0].errors == 0


async def test_other_exceptions_stop_the_run(tmp_path: Path) -> None:
    async def work(job: Job) -> dict[str, Any]:
        if job.case == "b":
            raise ValueError("a bug, not a failed query")
        return {}

    jobs = [Job(system="s", fingerprint="f", case=c) for c in "abc"]
    with pytest.raises(ValueError, match="a bug"):
        await arun_jobs(jobs, work, records=tmp_path / "r.jsonl")
    assert [r.case for r in read_models(tmp_path / "r.jsonl", JobRecord)] == ["a"]
