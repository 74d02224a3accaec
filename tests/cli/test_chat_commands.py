"""ChatSession slash commands over a real Agent with fake models (the terminal test is test_chat_tty.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrag import Agent
from agentrag.cli import ask as ask_cli
from agentrag.cli._common import state
from agentrag.kb import MANIFEST
from tests.conftest import relevance_by_keyword
from tests.support.fakes import FakeLLM, FakeReranker


def _agent(settings, retriever, graph: str = "rag") -> Agent:
    llm = FakeLLM(
        structured={"_Rewrite": {"query": "Hamlet author", "variants": [], "hypothetical_answer": ""}},
        answer=lambda m: "Hamlet was written by William Shakespeare [1].",
    )
    return Agent(
        settings=settings,
        knowledge_base=retriever,
        graph=graph,
        llm=llm,
        reranker=FakeReranker(relevance_by_keyword),
        checkpoint="memory",
    )


class Closing:
    """Counts close() calls of the agent it stands in for (over a knowledge base of its own)."""

    def __init__(self) -> None:
        self.closed = 0
        self.knowledge_base = object()

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def session(settings, retriever, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(state, "_settings", settings)
    agent = _agent(settings, retriever)
    yield ask_cli.ChatSession(
        agent, graph="rag", kb="default", thread="t1", index=settings.data_dir / "chats.json"
    )
    state._settings = None


def test_ask_streams_the_answer_then_citations_and_sources(session, capsys) -> None:
    session.ask("Who wrote Hamlet?")
    out = capsys.readouterr().out
    assert "Hamlet was written by William Shakespeare [1]." in out
    # The citation block, as `agentrag ask` prints it: marker, source:span and the quote.
    cited = session.turns[-1].citations[0]
    assert f"[1] {cited.source}:{cited.start}-{cited.end}" in out
    assert "sources" in out and "UDCG" in out


def test_unknown_graph_is_an_error_not_the_end_of_the_chat(session, capsys) -> None:
    before = session.agent
    assert session.command("/graph nosuchgraph") is True
    err = capsys.readouterr().err
    assert "no graph named 'nosuchgraph'" in err
    assert session.graph == "rag" and session.agent is before
    assert session.command("/graph crag") is True
    assert session.graph == "crag" and session.agent.spec.name == "crag"
    assert session.agent.knowledge_base is before.knowledge_base


def test_kb_switch_needs_an_existing_kb(session, settings, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    before = session.agent
    assert session.command("/kb nosuch") is True
    err = capsys.readouterr().err
    assert "no knowledge base named 'nosuch'" in err and "agentrag ingest PATH --kb nosuch" in err
    assert session.kb == "default" and session.agent is before
    assert not (settings.data_dir / "kb" / "nosuch").exists()  # nothing created by a typo

    (settings.data_dir / "kb" / "other").mkdir(parents=True)
    (settings.data_dir / "kb" / "other" / MANIFEST).touch()
    replacement = _agent(settings, before.knowledge_base)
    monkeypatch.setattr(ask_cli, "_agent", lambda graph, kb: replacement)
    old = Closing()
    session.agent = old  # type: ignore[assignment]
    assert session.command("/kb other") is True
    assert session.kb == "other" and session.agent is replacement and old.closed == 1
    assert "knowledge base: other" in capsys.readouterr().out


def test_save_to_a_missing_folder_reports_and_continues(session, tmp_path: Path, capsys) -> None:
    session.ask("Who wrote Hamlet?")
    assert session.command(f"/save {tmp_path / 'missing' / 'chat.md'}") is True
    assert "No such file or directory" in capsys.readouterr().err
    target = tmp_path / "chat.md"
    assert session.command(f"/save {target}") is True
    text = target.read_text()
    assert text.startswith("# agentrag chat t1\n") and "## Who wrote Hamlet?" in text
    assert "Hamlet was written by William Shakespeare [1]." in text and "UDCG" in text


def test_reset_starts_a_new_thread(session, capsys) -> None:
    session.ask("Who wrote Hamlet?")
    assert session.command("/reset") is True
    assert session.thread != "t1" and session.turns == []
    assert session.command("/sources") is True
    assert "no answer yet" in capsys.readouterr().out
    assert session.command("/quit") is False
