"""The webhook's connections: how many may be open and how long each may take (I/O edge).

aiohttp's own protocol bounds nothing a slow client controls except an idle keep-alive (3630 s by
default): a client that sends half a request header and stalls holds its connection, its task and
its TLS buffers for an hour, and nothing caps how many such connections there are. This module
replaces aiohttp's listener (``web.TCPSite``) with one whose protocol is
:class:`GuardedRequestHandler`, aiohttp's own request handler plus a per-connection watchdog:

==========  ===================================================  ============================
phase       from                                                 closed after
==========  ===================================================  ============================
idle        connection accepted, or the previous answer handed    ``idle_timeout``
            to aiohttp
headers     the first byte of a request                          ``header_timeout``
handling    aiohttp parsed the header and the app began          no watchdog (the app bounds
                                                                 the body read with
                                                                 ``body_timeout``)
==========  ===================================================  ============================

The TLS handshake is bounded by ``header_timeout`` too (asyncio's ``ssl_handshake_timeout``).

Beyond ``max_connections`` open connections, a new connection is still accepted but marked
``over_limit``: the app answers its request at once with a 429 TokenReview (kube-apiserver retries
429 with backoff) and closes it. Beyond twice the limit a connection is closed on accept. Both are
counted in ``kubeiam_connections_refused_total``.

Errors aiohttp meets before the app sees a request (a malformed request line or header, an
unknown Content-Encoding) are answered through ``on_error`` as a TokenReview too
(:meth:`GuardedRequestHandler.handle_error`), never as aiohttp's text page.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)

#: aiohttp reads and discards at most this long an unread request body after an early answer
#: (a 413, an over-limit 429) before closing; its default (10 s) would let a slow sender hold the
#: connection that long.
LINGERING_SECONDS = 1.0
#: aiohttp's own keep-alive timer backs ours up; a little later, so ours (which counts) fires first.
AIOHTTP_KEEPALIVE_SLACK = 5.0
#: Connections beyond ``OVERFLOW_FACTOR * max_connections`` are closed on accept, unanswered: the
#: answered overflow (429) is itself bounded.
OVERFLOW_FACTOR = 2
#: Pending connections the kernel queues before accept().
LISTEN_BACKLOG = 512


class Phase(enum.Enum):
    """Where a connection is; the ``phase`` label of the time-out counter."""

    IDLE = "idle"
    HEADERS = "headers"
    BODY = "body"
    HANDLING = "handling"


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Per-connection limits (config keys ``headerTimeout``, ``bodyTimeout``, ``idleTimeout``,
    ``maxConnections``; defaults and their reasons in ``kubeiam.server.config``)."""

    header_timeout: float
    body_timeout: float
    idle_timeout: float
    max_connections: int


