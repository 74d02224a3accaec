"""A resumable job runner: each finished job is one JSONL line, and a rerun skips what is there.

A *job* is one (system, case) pair: a retrieval configuration and a query, or a graph and a
question. Its key carries a fingerprint of everything that decides its result (configuration,
models, data file hash), so a changed setup never reads stale lines. Lines are appended and
flushed as each job finishes: a run killed (Ctrl-C, OOM) loses only the jobs in flight, and a
partial last line is skipped on reading. Failed jobs (an :class:`~agentrag.errors.AgentragError`)
are kept in the result but not written, so the rerun retries them.

:mod:`agentrag.premise.evaluate` uses the same line helpers for its own records.

Example:
    >>> jobs = [Job(system="bm25", fingerprint="ab12", case=q) for q in ("q1", "q2")]
    >>> async def work(job: Job) -> dict:
    ...     return {"ranking": ["d1"]}
    >>> from agentrag._async import run_sync
    >>> done = run_sync(arun_jobs(jobs, work, records=Path("out/records.jsonl")))  # doctest: +SKIP
    >>> done["bm25/ab12/q1"].data                                                   # doctest: +SKIP
    {'ranking': ['d1']}
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentrag.errors import AgentragError

__all__ = [
    "Job",
    "JobRecord",
    "append_line",
    "arun_jobs",
    "file_hash",
    "fingerprint",
    "read_models",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def file_hash(path: str | Path) -> str:
    """First 16 hex digits of the file's SHA-256 (data files are small enough to read whole)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def fingerprint(value: Mapping[str, Any]) -> str:
    """A short, order-independent hash of a JSON-able mapping."""
    blob = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def append_line(path: Path, line: str) -> None:
    """Append one line and close the file at once: a kill loses at most the lines in flight."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def read_models(path: Path, model: type[M]) -> Iterator[M]:
    """The valid lines of a JSONL file as ``model`` (a missing file is empty)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            # A run killed mid-write leaves a partial last line: skip it (that job reruns).
            with contextlib.suppress(ValueError, ValidationError):
                yield model.model_validate_json(line)


class Job(BaseModel):
    """One unit of evaluation work."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    system: str
    """Configuration or graph name (a report row)."""

    fingerprint: str
    """Hash of everything that decides the result besides the case."""

    case: str
    """Query or question id."""

    @property
    def key(self) -> str:
        """``system/fingerprint/case``: the cache key."""
        return f"{self.system}/{self.fingerprint}/{self.case}"


class JobRecord(BaseModel):
    """A finished job: one line of ``records.jsonl``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    key: str
    """:attr:`Job.key`."""

    system: str
    """Configuration or graph name."""

    case: str
    """Query or question id."""

    data: dict[str, Any] = Field(default_factory=dict)
    """What the job produced (a ranking, an answer and its usage, ...)."""

    seconds: float = 0.0
    """Wall time of the job."""

    error: str = ""
    """Why it failed (then ``data`` is empty; such records are never written)."""


async def arun_jobs(
    jobs: Sequence[Job],
    work: Callable[[Job], Awaitable[dict[str, Any]]],
    *,
    records: Path,
    concurrency: int = 1,
    progress: Callable[[int, int, JobRecord], None] | None = None,
) -> tuple[dict[str, JobRecord], int]:
    """Run the jobs not already in ``records``; append each as it finishes.

    Args:
        jobs: All jobs of the evaluation.
        work: Does one job and returns its payload; an :class:`~agentrag.errors.AgentragError`
            marks the job failed (logged, not cached), anything else aborts the run.
        records: The JSONL file (created with its folder).
        concurrency: Jobs in flight.
        progress: Called with ``(done, total, record)`` after each job, reused ones first. If it
            raises, the run stops: jobs in flight are cancelled, finished ones stay written.

    Returns:
        ``({job key: record}, number of records reused)``.
    """
    records.parent.mkdir(parents=True, exist_ok=True)
    wanted = {j.key for j in jobs}
    cached = {r.key: r for r in read_models(records, JobRecord) if r.key in wanted and not r.error}
    done: dict[str, JobRecord] = {}
    total = len(jobs)
    for job in jobs:
        if job.key in cached:
            done[job.key] = cached[job.key]
            if progress is not None:
                progress(len(done), total, done[job.key])
    reused = len(done)
    limit = asyncio.Semaphore(max(1, concurrency))
    write_lock = asyncio.Lock()

    stopping = False

    async def one(job: Job) -> None:
        nonlocal stopping
        try:
            await attempt(job)
        except BaseException:
            stopping = True
            raise

    async def attempt(job: Job) -> None:
        async with limit:
            if stopping:  # woken by the slot a stopping job released: do not start
                return
            t0 = time.perf_counter()
            try:
                data = await work(job)
                rec = JobRecord(
                    key=job.key, system=job.system, case=job.case, data=data, seconds=time.perf_counter() - t0
                )
            except AgentragError as exc:
                log.warning("%s on %s failed: %s", job.system, job.case, exc.message)
                rec = JobRecord(
                    key=job.key,
                    system=job.system,
                    case=job.case,
                    seconds=time.perf_counter() - t0,
                    error=f"[{exc.code}] {exc.message}",
                )
            # Still holding the slot: with concurrency n, at most n jobs are past this point
            # when a callback stops the run.
            async with write_lock:
                if not rec.error:
                    await asyncio.to_thread(append_line, records, rec.model_dump_json())
                done[job.key] = rec
                if progress is not None:
                    progress(len(done), total, rec)

    # A task group cancels the jobs in flight when one raises (an interrupt from `progress`),
    # so nothing keeps writing after the run has stopped.
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                if job.key not in done:
                    group.create_task(one(job))
    except BaseExceptionGroup as eg:
        # Callers catch what the job or callback raised, not the group wrapping it.
        raise eg.exceptions[0] from None
    return done, reused
