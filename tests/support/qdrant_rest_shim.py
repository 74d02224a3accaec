"""A stand-in Qdrant server: Qdrant's REST API (the subset QdrantStore uses) over local mode.

No Qdrant server binary can be installed here (not on PyPI, not in Debian), so the URL path of
QdrantStore is exercised against this: real HTTP on 127.0.0.1, request bodies parsed with
qdrant-client's own OpenAPI models, answered by qdrant-client's local engine. It proves the
client side (URL handling, REST serialisation of points, filters, queries, scroll paging)
works; it does not prove anything about a real server's behaviour beyond that contract.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from qdrant_client import QdrantClient, models

Handler = Callable[[QdrantClient, str, dict[str, Any]], Any]


def _dump(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_dump(o) for o in obj]
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return obj


def _create(c: QdrantClient, name: str, body: dict[str, Any]) -> Any:
    req = models.CreateCollection.model_validate(body)
    return c.create_collection(name, vectors_config=req.vectors)


def _upsert(c: QdrantClient, name: str, body: dict[str, Any]) -> Any:
    req = models.PointsList.model_validate(body)
    return _dump(c.upsert(name, points=req.points))


def _retrieve(c: QdrantClient, name: str, body: dict[str, Any]) -> Any:
    req = models.PointRequest.model_validate(body)
    return _dump(
        c.retrieve(
            name,
            ids=req.ids,
            with_payload=req.with_payload if req.with_payload is not None else True,
            with_vectors=req.with_vector or False,
        )
    )


def _delete(c: QdrantClient, name: str, body: dict[str, Any]) -> Any:
    if "points" in body:
        selector: Any = models.PointIdsList.model_validate(body)
    else:
        selector = models.FilterSelector.model_validate(body)
    return _dump(c.delete(name, points_selector=selector))


def _query(c: QdrantClient, name: str, body: dict[str, Any]) -> Any:
    req = models.QueryRequest.model_validate(body)
    query = req.query.nearest if isinstance(req.query, models.NearestQuery) else req.query
    res = c.query_points(
        name,
        query=query,  # type: ignore[arg-type]
        query_filter=req.filter,
        limit=req.limit or 10,
        with_payload=req.with_payload if req.with_payload is not None else False,
        with_vectors=req.with_vector or False,
    )
    return _dump(res)


def _count(c: QdrantClient, name: str, body: dict[str, Any]) -> Any:
    req = models.CountRequest.model_validate(body)
    return _dump(c.count(name, count_filter=req.filter, exact=req.exact if req.exact is not None else True))


def _scroll(c: QdrantClient, name: str, body: dict[str, Any]) -> Any:
    req = models.ScrollRequest.model_validate(body)
    points, nxt = c.scroll(
        name,
        scroll_filter=req.filter,
        limit=req.limit or 10,
        offset=req.offset,
        with_payload=req.with_payload if req.with_payload is not None else True,
        with_vectors=req.with_vector or False,
    )
    return {"points": _dump(points), "next_page_offset": nxt}


ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"/collections/([^/]+)/exists"), lambda c, n, b: {"exists": c.collection_exists(n)}),
    ("GET", re.compile(r"/collections/([^/]+)"), lambda c, n, b: _dump(c.get_collection(n))),
    ("PUT", re.compile(r"/collections/([^/]+)"), _create),
    ("DELETE", re.compile(r"/collections/([^/]+)"), lambda c, n, b: c.delete_collection(n)),
    ("PUT", re.compile(r"/collections/([^/]+)/points"), _upsert),
    ("POST", re.compile(r"/collections/([^/]+)/points"), _retrieve),
    ("POST", re.compile(r"/collections/([^/]+)/points/delete"), _delete),
    ("POST", re.compile(r"/collections/([^/]+)/points/query"), _query),
    ("POST", re.compile(r"/collections/([^/]+)/points/count"), _count),
    ("POST", re.compile(r"/collections/([^/]+)/points/scroll"), _scroll),
]


class QdrantRestShim:
    """Serve the REST subset on 127.0.0.1 (``with QdrantRestShim() as url: ...``)."""

    def __init__(self, path: str | None = None) -> None:
        self.client = QdrantClient(path=path) if path else QdrantClient(location=":memory:")
        self.lock = threading.Lock()
        self.requests: list[str] = []
        shim = self

        class RequestHandler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                shim.requests.append(f"{method} {path}")
                if method == "GET" and path == "/":
                    return self._send(200, {"title": "qdrant (agentrag test shim)", "version": "1.20.0"})
                if method == "GET" and path == "/collections":
                    cols = shim.client.get_collections().collections
                    return self._send(
                        200, {"result": {"collections": _dump(cols)}, "status": "ok", "time": 0}
                    )
                for verb, pattern, handler in ROUTES:
                    m = pattern.fullmatch(path)
                    if verb == method and m:
                        try:
                            with shim.lock:
                                result = handler(shim.client, m.group(1), body)
                        except (ValueError, KeyError) as exc:
                            return self._send(404, {"status": {"error": str(exc)}, "time": 0})
                        return self._send(200, {"result": result, "status": "ok", "time": 0})
                return self._send(404, {"status": {"error": f"no route {method} {path}"}, "time": 0})

            def _send(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_PUT(self) -> None:
                self._answer("PUT")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_DELETE(self) -> None:
                self._answer("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()
