"""The STS call's HTTPS client against raw TLS servers on 127.0.0.1 (certificates from trustme).

The peer is a bare ``asyncio.start_server`` whose bytes each test scripts, so that it can
misbehave in ways a real HTTP server library refuses to: bad framing, half answers, closing idle
connections without saying so. Names resolve through the real ``BoundedResolver``'s static table.
Every test runs on the default loop and on uvloop (the server's).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import pytest
import trustme
import uvloop
from aiohttp.abc import AbstractResolver, ResolveResult
from fake_sts import CLUSTER_ID, HOST, JSON_OK
from token_factory import NOW, build_token

from kubeiam import __version__
from kubeiam.errors import STSError, STSUnavailableError
from kubeiam.token.resolver import BoundedResolver
from kubeiam.token.sts import STSClient
from kubeiam.token.sts_http import (
    MAX_HEADER_BYTES,
    MAX_HEADER_LINES,
    BodyTooLarge,
    ConnectError,
    ConnectionClosed,
    ConnectionPool,
    InvalidRequest,
    MalformedResponse,
    Response,
    TLSError,
)
from kubeiam.token.validation import validate_token

SECRET_QUERY = "/?Action=GetCallerIdentity&X-Amz-Signature=0123abcdsecret"
HEADERS = (("x-k8s-aws-id", CLUSTER_ID), ("Accept", "application/json"))
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
JSON_OK_BYTES = json.dumps(JSON_OK).encode()

Then = Literal["keep", "close", "hang"]
#: What the peer does with request number ``n`` (over all connections): bytes to write, then.
Script = Callable[[int], tuple[bytes, Then]]


def always(data: bytes, then: Then = "keep") -> Script:
    return lambda _n: (data, then)


@dataclass
class Peer:
    """A scripted HTTPS peer: it reads request heads and writes whatever the script says."""

    script: Script = field(default_factory=lambda: always(OK))
    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    closed_by_client: int = 0
    delay: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_client += 1
                    return
                number = len(self.heads)
                self.heads.append(head)
                if self.delay:
                    await asyncio.sleep(self.delay)
                data, then = self.script(number)
                writer.write(data)
                await writer.drain()
                if then == "close":
                    return
                if then == "hang":
                    await self.release.wait()
                    return
        except (ConnectionError, ssl.SSLError):
            return
        except asyncio.CancelledError:  # the test's loop is closing: nothing left to answer
            return
        finally:
            self.open_now -= 1
            writer.close()


# pytest-asyncio's replacement (a pytest_asyncio_loop_factories hook) lives in a conftest and
# would run every test of the directory twice; this module alone needs both loops.
pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture')


@pytest.fixture(params=["asyncio", "uvloop"], autouse=True)
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Every test on both loops: the server runs on uvloop, whose TLS transport differs."""
    if request.param == "uvloop":
        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
async def peer(server_context: ssl.SSLContext) -> AsyncIterator[Peer]:
    state = Peer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0, ssl=server_context)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        state.release.set()
        server.close()


def pool_for(peer: Peer, context: ssl.SSLContext, **kwargs: float) -> ConnectionPool:
    resolver = BoundedResolver(static={HOST: ("127.0.0.1", peer.port)})
    return ConnectionPool(ssl_context=context, resolver=resolver, **kwargs)  # type: ignore[arg-type]


async def get(pool: ConnectionPool, *, max_body: int = 64 * 1024, timeout: float = 5) -> Response:
    async with asyncio.timeout(timeout):
        return await pool.get(HOST, SECRET_QUERY, HEADERS, max_body=max_body)


# --- the request --------------------------------------------------------------------------------


async def test_request_is_the_target_host_and_given_headers_only(
    peer: Peer, client_context: ssl.SSLContext
) -> None:
    pool = pool_for(peer, client_context)
    assert await get(pool) == Response(200, b"ok")
    await pool.close()
    assert peer.heads == [
        f"GET {SECRET_QUERY} HTTP/1.1\r\nHost: {HOST}\r\nx-k8s-aws-id: {CLUSTER_ID}\r\n"
        "Accept: application/json\r\n\r\n".encode()
    ]


