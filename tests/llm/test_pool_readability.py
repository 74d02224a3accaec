"""The shared pool notices a keep-alive connection the server closed (its cached readability check).

A real asyncio HTTP/1.1 server answers with keep-alive and then closes the connection while it
sits idle in the pool: the next request must go out on a new connection, not fail on the dead one.
"""

from __future__ import annotations

import asyncio

from agentrag.llm.transport import Transport


async def _serve(connections: list[int]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"ok": true}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # the server drops the idle keep-alive connection

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    connections: list[int] = []
    server = await _serve(connections)
    port = server.sockets[0].getsockname()[1]
    transport = Transport()
    try:
        client = transport.client()
        first = await client.get(f"http://127.0.0.1:{port}/")
        assert first.json() == {"ok": True}
        await asyncio.sleep(0.3)  # the server has closed it by now; the pool still holds it
        second = await client.get(f"http://127.0.0.1:{port}/")
        assert second.json() == {"ok": True}
        assert len(connections) == 2
        # The readability check is the cached one (not anyio's per-call attribute lookup).
        backend = client._transport._pool._network_backend
        assert type(backend).__name__ == "_Backend"
    finally:
        await transport.aclose()
        server.close()
        await server.wait_closed()


async def _serve_slowly(connections: list[int]) -> asyncio.Server:
    """Keep-alive answers after 50 ms, so a fan-out holds one connection per request."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        body = b'{"ok": true}'
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await asyncio.sleep(0.05)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_a_fan_out_reuses_its_connections_and_the_pool_upkeep_is_linear(monkeypatch) -> None:
    import httpcore

    calls = {"is_idle": 0}
    original = httpcore.AsyncHTTPConnection.is_idle

    def counting(self: httpcore.AsyncHTTPConnection) -> bool:
        calls["is_idle"] += 1
        return original(self)

    monkeypatch.setattr(httpcore.AsyncHTTPConnection, "is_idle", counting)
    connections: list[int] = []
    server = await _serve_slowly(connections)
    port = server.sockets[0].getsockname()[1]
    transport = Transport()
    fan_out = 40
    try:
        client = transport.client()

        async def wave() -> None:
            answers = await asyncio.gather(*(client.get(f"http://127.0.0.1:{port}/") for _ in range(fan_out)))
            assert all(a.json() == {"ok": True} for a in answers)

        await wave()
        assert len(connections) == fan_out
        calls["is_idle"] = 0
        await wave()
        assert len(connections) == fan_out  # the second wave went out on the same connections
        # A request's start and its end each sweep the pool. httpcore 1.0.9's sweep asks every
        # connection once per idle connection: 371,720 calls for this wave (measured); a linear
        # sweep asks each connection a few times: 13,560.
        sweeps = 2 * fan_out
        assert calls["is_idle"] < 10 * fan_out * sweeps
        assert type(client._transport._pool).__name__ == "LinearPool"
    finally:
        await transport.aclose()
        server.close()
        await server.wait_closed()
