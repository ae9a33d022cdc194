"""A small, strict HTTP/1.1-over-TLS client for the one STS call (I/O edge).

Why it exists: a review of a token the server has not seen spent about a fifth of its CPU in
aiohttp's *client* (``ClientSession._request``, ``ClientRequest.send``, the response handler,
timers, the connector). Measured on a 2-core machine, one keep-alive TLS GET cost 106-134 us of
client CPU through ``aiohttp.ClientSession`` and 32-36 us through a bare asyncio protocol on the
same connection. The STS call is narrow (one GET, https only, an answer under 64 KiB, no
redirects, cookies, proxies or compression), so a client that does only that is both cheaper and
a smaller attack surface.

What it does: :class:`ConnectionPool` keeps TLS connections alive per ``(host, port)`` (bounded
in number, idle ones expire), connects through the STS client's name resolver (aiohttp's
``AbstractResolver`` interface, so ``--sts-resolve`` routing keeps working) with SNI and the
certificate check on the host *name*, writes ``GET <target> HTTP/1.1`` with exactly the headers
given (plus ``Host``) in one write, and parses the answer with bytes operations.

What it refuses (:class:`MalformedResponse`, and the connection is closed): a status line that is
not ``HTTP/1.x NNN``, 1xx answers, header blocks over :data:`MAX_HEADER_BYTES` or
:data:`MAX_HEADER_LINES`, folded or nameless header lines, both ``Content-Length`` and
``Transfer-Encoding``, a transfer coding other than ``chunked``, a ``Content-Length`` that is not
digits or disagrees with another, malformed chunks (sizes, CRLFs, oversized trailers). Bodies
over the caller's cap raise :class:`BodyTooLarge`, a declared length before any body byte is
read, a streamed one as soon as it crosses the cap. A 3xx answer's body is never read. Request
targets and header values with CR, LF or other control characters raise :class:`InvalidRequest`
before anything is sent. Nothing here logs, and no error text carries the request target.

The caller owns the deadline: wrap :meth:`ConnectionPool.get` in ``asyncio.timeout``; a
connection whose request did not finish (timeout, cancellation, error) is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

#: Seconds an idle keep-alive connection is kept: aiohttp's default (``keepalive_timeout``), so
#: the switch away from it changes nothing for STS, which keeps connections longer than that.
IDLE_TIMEOUT = 15.0
#: Open connections at most (idle, busy and connecting): aiohttp's ``limit=100`` as before;
#: callers beyond it wait for a slot (inside their deadline).
DEFAULT_LIMIT = 100
#: The status line and headers of an answer, bytes: STS sends well under 1 KiB of headers.
MAX_HEADER_BYTES = 64 * 1024
#: Header lines of an answer (and trailer lines of a chunked one) at most.
MAX_HEADER_LINES = 100
#: A chunk-size line (hex size and extensions) at most, bytes.
MAX_CHUNK_LINE = 1024

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9]{2})(?: [^\r\n]*)?")
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DIGITS = re.compile(rb"[0-9]+")
#: A Content-Length longer than this many digits (after leading zeros) is over any cap.
_MAX_LENGTH_DIGITS = 15
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:[ \t]*;[^\r\n]*)?")
#: A request target: printable ASCII without spaces (the checked URL is already percent-encoded).
_TARGET = re.compile(r"/[\x21-\x7e]*")
_REQUEST_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: A header value: no CR, LF, NUL or other control character but tab.
_REQUEST_HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_TCP = getattr(socket, "IPPROTO_TCP", 6)


class HTTPClientError(Exception):
    """Base of the errors of this module."""


class InvalidRequest(HTTPClientError, ValueError):
    """The request target or a header would not be sent as given (CR, LF, controls)."""


class ConnectError(HTTPClientError):
    """No connection could be made: the name did not resolve or no address accepted it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TLSError(HTTPClientError):
    """The TLS handshake failed: certificate not trusted, wrong host, or protocol error."""


class MalformedResponse(HTTPClientError):
    """The answer is not the strict HTTP/1.1 this client reads."""


class ConnectionClosed(HTTPClientError):
    """The peer closed the connection before the answer was complete; ``before_answer``: before
    any byte of it (a request on a reused connection is then sent once more)."""

    def __init__(self, message: str, *, before_answer: bool = False) -> None:
        super().__init__(message)
        self.before_answer = before_answer


class BodyTooLarge(HTTPClientError):
    """The answer's body is larger than the caller's cap; ``status``: the answer's status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status} answer over the size cap")
        self.status = status


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer: its status and body (empty for a 3xx, which is never read)."""

    status: int
    body: bytes


# --- one connection and its answer parser ------------------------------------------------------

_HEAD, _LENGTH, _CHUNK_LINE, _CHUNK_DATA, _TRAILERS, _UNTIL_EOF, _IDLE = range(7)