async def test_sts_client_sends_exactly_the_documented_headers(peer: Peer, ca_bundle: str) -> None:
    body = JSON_OK_BYTES
    peer.script = always(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    request = validate_token(build_token(HOST), partition="aws", now=NOW)
    async with STSClient(resolve={HOST: ("127.0.0.1", peer.port)}, ca_bundle=ca_bundle) as sts:
        await sts.get_caller_identity(request, CLUSTER_ID)
    target = request.url[len(f"https://{HOST}") :]
    assert peer.heads == [
        f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nx-k8s-aws-id: {CLUSTER_ID}\r\n"
        f"Accept: application/json\r\nUser-Agent: kubeiam/{__version__}\r\n\r\n".encode()
    ]


BAD_REQUESTS = [
    pytest.param("/", ("x-k8s-aws-id", "a\r\nInjected: 1"), id="crlf-in-value"),
    pytest.param("/", ("x-k8s-aws-id", "a\nb"), id="lf-in-value"),
    pytest.param("/", ("x-k8s-aws-id", "a\rb"), id="cr-in-value"),
    pytest.param("/", ("x-k8s-aws-id", "a\x00b"), id="nul-in-value"),
    pytest.param("/", ("x k8s", "a"), id="space-in-name"),
    pytest.param("/", ("x-k8s:", "a"), id="colon-in-name"),
    pytest.param("/ HTTP/1.1\r\nX: y", ("a", "b"), id="crlf-in-target"),
    pytest.param("/a b", ("a", "b"), id="space-in-target"),
    pytest.param("http://evil/", ("a", "b"), id="absolute-target"),
]


@pytest.mark.parametrize(("target", "header"), BAD_REQUESTS)
async def test_request_splitting_is_refused_before_anything_is_sent(
    peer: Peer, client_context: ssl.SSLContext, target: str, header: tuple[str, str]
) -> None:
    pool = pool_for(peer, client_context)
    with pytest.raises(InvalidRequest) as info:
        await pool.get(HOST, target, [header], max_body=1024)
    assert isinstance(info.value, ValueError)
    await pool.close()
    assert peer.connections == 0


async def test_sts_client_reports_a_bad_cluster_id_as_a_failed_request(
    peer: Peer, ca_bundle: str
) -> None:
    request = validate_token(build_token(HOST), partition="aws", now=NOW)
    async with STSClient(resolve={HOST: ("127.0.0.1", peer.port)}, ca_bundle=ca_bundle) as sts:
        with pytest.raises(STSUnavailableError, match=r"failed \(InvalidRequest\)"):
            await sts.get_caller_identity(request, "a\r\nX-Injected: 1")
    assert peer.heads == []


# --- the pool -----------------------------------------------------------------------------------


async def test_sequential_calls_share_one_connection(
    peer: Peer, client_context: ssl.SSLContext
) -> None:
    pool = pool_for(peer, client_context)
    for _ in range(8):
        assert (await get(pool)).body == b"ok"
    await pool.close()
    assert (peer.connections, len(peer.heads), pool.connections_made) == (1, 8, 1)


async def test_concurrent_calls_open_at_most_one_connection_each(
    peer: Peer, client_context: ssl.SSLContext
) -> None:
    peer.delay = 0.02
    pool = pool_for(peer, client_context)
    for _ in range(3):
        results = await asyncio.gather(*(get(pool) for _ in range(16)))
        assert {r.body for r in results} == {b"ok"}
    await pool.close()
    assert len(peer.heads) == 48
    assert peer.connections <= 16


async def test_the_pool_limit_bounds_open_connections(
    peer: Peer, client_context: ssl.SSLContext
) -> None:
    peer.delay = 0.02
    pool = pool_for(peer, client_context, limit=2)
    results = await asyncio.gather(*(get(pool) for _ in range(10)))
    await pool.close()
    assert len(results) == 10
    assert peer.most_open <= 2
    assert peer.connections <= 2


async def test_waiting_for_a_slot_counts_against_the_deadline_and_leaks_nothing(
    peer: Peer, client_context: ssl.SSLContext
) -> None:
    peer.script = lambda n: (b"", "hang") if n == 0 else (OK, "keep")
    pool = pool_for(peer, client_context, limit=1)
    hung = asyncio.create_task(get(pool, timeout=0.5))
    async with asyncio.timeout(5):
        while not peer.heads:
            await asyncio.sleep(0.01)
    with pytest.raises(TimeoutError):
        await get(pool, timeout=0.2)  # no slot: the only connection is busy
    with pytest.raises(TimeoutError):
        await hung
    assert pool.open_connections == 0  # the timed-out connection was closed, not pooled
    assert (await get(pool)).body == b"ok"  # and its slot is free again
    await pool.close()


NOT_REUSED = [
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "keep",
                 id="connection-close"),
    pytest.param(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
                 "keep", id="connection-close-in-list"),
    pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "keep", id="http-1.0"),
    pytest.param(b"HTTP/1.1 200 OK\r\n\r\nok", "close", id="eof-delimited"),
    pytest.param(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 2\r\n\r\nok", "keep",
                 id="redirect"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", "keep",
                 id="bytes-after-the-answer"),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "then"), NOT_REUSED)
