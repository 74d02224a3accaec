"""`agentrag chat` in a real terminal: tmux, the real vLLM server, a real knowledge base.

The chat runs as a user would run it, in a 160x50 tmux pane (prompt_toolkit, rich live spinner,
streamed tokens); keys go in with ``send-keys`` and the screen comes back with ``capture-pane``.
The test owns its tmux server (a private socket), so it never touches anyone else's sessions.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)"),
]

QUESTION = "How long is the Aurora K2 warranty?"
ANSWER_TIMEOUT_S = 600  # a 135M model on 2 shared CPU cores, with other tests using the server


class Pane:
    """One tmux pane running a command, on a tmux server of its own."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.socket = f"agentrag-test-{uuid.uuid4().hex[:8]}"
        # -f /dev/null: no user config; a long history so the whole session can be read back.
        self.tmux(
            "start-server",
            ";",
            "set-option",
            "-g",
            "history-limit",
            "50000",
            ";",
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            "160",
            "-y",
            "50",
            "-c",
            str(cwd),
            command,
        )

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return proc.stdout

    def send(self, text: str) -> None:
        """Type ``text`` (literally) and press Enter."""
        self.tmux("send-keys", "-t", "chat", "-l", text)
        self.tmux("send-keys", "-t", "chat", "Enter")

    def screen(self) -> str:
        """Everything the pane has shown (history included), wrapped lines joined."""
        return self.tmux("capture-pane", "-p", "-J", "-t", "chat", "-S", "-")

    def wait_for(self, ready: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if ready(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; screen:\n{text}")
            time.sleep(0.5)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


def _after(text: str, marker: str) -> str:
    """The screen from the last prompt line that typed ``marker`` on."""
    at = text.rfind(f"› {marker}")
    assert at >= 0, f"{marker!r} was never typed:\n{text}"
    return text[at:]


def _prompt_back(marker: str) -> Callable[[str], bool]:
    """The command typed as ``marker`` finished: a fresh empty prompt follows it."""

    def ready(text: str) -> bool:
        at = text.rfind(f"› {marker}")
        return at >= 0 and re.search(r"^› *$", text[at + 1 :], re.M) is not None

    return ready


def _assert_sources_panel(text: str) -> None:
    """A sources table: one row per evidence item with its p(rel), the warranty document among them."""
    assert re.search(r"^sources\s*$", text, re.M) and "p(rel)" in text, text
    rows = re.findall(r"^│ +\[(\d+)\]\*? │ .+ │ +(\d\.\d\d) │", text, re.M)
    assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1)) and rows, text
    assert all(0.0 <= float(p) <= 1.0 for _, p in rows)
    # Cells fold long paths over lines; the title is short enough to stay whole.
    assert "Aurora K2 burr grinder: warranty —" in text and "/examples/docs/" in text


@pytest.fixture
def docs_kb(tmp_path: Path, embedder) -> Path:
    """A data directory with examples/docs ingested as the knowledge base ``docs``."""
    from agentrag.kb import KnowledgeBase
    from agentrag.settings import Settings

    data = tmp_path / "data"
    with KnowledgeBase.open(Settings.load(config=None, data_dir=data), "docs", embedder=embedder) as kb:
        report = kb.ingest([REPO / "examples" / "docs"])
    assert report.added == 5
    return data


@pytest.fixture
def chat(tmp_path: Path, docs_kb: Path, vllm_server: str, server_settings) -> Iterator[Pane]:
    env = {
        "PYTHONPATH": str(REPO),
        "AGENTRAG_GENERATOR__API_BASE": vllm_server,
        "AGENTRAG_GENERATOR__MODEL": f"hosted_vllm/{server_settings.served_name}",
        # Short answers, no per-passage evidence generations: one question in about a minute.
        "AGENTRAG_GENERATOR__MAX_TOKENS": "160",
        "AGENTRAG_RERANK__GENERATE_EVIDENCE": "false",
        # The full rag graph (with rewrite) on any machine: the test reads its node lines.
        "AGENTRAG_PROFILE": "gpu",
    }
    # Only these settings: drop AGENTRAG_* of the calling shell (the pane inherits its env).
    # COLUMNS/LINES: the test session exports 80x24, which rich would believe over the pane's size.
    dropped = [k for k in os.environ if k.startswith("AGENTRAG_") and k != "AGENTRAG_HOME"]
    unset = " ".join(f"-u {k}" for k in [*dropped, "COLUMNS", "LINES"])
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    # The shell line reports the exit status and keeps the pane open, so a crash stays readable.
    command = (
        f"env {unset} {assignments} {shlex.quote(sys.executable)} -m agentrag --data-dir "
        f'{shlex.quote(str(docs_kb))} chat --kb docs; echo "[exit $?]"; sleep 3600'
    )
    pane = Pane(command, cwd=tmp_path)
    try:
        yield pane
    finally:
        print(pane.screen())  # shown by pytest on failure (and with -s)
        pane.close()


