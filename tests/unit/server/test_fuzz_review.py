"""Whatever arrives on the wire, /authenticate answers a TokenReview, logs one line and counts it.

Hypothesis drives the real listener (``kubeiam.server.connections.listen``, plain HTTP on
127.0.0.1 port 0, in a thread of its own) through raw sockets with arbitrary methods, headers
(Content-Encoding, Content-Type, Transfer-Encoding, Content-Length among them), bodies, tokens and
faults of the verifier and the mapper. Tokens go through the real validation (every pre-STS
rule), including tokens shaped like presigned URLs with mutated hosts and query keys; STS and the
mapper are stand-ins, because the faults they raise here (``ValueError`` from deep in a library,
for example) cannot be produced on demand by the real ones.

``make test`` runs 200 examples; ``make fuzz`` (``HYPOTHESIS_PROFILE=fuzz``) runs
``KUBEIAM_FUZZ_EXAMPLES`` (default 20,000).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeiam.errors import KubeIAMError, MappingDeniedError, STSThrottledError, TokenFormatError
from kubeiam.identity import Identity
from kubeiam.server.app import create_app, protocol_error_answer
from kubeiam.server.connections import (
    ConnectionMetrics,
    ConnectionSettings,
    ConnectionTracker,
    listen,
)
from kubeiam.server.identity_cache import IdentityCache
from kubeiam.server.metrics import ServerMetrics
from kubeiam.token.verifier import Verifier as RealVerifier
from support.identities import role_session_identity

settings.register_profile(
    "default-review-fuzz",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("KUBEIAM_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = "fuzz" if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else "default-review-fuzz"

#: Every status /authenticate may answer (issue 9: never a 500, never aiohttp's text page).
REVIEW_STATUSES = {200, 400, 403, 405, 413, 429, 503}
API_VERSIONS = {"authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"}
#: Short, so that examples with a body shorter than their Content-Length stay quick.
BODY_TIMEOUT = 0.2
HEADER_TIMEOUT = 0.5

IDENTITY = role_session_identity(session="jane")

#: What a collaborator may do: answer, or raise anything (kubeiam's errors and library ones).
FAULTS: dict[str, BaseException | None] = {
    "none": None,
    "token-format": TokenFormatError("not a token"),
    "throttled": STSThrottledError("slow down"),
    "kubeiam-internal": KubeIAMError("boom"),
    "mapping-denied": MappingDeniedError("reserved prefix"),
    "value-error": ValueError("deep in a library"),
    "unicode": UnicodeEncodeError("ascii", "\u00e9", 0, 1, "no"),
    "key-error": KeyError("x"),
    "timeout": TimeoutError(),
    "os-error": OSError(5, "I/O error"),
    "recursion": RecursionError(),
}


@dataclass(frozen=True, slots=True)
class User:
    username: str
    groups: tuple[str, ...]
    backend: str = "MountedFile"


@dataclass
class Faults:
    verifier: BaseException | None = None
    mapper: BaseException | None = None
    mapped: bool = True


class Verifier:
    """The real token validation (every pre-STS rule, kubeiam.token.validation) and then, in
    place of STS, the chosen fault or an identity: STS answers are not what is fuzzed here."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.real = RealVerifier(
            "fuzz-cluster",
            sts=None,
            clock=lambda: SIGNED,  # type: ignore[arg-type]
        )

    async def verify(self, token: str) -> Identity:
        self.real.check(token)
        if self.faults.verifier is not None:
            raise self.faults.verifier
        return IDENTITY


class Mapper:
    ready = True

    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    async def map(self, identity: Identity) -> User | None:
        if self.faults.mapper is not None:
            raise self.faults.mapper
        return User("jane", ("devs",)) if self.faults.mapped else None


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record)


