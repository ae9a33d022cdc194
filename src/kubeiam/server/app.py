"""The webhook's HTTP routes (aiohttp): ``/authenticate``, ``/healthz``, ``/readyz``, ``/metrics``.

``POST /authenticate`` answers kube-apiserver's TokenReview (protocol.md section 3):

======================================  ======  ==============================
outcome                                 status  ``result`` metric label
======================================  ======  ==============================
authenticated and mapped                200     success
method other than POST                  405     malformed_request
body above the size limit               413     malformed_request
body is not a TokenReview, compressed,  400     malformed_request
not valid HTTP, or not sent in time
token refused before STS                403     invalid_token
STS refused it / unreachable            403     sts_error
STS throttled us                        429     sts_throttling
too many open connections               429     malformed_request
caller on the deny list                 403     uknown_user
verified but not mapped                 403     uknown_user
not mapped, a backend still loading     503     uknown_user
internal failure (EC2 down, a bug)      503     uknown_user / sts_error
======================================  ======  ==============================

Whatever fails, the answer is a TokenReview: a failure the handler did not foresee is caught by
:func:`_review_guard` (a middleware, the last line of defence) and answered 503 (kube-apiserver
retries it); errors aiohttp meets before the app sees a request are answered by
:class:`kubeiam.server.connections.GuardedRequestHandler` through :meth:`_Handlers.protocol_error`.
Every such answer logs one review line and counts in the latency histogram, like any review.

Every review logs one line (logger ``kubeiam.server.review``) with the outcome, the HTTP status,
the latency, whether the identity came from the cache, and (for verified callers) the ARN and the
Kubernetes user. Never the token, the presigned URL or its signature: only the pieces of an
:class:`~kubeiam.identity.Identity`, which holds no secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestPayloadError

from kubeiam.errors import KubeIAMError, ReviewRequestError
from kubeiam.identity import Identity
from kubeiam.server import tokenreview
from kubeiam.server.connections import GuardedRequestHandler
from kubeiam.server.identity_cache import CacheOutcome, IdentityCache
from kubeiam.server.metrics import CONTENT_TYPE, Result, ServerMetrics

review_log = logging.getLogger("kubeiam.server.review")
log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "authentication.k8s.io/v1"
#: What a denied caller is told: that it is refused on purpose, not which entry matched.
DENIED_REASON = "this AWS principal is refused by the webhook's deny list"
JSON_TYPE = "application/json"


class TokenVerifier(Protocol):
    """``kubeiam.token.verifier.Verifier``: token -> verified identity (or a TokenError)."""

    async def verify(self, token: str) -> Identity: ...


class MappedUser(Protocol):
    """``kubeiam.mapping.chain.KubeUser``."""

    @property
    def username(self) -> str: ...
    @property
    def groups(self) -> tuple[str, ...]: ...
    @property
    def backend(self) -> str: ...


class UserMapper(Protocol):
    """``kubeiam.mapping.chain.MappingChain``: identity -> Kubernetes user, or None."""

    @property
    def ready(self) -> bool: ...

    async def map(self, identity: Identity) -> MappedUser | None: ...


class DenyPolicy(Protocol):
    """``kubeiam.server.denylist.DenyListGuard``: a reason to refuse a verified caller, or None."""

    def refusal(self, identity: Identity) -> str | None: ...


class _NoDenyList:
    def refusal(self, identity: Identity) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class AppSettings:
    audiences: tuple[str, ...] = ()
    scrubbed_accounts: frozenset[str] = frozenset()
    max_body_bytes: int = 64 * 1024
    #: Seconds the request body may take to arrive once the header has (``bodyTimeout``).
    body_timeout: float = 10.0


@dataclass(slots=True)
class _Review:
    """What one review learned, for its log line and metric."""

    started: float
    #: When the body had been read: the rest is kubeiam's own work (and STS on a miss).
    body_read: float | None = None
    api_version: str = DEFAULT_API_VERSION
    identity: Identity | None = None
    cache: CacheOutcome | None = None
    username: str | None = None
    backend: str | None = None
    #: The deny-list entry that refused the caller (for the log line, not the answer).
    deny_rule: str | None = None


def _connection(request: web.BaseRequest) -> GuardedRequestHandler | None:
    """The connection's watchdog (None under a listener other than connections.listen)."""
    protocol = request.protocol
    return protocol if isinstance(protocol, GuardedRequestHandler) else None