class _Connection(asyncio.Protocol):
    """One TLS connection; parses one answer at a time as bytes arrive (no per-byte loops)."""

    def __init__(self, on_lost: Callable[[_Connection], None]) -> None:
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buf = bytearray()
        self._state = _IDLE
        self._waiter: asyncio.Future[Response] | None = None
        self._max_body = 0
        self._status = 0
        self._keep_alive = False
        self._got_bytes = False
        #: Where the search for the end of the header block resumes (a trickle is not rescanned).
        self._scanned = 0
        self._body_start = 0
        self._remaining = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._trailer_lines = 0

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, but has its methods.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: this connection is out of step
            return
        self._got_bytes = True
        self._buf += data
        try:
            self._advance()
        except HTTPClientError as exc:
            self._fail(exc)
        except Exception:  # a parser slip must fail this call, never leave it hanging
            self._fail(MalformedResponse("unparseable answer"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: a half-closed connection is never reused

    def connection_lost(self, exc: Exception | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._state == _UNTIL_EOF:
                self._keep_alive = False
                self._complete(bytes(self._buf[self._body_start :]))
            elif self._got_bytes:
                waiter.set_exception(ConnectionClosed("the answer was cut short"))
            else:
                waiter.set_exception(
                    ConnectionClosed("closed before answering", before_answer=True)
                )
        self._mark_closed()

    # --- the pool's side --------------------------------------------------------------------

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._mark_closed()

    def _mark_closed(self) -> None:
        if not self.closed:
            self.closed = True
            self._on_lost(self)

    async def exchange(self, request: bytes, max_body: int) -> tuple[Response, bool]:
        """Write ``request`` and read one answer; ``(answer, reusable)``."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionClosed("closed before the request", before_answer=True)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiter = waiter
        self._state = _HEAD
        self._max_body = max_body
        self._got_bytes = False
        self._scanned = 0
        del self._buf[:]
        self.transport.write(request)
        try:
            response = await waiter
        finally:
            self._waiter = None
        return response, self._keep_alive

    def _fail(self, exc: HTTPClientError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def _complete(self, body: bytes) -> None:
        self._state = _IDLE
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._status, body))

    # --- the parser -------------------------------------------------------------------------

    def _advance(self) -> None:
        if self._state == _HEAD:
            self._read_head()
        if self._state == _LENGTH:
            end = self._body_start + self._remaining
            if len(self._buf) >= end:
                if len(self._buf) > end:
                    self._keep_alive = False  # bytes beyond the answer: out of step
                self._complete(bytes(self._buf[self._body_start : end]))
        elif self._state == _UNTIL_EOF:
            if len(self._buf) - self._body_start > self._max_body:
                raise BodyTooLarge(self._status)
        elif self._state in (_CHUNK_LINE, _CHUNK_DATA, _TRAILERS):
            self._read_chunks()

    def _read_head(self) -> None:
        buf = self._buf
        end = buf.find(b"\r\n\r\n", self._scanned)
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise MalformedResponse("header block too large")
            self._scanned = max(0, len(buf) - 3)
            return
        if end + 4 > MAX_HEADER_BYTES:
            raise MalformedResponse("header block too large")
        head = bytes(buf[:end])
        lines = head.split(b"\r\n")
        if len(lines) > MAX_HEADER_LINES + 1:
            raise MalformedResponse("too many header lines")
        if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
            # A bare CR or LF: another parser on the path could split the lines differently.
            raise MalformedResponse("a bare CR or LF in the header block")
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise MalformedResponse("not an HTTP/1.x status line")
        status = int(status_line.group(2))
        if status < 200:
            raise MalformedResponse("informational (1xx) answers are not expected")
        lengths: list[bytes] = []
        codings: list[bytes] = []
        close = status_line.group(1) == b"0"
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or _HEADER_NAME.fullmatch(name) is None:
                raise MalformedResponse("malformed header line")
            name = name.lower()
            if name == b"content-length":
                lengths.extend(v.strip() for v in value.split(b","))
            elif name == b"transfer-encoding":
                codings.extend(v.strip().lower() for v in value.split(b","))
            elif name == b"connection":
                tokens = {v.strip().lower() for v in value.split(b",")}
                close = close or b"close" in tokens
        self._status = status
        self._keep_alive = not close
        self._body_start = end + 4
        if 300 <= status < 400:
            self._keep_alive = False  # the body is never read: the connection goes
            self._complete(b"")
            return
        if lengths and codings:
            raise MalformedResponse("both Content-Length and Transfer-Encoding")
        if codings:
            if codings != [b"chunked"]:
                raise MalformedResponse("a transfer coding other than chunked")
            self._size = 0
            self._chunks = []
            self._trailer_lines = 0
            self._state = _CHUNK_LINE
        elif lengths:
            # Digits only (no sign, no blanks inside); repeated copies must agree.
            if any(_DIGITS.fullmatch(v) is None for v in lengths):
                raise MalformedResponse("bad Content-Length")
            values = {v.lstrip(b"0") or b"0" for v in lengths}
            if len(values) != 1:
                raise MalformedResponse("two different Content-Length values")
            digits = values.pop()
            # Compared as text first: int() of a 64 KiB digit string is refused by Python.
            if len(digits) > _MAX_LENGTH_DIGITS or int(digits) > self._max_body:
                raise BodyTooLarge(self._status)
            length = int(digits)
            self._remaining = length
            self._state = _LENGTH
        elif status == 204:
            self._complete(b"")
        else:
            self._keep_alive = False  # delimited by the peer closing the connection
            self._state = _UNTIL_EOF

    def _read_chunks(self) -> None:
        buf = self._buf
        pos = self._body_start
        while True:
            if self._state == _CHUNK_LINE:
                eol = buf.find(b"\r\n", pos, pos + MAX_CHUNK_LINE + 2)
                if eol < 0:
                    if len(buf) - pos > MAX_CHUNK_LINE:
                        raise MalformedResponse("chunk-size line too long")
                    break
                match = _CHUNK_SIZE.fullmatch(buf, pos, eol)
                if match is None:
                    raise MalformedResponse("bad chunk size")
                size = int(match.group(1), 16)
                pos = eol + 2
                if size == 0:
                    self._state = _TRAILERS
                    continue
                self._size += size
                if self._size > self._max_body:
                    raise BodyTooLarge(self._status)
                self._remaining = size
                self._state = _CHUNK_DATA
            elif self._state == _CHUNK_DATA:
                end = pos + self._remaining
                if len(buf) < end + 2:
                    break
                if buf[end : end + 2] != b"\r\n":
                    raise MalformedResponse("chunk not followed by CRLF")
                self._chunks.append(bytes(buf[pos:end]))
                pos = end + 2
                self._state = _CHUNK_LINE
            else:  # trailers: header lines up to an empty one, ignored but bounded
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > MAX_HEADER_BYTES:
                        raise MalformedResponse("trailers too large")
                    break
                if eol == pos:
                    if len(buf) > eol + 2:
                        self._keep_alive = False
                    self._complete(b"".join(self._chunks))
                    return
                self._trailer_lines += 1
                if self._trailer_lines > MAX_HEADER_LINES or eol - pos > MAX_HEADER_BYTES:
                    raise MalformedResponse("trailers too large")
                pos = eol + 2
        # Drop what was parsed so the buffer holds only the unread rest.
        del buf[:pos]
        self._body_start = 0


# --- the pool ---------------------------------------------------------------------------------

_Key = tuple[str, int]


class ConnectionPool:
    """Keep-alive HTTPS connections per ``(host, port)``, at most ``limit`` open at once.

    Create and close inside one event loop. :meth:`get` sends one GET and returns the answer;
    the caller bounds it with ``asyncio.timeout`` (waiting for a slot, the lookup, connect, TLS,
    write and read all count).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        resolver: AbstractResolver,
        limit: int = DEFAULT_LIMIT,
        idle_timeout: float = IDLE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or not idle_timeout > 0:
            raise ValueError("limit >= 1 and idle_timeout > 0")
        self._ssl = ssl_context
        self._resolver = resolver
        self._limit = limit
        self._idle_timeout = idle_timeout
        self._clock = clock
        self._idle: dict[_Key, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        #: Connections made so far (for tests and benchmarks).
        self.connections_made = 0

    @property
    def open_connections(self) -> int:
        """Connections open or being opened now."""
        return len(self._open) + self._connecting

    async def get(
        self,
        host: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        *,
        port: int = 443,
        max_body: int,
    ) -> Response:
        """``GET target`` on ``host``: the request line, ``Host``, then ``headers`` in order."""
        request = _request_bytes(host, target, headers)
        key = (host, port)
        conn = await self._acquire(key, fresh=False)
        if conn is not None:
            try:
                return await self._exchange(key, conn, request, max_body)
            except ConnectionClosed as exc:
                if not exc.before_answer:
                    raise
            # The peer closed an idle connection as the request went out: GET is idempotent,
            # so once more on a new connection (never again, never after an answer began).
            await self._acquire(key, fresh=True)  # a slot for a new connection
        conn = await self._connect(key)
        return await self._exchange(key, conn, request, max_body)

    async def _exchange(
        self, key: _Key, conn: _Connection, request: bytes, max_body: int
    ) -> Response:
        done = False
        try:
            response, reusable = await conn.exchange(request, max_body)
            done = True
        finally:
            if not done:
                conn.close()
        if reusable and not conn.closed:
            self._release(key, conn)
        else:
            conn.close()
        return response

    async def close(self) -> None:
        """Close every connection; waiters fail with :class:`ConnectionClosed`."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._idle.clear()
        for conn in list(self._open):
            conn.close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionClosed("the pool was closed"))

    # --- slots ------------------------------------------------------------------------------

    async def _acquire(self, key: _Key, *, fresh: bool) -> _Connection | None:
        """An idle connection to ``key``, or ``None`` with a slot reserved for a new one."""
        while True:
            if not fresh:
                conn = self._pop_idle(key)
                if conn is not None:
                    return conn
            if self.open_connections < self._limit or self._evict_one_idle():
                self._connecting += 1
                return None
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the wake-up this caller no longer needs on
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _pop_idle(self, key: _Key) -> _Connection | None:
        stack = self._idle.get(key)
        if not stack:
            return None
        conn = stack.pop()
        if self._clock() - conn.idle_since > self._idle_timeout:
            # The newest is expired, so every older one is too.
            for old in [*stack, conn]:
                old.close()
            stack.clear()
            return None
        return conn

    def _evict_one_idle(self) -> bool:
        """Close the longest-idle connection (any key) to make room; False if none is idle."""
        oldest: _Connection | None = None
        for stack in self._idle.values():
            if stack and (oldest is None or stack[0].idle_since < oldest.idle_since):
                oldest = stack[0]
        if oldest is None:
            return False
        oldest.close()  # _forget takes it off the idle stack
        return True

    def _release(self, key: _Key, conn: _Connection) -> None:
        conn.idle_since = self._clock()
        self._idle.setdefault(key, []).append(conn)
        if self._sweep is None:
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_later(self._idle_timeout, self._sweep_idle)
        if self._waiters:
            self._wake()

    def _sweep_idle(self) -> None:
        """Close expired idle connections; runs every ``idle_timeout`` while any is idle."""
        self._sweep = None
        now = self._clock()
        for stack in self._idle.values():
            for conn in [c for c in stack if now - c.idle_since >= self._idle_timeout]:
                conn.close()
        if any(self._idle.values()):
            self._sweep = asyncio.get_running_loop().call_later(
                self._idle_timeout, self._sweep_idle
            )

    def _forget(self, conn: _Connection) -> None:
        """A connection closed (either side): free its slot and take it off the idle stacks."""
        self._open.discard(conn)
        for stack in self._idle.values():
            if conn in stack:
                stack.remove(conn)
                break
        if self._waiters:
            self._wake()

    # --- connecting -------------------------------------------------------------------------

    async def _connect(self, key: _Key) -> _Connection:
        """A new connection on the slot :meth:`_acquire` reserved (released whatever happens)."""
        host, port = key
        try:
            try:
                addresses = await self._resolver.resolve(host, port, family=socket.AF_UNSPEC)
            except OSError as exc:
                raise ConnectError(exc.strerror or type(exc).__name__) from None
            loop = asyncio.get_running_loop()
            last: OSError | None = None
            for address in addresses:
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self._forget),
                        address["host"],
                        address["port"],
                        family=address["family"],
                        ssl=self._ssl,
                        server_hostname=host,
                    )
                except ssl.SSLError:
                    raise TLSError("TLS handshake failed") from None
                except OSError as exc:
                    last = exc
                    continue
                _no_delay(conn)
                self._open.add(conn)
                self.connections_made += 1
                return conn
            reason = "no address" if last is None else last.strerror or type(last).__name__
            raise ConnectError(reason)
        finally:
            self._connecting -= 1


def _no_delay(conn: _Connection) -> None:
    """TCP_NODELAY: the request is one small write that must not wait for an ACK."""
    sock = conn.transport.get_extra_info("socket") if conn.transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):  # not a TCP socket (never for STS): nothing to tune
            sock.setsockopt(_TCP, socket.TCP_NODELAY, 1)


def _request_bytes(host: str, target: str, headers: Sequence[tuple[str, str]]) -> bytes:
    """The request head, checked: nothing that could split it or be re-read as another header."""
    if _TARGET.fullmatch(target) is None:
        raise InvalidRequest("the request target is not printable ASCII starting with '/'")
    if _REQUEST_HEADER_VALUE.fullmatch(host) is None or not host:
        raise InvalidRequest("the host contains control characters")
    parts = [f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers:
        if _REQUEST_HEADER_NAME.fullmatch(name) is None:
            raise InvalidRequest("a header name is not an HTTP token")
        if _REQUEST_HEADER_VALUE.fullmatch(value) is None:
            raise InvalidRequest(f"the {name} header contains CR, LF or control characters")
        parts.append(f"{name}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
