"""Slow, idle and too many clients, over real TLS sockets on loopback (issue 9, section 3).

The server is the real one (``start_server``: its listener, TLS and watchdog); its verifier and
mapper are stand-ins that answer at once, because what is under test is the connection handling
and a real STS call would only add noise to the timings.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from kubeiam.identity import Identity
from kubeiam.server.components import Components
from kubeiam.server.config import ServerConfig
from kubeiam.server.identity_cache import IdentityCache
from kubeiam.server.metrics import ServerMetrics
from kubeiam.server.run import RunningServer, start_server
from support.identities import user_identity
from support.metrics import sample_sum

IDENTITY = user_identity()
HEADER_TIMEOUT = 0.6
BODY_TIMEOUT = 0.6
IDLE_TIMEOUT = 1.0
MAX_CONNECTIONS = 4
REVIEW = json.dumps(
    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "t"}}
).encode()


class User:
    username = "alice"
    groups = ("devs",)
    backend = "MountedFile"


class Verifier:
    async def verify(self, token: str) -> Identity:
        return IDENTITY


class Mapper:
    ready = True

    async def map(self, identity: Identity) -> User:
        return User()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    config = ServerConfig(
        cluster_id="hardening",
        port=0,
        state_dir=tmp_path / "state",
        header_timeout=HEADER_TIMEOUT,
        body_timeout=BODY_TIMEOUT,
        idle_timeout=IDLE_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
        shutdown_timeout=2.0,
    )
    components = Components(Verifier(), Mapper(), ServerMetrics(), IdentityCache())
    running = await start_server(config, components=components)
    yield running
    await running.stop()


def client_context(server: RunningServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.keypair.cert_path))


async def connect(
    server: RunningServer, *, tls: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1",
        server.port,
        ssl=client_context(server) if tls else None,
        server_hostname="127.0.0.1" if tls else None,
    )


async def closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closes the connection (and what it sent before)."""
    began = time.monotonic()
    data = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return time.monotonic() - began, data


def request(body: bytes = REVIEW, *, length: int | None = None, close: bool = False) -> bytes:
    head = (
        "POST /authenticate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + body


async def metrics_text(server: RunningServer) -> str:
    return server.components.metrics.render().decode()


async def review_ok(session: aiohttp.ClientSession, server: RunningServer) -> float:
    began = time.monotonic()
    async with session.post(server.url, data=REVIEW) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
    return time.monotonic() - began


@pytest.fixture
async def session(server: RunningServer) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_context(server), limit=1)
    async with aiohttp.ClientSession(connector=connector) as s:
        yield s


async def test_half_a_header_is_closed_after_the_header_timeout_while_reviews_go_on(
    server: RunningServer, session: aiohttp.ClientSession
) -> None:
    slow = []
    for _ in range(2):
        reader, writer = await connect(server)
        writer.write(b"POST /authenticate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        await writer.drain()
        slow.append((reader, writer))
    closing = [asyncio.create_task(closed_after(r, 10)) for r, _ in slow]
    # normal reviews meanwhile, on their own connection
    latencies = [await review_ok(session, server) for _ in range(5)]
    waited = [await task for task in closing]
    for seconds, data in waited:
        assert HEADER_TIMEOUT * 0.8 <= seconds <= HEADER_TIMEOUT + 1.5, waited
        assert data == b""  # no request was read: nothing to answer
    assert max(latencies) < HEADER_TIMEOUT
    text = await metrics_text(server)
    assert sample_sum(text, "kubeiam_connections_timed_out_total", phase="headers") == 2
    for _, w in slow:
        w.close()


async def test_header_trickled_byte_by_byte_does_not_extend_the_timeout(
    server: RunningServer,
) -> None:
    reader, writer = await connect(server)

    async def trickle() -> None:
        for byte in b"POST /authenticate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 500:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)  # kept: the trickle's pace is what is tested

    sender = asyncio.create_task(trickle())
    seconds, data = await closed_after(reader, 10)
    sender.cancel()
    assert HEADER_TIMEOUT * 0.8 <= seconds <= HEADER_TIMEOUT + 1.5
    assert data == b""
    assert not sender.done() or sender.cancelled() or sender.exception() is not None
    writer.close()


async def test_slow_body_is_answered_400_and_closed(server: RunningServer) -> None:
    reader, writer = await connect(server)
    writer.write(request(REVIEW[:10], length=len(REVIEW)))
    await writer.drain()
    seconds, data = await closed_after(reader, 10)
    assert BODY_TIMEOUT * 0.8 <= seconds <= BODY_TIMEOUT + 1.5
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), data
    doc = json.loads(body)
    assert doc["kind"] == "TokenReview"
    assert doc["status"]["authenticated"] is False
    assert "did not arrive" in doc["status"]["error"]
    assert (
        sample_sum(await metrics_text(server), "kubeiam_connections_timed_out_total", phase="body")
        == 1
    )
    writer.close()


