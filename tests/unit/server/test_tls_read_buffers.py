"""The server reads TLS in 32 KiB chunks (asyncio's default buffer is 256 KiB per connection),
and a body as large as the webhook accepts still arrives whole through the smaller buffer."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl
from pathlib import Path

import pytest
import trustme

from kubeiam.server.run import TLS_READ_BUFFER_BYTES, limit_tls_read_buffers


@pytest.fixture(autouse=True)
def _restore_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # Process-wide class attribute: put asyncio's own value back after each test.
    monkeypatch.setattr(asyncio.sslproto.SSLProtocol, "max_size", 256 * 1024)


def test_the_buffer_shrinks_to_the_named_size() -> None:
    limit_tls_read_buffers()
    assert asyncio.sslproto.SSLProtocol.max_size == TLS_READ_BUFFER_BYTES == 32 * 1024


def test_it_never_grows_the_buffer() -> None:
    limit_tls_read_buffers(1024 * 1024)
    assert asyncio.sslproto.SSLProtocol.max_size == 256 * 1024


async def test_a_body_larger_than_the_buffer_arrives_whole(tmp_path: Path) -> None:
    limit_tls_read_buffers()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    body = bytes(range(256)) * 256  # 64 KiB: the webhook's body limit, twice the buffer
    received = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.set_result(await reader.readexactly(len(body)))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="127.0.0.1"
        )
        writer.write(body)
        await writer.drain()
        assert await asyncio.wait_for(received, 10) == body
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
