"""The webhook routes with injected verifier and mapper fakes (the real ones: tests/integration)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kubeiam.errors import (
    KubeIAMError,
    MappingDeniedError,
    STSError,
    STSThrottledError,
    TokenFormatError,
)
from kubeiam.identity import Identity
from kubeiam.server.app import create_app
from kubeiam.server.identity_cache import IdentityCache
from kubeiam.server.metrics import ServerMetrics
from support.identities import role_session_identity
from support.metrics import samples

TOKEN = "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_c2VjcmV0"
ROLE = role_session_identity()


@dataclass(frozen=True, slots=True)
class User:
    username: str
    groups: tuple[str, ...]
    backend: str = "MountedFile"
    entry: str = "mapRoles[0]"


class FakeVerifier:
    """Stands in for kubeiam.token.verifier.Verifier (unit tests only)."""

    def __init__(self) -> None:
        self.result: Identity | Exception = ROLE
        self.calls = 0

    async def verify(self, token: str) -> Identity:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class FakeChain:
    def __init__(self) -> None:
        self.ready = True
        self.result: User | Exception | None = User("admin:jane-example.com", ("system:masters",))

    async def map(self, identity: Identity) -> User | None:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@dataclass
class Harness:
    client: TestClient  # type: ignore[type-arg]
    verifier: FakeVerifier
    chain: FakeChain
    metrics: ServerMetrics


def review(api_version: str = "authentication.k8s.io/v1", **spec: object) -> dict[str, object]:
    return {"apiVersion": api_version, "kind": "TokenReview", "spec": {"token": TOKEN, **spec}}


async def make(**kwargs: object) -> Harness:
    verifier, chain, metrics = FakeVerifier(), FakeChain(), ServerMetrics()
    app = create_app(
        verifier,
        chain,
        metrics=metrics,
        identity_cache=IdentityCache(clock=lambda: 1_000.0),
        max_body_bytes=8192,
        **kwargs,  # type: ignore[arg-type]
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return Harness(client, verifier, chain, metrics)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = await make()
    yield harness
    await harness.client.close()


@pytest.mark.parametrize(
    "api_version",
    ["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"],
    ids=["v1", "v1beta1"],
)
async def test_success_echoes_version_and_fills_user(h: Harness, api_version: str) -> None:
    resp = await h.client.post("/authenticate", json=review(api_version))
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "apiVersion": api_version,
        "kind": "TokenReview",
        "status": {
            "authenticated": True,
            "user": {
                "username": "admin:jane-example.com",
                "uid": "aws-iam-authenticator:111122223333:AROAEXAMPLE",
                "groups": ["system:masters"],
                "extra": {
                    "arn": [ROLE.arn],
                    "canonicalArn": ["arn:aws:iam::111122223333:role/Admin"],
                    "sessionName": ["jane@example.com"],
                    "accessKeyId": ["ASIAEXAMPLE"],
                    "principalId": ["AROAEXAMPLE"],
                    "sigs.k8s.io/aws-iam-authenticator/principalId": ["AROAEXAMPLE"],
                },
            },
        },
    }


async def test_scrubbed_account_hides_the_principal() -> None:
    h = await make(scrubbed_accounts=["111122223333"])
    try:
        body = await (await h.client.post("/authenticate", json=review())).json()
        user = body["status"]["user"]
        assert user["uid"] == "aws-iam-authenticator:administrative:admin:jane-example.com"
        assert "extra" not in user
    finally:
        await h.client.close()


@pytest.mark.parametrize(
    ("error", "status", "result"),
    [
        (TokenFormatError("the token is not k8s-aws-v1"), 403, "invalid_token"),
        (STSError("STS said SignatureDoesNotMatch"), 403, "sts_error"),
        (STSThrottledError("STS throttled the request"), 429, "sts_throttling"),
        (KubeIAMError("boom"), 503, "sts_error"),
    ],
    ids=["format", "sts-error", "throttled", "internal"],
)
async def test_verifier_errors(h: Harness, error: Exception, status: int, result: str) -> None:
    h.verifier.result = error
    resp = await h.client.post("/authenticate", json=review())
    assert resp.status == status
    body = await resp.json()
    assert body["status"]["authenticated"] is False
    assert body["apiVersion"] == "authentication.k8s.io/v1"
    metrics = h.metrics.render().decode()
    assert f'aws_iam_authenticator_authenticate_latency_seconds_count{{result="{result}"}} 1.0' in (
        metrics
    )


@pytest.mark.parametrize(
    ("mapped", "status", "error"),
    [
        (None, 403, "arn:aws:iam::111122223333:role/Admin is not mapped"),
        (MappingDeniedError("username uses reserved prefix system:"), 403, "reserved prefix"),
        (KubeIAMError("EC2 down"), 503, "internal error mapping the user"),
    ],
    ids=["unmapped", "denied", "internal"],
)
async def test_mapping_outcomes(
    h: Harness, mapped: User | Exception | None, status: int, error: str
) -> None:
    h.chain.result = mapped
    resp = await h.client.post("/authenticate", json=review())
    assert resp.status == status
    body = await resp.json()
    assert error in body["status"]["error"]
    assert 'result="uknown_user"' in h.metrics.render().decode()


async def test_unmapped_while_backends_load_is_retryable(h: Harness) -> None:
    h.chain.result = None
    h.chain.ready = False
    resp = await h.client.post("/authenticate", json=review())
    assert resp.status == 503
    assert "still loading" in (await resp.json())["status"]["error"]
    h.chain.result = User("admin", ())  # a loaded backend's match is served meanwhile
    assert (await h.client.post("/authenticate", json=review())).status == 200


async def test_failed_sts_call_counts_as_a_miss(h: Harness) -> None:
    h.verifier.result = STSError("refused")
    await h.client.post("/authenticate", json=review())
    assert "kubeiam_identity_cache_misses_total 1.0" in h.metrics.render().decode()


async def test_mapping_runs_on_every_review_but_sts_once(h: Harness) -> None:
    for _ in range(3):
        assert (await h.client.post("/authenticate", json=review())).status == 200
    h.chain.result = None  # a mapping removed: the next review is refused at once
    assert (await h.client.post("/authenticate", json=review())).status == 403
    assert h.verifier.calls == 1
    text = h.metrics.render().decode()
    assert "kubeiam_identity_cache_hits_total 3.0" in text
    assert "kubeiam_identity_cache_misses_total 1.0" in text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"kind": "TokenReview", "spec": {"token": "t"}}).encode(), "apiVersion"),
        (
            json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "Pod"}).encode(),
            "kind must be TokenReview",
        ),
        (
            json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}).encode(),
            "spec must be an object",
        ),
        (json.dumps(review(token=5)).encode(), "spec.token must be a string"),
        (json.dumps(review(audiences="a")).encode(), "spec.audiences must be a list"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 8000, "not JSON"),
    ],
    ids=[
        "garbage",
        "array",
        "no-version",
        "wrong-kind",
        "no-spec",
        "token-type",
        "aud",
        "bytes",
        "deep-nesting",
    ],
)
async def test_malformed_body_is_400(h: Harness, body: bytes, needle: str) -> None:
    resp = await h.client.post("/authenticate", data=body)
    assert resp.status == 400
    doc = await resp.json()
    assert needle in doc["status"]["error"]
    assert h.verifier.calls == 0


async def test_oversized_body_is_413(h: Harness) -> None:
    big = review(token="k8s-aws-v1." + "A" * 10_000)
    resp = await h.client.post("/authenticate", json=big)
    assert resp.status == 413
    assert h.verifier.calls == 0

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 1024

    chunked = await h.client.post("/authenticate", data=chunks())
    assert chunked.status == 413


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(h: Harness, method: str) -> None:
    resp = await h.client.request(method, "/authenticate")
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"


async def test_health_ready_and_metrics(h: Harness) -> None:
    assert await (await h.client.get("/healthz")).text() == "ok"
    assert (await h.client.get("/readyz")).status == 200
    h.chain.ready = False
    assert (await h.client.get("/readyz")).status == 503
    resp = await h.client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    for name in (
        "aws_iam_authenticator_authenticate_latency_seconds",
        "aws_iam_authenticator_sts_responses_total",
        "aws_iam_authenticator_sts_connection_failures_total",
        "aws_iam_authenticator_sts_throttling_total",
        "aws_iam_authenticator_ec2_describe_instances_calls_total",
        "aws_iam_authenticator_configmap_watch_failures_total",
        "aws_iam_authenticator_dynamicfile_failures_total",
        "kubeiam_identity_cache_entries",
        "process_resident_memory_bytes",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


async def test_metric_buckets_are_the_references() -> None:
    metrics = ServerMetrics()
    from kubeiam.server.metrics import Result

    metrics.observe_review(Result.SUCCESS, 0.003)
    text = metrics.render().decode()
    les = [s.labels["le"] for s in samples(text) if s.name.endswith("_bucket")]
    expected = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0"]
    expected += ["10.0", "+Inf"]
    assert les == expected


async def test_sts_observer_feeds_reference_counters() -> None:
    metrics = ServerMetrics()
    metrics.sts_observer("response", 200, "us-east-1")
    metrics.sts_observer("response", 403, "eu-west-1")
    metrics.sts_observer("connection_failure", None, "us-east-1")
    metrics.sts_observer("throttled", 400, "us-east-1")
    metrics.backend_failure("EKSConfigMap")
    metrics.backend_failure("DynamicFile")
    text = metrics.render().decode()
    assert 'sts_responses_total{ResponseCode="200",StsRegion="us-east-1"} 1.0' in text
    assert 'sts_responses_total{ResponseCode="403",StsRegion="eu-west-1"} 1.0' in text
    assert 'sts_connection_failures_total{StsRegion="us-east-1"} 1.0' in text
    assert 'sts_throttling_total{StsRegion="us-east-1"} 1.0' in text
    assert "aws_iam_authenticator_configmap_watch_failures_total 1.0" in text
    assert "aws_iam_authenticator_dynamicfile_failures_total 1.0" in text


@pytest.mark.parametrize(
    ("configured", "requested", "status", "status_audiences"),
    [
        ((), ["https://kubernetes.default.svc"], 200, None),
        (("demo",), ["other", "demo"], 200, ["demo"]),
        (("demo",), [], 200, ["demo"]),
        (("demo",), ["other"], 403, None),
    ],
    ids=["unconfigured-left-to-apiserver", "intersection", "no-request", "disjoint-denied"],
)
async def test_audiences(
    configured: tuple[str, ...],
    requested: list[str],
    status: int,
    status_audiences: list[str] | None,
) -> None:
    h = await make(audiences=configured)
    try:
        resp = await h.client.post("/authenticate", json=review(audiences=requested))
        assert resp.status == status
        body = await resp.json()
        assert body["status"].get("audiences") == status_audiences
    finally:
        await h.client.close()


async def test_review_log_line_never_contains_the_token(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await h.client.post("/authenticate", json=review())
        h.verifier.result = TokenFormatError("bad")
        await h.client.post("/authenticate", json=review(token=TOKEN + "x"))
    reviews = [r for r in caplog.records if r.name == "kubeiam.server.review"]
    assert len(reviews) == 2
    fields = reviews[0].review  # type: ignore[attr-defined]
    assert fields["outcome"] == "success"
    assert fields["username"] == "admin:jane-example.com"
    assert fields["arn"] == ROLE.arn
    assert fields["latency_ms"] >= 0
    everything = " ".join(str(vars(r)) for r in caplog.records)
    assert TOKEN[11:30] not in everything
    assert "aHR0cHM6" not in everything