@dataclass
class Served:
    port: int
    faults: Faults
    reviews: Records
    metrics: ServerMetrics
    loop: asyncio.AbstractEventLoop
    stop: Any = field(default=None)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    faults = Faults()
    metrics = ServerMetrics()
    reviews = Records()
    review_log = logging.getLogger("kubeiam.server.review")
    review_log.addHandler(reviews)
    review_log.setLevel(logging.INFO)
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        holder["loop"] = loop

        async def main() -> None:
            app = create_app(
                Verifier(faults),
                Mapper(faults),
                metrics=metrics,
                identity_cache=IdentityCache(clock=lambda: 1_000.0),
                max_body_bytes=8192,
                body_timeout=BODY_TIMEOUT,
            )
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
            await runner.setup()
            tracker = ConnectionTracker(
                ConnectionSettings(HEADER_TIMEOUT, BODY_TIMEOUT, 5.0, 64),
                ConnectionMetrics(metrics.registry),
            )
            server = await listen(
                runner,
                "127.0.0.1",
                0,
                ssl_context=None,
                tracker=tracker,
                on_error=protocol_error_answer(app),
            )
            holder["port"] = server.sockets[0].getsockname()[1]
            stop = asyncio.Event()
            holder["stop"] = stop
            ready.set()
            await stop.wait()
            server.close()
            await runner.cleanup()

        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    loop = holder["loop"]
    yield Served(holder["port"], faults, reviews, metrics, loop)
    loop.call_soon_threadsafe(holder["stop"].set)
    thread.join(10)
    review_log.removeHandler(reviews)


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes (every request says Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before reading all
            sock.sendall(request)
        chunks = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response: {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None:
        body = body[: int(length)]
    return status, headers, body


def assert_review(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert status in REVIEW_STATUSES, (status, body[:200])
    assert headers.get("content-type", "").startswith("application/json"), headers
    doc = json.loads(body)
    assert doc["kind"] == "TokenReview"
    assert doc["apiVersion"] in API_VERSIONS
    assert isinstance(doc["status"]["authenticated"], bool)
    assert doc["status"]["authenticated"] is (status == 200)
    if status != 200:
        assert isinstance(doc["status"]["error"], str)
        assert doc["status"]["error"]
    return doc


# --- strategies ---------------------------------------------------------------------------------

header_value = st.one_of(
    st.sampled_from(
        [
            "gzip",
            "deflate",
            "br",
            "zstd",
            "identity",
            "gzip, deflate",
            "chunked",
            "chunked, gzip",
            "application/json",
            "text/plain; charset=utf-16",
            "application/json; charset=latin-1",
            "-1",
            "0",
            "99999999999999999999",
            "",
        ]
    ),
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
header_name = st.one_of(
    st.sampled_from(
        [
            b"Content-Encoding",
            b"Content-Type",
            b"Transfer-Encoding",
            b"Content-Length",
            b"Expect",
            b"Upgrade",
            b"Host",
            b"Accept-Encoding",
        ]
    ),
    st.binary(min_size=1, max_size=20).map(
        lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b":", b"") or b"X"
    ),
)
#: The clock of the validation: tokens built below are signed then, so some pass every rule.
SIGNED = dt.datetime(2026, 12, 6, 22, 0, tzinfo=dt.UTC)
QUERY_KEYS = [
    "Action",
    "Version",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "action",
    "X-AMZ-DATE",
    "x-amz-\u212aey",
]
GOOD_QUERY = {
    "Action": "GetCallerIdentity",
    "Version": "2011-06-15",
    "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
    "X-Amz-Credential": "AKIAEXAMPLEEXAMPLE12/20261206/us-east-1/sts/aws4_request",
    "X-Amz-Date": "20261206T220000Z",
    "X-Amz-Expires": "60",
    "X-Amz-SignedHeaders": "host;x-k8s-aws-id",
    "X-Amz-Signature": "a" * 64,
}


@st.composite
def presigned_tokens(draw: st.DrawFn) -> str:
    """Tokens shaped like real ones, with keys, values and hosts mutated: these reach the
    deeper rules of the validation (hosts, query keys, dates, credentials)."""
    query = dict(GOOD_QUERY)
    host = "sts.amazonaws.com"
    mutate = draw(st.sampled_from(["none", "none", "query", "host", "both"]))
    if mutate in ("query", "both"):
        for key in draw(st.lists(st.sampled_from(QUERY_KEYS), min_size=1, max_size=3)):
            query[key] = draw(
                st.one_of(st.text(max_size=40), st.sampled_from(list(GOOD_QUERY.values())))
            )
        for key in draw(st.lists(st.sampled_from(sorted(GOOD_QUERY)), max_size=2)):
            query.pop(key, None)
    if mutate in ("host", "both"):
        host = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "sts.us-east-1.amazonaws.com",
                        "sts." + "a" * 70 + ".amazonaws.com",
                        "sts.us-east-1.amazonaws.com.evil.example",
                        "sts.xx-nowhere-9.amazonaws.com",
                        "STS.amazonaws.com",
                    ]
                ),
                st.text(max_size=30),
            )
        )
    url = f"https://{host}/?" + "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items()
    )
    raw = url.encode("utf-8", "surrogatepass")
    return "k8s-aws-v1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