async def test_connections_are_reused_only_after_a_clean_http11_keep_alive_answer(
    peer: Peer, client_context: ssl.SSLContext, answer: bytes, then: Then
) -> None:
    peer.script = always(answer, then)
    pool = pool_for(peer, client_context)
    for _ in range(3):
        await get(pool)
    await pool.close()
    assert peer.connections == 3
    assert pool.connections_made == 3


async def test_a_redirect_body_is_never_read(peer: Peer, client_context: ssl.SSLContext) -> None:
    peer.script = always(b"HTTP/1.1 301 Moved\r\nLocation: http://evil/\r\n\r\n", "hang")
    pool = pool_for(peer, client_context)
    assert await get(pool, timeout=2) == Response(301, b"")
    await pool.close()


async def test_a_stale_idle_connection_is_retried_once_on_a_new_one(
    peer: Peer, client_context: ssl.SSLContext
) -> None:
    # The second request reaches the kept connection, which the peer then closes unanswered.
    peer.script = lambda n: (b"", "close") if n == 1 else (OK, "keep")
    pool = pool_for(peer, client_context)
    assert (await get(pool)).body == b"ok"
    assert (await get(pool)).body == b"ok"
    await pool.close()
    assert (len(peer.heads), peer.connections) == (3, 2)


async def test_a_peer_closing_after_each_answer_unannounced_costs_no_failure(
    peer: Peer, client_context: ssl.SSLContext
) -> None:
    peer.script = always(OK, "close")
    pool = pool_for(peer, client_context)
    for _ in range(5):
        assert (await get(pool)).body == b"ok"
    await pool.close()
    assert len(peer.heads) <= 10  # at most one retry per call


NO_RETRY = [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", id="cut-in-the-head"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", id="cut-in-the-body"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
                 id="cut-in-the-chunks"),
]  # fmt: skip


@pytest.mark.parametrize("partial", NO_RETRY)
async def test_no_retry_after_part_of_an_answer(
    peer: Peer, client_context: ssl.SSLContext, partial: bytes
) -> None:
    peer.script = lambda n: (partial, "close") if n == 1 else (OK, "keep")
    pool = pool_for(peer, client_context)
    await get(pool)
    with pytest.raises(ConnectionClosed) as info:
        await get(pool)
    assert not info.value.before_answer
    await pool.close()
    assert (len(peer.heads), peer.connections) == (2, 1)


async def test_no_retry_on_a_new_connection(peer: Peer, client_context: ssl.SSLContext) -> None:
    peer.script = always(b"", "close")
    pool = pool_for(peer, client_context)
    with pytest.raises(ConnectionClosed):
        await get(pool)
    await pool.close()
    assert (len(peer.heads), peer.connections) == (1, 1)


