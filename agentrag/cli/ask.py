"""`agentrag ask` (one shot) and `agentrag chat` (a REPL over a knowledge base)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrag.cli._common import console, err_console, handle_errors, render_error, state

if TYPE_CHECKING:
    from agentrag.agent import Agent
    from agentrag.types import Answer

GraphOpt = Annotated[str, typer.Option("--graph", "-g", help="rag, crag, srr, premise, or a spec file.")]
KbOpt = Annotated[str | None, typer.Option("--kb", help="Knowledge base name (default: [kb] default_name).")]


def _agent(graph: str, kb: str | None) -> Agent:
    from agentrag.agent import Agent

    # Asking never creates a knowledge base: a mistyped --kb says so instead of answering
    # from an empty one.
    return Agent.from_settings(state.settings(), kb=kb, graph=graph, create=False)


def parse_filters(values: list[str] | None) -> dict[str, Any] | None:
    """``--filter key=value`` options as a filter mapping (a repeated key means any of its values).

    Values are typed the way TOML would read them: ``2004`` is an int, ``true`` a bool.

    Raises:
        InvalidArgumentError: An option without ``=`` or with an empty key.
    """
    from agentrag.errors import InvalidArgumentError

    if not values:
        return None
    out: dict[str, list[Any]] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(
                f"--filter {raw!r} is not key=value", hint="e.g. --filter tenant=a --filter year=2004"
            )
        out.setdefault(key.strip(), []).append(_scalar(value.strip()))
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def _scalar(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


async def _stream(
    agent: Agent,
    question: str,
    thread_id: str | None,
    *,
    show_progress: bool,
    filters: dict[str, Any] | None = None,
) -> Answer:
    """Run one question, printing node progress and streaming the answer tokens."""
    answer: Answer | None = None
    streaming = False
    # The spinner shares err_console with the log handler: rich prints a record above a live
    # display of its own console, while one on another console overwrites the spinner's line.
    status = err_console.status("thinking ...") if show_progress else None
    if status is not None:
        status.start()
    try:
        async for event in agent.astream(question, thread_id=thread_id, filters=filters):
            if event.kind == "node" and event.event == "start" and status is not None:
                status.update(f"{event.node} ...")
            elif event.kind == "token":
                if not streaming:
                    if status is not None:
                        status.stop()
                    streaming = True
                console.print(event.text, end="", highlight=False, markup=False)
            elif event.kind == "answer":
                answer = event.answer
    finally:
        if status is not None:
            status.stop()
    assert answer is not None
    if streaming:
        console.print()
    else:  # no tokens: the answer came without generation (abstention on empty context)
        console.print(answer.text, highlight=False, markup=False)
    return answer


@handle_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    graph: GraphOpt = "rag",
    kb: KbOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole Answer as JSON (for scripts).")
    ] = False,
    thread: Annotated[str | None, typer.Option(help="Conversation id: earlier turns are context.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the answer text.")] = False,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            "-f",
            help="Metadata filter key=value, applied to every retrieval (repeat for more; a "
            "repeated key means any of its values).",
        ),
    ] = None,
) -> None:
    """Ask one question and print the cited answer with its sources.

    Exit code: 0 answered (or abstained), 3 degraded (a model call failed and a step fell back),
    4 failed (no answer could be generated), 5 budget used up before any answer, 1 bad input.
    """
    from agentrag._async import run_sync
    from agentrag.cli.render import citations_block, exit_code, print_details, print_problems, problems

    flt = parse_filters(filters)
    agent = _agent(graph, kb)
    try:
        if as_json:
            answer = agent.ask(question, thread_id=thread, filters=flt)
            data = answer.model_dump(mode="json")
            data["exit_code"] = exit_code(answer)
            data["problems"] = problems(answer)
            typer.echo(json.dumps(data, indent=2))
        else:
            answer = run_sync(
                _stream(agent, question, thread, show_progress=not quiet and console.is_terminal, filters=flt)
            )
            if not quiet:
                if answer.citations:
                    console.print(citations_block(answer), highlight=False, markup=False)
                print_details(console, answer)
            print_problems(err_console, answer)
    finally:
        agent.close()
    code = exit_code(answer)
    if code:
        raise typer.Exit(code)


# --------------------------------------------------------------------------- chat

HELP = """\
[bold]commands[/]
  /graph [NAME]    show or switch the graph (rag, crag, srr, premise, or a spec file)
  /kb [NAME]       show or switch the knowledge base
  /sources [all]   the last answer's evidence, scores and dropped passages
  /trace           the last answer's node-by-node trace
  /reset           start a new conversation
  /save [FILE]     save this conversation as Markdown (default ./chat-<id>.md)
  /help            this help;  /quit (or Ctrl-D) to leave
