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
