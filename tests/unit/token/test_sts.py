"""The STS client against real HTTPS servers on 127.0.0.1 (certificates from a trustme CA)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from aiohttp import web
from fake_sts import (
    CLUSTER_ID,
    EXPECTED,
    HOST,
    JSON_OK,
    XML_OK,
    FakeSTS,
    Handler,
    answer,
    json_error,
    xml_error,
)
from token_factory import NOW, SESSION_TOKEN, SIGNATURE, build_token

from kubeiam.errors import (
    ConfigError,
    STSError,
    STSThrottledError,
    STSUnavailableError,
)
from kubeiam.token.sts import (
    CallerIdentity,
    STSClient,
    parse_error_code,
    parse_resolve_specs,
    parse_success,
    parse_xml_fields,
    resolve_specs_from_env,
)
from kubeiam.token.validation import PresignedRequest, validate_token


def request_for(host: str = HOST, **kwargs: str) -> PresignedRequest:
    return validate_token(build_token(host, **kwargs), partition="aws", now=NOW)


async def call(
    fake: FakeSTS,
    ca_bundle: str | None,
    *,
    timeout: float = 5.0,
    max_body: int = 64 * 1024,
    events: list[tuple[str, int | None, str]] | None = None,
    request: PresignedRequest | None = None,
) -> CallerIdentity:
    def observe(event: str, status: int | None, region: str) -> None:
        if events is not None:
            events.append((event, status, region))

    async with STSClient(
        resolve=fake.resolve(),
        ca_bundle=ca_bundle,
        timeout=timeout,
        max_body=max_body,
        observer=observe,
    ) as client:
        return await client.get_caller_identity(request or request_for(), CLUSTER_ID)


# --- success ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(json.dumps(JSON_OK).encode(), "application/json"), (XML_OK, "text/xml")],
    ids=["json", "xml"],
)
async def test_success_answers(
    fake_sts: FakeSTS, ca_bundle: str, body: bytes, content_type: str
) -> None:
    fake_sts.handler = answer(200, body, content_type)
    events: list[tuple[str, int | None, str]] = []
    assert await call(fake_sts, ca_bundle, events=events) == EXPECTED
    assert events == [("response", 200, "us-east-1")]


async def test_request_carries_cluster_id_host_sni_and_the_checked_url(
    fake_sts: FakeSTS, ca_bundle: str
) -> None:
    fake_sts.handler = answer(200, json.dumps(JSON_OK).encode())
    request = request_for(session_token=SESSION_TOKEN)
    await call(fake_sts, ca_bundle, request=request)
    (seen,) = fake_sts.requests
    assert seen.method == "GET"
    assert seen.headers["x-k8s-aws-id"] == CLUSTER_ID
    assert seen.headers["Host"] == HOST
    assert seen.headers["Accept"] == "application/json"
    assert fake_sts.server_names == [HOST]
    # The path and query arrive exactly as re-serialised (no re-quoting by the client).
    assert f"https://{HOST}{fake_sts.paths[0]}" == request.url


async def test_global_host_is_routed_and_sent_as_its_own_name(
    fake_sts: FakeSTS, ca_bundle: str
) -> None:
    fake_sts.handler = answer(200, json.dumps(JSON_OK).encode())
    await call(fake_sts, ca_bundle, request=request_for("sts.amazonaws.com"))
    assert fake_sts.requests[0].headers["Host"] == "sts.amazonaws.com"
    assert fake_sts.server_names == ["sts.amazonaws.com"]


# --- failures ---------------------------------------------------------------------------------

THROTTLED = STSThrottledError
FAILURES = [
    pytest.param(429, b"", THROTTLED, "throttled", id="429-empty"),
    pytest.param(400, xml_error("Throttling"), THROTTLED, "throttled", id="400-xml-throttling"),
    pytest.param(400, json_error("Throttling"), THROTTLED, "throttled", id="400-json-throttling"),
    pytest.param(503, b"Rate exceeded: Throttling", THROTTLED, "HTTP 503", id="503-throttling"),
    pytest.param(403, json_error("SignatureDoesNotMatch"), STSError, "SignatureDoesNotMatch",
                 id="json-signature-mismatch"),
    pytest.param(403, xml_error("ExpiredToken"), STSError, "ExpiredToken", id="xml-expired-token"),
    pytest.param(403, xml_error("InvalidClientTokenId"), STSError, "InvalidClientTokenId",
                 id="xml-invalid-key"),
    pytest.param(403, b"<html>denied</html>", STSError, "unknown", id="html-body"),
    pytest.param(403, json_error("Bad Code <script>"), STSError, "unknown", id="odd-code"),
    pytest.param(500, xml_error("InternalFailure"), STSUnavailableError, "InternalFailure",
                 id="500"),
    pytest.param(200, b"not json", STSError, "neither JSON nor plain XML", id="200-garbage"),
    pytest.param(200, b'{"GetCallerIdentityResponse": {}}', STSError, "usable Arn",
                 id="200-json-without-fields"),
    pytest.param(200, b"[1, 2]", STSError, "neither JSON", id="200-json-array"),
    pytest.param(200, b"[" * 100_00 + b"]" * 100_00, STSError, "neither JSON", id="200-deep-json"),
    pytest.param(
        200,
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "x">]><r>&a;</r>',
        STSError,
        "neither JSON nor plain XML",
        id="200-xml-dtd",
    ),
    pytest.param(
        200,
        XML_OK.replace(b"<Arn>arn", b"<Arn>\narn\x01"),
        STSError,
        "neither JSON nor plain XML",
        id="200-xml-control-character",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "error", "fragment"), FAILURES)
async def test_failures(
    fake_sts: FakeSTS,
    ca_bundle: str,
    status: int,
    body: bytes,
    error: type[Exception],
    fragment: str,
) -> None:
    fake_sts.handler = answer(status, body)
    with pytest.raises(error) as info:
        await call(fake_sts, ca_bundle)
    assert type(info.value) is error
    assert fragment in str(info.value)
    assert SIGNATURE not in str(info.value)
    assert "X-Amz" not in str(info.value)


async def test_error_message_names_the_access_key_and_gives_a_hint(
    fake_sts: FakeSTS, ca_bundle: str
) -> None:
    fake_sts.handler = answer(403, json_error("SignatureDoesNotMatch"))
    with pytest.raises(STSError) as info:
        await call(fake_sts, ca_bundle)
    assert "AKIAIOSFODNN7EXAMPLE" in str(info.value)
    assert info.value.hint is not None
    assert "cluster id" in info.value.hint


async def test_throttling_is_reported_to_the_observer(fake_sts: FakeSTS, ca_bundle: str) -> None:
    fake_sts.handler = answer(429, b"")
    events: list[tuple[str, int | None, str]] = []
    with pytest.raises(STSThrottledError):
        await call(fake_sts, ca_bundle, events=events)
    assert events == [("response", 429, "us-east-1"), ("throttled", 429, "us-east-1")]


@pytest.mark.parametrize("status", [301, 302, 307, 308], ids=str)
async def test_redirects_are_refused_never_followed(
    fake_sts: FakeSTS, ca_bundle: str, status: int
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path != "/":
            return web.json_response(JSON_OK)
        return web.Response(status=status, headers={"Location": "/stolen"})

    fake_sts.handler = handler
    with pytest.raises(STSUnavailableError, match=f"redirect \\(HTTP {status}\\)"):
        await call(fake_sts, ca_bundle)
    assert fake_sts.paths[1:] == []  # the Location was never requested


async def test_hanging_sts_times_out_with_a_clear_message(
    fake_sts: FakeSTS, ca_bundle: str
) -> None:
    async def hang(_request: web.Request) -> web.StreamResponse:
        await asyncio.wait_for(fake_sts.release.wait(), timeout=10)
        return web.Response(status=200)

    fake_sts.handler = hang
    events: list[tuple[str, int | None, str]] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(STSUnavailableError, match=f"{HOST} did not answer within 0.3 s"):
        await call(fake_sts, ca_bundle, timeout=0.3, events=events)
    assert loop.time() - started < 3
    assert events == [("connection_failure", None, "us-east-1")]


async def test_slow_body_times_out(fake_sts: FakeSTS, ca_bundle: str) -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        await response.write(b'{"GetCallerIdentityResponse"')
        await asyncio.wait_for(fake_sts.release.wait(), timeout=10)
        return response

    fake_sts.handler = trickle
    with pytest.raises(STSUnavailableError, match="did not answer within"):
        await call(fake_sts, ca_bundle, timeout=0.3)


async def test_oversized_declared_body_is_refused(fake_sts: FakeSTS, ca_bundle: str) -> None:
    fake_sts.handler = answer(200, b" " * 5000 + json.dumps(JSON_OK).encode())
    with pytest.raises(STSError, match="larger than 4096 bytes"):
        await call(fake_sts, ca_bundle, max_body=4096)


async def test_oversized_streamed_body_is_refused(fake_sts: FakeSTS, ca_bundle: str) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):  # 10 x 1 KiB, no Content-Length
            await response.write(b" " * 1024)
        await response.write_eof()
        return response

    fake_sts.handler = stream
    with pytest.raises(STSError, match="larger than 4096 bytes"):
        await call(fake_sts, ca_bundle, max_body=4096)


async def test_untrusted_certificate_is_refused(fake_sts: FakeSTS) -> None:
    fake_sts.handler = answer(200, json.dumps(JSON_OK).encode())
    with pytest.raises(STSUnavailableError, match="TLS connection to STS"):
        await call(fake_sts, None)  # the system CAs do not know the test CA
    assert fake_sts.requests == []


async def test_certificate_for_another_host_is_refused(fake_sts: FakeSTS, ca_bundle: str) -> None:
    # The fake's certificate names only HOST and the global host; a Frankfurt host must fail.
    other = "sts.eu-central-1.amazonaws.com"
    fake_sts.handler = answer(200, json.dumps(JSON_OK).encode())
    async with STSClient(resolve={other: ("127.0.0.1", fake_sts.port)}, ca_bundle=ca_bundle) as c:
        with pytest.raises(STSUnavailableError, match="TLS"):
            await c.get_caller_identity(request_for(other, region="eu-central-1"), CLUSTER_ID)


async def test_connection_refused(ca_bundle: str) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        events: list[tuple[str, int | None, str]] = []
        async with STSClient(
            resolve={HOST: ("127.0.0.1", port)},
            ca_bundle=ca_bundle,
            observer=lambda *e: events.append(e),
        ) as client:
            with pytest.raises(STSUnavailableError, match=f"cannot connect to STS at {HOST}"):
                await client.get_caller_identity(request_for(), CLUSTER_ID)
    assert events == [("connection_failure", None, "us-east-1")]


async def test_nothing_secret_in_errors_or_logs(
    fake_sts: FakeSTS, ca_bundle: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = request_for(session_token=SESSION_TOKEN)
    token = build_token(session_token=SESSION_TOKEN)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    handlers: list[Handler] = [
        answer(200, json.dumps(JSON_OK).encode()),
        answer(403, json_error("SignatureDoesNotMatch")),
        answer(429, b"Throttling"),
        answer(302, b""),
        answer(200, b"garbage"),
    ]
    for handler in handlers:
        fake_sts.handler = handler
        try:
            await call(fake_sts, ca_bundle, request=request)
        except STSError as exc:
            texts.append(str(exc))
            texts.append(repr(exc))
    texts.append(caplog.text)
    assert "sts answer" in caplog.text  # the debug line exists, and is safe
    for text in texts:
        for secret in (token, request.url, SIGNATURE, SESSION_TOKEN, "X-Amz-Signature"):
            assert secret not in text


# --- parsing helpers --------------------------------------------------------------------------


def test_parse_success_accepts_both_formats() -> None:
    assert parse_success(json.dumps(JSON_OK).encode()) == EXPECTED
    assert parse_success(XML_OK) == EXPECTED


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (json_error("AccessDenied"), "AccessDenied"),
        (xml_error("AccessDenied"), "AccessDenied"),
        (b'{"ErrorResponse": {"Error": {"Code": "Throttling"}}}', "Throttling"),
        (b'{"__type": "com.amazonaws.sts#ExpiredToken"}', "ExpiredToken"),
        (b'{"Error": {"Code": 42}}', "unknown"),
        (b"", "unknown"),
    ],
    ids=["json", "xml", "wrapped-json", "awsjson-type", "non-string", "empty"],
)
def test_parse_error_code(body: bytes, code: str) -> None:
    assert parse_error_code(body) == code


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE r SYSTEM "http://127.0.0.1/x.dtd"><r/>',
        b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><r>&e;</r>',
        b"<a>" * 40 + b"</a>" * 40,
        b"<a><b></a>",
    ],
    ids=["external-dtd", "external-entity", "too-deep", "malformed"],
)
def test_xml_parser_refuses_dtds_entities_and_depth(body: bytes) -> None:
    with pytest.raises(ValueError, match="not plain XML"):
        parse_xml_fields(body)


# --- --sts-resolve ----------------------------------------------------------------------------

RESOLVE_OK = [
    pytest.param(f"{HOST}=127.0.0.1:8443", {HOST: ("127.0.0.1", 8443)}, id="ipv4"),
    pytest.param(f"{HOST}=[::1]:443", {HOST: ("::1", 443)}, id="ipv6"),
    pytest.param("sts.amazonaws.com=127.0.0.2:1", {"sts.amazonaws.com": ("127.0.0.2", 1)},
                 id="global"),
    pytest.param(f" {HOST}=127.0.0.1:65535 ", {HOST: ("127.0.0.1", 65535)}, id="spaces"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "table"), RESOLVE_OK)
def test_resolve_specs(spec: str, table: dict[str, tuple[str, int]]) -> None:
    assert parse_resolve_specs([spec], partition="aws") == table


RESOLVE_BAD = [
    pytest.param("sts.amazonaws.com.evil=127.0.0.1:1", "not an STS host", id="suffix-trick"),
    pytest.param("s3.amazonaws.com=127.0.0.1:1", "not an STS host", id="non-sts-host"),
    pytest.param("STS.amazonaws.com=127.0.0.1:1", "not an STS host", id="upper-case"),
    pytest.param("sts.amazonaws.com.=127.0.0.1:1", "not an STS host", id="trailing-dot"),
    pytest.param("sts.cn-north-1.amazonaws.com.cn=127.0.0.1:1", "not an STS host",
                 id="other-partition"),
    pytest.param(f"{HOST}", "HOST=ADDR:PORT", id="no-target"),
    pytest.param(f"{HOST}=127.0.0.1", "ADDR:PORT", id="no-port"),
    pytest.param(f"{HOST}=localhost:443", "IP address", id="host-name-target"),
    pytest.param(f"{HOST}=127.0.0.1:0", "between 1 and 65535", id="port-0"),
    pytest.param(f"{HOST}=127.0.0.1:70000", "between 1 and 65535", id="port-too-big"),
    pytest.param(f"{HOST}=::1:443", "IP address", id="ipv6-without-brackets"),
    pytest.param(f"{HOST}=[::1]443", "IP address", id="ipv6-no-colon"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "fragment"), RESOLVE_BAD)
def test_bad_resolve_specs_are_config_errors(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_resolve_specs([spec], partition="aws")


def test_resolve_accepts_operator_listed_hosts_only_when_listed() -> None:
    vpce = "vpce-1.sts.us-east-1.vpce.amazonaws.com"
    with pytest.raises(ConfigError):
        parse_resolve_specs([f"{vpce}=127.0.0.1:1"], partition="aws")
    table = parse_resolve_specs(
        [f"{vpce}=127.0.0.1:1"], partition="aws", allowed_hosts={vpce: "us-east-1"}
    )
    assert table == {vpce: ("127.0.0.1", 1)}


def test_resolve_env_is_comma_separated() -> None:
    assert resolve_specs_from_env(" a=1.2.3.4:1 ,, b=[::1]:2,") == ["a=1.2.3.4:1", "b=[::1]:2"]
    assert resolve_specs_from_env(None) == []


def test_unreadable_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CA bundle"):
        STSClient(ca_bundle=str(tmp_path / "missing.pem"))


def test_non_positive_timeout_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="timeout"):
        STSClient(timeout=0)