async def test_idle_connections_expire(peer: Peer, client_context: ssl.SSLContext) -> None:
    now = [1000.0]
    pool = ConnectionPool(
        ssl_context=client_context,
        resolver=BoundedResolver(static={HOST: ("127.0.0.1", peer.port)}),
        clock=lambda: now[0],
    )
    await get(pool)
    now[0] += 14.0
    await get(pool)
    assert pool.connections_made == 1
    now[0] += 15.5  # past IDLE_TIMEOUT since the last use
    await get(pool)
    assert pool.connections_made == 2
    await pool.close()


async def test_idle_connections_the_peer_closed_are_dropped(
    peer: Peer, client_context: ssl.SSLContext
) -> None:
    pool = pool_for(peer, client_context)
    peer.script = always(OK, "close")
    await get(pool)
    async with asyncio.timeout(5):
        while pool.open_connections:
            await asyncio.sleep(0.01)
    peer.script = always(OK, "keep")
    await get(pool)
    await pool.close()
    assert (len(peer.heads), peer.connections) == (2, 2)  # no request sent on the dead one


async def test_close_closes_every_connection(peer: Peer, client_context: ssl.SSLContext) -> None:
    peer.delay = 0.02
    pool = pool_for(peer, client_context)
    await asyncio.gather(*(get(pool) for _ in range(4)))
    opened = peer.connections
    await pool.close()
    async with asyncio.timeout(5):
        while peer.closed_by_client < opened:
            await asyncio.sleep(0.01)
    assert pool.open_connections == 0


# --- connecting ---------------------------------------------------------------------------------


