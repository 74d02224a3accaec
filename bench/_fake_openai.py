"""An OpenAI-compatible server with a fixed latency per call, for measuring orchestration overhead.

It answers every request the graphs make, validly and instantly after ``latency`` seconds:
schema-constrained chat (a minimal instance of the requested JSON schema), first-token logprobs
(chat and raw completions: mostly "yes"), raw completions (a Prism-format verdict with
contribution and evidence), and streamed chat. Every request's start and end time is recorded,
so a benchmark can compare a graph's wall time with the time LLM calls actually took.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def instance(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A minimal value that validates against ``schema`` (the subset pydantic emits)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return instance(defs[schema["$ref"].split("/")[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "anyOf" in schema:
        return instance(schema["anyOf"][0], defs)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: instance(v, defs) for k, v in props.items() if k in schema.get("required", props)}
    if kind == "array":
        return [instance(schema.get("items", {}), defs) for _ in range(schema.get("minItems", 1))]
    if kind == "string":
        return "query words"
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return True
    return None


def busy_time(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of request intervals: the time at least one LLM call was running."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def waves(intervals: list[tuple[float, float]]) -> int:
    """Groups of overlapping requests: sequential LLM round trips."""
    count, end = 0, float("-inf")
    for a, b in sorted(intervals):
        if a > end:
            count += 1
        end = max(end, b)
    return count


class _Server(ThreadingHTTPServer):
    # The listen backlog is fixed when the socket is bound: set it on the class. The default (5)
    # refuses connections when a graph fans out 20 concurrent calls.
    request_queue_size = 512
    daemon_threads = True


class FakeOpenAI:
    """Start with ``with FakeOpenAI(latency=0.2) as server: server.api_base``."""

    def __init__(self, latency: float = 0.2, model: str = "fake") -> None:
        self.latency = latency
        self.model = model
        self.intervals: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.intervals.clear()

    def busy_time(self) -> float:
        """Length of the union of request intervals: the time at least one LLM call was running."""
        return busy_time(self.intervals)

    def waves(self) -> int:
        """Groups of overlapping requests: sequential LLM round trips."""
        return waves(self.intervals)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # http.server writes the headers and the body in two sends; with Nagle on, the body
            # waits for the client's delayed ACK (~40 ms on Linux) on every reused connection.
            # Real servers (uvicorn under vLLM) set TCP_NODELAY; so does this one.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._json({"object": "list", "data": [{"id": outer.model}]})

            def do_POST(self) -> None:
                t0 = time.perf_counter()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                time.sleep(outer.latency)
                usage = {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}
                top = [
                    {"token": "yes", "logprob": -0.2, "bytes": None},
                    {"token": "no", "logprob": -1.8, "bytes": None},
                ]
                if self.path.endswith("/chat/completions"):
                    fmt = body.get("response_format") or {}
                    if fmt.get("type") == "json_schema":
                        content = json.dumps(instance(fmt["json_schema"]["schema"]))
                    elif body.get("logprobs"):
                        content = "yes"
                    else:
                        content = "The evidence answers it [1]."
                    if body.get("stream"):
                        self._stream(content, usage)
                    else:
                        choice: dict[str, Any] = {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content},
                        }
                        if body.get("logprobs"):
                            choice["logprobs"] = {
                                "content": [
                                    {"token": "yes", "logprob": -0.2, "bytes": None, "top_logprobs": top}
                                ]
                            }
                        self._json(
                            {
                                "id": "x",
                                "object": "chat.completion",
                                "created": 0,
                                "model": outer.model,
                                "choices": [choice],
                                "usage": usage,
                            }
                        )
                else:
                    if body.get("logprobs"):
                        text = "yes"
                        logprobs: Any = {
                            "tokens": ["yes"],
                            "token_logprobs": [-0.2],
                            "text_offset": [0],
                            "top_logprobs": [{"yes": -0.2, "no": -1.8}],
                        }
                    else:
                        text = (
                            "yes\n<contribution>It names the fact asked for.</contribution>\n"
                            "<evidence>The fact.</evidence>"
                        )
                        logprobs = None
                    self._json(
                        {
                            "id": "x",
                            "object": "text_completion",
                            "created": 0,
                            "model": outer.model,
                            "choices": [
                                {"index": 0, "text": text, "finish_reason": "stop", "logprobs": logprobs}
                            ],
                            "usage": usage,
                        }
                    )
                with outer._lock:
                    outer.intervals.append((t0, time.perf_counter()))

            def _stream(self, content: str, usage: dict[str, int]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def send(data: bytes) -> None:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

                words = content.split(" ")
                for i, word in enumerate(words):
                    chunk = {
                        "id": "x",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": outer.model,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"content": word if i == 0 else " " + word},
                                "finish_reason": None,
                            }
                        ],
                    }
                    send(f"data: {json.dumps(chunk)}\n\n".encode())
                final = {
                    "id": "x",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": outer.model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": usage,
                }
                send(f"data: {json.dumps(final)}\n\n".encode())
                send(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        return Handler


def _serve(latency: float, model: str, conn: Any) -> None:
    """Child-process body of :class:`FakeOpenAIProcess`: serve, answer reset/intervals, stop."""
    with FakeOpenAI(latency=latency, model=model) as server:
        conn.send(server.api_base)
        while (cmd := conn.recv()) != "stop":
            if cmd == "reset":
                server.reset()
                conn.send(None)
            else:
                conn.send(list(server.intervals))


class FakeOpenAIProcess:
    """The same server in a child process, where a real model server runs.

    In-process, the server's request handling (HTTP parsing, JSON, its threads) takes the bench
    process's GIL and counts in its CPU time, i.e. it is billed as orchestration overhead. Here
    it costs only a share of the cores, as vLLM does. ``perf_counter`` is the system-wide
    monotonic clock on Linux, so the child's request intervals compare with each other as before.
    """

    def __init__(self, latency: float = 0.2, model: str = "fake") -> None:
        self.latency = latency
        self.model = model

    def __enter__(self) -> FakeOpenAIProcess:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(self.latency, self.model, child), daemon=True)
        self._proc.start()
        self.api_base: str = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()

    @property
    def intervals(self) -> list[tuple[float, float]]:
        self._conn.send("intervals")
        return [tuple(x) for x in self._conn.recv()]  # type: ignore[misc]

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def busy_time(self) -> float:
        return busy_time(self.intervals)

    def waves(self) -> int:
        return waves(self.intervals)