class ConnectionMetrics:
    """Counters of :class:`ConnectionTracker`, registered in the server's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "connections_open",
            "Open client connections",
            namespace="kubeiam",
            registry=registry,
        )
        self.refused = Counter(
            "connections_refused",
            "Connections beyond maxConnections (answered 429, or closed beyond twice the limit)",
            namespace="kubeiam",
            registry=registry,
        )
        self.timed_out = Counter(
            "connections_timed_out",
            "Connections closed because a client was too slow or idle too long",
            ["phase"],
            namespace="kubeiam",
            registry=registry,
        )
        for phase in (Phase.IDLE, Phase.HEADERS, Phase.BODY):
            self.timed_out.labels(phase.value)


class ConnectionTracker:
    """Counts open connections against the limit; shared by every connection of one listener."""

    def __init__(self, settings: ConnectionSettings, metrics: ConnectionMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.open = 0

    def opened(self) -> tuple[bool, bool]:
        """Count a new connection; returns (over the limit, over the hard ceiling)."""
        self.open += 1
        self.metrics.open.set(self.open)
        limit = self.settings.max_connections
        over = self.open > limit
        if over:
            self.metrics.refused.inc()
        return over, self.open > OVERFLOW_FACTOR * limit

    def closed(self) -> None:
        self.open -= 1
        self.metrics.open.set(self.open)

    def timed_out(self, phase: Phase) -> None:
        self.metrics.timed_out.labels(phase.value).inc()


#: ``on_error(status, reason) -> response``: the app's TokenReview answer for a request aiohttp
#: could not hand to it (logged and counted as a review by the app).
ErrorAnswer = Callable[[int, str], web.Response]

#: Safe reasons for errors aiohttp raises while parsing (its own messages may quote the request).
_PROTOCOL_REASONS = {
    400: "the request is not valid HTTP/1.1 (request line, headers, framing or Content-Encoding)",
    413: "the request is too large",
    431: "the request headers are too large",
}


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's request handler with the watchdog, the connection limit and review-shaped
    protocol errors (see the module doc)."""

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        tracker: ConnectionTracker,
        on_error: ErrorAnswer,
        **kwargs: Any,
    ) -> None:
        settings = tracker.settings
        super().__init__(
            manager,
            loop=loop,
            keepalive_timeout=settings.idle_timeout + AIOHTTP_KEEPALIVE_SLACK,
            lingering_time=LINGERING_SECONDS,
            # kube-apiserver never compresses a TokenReview and the app refuses Content-Encoding:
            # never spend CPU inflating what a client chose to send.
            auto_decompress=False,
            **kwargs,
        )
        self.tracker = tracker
        self.on_error = on_error
        #: Set on accept beyond ``max_connections``: the app answers 429 and closes.
        self.over_limit = False
        self.phase = Phase.IDLE
        self._deadline: asyncio.TimerHandle | None = None
        self._bytes_while_handling = False
        self._counted = False

    # -- the watchdog ---------------------------------------------------------------------------

    def _arm(self, phase: Phase, seconds: float) -> None:
        self._disarm()
        self.phase = phase
        self._deadline = self._loop.call_later(seconds, self._expire, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, phase: Phase) -> None:
        self._deadline = None
        if self.transport is None or self.phase is not phase:
            return
        self.tracker.timed_out(phase)
        log.debug("closing a slow connection", extra={"phase": phase.value})
        self.force_close()

    def request_started(self) -> None:
        """The app got a parsed request: the header phase is over."""
        self._bytes_while_handling = False
        self._disarm()
        self.phase = Phase.HANDLING

    def request_finished(self) -> None:
        """The app answered: wait for the next request (or its already-started header)."""
        if self.transport is None:
            return
        settings = self.tracker.settings
        if self._bytes_while_handling:
            self._arm(Phase.HEADERS, settings.header_timeout)
        else:
            self._arm(Phase.IDLE, settings.idle_timeout)
        self._bytes_while_handling = False

    def body_timed_out(self) -> None:
        """The app gave up waiting for the body (it answers, then the connection closes)."""
        self.tracker.timed_out(Phase.BODY)

    # -- asyncio protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        over, beyond_ceiling = self.tracker.opened()
        self._counted = True
        self.over_limit = over
        super().connection_made(transport)
        if beyond_ceiling:
            self.force_close()
            return
        settings = self.tracker.settings
        self._arm(Phase.IDLE, settings.header_timeout if over else settings.idle_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._counted:
            self._counted = False
            self.tracker.closed()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data:
            if self.phase is Phase.IDLE:
                self._arm(Phase.HEADERS, self.tracker.settings.header_timeout)
            elif self.phase is Phase.HANDLING:
                self._bytes_while_handling = True
        super().data_received(data)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        """Answer an error aiohttp met outside the app as a TokenReview (never a text page).

        Parse errors keep their 4xx status with a fixed reason (aiohttp's message may quote the
        request); anything else (a 500 from an exception that escaped every guard, a 504) is a
        503 that kube-apiserver retries.
        """
        self._disarm()
        if request.writer.output_size > 0:
            raise ConnectionError("the answer was already partly sent")
        if 400 <= status < 500:
            # 413 stays (kube-apiserver's contract knows it); any other client error is a 400
            reason = _PROTOCOL_REASONS.get(status, _PROTOCOL_REASONS[400])
            status = status if status == 413 else 400
        else:
            if exc is not None:
                log.error(
                    "unexpected error outside the review handler",
                    extra={"error": type(exc).__name__},
                )
            status, reason = 503, "the webhook failed unexpectedly; retry"
        try:
            response = self.on_error(status, reason)
        except Exception as failure:  # the answer function itself failed (its log, metrics)
            log.error("cannot answer a request", extra={"error": type(failure).__name__})
            doc = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "status": {"authenticated": False, "error": reason},
            }
            response = web.json_response(doc, status=status)
        response.force_close()
        return response


async def listen(
    runner: web.AppRunner,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    tracker: ConnectionTracker,
    on_error: ErrorAnswer,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Listen on ``host:port`` with :class:`GuardedRequestHandler` connections of ``runner``'s
    application (``runner.setup()`` must have run). ``runner.cleanup()`` drains the connections;
    close the returned server first to stop accepting."""
    loop = asyncio.get_running_loop()
    server = runner.server
    if server is None:
        raise RuntimeError("call runner.setup() before listen()")

    def protocol() -> GuardedRequestHandler:
        return GuardedRequestHandler(server, loop=loop, tracker=tracker, on_error=on_error)

    return await loop.create_server(
        protocol,
        host,
        port,
        ssl=ssl_context,
        backlog=LISTEN_BACKLOG,
        reuse_port=reuse_port or None,
        ssl_handshake_timeout=tracker.settings.header_timeout if ssl_context else None,
    )