[bold]input[/]  Enter sends; Alt-Enter (or Esc then Enter) adds a line; a line ending in \\ continues."""


class ChatSession:
    """State of one `agentrag chat`: the agent, the thread, the transcript."""

    def __init__(self, agent: Agent, *, graph: str, kb: str, thread: str, index: Path) -> None:
        self.agent = agent
        self.graph = graph
        self.kb = kb
        self.thread = thread
        self.index = index
        self.turns: list[Answer] = []

    def _record_thread(self, question: str) -> None:
        try:
            data = json.loads(self.index.read_text()) if self.index.exists() else {}
        except ValueError:
            data = {}
        entry = data.setdefault(self.thread, {"started": time.strftime("%Y-%m-%d %H:%M"), "first": question})
        entry.update({"graph": self.graph, "kb": self.kb, "turns": entry.get("turns", 0) + 1})
        self.index.parent.mkdir(parents=True, exist_ok=True)
        self.index.write_text(json.dumps(data, indent=2))

    def ask(self, question: str) -> None:
        from agentrag._async import run_sync
        from agentrag.cli.render import citations_block, print_details, print_problems
        from agentrag.errors import AgentragError

        try:
            answer = run_sync(_stream(self.agent, question, self.thread, show_progress=True))
        except AgentragError as exc:
            render_error(exc)
            return
        self.turns.append(answer)
        self._record_thread(question)
        if answer.citations:
            console.print(citations_block(answer), highlight=False, markup=False)
        print_details(console, answer, dropped=True)
        print_problems(err_console, answer)

    def command(self, line: str) -> bool:
        """Run a slash command; False means quit.

        A failing command (unknown graph or knowledge base, unwritable file) prints the error
        and leaves the session as it was: a typo must not end the conversation.
        """
        from agentrag.errors import AgentragError

        try:
            return self._command(line)
        except AgentragError as exc:
            render_error(exc)
        except OSError as exc:
            from rich.markup import escape

            err_console.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False)
        return True

    def _switch(self, agent: Agent) -> None:
        from agentrag._async import run_sync

        old, self.agent = self.agent, agent
        if old.knowledge_base is agent.knowledge_base:
            run_sync(old.aclose())  # its checkpointer only: the knowledge base is shared
        else:
            old.close()

    def _command(self, line: str) -> bool:
        from agentrag.cli.render import dropped_table, sources_table, trace_table

        name, _, arg = line[1:].partition(" ")
        arg = arg.strip()
        last = self.turns[-1] if self.turns else None
        if name in {"quit", "exit", "q"}:
            return False
        if name == "help":
            console.print(HELP)
        elif name == "graph":
            if arg:
                self._switch(self.agent.with_graph(arg))  # raises on an unknown graph first
                self.graph = arg
            console.print(f"graph: [bold]{self.graph}[/]")
        elif name == "kb":
            if arg:
                self._switch(_existing_kb_agent(self.graph, arg))
                self.kb = arg
            console.print(f"knowledge base: [bold]{self.kb}[/]")
        elif name == "sources":
            if last is None:
                console.print("[dim]no answer yet[/]")
            else:
                console.print(sources_table(last))
                console.print(dropped_table(last, limit=10_000 if arg == "all" else 10))
        elif name == "trace":
            console.print(trace_table(last) if last else "[dim]no answer yet[/]")
        elif name == "reset":
            self.thread = uuid.uuid4().hex[:12]
            self.turns = []
            console.print(f"new conversation [bold]{self.thread}[/]")
        elif name == "save":
            path = Path(arg or f"chat-{self.thread}.md")
            path.write_text(self.transcript())
            console.print(f"saved to {path}")
        else:
            console.print(f"[red]unknown command /{name}[/] (/help lists them)")
        return True

    def transcript(self) -> str:
        from agentrag.cli.render import budget_line, citations_block

        out = [f"# agentrag chat {self.thread}\n", f"graph `{self.graph}`, knowledge base `{self.kb}`\n"]
        for answer in self.turns:
            out.append(f"\n## {answer.question}\n\n{answer.text}\n")
            if answer.citations:
                out.append("\n```\n" + citations_block(answer) + "\n```\n")
            out.append(f"\n_{budget_line(answer)}_\n")
        return "".join(out)


def _existing_kb_agent(graph: str, kb: str) -> Agent:
    """An agent over the knowledge base ``kb``, which must exist (chat never creates one).

    Raises:
        KBNotFoundError: No such knowledge base (the message lists the ones there are).
    """
    from agentrag.errors import KBNotFoundError
    from agentrag.kb import KnowledgeBase

    settings = state.settings()
    names = KnowledgeBase.list_names(settings)
    if kb not in names:
        raise KBNotFoundError(
            f"no knowledge base named {kb!r} under {settings.data_dir}",
            hint=f"known: {', '.join(names) or 'none'}; create one with `agentrag ingest PATH --kb {kb}`",
        )
    return _agent(graph, kb)


def _reader(history_file: Path) -> Any:
    """A line reader: prompt_toolkit on a terminal (history, multi-line), input() otherwise."""
    import sys

    if not sys.stdin.isatty():
        return input
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    history_file.parent.mkdir(parents=True, exist_ok=True)
    session: Any = PromptSession(history=FileHistory(str(history_file)), key_bindings=bindings)
    return session.prompt


def _read_question(read: Any) -> str:
    lines = [read("› ")]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(read("… "))
    return "\n".join(lines).strip()


@handle_errors
def chat(
    graph: GraphOpt = "rag",
    kb: KbOpt = None,
    thread: Annotated[str | None, typer.Option(help="Resume a conversation by id.")] = None,
    list_threads: Annotated[bool, typer.Option("--list", help="List saved conversations and exit.")] = False,
) -> None:
    """Chat with a knowledge base: streamed cited answers, sources, distractors, UDCG."""
    settings = state.settings()
    index = settings.data_dir / "chats.json"
    if list_threads:
        data = json.loads(index.read_text()) if index.exists() else {}
        for tid, info in data.items():
            console.print(f"{tid}  {info['started']}  {info['turns']} turns  [dim]{info['first'][:60]}[/]")
        return
    kb = kb or settings.kb.default_name
    agent = _agent(graph, kb)
    session = ChatSession(agent, graph=graph, kb=kb, thread=thread or uuid.uuid4().hex[:12], index=index)
    console.print(
        f"[bold]agentrag chat[/] — graph [bold]{graph}[/], knowledge base [bold]{kb}[/], "
        f"conversation [bold]{session.thread}[/] (/help for commands)"
    )
    if thread:
        from agentrag._async import run_sync

        turns = run_sync(agent.ahistory(thread))
        console.print(f"[dim]resumed: {len(turns)} earlier turn(s)[/]")
    read = _reader(settings.data_dir / "chat_input_history")
    try:
        while True:
            try:
                question = _read_question(read)
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if not question:
                continue
            if question.startswith("/"):
                if not session.command(question):
                    break
                continue
            session.ask(question)
    finally:
        session.agent.close()
        err_console.print(
            f"[dim]conversation {session.thread} saved; resume with "
            f"`agentrag chat --thread {session.thread}`[/]"
        )
