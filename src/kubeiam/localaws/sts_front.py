"""The STS front: answers presigned GetCallerIdentity GETs over TLS the way STS does.

moto alone cannot (landscape.md): it routes a presigned GET to S3, never checks a query
signature and answers STS in XML only. The front checks everything STS checks for this call
(:mod:`kubeiam.localaws.sigv4`) against the secrets moto holds (:mod:`kubeiam.localaws.principals`)
and answers JSON when asked (``Accept: application/json``), XML otherwise, with STS's error
documents.

It runs an aiohttp server in its own thread and event loop, so tests that block in
``subprocess.run`` or run their own loop can use it. Faults (:class:`StsFault`) make it misbehave
on purpose. A plain-HTTP *redirect canary* listens next to it: the ``redirect`` fault points
clients there, and :attr:`StsFront.redirect_hits` counts anyone who followed. Access logging is
off: the request line of a presigned URL carries a signature.

Inside a network namespace whose hosts file maps the STS host names to 127.0.0.1, the front can
listen on port 443 (``port``) and stand in for STS for clients that cannot be pointed elsewhere
(the reference aws-iam-authenticator). Such clients also send their other STS calls (AssumeRole)
to the same host: with ``relay_to`` set to moto's URL, every non-GET request is relayed to moto
unchanged, Host header included, so moto checks the same signature the client made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from kubeiam.localaws import sigv4
from kubeiam.localaws.principals import SigningPrincipal, find_principal
from kubeiam.localaws.sigv4 import ErrorCode, Refusal
from kubeiam.partitions import PARTITIONS, sts_host_region

if TYPE_CHECKING:
    from aiohttp import ClientSession, web

STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_VERSION = "2011-06-15"
ACTION = "GetCallerIdentity"
#: A ``hang`` fault answers 503 after this long at most, so no request outlives a test session.
DEFAULT_HANG_LIMIT = 60.0
#: How long a ``slow`` fault holds each answer: long enough to catch reviews in flight.
DEFAULT_SLOW_SECONDS = 1.0
#: Bound for start-up and shutdown of the server thread (and for one relayed call).
_THREAD_TIMEOUT = 30.0
#: Request headers a relay does not pass on (per hop, or recomputed for the new body).
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})
#: Answer headers a relay passes back.
_RELAYED_ANSWER = frozenset({"content-type", "x-amzn-requestid"})

PrincipalLookup = Callable[[str, str | None, str, datetime], SigningPrincipal | Refusal]


class StsFault(StrEnum):
    """Ways the front can be told to misbehave (``None`` = behave)."""

    THROTTLE = "throttle"  # 400 with a Throttling error document, like STS
    REDIRECT = "redirect"  # 302 to http:// on loopback (the redirect canary)
    HANG = "hang"  # accept and never answer (bounded by the hang limit)
    SLOW = "slow"  # answer as usual, but only after ``slow_seconds`` (reviews stay in flight)
    ERROR500 = "error500"  # 500 InternalFailure


def _lookup_in_moto(
    access_key_id: str, session_token: str | None, region: str, now: datetime
) -> SigningPrincipal | Refusal:
    return find_principal(access_key_id, session_token, region=region, now=now)


def region_of_host(host: str) -> str | None:
    """The signing region of an STS host name of any partition (``None`` if not an STS host)."""
    for partition in PARTITIONS:
        region = sts_host_region(host, partition)
        if region is not None:
            return region
    return None


class StsFront:
    """The HTTPS STS front and its redirect canary, on 127.0.0.1.

    The front listens on ``port`` (0: chosen by the kernel), the canary on a kernel-chosen port.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        clock: Callable[[], datetime] | None = None,
        hang_limit: float = DEFAULT_HANG_LIMIT,
        lookup: PrincipalLookup = _lookup_in_moto,
        port: int = 0,
        relay_to: str | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        self._requested_port = port
        #: With a URL (moto's), other STS calls (AssumeRole POSTs...) are relayed there unchanged.
        self.relay_to = relay_to
        self._relay_session: ClientSession | None = None
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.hang_limit = hang_limit
        #: The delay of the ``slow`` fault, in seconds (set it before switching the fault on).
        self.slow_seconds = DEFAULT_SLOW_SECONDS
        self._lookup = lookup
        #: Every request the HTTPS front received, faulted or not.
        self.sts_requests = 0
        #: Requests that reached the plain-HTTP redirect canary (a client followed a redirect).
        self.redirect_hits = 0
        self.fault: StsFault | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Event | None = None
        self._runners: list[web.AppRunner] = []
        self._sockets: list[socket.socket] = []
        self.port = 0
        self.redirect_port = 0

    # -- control (any thread) ---------------------------------------------------------------

    def set_fault(self, kind: StsFault | str | None) -> None:
        """Switch a fault on (``"throttle"``, ``"redirect"``, ``"hang"``, ``"error500"``,
        ``"slow"``) or off."""
        self.fault = None if kind is None else StsFault(kind)

    def reset_counters(self) -> None:
        """Set :attr:`sts_requests` and :attr:`redirect_hits` back to 0."""
        self.sts_requests = 0
        self.redirect_hits = 0

    def start(self) -> None:
        """Bind both ports, start serving in a thread, return once ready."""
        self._sockets = [_loopback_socket(self._requested_port), _loopback_socket()]
        self.port = self._sockets[0].getsockname()[1]
        self.redirect_port = self._sockets[1].getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(loop, ready, failure), name="kubeiam-localaws-sts", daemon=True
        )
        self._thread.start()
        if not ready.wait(_THREAD_TIMEOUT) or failure:
            self.stop()
            if failure:
                raise failure[0]
            raise TimeoutError("the STS front did not start")

    def stop(self) -> None:
        """Release hanging requests, stop both servers, close the loop and sockets. Idempotent."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None and thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                future.result(_THREAD_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_THREAD_TIMEOUT)
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    # -- the server thread --------------------------------------------------------------------

    def _run(
        self, loop: asyncio.AbstractEventLoop, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self) -> None:
        from aiohttp import web

        self._closing = asyncio.Event()
        front = web.Application()
        front.router.add_route("*", "/{tail:.*}", self._handle)
        canary = web.Application()
        canary.router.add_route("*", "/{tail:.*}", self._handle_canary)
        for app, sock, context in (
            (front, self._sockets[0], self._ssl_context),
            (canary, self._sockets[1], None),
        ):
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
            await runner.setup()
            self._runners.append(runner)
            await web.SockSite(runner, sock, ssl_context=context).start()

    async def _shutdown(self) -> None:
        if self._closing is not None:
            self._closing.set()
        for runner in self._runners:
            await runner.cleanup()
        self._runners = []
        if self._relay_session is not None:
            await self._relay_session.close()
            self._relay_session = None

    async def _handle_canary(self, request: web.Request) -> web.Response:
        from aiohttp import web

        self.redirect_hits += 1
        return web.Response(status=200, text="followed a redirect from the STS front\n")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        self.sts_requests += 1
        as_json = "application/json" in request.headers.get("Accept", "")
        fault = self.fault
        if fault is StsFault.THROTTLE:
            return _error(Refusal(400, ErrorCode.THROTTLING, "Rate exceeded"), as_json)
        if fault is StsFault.ERROR500:
            return _error(
                Refusal(500, ErrorCode.INTERNAL_FAILURE, "An internal error occurred."), as_json
            )
        if fault is StsFault.REDIRECT:
            location = f"http://127.0.0.1:{self.redirect_port}{request.raw_path}"
            return web.Response(status=302, headers={"Location": location})
        if fault is StsFault.HANG:
            assert self._closing is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.hang_limit)
            return _error(
                Refusal(503, ErrorCode.SERVICE_UNAVAILABLE, "the hang fault ran out"), as_json
            )
        if fault is StsFault.SLOW:
            assert self._closing is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.slow_seconds)
        body = await request.read()
        if self.relay_to is not None and request.method != "GET":
            return await self._relay(request, body)
        result = self._answer(request, body)
        if isinstance(result, Refusal):
            return _error(result, as_json)
        return _success(result, as_json)

    async def _relay(self, request: web.Request, body: bytes) -> web.Response:
        """Pass a non-GET STS call to moto as sent (Host included, so its signature holds)."""
        from aiohttp import ClientSession, ClientTimeout, web

        assert self.relay_to is not None
        if self._relay_session is None:
            self._relay_session = ClientSession(timeout=ClientTimeout(total=_THREAD_TIMEOUT))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._relay_session.request(
            request.method, self.relay_to + request.raw_path, headers=headers, data=body
        ) as answer:
            content = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() in _RELAYED_ANSWER}
            return web.Response(status=answer.status, body=content, headers=kept)

    def _answer(self, request: web.Request, body: bytes) -> SigningPrincipal | Refusal:
        if request.method != "GET":
            return Refusal(
                400,
                ErrorCode.INVALID_ACTION,
                "this local STS front answers presigned GET GetCallerIdentity only; "
                "send other STS calls to moto",
            )
        host = request.headers.get("Host", "")
        # A Host with the default port names the same endpoint; the signature still covers the
        # header exactly as sent, as at STS.
        region = region_of_host(host.removesuffix(":443"))
        if region is None:
            return Refusal(
                400,
                ErrorCode.INVALID_ACTION,
                f"Host {host!r} is not an STS host name; send the one the request was signed for",
            )
        path, _, raw_query = request.raw_path.partition("?")
        params = sigv4.parse_query(raw_query)
        if isinstance(params, Refusal):
            return params
        auth = sigv4.parse_query_auth(params)
        if isinstance(auth, Refusal):
            return auth
        values = dict(params)
        if values.get("Action") != ACTION or values.get("Version") != STS_VERSION:
            return Refusal(
                400,
                ErrorCode.INVALID_ACTION,
                f"Could not find operation {values.get('Action')!r} for version "
                f"{values.get('Version')!r}; this front answers {ACTION} {STS_VERSION} only",
            )
        now = self.clock()
        refusal = sigv4.check_scope(auth, region=region) or sigv4.check_window(auth, now=now)
        if refusal is not None:
            return refusal
        principal = self._lookup(auth.access_key_id, auth.session_token, region, now)
        if isinstance(principal, Refusal):
            return principal
        headers = {k.lower(): tuple(request.headers.getall(k)) for k in request.headers}
        refusal = sigv4.check_signature(
            secret_access_key=principal.secret_access_key,
            auth=auth,
            method=request.method,
            path=path,
            headers=headers,
            body=body,
        )
        return refusal if refusal is not None else principal


def _loopback_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _request_id() -> str:
    return str(uuid.uuid4())


def _success(principal: SigningPrincipal, as_json: bool) -> web.Response:
    from aiohttp import web

    request_id = _request_id()
    if as_json:
        document = {
            "GetCallerIdentityResponse": {
                "GetCallerIdentityResult": {
                    "Account": principal.account,
                    "Arn": principal.arn,
                    "UserId": principal.user_id,
                },
                "ResponseMetadata": {"RequestId": request_id},
            }
        }
        return web.Response(text=json.dumps(document), content_type="application/json")
    xml = (
        f'<GetCallerIdentityResponse xmlns="{STS_XMLNS}">\n'
        "  <GetCallerIdentityResult>\n"
        f"    <Arn>{escape(principal.arn)}</Arn>\n"
        f"    <UserId>{escape(principal.user_id)}</UserId>\n"
        f"    <Account>{escape(principal.account)}</Account>\n"
        "  </GetCallerIdentityResult>\n"
        "  <ResponseMetadata>\n"
        f"    <RequestId>{request_id}</RequestId>\n"
        "  </ResponseMetadata>\n"
        "</GetCallerIdentityResponse>\n"
    )
    return web.Response(text=xml, content_type="text/xml")


def _error(refusal: Refusal, as_json: bool) -> web.Response:
    from aiohttp import web

    kind = "Receiver" if refusal.status >= 500 else "Sender"
    request_id = _request_id()
    if as_json:
        document = {
            "Error": {"Code": str(refusal.code), "Message": refusal.message, "Type": kind},
            "RequestId": request_id,
        }
        return web.Response(
            status=refusal.status, text=json.dumps(document), content_type="application/json"
        )
    xml = (
        f'<ErrorResponse xmlns="{STS_XMLNS}">\n'
        "  <Error>\n"
        f"    <Type>{kind}</Type>\n"
        f"    <Code>{escape(str(refusal.code))}</Code>\n"
        f"    <Message>{escape(refusal.message)}</Message>\n"
        "  </Error>\n"
        f"  <RequestId>{request_id}</RequestId>\n"
        "</ErrorResponse>\n"
    )
    return web.Response(status=refusal.status, text=xml, content_type="text/xml")
