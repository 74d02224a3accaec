"""A tiny OpenAI-compatible ``/v1/embeddings`` server (hashed bag of words), for transport tests.

The remote embedder needs a server that answers embeddings; the shared 135M vLLM server serves
generation only, and starting a pooling vLLM server is too heavy for a unit test.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIM = 16


def vector(text: str) -> list[float]:
    out = [0.0] * DIM
    for word in re.findall(r"\w+", text.lower()):
        out[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
    return out


class EmbedServer:
    def __init__(self) -> None:
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> EmbedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                outer.requests += 1
                texts = body.get("input") or []
                payload = {
                    "object": "list",
                    "data": [
                        {"index": i, "embedding": vector(t), "object": "embedding"}
                        for i, t in enumerate(texts)
                    ],
                    "usage": {"prompt_tokens": sum(len(t.split()) for t in texts), "total_tokens": 0},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