@pytest.mark.parametrize("reviews_first", [0, 2], ids=["never-used", "after-two-reviews"])
async def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    server: RunningServer, reviews_first: int
) -> None:
    reader, writer = await connect(server)
    for _ in range(reviews_first):
        writer.write(request())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        await reader.readexactly(length)
    seconds, data = await closed_after(reader, 10)
    assert IDLE_TIMEOUT * 0.8 <= seconds <= IDLE_TIMEOUT + 1.5
    assert data == b""
    assert (
        sample_sum(await metrics_text(server), "kubeiam_connections_timed_out_total", phase="idle")
        == 1
    )
    writer.close()


async def test_tls_handshake_that_never_starts_is_closed(server: RunningServer) -> None:
    reader, writer = await connect(server, tls=False)  # TCP only: no ClientHello ever comes
    seconds, _ = await closed_after(reader, 10)
    assert seconds <= HEADER_TIMEOUT + 1.5
    writer.close()


async def test_connections_beyond_the_limit_are_answered_429_as_reviews(
    server: RunningServer, session: aiohttp.ClientSession
) -> None:
    held = [await connect(server) for _ in range(MAX_CONNECTIONS)]
    reader, writer = await connect(server)
    began = time.monotonic()
    writer.write(request())
    await writer.drain()
    _seconds, data = await closed_after(reader, 5)
    assert time.monotonic() - began < 1.0  # refused fast, not after a time-out
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429"), data
    assert b"Retry-After: 1" in head
    doc = json.loads(body)
    assert doc["kind"] == "TokenReview"
    assert "too many open connections" in doc["status"]["error"]
    text = await metrics_text(server)
    assert sample_sum(text, "kubeiam_connections_refused_total") == 1
    assert await open_connections_reach(server, MAX_CONNECTIONS)  # the refused one is gone
    writer.close()
    for _, w in held:
        w.close()
    # once they are gone, reviews are served again
    assert await open_connections_reach(server, 0)
    await review_ok(session, server)


async def open_connections_reach(server: RunningServer, count: int) -> bool:
    for _ in range(40):
        if sample_sum(await metrics_text(server), "kubeiam_connections_open") == count:
            return True
        await asyncio.sleep(0.05)  # polling interval
    return False


async def test_beyond_twice_the_limit_connections_are_closed_unanswered(
    server: RunningServer,
) -> None:
    held = [await connect(server) for _ in range(2 * MAX_CONNECTIONS)]
    assert await open_connections_reach(server, 2 * MAX_CONNECTIONS)
    reader, writer = await connect(server)
    writer.write(request())
    seconds, data = await closed_after(reader, 5)
    assert seconds < 1.0
    assert data == b""  # closed on accept: not even a 429 is spent on it
    text = await metrics_text(server)
    assert sample_sum(text, "kubeiam_connections_refused_total") == MAX_CONNECTIONS + 1
    writer.close()
    for _, w in held:
        w.close()