def test_chat_in_a_terminal(chat: Pane, tmp_path: Path) -> None:
    text = chat.wait_for(lambda t: re.search(r"^› *$", t, re.M) is not None, "the prompt", timeout=120)
    assert "agentrag chat — graph rag, knowledge base docs, conversation " in text

    # A question: the spinner, then the answer streams, then sources and the budget line.
    chat.send(QUESTION)
    text = chat.wait_for(_prompt_back(QUESTION), "the answer", timeout=ANSWER_TIMEOUT_S)
    turn = _after(text, QUESTION)
    assert "[exit" not in turn, turn
    head, sep, _ = turn.partition("\nsources")
    assert sep, turn
    streamed = " ".join(head.splitlines()[1:])  # what came between the question and the sources
    _assert_sources_panel(turn)
    budget = re.search(
        r"^UDCG (\d\.\d{3}|-) · context \d+/1500 tokens · (\d+) LLM calls, \d+ tokens · "
        r"[\d.]+s · rag · (\w+)",
        turn,
        re.M,
    )
    assert budget and int(budget.group(2)) >= 2 and budget.group(3) in {"answered", "abstained"}, turn
    for cited in re.findall(r"^\[\d+\] (\S+):\d+-\d+  \"", turn, re.M):  # the citations block, if any
        assert "/examples/docs/" in cited

    chat.send("/sources")
    block = _after(chat.wait_for(_prompt_back("/sources"), "/sources"), "/sources")
    _assert_sources_panel(block)
    assert re.search(r"^dropped \(\d+\)\s*$", block, re.M), block

    chat.send("/trace")
    block = _after(chat.wait_for(_prompt_back("/trace"), "/trace"), "/trace")
    nodes = re.findall(r"^│\s+[\d.]+ │ (\w+)\s+│", block, re.M)
    assert nodes == ["rewrite", "retrieve", "rerank", "pack", "generate"], block

    chat.send("/graph")
    assert "graph: rag" in _after(chat.wait_for(_prompt_back("/graph"), "/graph"), "/graph")
    chat.send("/graph nosuchgraph")  # a typo prints an error; the chat goes on
    block = _after(chat.wait_for(_prompt_back("/graph nosuchgraph"), "/graph error"), "/graph nosuchgraph")
    assert "no graph named 'nosuchgraph'" in block and "[exit" not in block

    chat.send("/kb")
    assert "knowledge base: docs" in _after(chat.wait_for(_prompt_back("/kb"), "/kb"), "/kb")

    chat.send("/save chat.md")
    assert "saved to chat.md" in _after(chat.wait_for(_prompt_back("/save chat.md"), "/save"), "/save")
    saved = (tmp_path / "chat.md").read_text()
    assert saved.startswith("# agentrag chat ") and "graph `rag`, knowledge base `docs`" in saved
    assert f"## {QUESTION}\n" in saved
    assert re.search(r"^_UDCG .* · rag · (answered|abstained)_$", saved, re.M), saved
    answer_md = saved.split(f"## {QUESTION}\n", 1)[1].split("\n_UDCG")[0].split("\n```")[0]

    # The saved answer was streamed. Markers aside: a sentence the model left uncited gets its
    # [n] after the stream ends (generate's attribution), so compare the words without them.
    def words_of(text: str) -> list[str]:
        return re.sub(r"\s*\[\d+\]", "", text).replace(".", " ").split()

    words = words_of(answer_md)
    assert words and " ".join(words[:8]) in " ".join(words_of(streamed))

    chat.send("/reset")
    assert "new conversation " in _after(chat.wait_for(_prompt_back("/reset"), "/reset"), "/reset")
    chat.send("/sources")
    text = chat.wait_for(lambda t: t.count("no answer yet") == 1, "/sources after /reset")

    chat.send("/quit")
    text = chat.wait_for(lambda t: "[exit" in t, "the chat to end")
    assert "[exit 0]" in text and "resume with `agentrag chat --thread " in text