def _where(exc: BaseException) -> str:
    """``TypeName at module.py:123`` for an exception: enough to find it, nothing it quotes."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return type(exc).__name__
    frame = tb.tb_frame.f_code
    return f"{type(exc).__name__} at {frame.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"


def bare_unavailable() -> web.Response:
    """A 503 TokenReview built without the log or the metrics, for when those failed."""
    doc = tokenreview.deny(DEFAULT_API_VERSION, "the webhook failed unexpectedly; retry")
    return _json_response(503, doc)


#: The answers' JSON encoder, made once (``json.dumps`` with options builds one per call).
_ANSWER_JSON = json.JSONEncoder(separators=(",", ":"))


def _json_response(status: int, doc: tokenreview.TokenReview) -> web.Response:
    return web.Response(
        status=status, body=_ANSWER_JSON.encode(doc).encode(), content_type=JSON_TYPE
    )


class _Handlers:
    def __init__(
        self,
        verifier: TokenVerifier,
        mapper: UserMapper,
        metrics: ServerMetrics,
        cache: IdentityCache,
        settings: AppSettings,
        perf: Callable[[], float],
        deny_list: DenyPolicy,
        metrics_page: Callable[[], bytes],
    ) -> None:
        self.deny_list = deny_list
        #: Renders /metrics: this process's registry, or (a worker) every worker's.
        self.metrics_page_body = metrics_page
        self.verifier = verifier
        self.mapper = mapper
        self.metrics = metrics
        self.cache = cache
        self.settings = settings
        self.perf = perf

    def _finish(
        self,
        review: _Review,
        status: int,
        result: Result,
        doc: tokenreview.TokenReview,
        error: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        elapsed = self.perf() - review.started
        self.metrics.observe_review(result, elapsed)
        fields: dict[str, object] = {
            "outcome": result.value,
            "status": status,
            "latency_ms": round(elapsed * 1000, 3),
        }
        if review.body_read is not None:
            fields["process_ms"] = round((self.perf() - review.body_read) * 1000, 3)
        if review.cache is not None:
            fields["cache"] = review.cache.value
        identity = review.identity
        if identity is not None and identity.account_id not in self.settings.scrubbed_accounts:
            fields["arn"] = identity.arn
            fields["account"] = identity.account_id
            fields["access_key_id"] = identity.access_key_id
        if review.username is not None:
            fields["username"] = review.username
        if review.backend is not None:
            fields["backend"] = review.backend
        if review.deny_rule is not None:
            scrubbed = (
                identity is not None and identity.account_id in self.settings.scrubbed_accounts
            )
            # "roleARNs arn:..." names the account: only the list for scrubbed accounts
            fields["deny_rule"] = (
                review.deny_rule.split(" ", 1)[0] if scrubbed else review.deny_rule
            )
        if error is not None:
            fields["error"] = error
        level = logging.INFO if status == 200 else logging.WARNING
        review_log.log(level, "token review", extra={"review": fields})
        response = _json_response(status, doc)
        if headers:
            headers = dict(headers)
            if headers.pop("Connection", None) == "close":
                # aiohttp decides keep-alive itself; a header alone would not close
                response.force_close()
            response.headers.update(headers)
        return response

    def _deny(
        self,
        review: _Review,
        status: int,
        result: Result,
        error: str,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        doc = tokenreview.deny(review.api_version, error)
        return self._finish(review, status, result, doc, error, headers)

    async def authenticate(self, request: web.Request) -> web.Response:
        review = _Review(started=self.perf())
        try:
            return await self._review(request, review)
        except Exception as exc:  # the one place an unforeseen failure becomes an answer
            return self.unexpected(review, exc)

    def _refuse(self, review: _Review, exc: KubeIAMError) -> web.Response:
        """The answer to an error kubeiam raised on purpose. An error class that carries a
        ``review_result`` (a bad body, a refused token, STS's refusal or throttling, a mapping
        that cannot apply) is answered with its own status and message, both safe to show.
        Anything else (EC2 unreachable, a bug) gets a generic reason, a log line and a 503,
        which kube-apiserver retries; its result is ``sts_error`` before the identity is known
        and ``uknown_user`` after."""
        if exc.review_result is not None:
            return self._deny(review, exc.http_status, Result(exc.review_result), exc.message)
        if review.identity is None:
            log.error("token verification failed", extra={"error": exc.message})
            return self._deny(review, 503, Result.STS_ERROR, "internal error verifying the token")
        log.error("identity mapping failed", extra={"error": exc.message})
        return self._deny(review, 503, Result.UNKNOWN_USER, "internal error mapping the user")

    def unexpected(self, review: _Review, exc: BaseException) -> web.Response:
        """503 for a failure no step foresaw (kube-apiserver retries it). The log names the
        exception's type and where it was raised, never its message (it may quote the body)."""
        log.error("unexpected error in a review", extra={"error": _where(exc)})
        result = Result.STS_ERROR if review.identity is None else Result.UNKNOWN_USER
        return self._deny(review, 503, result, "the webhook failed unexpectedly; retry")

    def protocol_error(self, status: int, reason: str) -> web.Response:
        """The answer to a request aiohttp could not hand to the app (see connections.py)."""
        return self._deny(_Review(started=self.perf()), status, Result.MALFORMED, reason)

    async def _review(self, request: web.Request, review: _Review) -> web.Response:
        connection = _connection(request)
        if connection is not None and connection.over_limit:
            return self._deny(
                review,
                429,
                Result.MALFORMED,
                "too many open connections to the webhook; retry",
                headers={"Retry-After": "1", "Connection": "close"},
            )
        if request.method != "POST":
            return self._deny(
                review,
                405,
                Result.MALFORMED,
                "use POST with a TokenReview body",
                headers={"Allow": "POST"},
            )
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # kube-apiserver never compresses a TokenReview; decompressing would only spend CPU
            # on whatever an attacker chose to send.
            return self._deny(
                review,
                400,
                Result.MALFORMED,
                "compressed request bodies are not accepted; send the TokenReview as plain JSON",
                headers={"Connection": "close"},
            )
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._deny(
                review, 413, Result.MALFORMED, f"request body larger than {limit} bytes"
            )
        try:
            if request.content.is_eof():
                # The whole body came with the header (kube-apiserver's small TokenReview
                # does): nothing will be waited for, so no timer is set.
                body = await request.read()
            else:
                async with asyncio.timeout(self.settings.body_timeout):
                    body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._deny(
                review, 413, Result.MALFORMED, f"request body larger than {limit} bytes"
            )
        except TimeoutError:
            if connection is not None:
                connection.body_timed_out()
            return self._deny(
                review,
                400,
                Result.MALFORMED,
                f"the request body did not arrive within {self.settings.body_timeout:g} s",
                headers={"Connection": "close"},
            )
        except RequestPayloadError:
            return self._deny(
                review,
                400,
                Result.MALFORMED,
                "the request body is not valid (framing or encoding)",
                headers={"Connection": "close"},
            )
        review.body_read = self.perf()
        try:
            parsed = tokenreview.parse_review(body)
        except ReviewRequestError as exc:
            return self._refuse(review, exc)
        review.api_version = parsed.api_version

        audiences = tokenreview.granted_audiences(parsed.audiences, self.settings.audiences)
        if audiences is not None and not audiences:
            return self._deny(
                review, 403, Result.INVALID, "the token is not valid for the requested audiences"
            )

        try:
            identity, review.cache = await self.cache.get_or_verify(
                parsed.token, self._verify_counted
            )
        except KubeIAMError as exc:
            return self._refuse(review, exc)
        review.identity = identity
        self._count_cache(review.cache)

        review.deny_rule = self.deny_list.refusal(identity)
        if review.deny_rule is not None:
            return self._deny(review, 403, Result.UNKNOWN_USER, DENIED_REASON)

        try:
            user = await self.mapper.map(identity)
        except KubeIAMError as exc:
            return self._refuse(review, exc)
        if user is None:
            if not self.mapper.ready:
                # Not a denial: a backend that has not loaded yet may hold the mapping.
                # kube-apiserver's webhook client retries 5xx (and 429) with backoff; a 403
                # is final for that request.
                return self._deny(
                    review,
                    503,
                    Result.UNKNOWN_USER,
                    "mapping backends are still loading; retry shortly",
                )
            return self._deny(
                review,
                403,
                Result.UNKNOWN_USER,
                f"{identity.canonical_arn} is not mapped to a Kubernetes user",
            )
        review.username = user.username
        review.backend = user.backend
        scrubbed = identity.account_id in self.settings.scrubbed_accounts
        info = tokenreview.user_info(identity, user.username, user.groups, scrubbed=scrubbed)
        return self._finish(
            review, 200, Result.SUCCESS, tokenreview.allow(review.api_version, info, audiences)
        )

    async def _verify_counted(self, token: str) -> Identity:
        """The verifier, counted as a cache miss (whatever STS then answers)."""
        self.metrics.cache_misses.inc()
        return await self.verifier.verify(token)

    def _count_cache(self, outcome: CacheOutcome | None) -> None:
        if outcome is CacheOutcome.HIT:
            self.metrics.cache_hits.inc()
        elif outcome is CacheOutcome.SHARED:
            self.metrics.cache_shared.inc()
        self.metrics.cache_size.set(len(self.cache))

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        if self.mapper.ready:
            return web.Response(text="ok")
        # One line per backend not ready, with why (e.g. "EKSConfigMap: list failed: the
        # Kubernetes API refused ... (403 Forbidden) ..."): backends that expose a reason.
        lines = [
            f"{getattr(b, 'name', '?')}: {getattr(b, 'not_ready_reason', None) or 'loading'}"
            for b in getattr(self.mapper, "backends", ())
            if not getattr(b, "ready", True)
        ]
        text = (
            "mapping backends are not ready:\n" + "\n".join(lines)
            if lines
            else "mapping backends are still loading"
        )
        return web.Response(status=503, text=text)

    async def metrics_page(self, request: web.Request) -> web.Response:
        self.metrics.cache_size.set(len(self.cache))
        response = web.Response(body=self.metrics_page_body())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response


