"""The STS front's SigV4 checker against botocore, the reference presigner (pure, no network)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeiam.localaws import sigv4
from kubeiam.localaws.sigv4 import ErrorCode, QueryAuth, Refusal
from kubeiam.partitions import sts_host_for_region

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
AKID = "AKIAIOSFODNN7EXAMPLE"
NOW = datetime(2026, 11, 23, 15, 0, 0, tzinfo=UTC)
Presign = Callable[..., str]


def _auth(url: str) -> tuple[QueryAuth, str]:
    parts = urlsplit(url)
    params = sigv4.parse_query(parts.query)
    assert not isinstance(params, Refusal)
    auth = sigv4.parse_query_auth(params)
    assert not isinstance(auth, Refusal)
    return auth, parts.hostname or ""


def _check(url: str, *, secret: str = SECRET, cluster_id: str = "cluster-a") -> Refusal | None:
    auth, host = _auth(url)
    headers = {"host": (host,), "x-k8s-aws-id": (cluster_id,)}
    return sigv4.check_signature(
        secret_access_key=secret, auth=auth, method="GET", path="/", headers=headers
    )


_printable = st.characters(min_codepoint=33, max_codepoint=126)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    region=st.sampled_from(
        ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1"]
    ),
    cluster_id=st.text(_printable, min_size=1, max_size=60),
    token=st.none() | st.text(_printable, min_size=1, max_size=300),
    seconds=st.integers(min_value=0, max_value=10 * 365 * 86400),
)
def test_accepts_exactly_what_botocore_signs(
    presign: Presign, region: str, cluster_id: str, token: str | None, seconds: int
) -> None:
    at = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    url = presign(
        access_key_id=AKID,
        secret_access_key=SECRET,
        session_token=token,
        region=region,
        host=sts_host_for_region(region),
        cluster_id=cluster_id,
        at=at,
    )
    auth, _ = _auth(url)
    assert auth.session_token == token
    assert auth.signed_at == at.replace(microsecond=0)
    assert sigv4.check_scope(auth, region=region) is None
    assert _check(url, cluster_id=cluster_id) is None
    # The same request is refused for another cluster id and another secret.
    assert _check(url, cluster_id=cluster_id + "x") is not None
    assert _check(url, secret=SECRET[:-1] + "X", cluster_id=cluster_id) is not None


@pytest.mark.parametrize(
    "host",
    [
        "sts.amazonaws.com",
        "sts-fips.us-east-1.amazonaws.com",
        "sts.us-east-1.api.aws",
        "sts.cn-north-1.amazonaws.com.cn",
    ],
    ids=["global", "fips", "dualstack", "china"],
)
def test_every_host_form_verifies(presign: Presign, host: str) -> None:
    region = "cn-north-1" if host.endswith(".cn") else "us-east-1"
    url = presign(access_key_id=AKID, secret_access_key=SECRET, region=region, host=host, at=NOW)
    assert _check(url) is None


def _tamper_signature(url: str) -> str:
    head, _, sig = url.rpartition("X-Amz-Signature=")
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    return head + "X-Amz-Signature=" + flipped


def _swap(url: str, old: str, new: str) -> str:
    assert old in url
    return url.replace(old, new, 1)


TAMPERINGS: list[tuple[str, Callable[[str], str]]] = [
    ("signature", _tamper_signature),
    ("expires", lambda u: _swap(u, "X-Amz-Expires=60", "X-Amz-Expires=900")),
    ("action", lambda u: _swap(u, "Version=2011-06-15", "Version=2011-06-16")),
    ("extra-param", lambda u: u + "&Extra=1"),
    ("access-key", lambda u: _swap(u, AKID, "AKIAIOSFODNN7EXAMPLF")),
]


@pytest.mark.parametrize("tamper", [t for _, t in TAMPERINGS], ids=[n for n, _ in TAMPERINGS])
def test_any_change_breaks_the_signature(presign: Presign, tamper: Callable[[str], str]) -> None:
    url = presign(access_key_id=AKID, secret_access_key=SECRET, at=NOW)
    refusal = _check(tamper(url))
    assert refusal is not None
    assert refusal.code is ErrorCode.SIGNATURE_DOES_NOT_MATCH
    assert refusal.status == 403


def test_missing_signed_header_is_a_mismatch(presign: Presign) -> None:
    auth, host = _auth(presign(access_key_id=AKID, secret_access_key=SECRET, at=NOW))
    refusal = sigv4.check_signature(
        secret_access_key=SECRET, auth=auth, method="GET", path="/", headers={"host": (host,)}
    )
    assert refusal is not None
    assert "x-k8s-aws-id" in refusal.message


def test_header_whitespace_is_canonicalised(presign: Presign) -> None:
    auth, host = _auth(presign(access_key_id=AKID, secret_access_key=SECRET, at=NOW))
    headers = {"host": (host,), "x-k8s-aws-id": ("  cluster-a  ",)}
    assert (
        sigv4.check_signature(
            secret_access_key=SECRET, auth=auth, method="GET", path="/", headers=headers
        )
        is None
    )


_BASE = (
    ("Action", "GetCallerIdentity"),
    ("Version", "2011-06-15"),
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
    ("X-Amz-Credential", f"{AKID}/20261123/us-east-1/sts/aws4_request"),
    ("X-Amz-Date", "20261123T150000Z"),
    ("X-Amz-Expires", "60"),
    ("X-Amz-SignedHeaders", "host;x-k8s-aws-id"),
    ("X-Amz-Signature", "0" * 64),
)


def _without(key: str) -> tuple[tuple[str, str], ...]:
    return tuple(p for p in _BASE if p[0] != key)


def _with(key: str, value: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, value if k == key else v) for k, v in _BASE)


PARSE_REFUSALS = [
    ("no-auth-at-all", _BASE[:2], ErrorCode.MISSING_AUTHENTICATION_TOKEN, 403),
    ("no-signature", _without("X-Amz-Signature"), ErrorCode.INCOMPLETE_SIGNATURE, 400),
    ("no-credential", _without("X-Amz-Credential"), ErrorCode.INCOMPLETE_SIGNATURE, 400),
    ("no-date", _without("X-Amz-Date"), ErrorCode.INCOMPLETE_SIGNATURE, 400),
    (
        "other-algorithm",
        _with("X-Amz-Algorithm", "AWS4-HMAC-SHA1"),
        ErrorCode.INCOMPLETE_SIGNATURE,
        400,
    ),
    (
        "short-credential",
        _with("X-Amz-Credential", f"{AKID}/20261123/us-east-1/sts"),
        ErrorCode.INCOMPLETE_SIGNATURE,
        400,
    ),
    ("bad-date", _with("X-Amz-Date", "2026-11-23T15:00:00Z"), ErrorCode.INCOMPLETE_SIGNATURE, 400),
    (
        "duplicate-key",
        (*_BASE, ("Action", "GetCallerIdentity")),
        ErrorCode.MALFORMED_QUERY_STRING,
        400,
    ),
]


@pytest.mark.parametrize(
    ("params", "code", "status"),
    [p[1:] for p in PARSE_REFUSALS],
    ids=[p[0] for p in PARSE_REFUSALS],
)
def test_parse_refusals(params: tuple[tuple[str, str], ...], code: ErrorCode, status: int) -> None:
    refusal = sigv4.parse_query_auth(params)
    assert isinstance(refusal, Refusal)
    assert (refusal.code, refusal.status) == (code, status)


def test_case_variants_are_distinct_parameters_like_aws() -> None:
    auth = sigv4.parse_query_auth((*_BASE, ("x-amz-credential", "AKIAOTHER/x/y/sts/aws4_request")))
    assert isinstance(auth, QueryAuth)
    assert auth.access_key_id == AKID
    assert ("x-amz-credential", "AKIAOTHER/x/y/sts/aws4_request") in auth.params


def test_parse_query_is_strict_utf8() -> None:
    assert isinstance(sigv4.parse_query("Action=%ff"), Refusal)
    assert sigv4.parse_query("a=%41&b=") == (("a", "A"), ("b", ""))


def _scoped(credential: str, signed: str = "host;x-k8s-aws-id") -> QueryAuth:
    params = _with("X-Amz-Credential", credential)
    params = tuple((k, signed if k == "X-Amz-SignedHeaders" else v) for k, v in params)
    auth = sigv4.parse_query_auth(params)
    assert isinstance(auth, QueryAuth)
    return auth


SCOPES = [
    ("ok", f"{AKID}/20261123/us-east-1/sts/aws4_request", "host;x-k8s-aws-id", None),
    ("other-service", f"{AKID}/20261123/us-east-1/iam/aws4_request", "host", "correct service"),
    ("other-region", f"{AKID}/20261123/eu-west-1/sts/aws4_request", "host", "valid region"),
    ("other-day", f"{AKID}/20261122/us-east-1/sts/aws4_request", "host", "Date in Credential"),
    ("bad-terminator", f"{AKID}/20261123/us-east-1/sts/aws5_request", "host", "terminator"),
    ("host-unsigned", f"{AKID}/20261123/us-east-1/sts/aws4_request", "x-k8s-aws-id", "host header"),
]


@pytest.mark.parametrize(
    ("credential", "signed", "fragment"), [s[1:] for s in SCOPES], ids=[s[0] for s in SCOPES]
)
def test_scope_checks(credential: str, signed: str, fragment: str | None) -> None:
    refusal = sigv4.check_scope(_scoped(credential, signed), region="us-east-1")
    if fragment is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.code is ErrorCode.SIGNATURE_DOES_NOT_MATCH
        assert fragment in refusal.message


WINDOW = [
    ("signed-now", timedelta(0), None),
    ("just-inside", timedelta(minutes=15), None),
    ("just-expired", timedelta(minutes=15, seconds=1), "Signature expired"),
    ("future-inside", -timedelta(minutes=15), None),
    ("future-outside", -timedelta(minutes=15, seconds=1), "not yet current"),
]


@pytest.mark.parametrize(("age", "fragment"), [w[1:] for w in WINDOW], ids=[w[0] for w in WINDOW])
def test_fifteen_minute_window(age: timedelta, fragment: str | None) -> None:
    auth = _scoped(f"{AKID}/20261123/us-east-1/sts/aws4_request")
    refusal = sigv4.check_window(auth, now=NOW + age)
    if fragment is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.code is ErrorCode.SIGNATURE_DOES_NOT_MATCH
        assert fragment in refusal.message


def test_canonical_query_encodes_and_sorts() -> None:
    assert sigv4.canonical_query([("b", "x y"), ("a", "1/2"), ("a", "0~")]) == (
        "a=0~&a=1%2F2&b=x%20y"
    )