token = st.one_of(
    presigned_tokens(),
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="ascii"), max_size=200).map(lambda t: "k8s-aws-v1." + t),
    st.sampled_from(
        ["k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8", "", "\ud800", "k8s-aws-v1.\x00"]
    ),
)
review_doc = st.fixed_dictionaries(
    {
        "apiVersion": st.one_of(st.sampled_from(sorted(API_VERSIONS)), st.text(max_size=30)),
        "kind": st.sampled_from(["TokenReview", "tokenreview", "Other"]),
        "spec": st.one_of(
            st.fixed_dictionaries(
                {"token": token},
                optional={"audiences": st.lists(st.text(max_size=10), max_size=3)},
            ),
            st.none(),
            st.integers(),
        ),
    }
)
body = st.one_of(
    review_doc.map(lambda d: json.dumps(d).encode()),
    review_doc.map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.just(b"[" * 5000),
    st.just(b"\x1f\x8b\x08\x00garbage"),
)
method = st.sampled_from([b"POST", b"POST", b"POST", b"GET", b"PUT", b"HEAD", b"DELETE", b"PATCH"])
fault = st.sampled_from(sorted(FAULTS))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    verb = draw(method)
    payload = draw(body)
    headers = draw(st.lists(st.tuples(header_name, header_value.map(_bytes)), max_size=5))
    names = {n.lower() for n, _ in headers}
    lines = [verb + b" /authenticate HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    if b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: " + str(len(payload)).encode())
    lines.extend(n + b": " + v for n, v in headers if n.lower() not in (b"connection", b"host"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


@settings.get_profile(PROFILE)
@given(request=requests(), verifier_fault=fault, mapper_fault=fault, mapped=st.booleans())
def test_every_request_is_answered_as_a_review(
    served: Served, request: bytes, verifier_fault: str, mapper_fault: str, mapped: bool
) -> None:
    served.faults.verifier = FAULTS[verifier_fault]
    served.faults.mapper = FAULTS[mapper_fault]
    served.faults.mapped = mapped
    served.reviews.lines.clear()
    raw = exchange(served.port, request)
    status, headers, payload = parse_response(raw)
    if request.startswith(b"HEAD "):
        # HTTP: an answer to HEAD has no body; it is still the review's status and type
        assert status in REVIEW_STATUSES
        assert status != 200
        assert headers.get("content-type", "").startswith("application/json")
    else:
        assert_review(status, headers, payload)
    # the record is made before the answer is written, so it is there by now
    lines = [r for r in served.reviews.lines if r.getMessage() == "token review"]
    assert len(lines) == 1, [getattr(r, "review", None) for r in served.reviews.lines]
    assert lines[0].review["status"] == status  # type: ignore[attr-defined]
    if served.faults.verifier is None and b"k8s-aws-v1.aHR0" in request:
        text = "".join(str(r.__dict__) for r in served.reviews.lines)
        assert "aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8" not in text  # never the token


@pytest.mark.parametrize(
    ("encoding", "payload", "chunked"),
    [
        ("gzip", b"notgzip", False),
        ("deflate", b"\x00\x01garbage", False),
        ("br", b"xx", False),
        ("zstd", b"xx", False),
        ("gzip", b"notgzip", True),
        ("x-unknown", b"{}", False),
    ],
    ids=["gzip", "deflate", "br", "zstd", "gzip-chunked", "unknown"],
)
def test_compressed_bodies_are_refused_as_reviews(
    served: Served, encoding: str, payload: bytes, chunked: bool
) -> None:
    head = (
        "POST /authenticate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Encoding: {encoding}\r\n"
    )
    if chunked:
        request = (
            head.encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + f"{len(payload):x}\r\n".encode()
            + payload
            + b"\r\n0\r\n\r\n"
        )
    else:
        request = head.encode() + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
    served.reviews.lines.clear()
    status, headers, body_bytes = parse_response(exchange(served.port, request))
    doc = assert_review(status, headers, body_bytes)
    assert status == 400
    assert "not" in doc["status"]["error"]
    assert len([r for r in served.reviews.lines if r.getMessage() == "token review"]) == 1
    rendered = served.metrics.render().decode()
    assert 'authenticate_latency_seconds_count{result="malformed_request"}' in rendered


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /authenticate HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
        b"POST /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /authenticate HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"POST /authenticate HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /authenticate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"POST /authenticate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /authenticate HTTP/9.9\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # TLS on plain HTTP
    ],
    ids=[
        "not-http",
        "header-too-long",
        "request-line-too-long",
        "header-without-colon",
        "content-length-not-a-number",
        "length-and-chunked",
        "bad-chunk-size",
        "http-9.9",
        "tls-hello",
    ],
)
def test_requests_aiohttp_cannot_parse_are_answered_as_reviews(served: Served, raw: bytes) -> None:
    served.reviews.lines.clear()
    status, headers, payload = parse_response(exchange(served.port, raw))
    doc = assert_review(status, headers, payload)
    assert status == 400
    assert "not valid HTTP" in doc["status"]["error"] or "body" in doc["status"]["error"]
    assert len([r for r in served.reviews.lines if r.getMessage() == "token review"]) == 1