#: Where protocol_error_answer finds the handlers (typed aiohttp application key).
HANDLERS_KEY = web.AppKey("handlers", _Handlers)


def _review_guard(handlers: _Handlers) -> Middleware:
    """The last line of defence: an exception that escaped a route becomes a 503 TokenReview
    (logged and counted), never aiohttp's 500 page. Also tells the connection's watchdog when
    a request is being handled (its header has been read)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = _connection(request)
        if connection is not None:
            connection.request_started()
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if request.path != "/authenticate" or exc.status < 400:
                raise
            return handlers._deny(
                _Review(started=handlers.perf()), exc.status, Result.MALFORMED, exc.reason
            )
        except Exception as exc:
            try:
                return handlers.unexpected(_Review(started=handlers.perf()), exc)
            except Exception:  # the log or the metrics themselves failed: still an answer
                return bare_unavailable()
        finally:
            if connection is not None:
                connection.request_finished()

    return guard


def create_app(
    verifier: TokenVerifier,
    chain: UserMapper,
    *,
    metrics: ServerMetrics,
    identity_cache: IdentityCache,
    audiences: Sequence[str] = (),
    scrubbed_accounts: Sequence[str] = (),
    max_body_bytes: int = 64 * 1024,
    body_timeout: float = 10.0,
    deny_list: DenyPolicy | None = None,
    perf_counter: Callable[[], float] = time.perf_counter,
    metrics_page: Callable[[], bytes] | None = None,
) -> web.Application:
    """The webhook application. Every collaborator is passed in; nothing global is touched."""
    settings = AppSettings(
        tuple(audiences), frozenset(scrubbed_accounts), max_body_bytes, body_timeout
    )
    handlers = _Handlers(
        verifier,
        chain,
        metrics,
        identity_cache,
        settings,
        perf_counter,
        deny_list if deny_list is not None else _NoDenyList(),
        metrics_page if metrics_page is not None else metrics.render,
    )
    # client_max_size bounds what request.read() accepts, also for chunked bodies.
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_review_guard(handlers)])
    app[HANDLERS_KEY] = handlers
    app.router.add_route(
        "*", "/authenticate", handlers.authenticate, expect_handler=_expect_continue
    )
    app.router.add_get("/healthz", handlers.healthz, allow_head=True)
    app.router.add_get("/readyz", handlers.readyz, allow_head=True)
    app.router.add_get("/metrics", handlers.metrics_page)
    return app


async def _expect_continue(request: web.Request) -> None:
    """``Expect: 100-continue`` as aiohttp does it; any other expectation is ignored (RFC 9110
    allows it) instead of aiohttp's 417 text page, so the request is still answered as a review."""
    if request.version == (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer proper has not started


def protocol_error_answer(app: web.Application) -> Callable[[int, str], web.Response]:
    """What :func:`kubeiam.server.connections.listen` answers for errors outside the app."""
    return app[HANDLERS_KEY].protocol_error
