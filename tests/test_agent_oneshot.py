"""One-shot asks (no thread_id) do not write checkpoints; threaded asks still do.

The real SQLite checkpointer under ``data_dir``; the LLM and reranker are the unit-test fakes
(what is checked is what reaches ``checkpoints.sqlite``, not the answer).
"""

from __future__ import annotations

import sqlite3

from tests.test_agent import make_agent


def _checkpoint_rows(settings) -> int:
    path = settings.data_dir / "checkpoints.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables)


async def test_one_shot_asks_leave_the_checkpoint_store_alone(settings, retriever) -> None:
    agent = make_agent(settings, retriever)
    for _ in range(3):
        answer = await agent.aask("Who wrote Hamlet?")
        assert answer.outcome == "answered"
    assert _checkpoint_rows(settings) == 0
    await agent.aask("Who wrote Hamlet?", thread_id="t1")
    threaded = _checkpoint_rows(settings)
    assert threaded > 0  # a conversation is still checkpointed
    await agent.aask("Who wrote Hamlet?")
    assert _checkpoint_rows(settings) == threaded
    await agent.aclose()
