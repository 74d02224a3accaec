"""A local OpenAI-compatible HTTP server whose answers a test scripts, to exercise retries.

Each request pops the next action from a queue (the last action repeats when the queue is
empty): ``ok`` answers normally, ``503`` / ``429`` / ``400`` answer with that status, ``hang``
sleeps past any sane timeout, ``malformed`` returns a completion whose content is broken JSON,
``delay:S`` answers normally after S seconds, ``slow:S`` streams its words S seconds apart (a
call still in flight for a while), ``cut`` streams one chunk then breaks,
``garbage`` answers 200 with a body that is not JSON (a proxy's HTML page). Streaming
requests get server-sent events. Every request is recorded so tests can count
attempts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FaultServer:
    def __init__(self, actions: list[str] | None = None, *, content: str = "ok", model: str = "fake") -> None:
        self.actions: deque[str] = deque(actions or ["ok"])
        self.content = content
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, actions: list[str]) -> None:
        with self._lock:
            self.actions = deque(actions)
            self.requests.clear()

    def _next(self, body: dict[str, Any]) -> str:
        with self._lock:
            self.requests.append(body)
            return self.actions.popleft() if len(self.actions) > 1 else self.actions[0]

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, content: str, *, cut: bool, gap: float = 0.0) -> None:
                # Server-sent events in chunked transfer encoding, as uvicorn (vLLM) sends them,
                # one event per word. "cut" drops the connection after the first event without
                # the terminating chunk: what a server crash mid-answer looks like on the wire.
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def send(data: bytes) -> None:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                def event(delta: dict[str, Any], finish: str | None) -> bytes:
                    chunk = {
                        "id": "x",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": outer.model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                    return f"data: {json.dumps(chunk)}\n\n".encode()

                for i, word in enumerate(content.split(" ")):
                    if i and gap:
                        time.sleep(gap)
                    send(event({"role": "assistant", "content": word if i == 0 else " " + word}, None))
                    if cut:
                        self.close_connection = True
                        return
                send(event({}, "stop"))
                send(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def do_GET(self) -> None:
                if self.path.endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                else:
                    self._send(200, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                action = outer._next(body)
                if action == "hang":
                    time.sleep(30)
                    return
                if action.startswith("delay:"):
                    time.sleep(float(action.split(":", 1)[1]))
                    action = "ok"
                gap = 0.0
                if action.startswith("slow:"):
                    gap, action = float(action.split(":", 1)[1]), "ok"
                if action == "garbage":
                    data = b"<html><body>502 Bad Gateway (not JSON)</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if action in {"503", "429", "400", "500"}:
                    self._send(
                        int(action),
                        {"error": {"message": f"injected {action}", "type": "x", "code": int(action)}},
                    )
                    return
                content = outer.content if action in {"ok", "cut"} else '{"answer": "unterminated'
                if body.get("stream"):
                    self._stream(content, cut=action == "cut", gap=gap)
                    return
                if self.path.endswith("/completions") and not self.path.endswith("/chat/completions"):
                    choice: dict[str, Any] = {
                        "index": 0,
                        "text": content,
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                    obj = "text_completion"
                else:
                    choice = {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                    obj = "chat.completion"
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": obj,
                        "created": int(time.time()),
                        "model": outer.model,
                        "choices": [choice],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
                    },
                )

        return Handler