class ListResolver(AbstractResolver):
    """Answers every name with the given addresses, in order (no lookup at all)."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=p, family=socket.AF_INET, proto=0, flags=0)
            for a, p in self.addresses
        ]

    async def close(self) -> None:
        pass


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_addresses_are_tried_in_order(peer: Peer, client_context: ssl.SSLContext) -> None:
    resolver = ListResolver([("127.0.0.1", unused_port()), ("127.0.0.1", peer.port)])
    pool = ConnectionPool(ssl_context=client_context, resolver=resolver)
    assert (await get(pool)).body == b"ok"
    await pool.close()


async def test_no_address_accepting_is_a_connect_error(client_context: ssl.SSLContext) -> None:
    pool = ConnectionPool(
        ssl_context=client_context, resolver=ListResolver([("127.0.0.1", unused_port())])
    )
    with pytest.raises(ConnectError) as info:
        await get(pool)
    assert info.value.reason
    assert pool.open_connections == 0
    await pool.close()


async def test_a_failed_lookup_is_a_connect_error(client_context: ssl.SSLContext) -> None:
    def getaddrinfo(*_args: object) -> list[tuple[object, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    resolver = BoundedResolver(getaddrinfo=getaddrinfo)
    pool = ConnectionPool(ssl_context=client_context, resolver=resolver)
    with pytest.raises(ConnectError, match="Name or service not known"):
        await get(pool)
    await pool.close()
    await resolver.close()


async def test_connections_set_tcp_nodelay(peer: Peer, client_context: ssl.SSLContext) -> None:
    # The property, whoever sets it: asyncio and uvloop do for TCP transports, the pool makes
    # sure for any other loop.
    pool = pool_for(peer, client_context)
    await get(pool)
    (conn,) = pool._open  # the pool's own connection: no public handle to its socket
    assert conn.transport is not None
    sock = conn.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    await pool.close()


async def test_an_untrusted_certificate_is_a_tls_error(peer: Peer) -> None:
    pool = pool_for(peer, ssl.create_default_context())  # system CAs: not the test CA
    with pytest.raises(TLSError):
        await get(pool)
    await pool.close()
    assert peer.heads == []


# --- the answer ---------------------------------------------------------------------------------

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
GOOD_ANSWERS = [
    pytest.param(OK, b"ok", id="content-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"", id="empty"),
    pytest.param(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", b"ok", id="no-reason"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 02\r\n\r\nok", b"ok",
                 id="same-length-twice"),
    pytest.param(b"HTTP/1.1 200 OK\r\ncontent-length:2\r\n\r\nok", b"ok", id="lower-case-no-space"),
    pytest.param(CHUNKED + b"2\r\nok\r\n0\r\n\r\n", b"ok", id="chunked"),
    pytest.param(CHUNKED + b"1\r\no\r\nA;ext=1\r\n0123456789\r\n0\r\n\r\n", b"o0123456789",
                 id="chunked-extension-upper-hex"),
    pytest.param(CHUNKED + b"2\r\nok\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", b"ok",
                 id="chunked-trailers"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", b"",
                 id="chunked-case"),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "body"), GOOD_ANSWERS)
async def test_good_answers(
    peer: Peer, client_context: ssl.SSLContext, answer: bytes, body: bytes
) -> None:
    peer.script = always(answer)
    pool = pool_for(peer, client_context)
    assert (await get(pool)).body == body
    assert (await get(pool)).body == body
    await pool.close()
    assert peer.connections == 1  # framed answers keep the connection


async def test_an_eof_delimited_body(peer: Peer, client_context: ssl.SSLContext) -> None:
    peer.script = always(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", "close")
    pool = pool_for(peer, client_context)
    assert await get(pool) == Response(200, b"all of it")
    await pool.close()


async def test_an_answer_in_many_small_pieces(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    answer = CHUNKED + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for i in range(len(answer)):
            writer.write(answer[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0)
        await reader.read()
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool(
        ssl_context=client_context, resolver=BoundedResolver(static={HOST: ("127.0.0.1", port)})
    )
    assert (await get(pool)).body == b"abcde"
    await pool.close()
    server.close()


BIG_HEAD = (
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\nContent-Length: 0\r\n\r\n"
)
MANY_LINES = (
    b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * (MAX_HEADER_LINES + 1) + b"Content-Length: 0\r\n\r\n"
)
MALFORMED = [
    pytest.param(b"garbage\r\n\r\n", id="garbage-status-line"),
    pytest.param(b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", id="http-2"),
    pytest.param(b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", id="two-digit-status"),
    pytest.param(b"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n", id="no-space-before-reason"),
    pytest.param(b"ICY 200 OK\r\n\r\n", id="icy"),
    pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n" + OK, id="1xx"),
    pytest.param(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK, id="103"),
    pytest.param(BIG_HEAD, id="header-block-too-large"),
    pytest.param(MANY_LINES, id="too-many-header-lines"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
                 id="folded-header"),
    pytest.param(b"HTTP/1.1 200 OK\r\nno colon\r\nContent-Length: 0\r\n\r\n", id="no-colon"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 0\r\n\r\n", id="bare-lf"),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: 1\rContent-Length: 0\r\n\r\n", id="bare-cr"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", id="space-before-colon"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"2\r\nok\r\n0\r\n\r\n", id="length-and-chunked"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", id="gzip"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
                 b"\r\n\r\n0\r\n\r\n", id="chunked-twice"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", id="negative-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", id="plus-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok", id="hex-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1 1\r\n\r\nok", id="blank-in-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nok", id="empty-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", id="two-lengths-listed"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
                 id="two-length-headers"),
    pytest.param(CHUNKED + b"zz\r\nok\r\n0\r\n\r\n", id="chunk-size-not-hex"),
    pytest.param(CHUNKED + b"-2\r\nok\r\n0\r\n\r\n", id="chunk-size-negative"),
    pytest.param(CHUNKED + b"0x2\r\nok\r\n0\r\n\r\n", id="chunk-size-0x"),
    pytest.param(CHUNKED + b"\r\nok\r\n0\r\n\r\n", id="chunk-size-empty"),
    pytest.param(CHUNKED + b"2\r\nokXX0\r\n\r\n", id="chunk-without-crlf"),
    pytest.param(CHUNKED + b"2\r\nok\n0\r\n\r\n", id="chunk-with-bare-lf"),
    pytest.param(CHUNKED + b"2" + b" " * 2000 + b"\r\nok\r\n0\r\n\r\n", id="chunk-line-too-long"),
    pytest.param(CHUNKED + b"0\r\n" + b"T: 1\r\n" * (MAX_HEADER_LINES + 1) + b"\r\n",
                 id="too-many-trailers"),
]  # fmt: skip


@pytest.mark.parametrize("answer", MALFORMED)
async def test_malformed_answers_are_refused_and_the_connection_closed(
    peer: Peer, client_context: ssl.SSLContext, answer: bytes
) -> None:
    peer.script = always(answer, "hang")  # the peer keeps the connection: the client drops it
    pool = pool_for(peer, client_context)
    with pytest.raises(MalformedResponse) as info:
        await get(pool, timeout=3)
    assert "X-Amz" not in str(info.value)
    assert "secret" not in str(info.value)
    assert pool.open_connections == 0
    await pool.close()


TOO_LARGE = [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", id="declared"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
                 id="declared-huge"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 000000000000000000101\r\n\r\n",
                 id="declared-leading-zeros"),
    pytest.param(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101, id="streamed-until-eof"),
    pytest.param(CHUNKED + b"65\r\n", id="chunk-declared"),
    pytest.param(CHUNKED + b"40\r\n" + b"x" * 64 + b"\r\n40\r\n" + b"x" * 10, id="chunks-streamed"),
]  # fmt: skip


@pytest.mark.parametrize("answer", TOO_LARGE)
async def test_bodies_over_the_cap_are_refused_as_soon_as_known(
    peer: Peer, client_context: ssl.SSLContext, answer: bytes
) -> None:
    # The peer then hangs: a refusal that waited for the rest would hit the 3 s deadline.
    peer.script = always(answer, "hang")
    pool = pool_for(peer, client_context)
    with pytest.raises(BodyTooLarge) as info:
        await get(pool, max_body=100, timeout=3)
    assert info.value.status == 200
    assert pool.open_connections == 0
    await pool.close()


async def test_sts_client_maps_a_malformed_answer_to_a_failed_request(
    peer: Peer, ca_bundle: str
) -> None:
    peer.script = always(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
    request = validate_token(build_token(HOST), partition="aws", now=NOW)
    events: list[tuple[str, int | None, str]] = []
    async with STSClient(
        resolve={HOST: ("127.0.0.1", peer.port)},
        ca_bundle=ca_bundle,
        observer=lambda *e: events.append(e),
    ) as sts:
        with pytest.raises(STSUnavailableError, match=r"failed \(MalformedResponse\)") as info:
            await sts.get_caller_identity(request, CLUSTER_ID)
    assert request.url not in str(info.value)
    assert events == [("connection_failure", None, "us-east-1")]


async def test_sts_client_keeps_its_connection_across_calls(peer: Peer, ca_bundle: str) -> None:
    body = JSON_OK_BYTES
    peer.script = always(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    request = validate_token(build_token(HOST), partition="aws", now=NOW)
    async with STSClient(resolve={HOST: ("127.0.0.1", peer.port)}, ca_bundle=ca_bundle) as sts:
        for _ in range(5):
            await sts.get_caller_identity(request, CLUSTER_ID)
    async with asyncio.timeout(5):  # STSClient.close closed it
        while not peer.closed_by_client:
            await asyncio.sleep(0.01)
    assert (len(peer.heads), peer.connections) == (5, 1)


async def test_sts_client_too_large_keeps_its_message(peer: Peer, ca_bundle: str) -> None:
    peer.script = always(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", "hang")
    request = validate_token(build_token(HOST), partition="aws", now=NOW)
    async with STSClient(
        resolve={HOST: ("127.0.0.1", peer.port)}, ca_bundle=ca_bundle, max_body=4096
    ) as sts:
        with pytest.raises(STSError, match="larger than 4096 bytes"):
            await sts.get_caller_identity(request, CLUSTER_ID)
