"""The stdlib presigner against its oracle, botocore's ``generate_presigned_url``.

botocore's clock is frozen by replacing ``botocore.auth.get_current_datetime``, the one function
its SigV4 signers read the time from (clock injection, not a behaviour mock).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import botocore.args
import botocore.auth
import botocore.config
import botocore.session
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeiam.partitions import (
    LEGACY_GLOBAL_REGIONS,
    PARTITIONS,
    REGION_LABEL,
    is_region_label,
    sts_endpoint,
    sts_host_region,
)
from kubeiam.token.encoding import decode_token, encode_token
from kubeiam.token.presign import hmac_sha256, presign_get_caller_identity, uri_encode


def _session(sts_regional_endpoints: str) -> botocore.session.Session:
    session = botocore.session.get_session()
    session.set_config_variable("config_file", "/nonexistent/kubeiam-test-config")
    session.set_config_variable("credentials_file", "/nonexistent/kubeiam-test-credentials")
    session.set_config_variable("sts_regional_endpoints", sts_regional_endpoints)
    return session


#: One session per sts_regional_endpoints mode (keyed by "legacy?"): creating clients from a
#: warm session is cheap, loading a new session's data is not.
_SESSIONS = {False: _session("regional"), True: _session("legacy")}
_SESSION = _SESSIONS[False]


def _botocore_regions() -> list[str]:
    regions: set[str] = set()
    for partition in _SESSION.get_available_partitions():
        regions.update(_SESSION.get_available_regions("sts", partition_name=partition))
    return sorted(regions)


#: Regions that do not exist yet, one per partition, shaped to fit botocore's region patterns
#: (new regions appear before botocore's data lists them).
FUTURE_REGIONS = {
    "us-east-9",
    "ap-future-3",
    "us-gov-future-1",
    "cn-future-1",
    "eusc-de-future-1",
    "us-iso-future-1",
    "us-isob-future-1",
    "eu-isoe-future-1",
    "us-isof-future-1",
}
#: Every region botocore knows for STS, the future ones, and no region at all.
REGIONS: list[str | None] = [
    None,
    *sorted(({*_botocore_regions()} - {"aws-global"}) | FUTURE_REGIONS),
]
#: Partitions for which botocore has a dual-stack STS domain that kubeiam.partitions does not
#: list (botocore 1.44: api.aws.ic.gov, api.aws.scloud). kubeiam refuses dual-stack there.
_NO_DUALSTACK = tuple(
    prefix
    for p in PARTITIONS.values()
    if p.dualstack_domain is None
    for prefix in p.region_prefixes
)


def _botocore_url(
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str | None,
    cluster_id: str,
    now: datetime,
    legacy: bool = False,
    fips: bool = False,
    dualstack: bool = False,
) -> str:
    client = _SESSIONS[legacy].create_client(
        "sts",
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        config=botocore.config.Config(use_fips_endpoint=fips, use_dualstack_endpoint=dualstack),
    )

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers["x-k8s-aws-id"] = cluster_id

    client.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    frozen = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: frozen  # type: ignore[assignment]
    try:
        return str(
            client.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
        )
    finally:
        botocore.auth.get_current_datetime = original


_KEY_ID = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=20).map(
    lambda s: "AKIA" + s
)
_SECRET = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60
)
#: Session tokens are base64 text: long ones with / + = are the interesting ones.
_TOKEN = st.none() | st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=", max_size=1200
)
#: Cluster ids with odd characters: spaces (collapsed by SigV4), punctuation, non-ASCII.
_CLUSTER_ID = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80
).filter(lambda s: s.strip() != "")
_NOW = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)
).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    access_key_id=_KEY_ID,
    secret_access_key=_SECRET,
    session_token=_TOKEN,
    region=st.sampled_from(REGIONS),
    cluster_id=_CLUSTER_ID,
    now=_NOW,
    fips=st.booleans(),
    dualstack=st.booleans(),
    legacy=st.booleans(),
)
def test_presigned_url_is_byte_identical_to_botocore(
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str | None,
    cluster_id: str,
    now: datetime,
    fips: bool,
    dualstack: bool,
    legacy: bool,
) -> None:
    if region is None:
        fips = dualstack = False  # botocore's aws-global hosts: see the test below
    elif dualstack and region.startswith(_NO_DUALSTACK):
        dualstack = False  # see test_dualstack_refused_where_kubeiam_knows_no_dualstack_domain
    host, signing_region = sts_endpoint(region, legacy=legacy, fips=fips, dualstack=dualstack)
    ours = presign_get_caller_identity(
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
        region=signing_region,
        host=host,
        cluster_id=cluster_id,
        now=now,
    )
    theirs = _botocore_url(
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
        region=region,
        cluster_id=cluster_id,
        now=now,
        legacy=legacy,
        fips=fips,
        dualstack=dualstack,
    )
    assert ours == theirs
    assert decode_token(encode_token(ours)) == ours


HOST_CASES = [
    # (region, legacy, fips, dualstack, host, signing region)
    ("us-west-2", False, False, False, "sts.us-west-2.amazonaws.com", "us-west-2"),
    (None, False, False, False, "sts.amazonaws.com", "us-east-1"),
    ("us-west-2", True, False, False, "sts.amazonaws.com", "us-east-1"),
    ("ap-east-1", True, False, False, "sts.ap-east-1.amazonaws.com", "ap-east-1"),
    ("us-east-1", False, True, False, "sts-fips.us-east-1.amazonaws.com", "us-east-1"),
    ("us-east-1", True, True, False, "sts-fips.us-east-1.amazonaws.com", "us-east-1"),
    ("eu-west-1", False, False, True, "sts.eu-west-1.api.aws", "eu-west-1"),
    ("eu-west-1", False, True, True, "sts-fips.eu-west-1.api.aws", "eu-west-1"),
    ("cn-north-1", False, False, False, "sts.cn-north-1.amazonaws.com.cn", "cn-north-1"),
    (
        "cn-northwest-1",
        True,
        False,
        True,
        "sts.cn-northwest-1.api.amazonwebservices.com.cn",
        "cn-northwest-1",
    ),
    ("us-gov-west-1", False, True, False, "sts.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
    ("us-gov-east-1", False, True, True, "sts-fips.us-gov-east-1.api.aws", "us-gov-east-1"),
    ("us-iso-east-1", False, False, False, "sts.us-iso-east-1.c2s.ic.gov", "us-iso-east-1"),
    ("eusc-de-east-1", False, False, False, "sts.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1"),
    ("aws-global", False, False, False, "sts.amazonaws.com", "us-east-1"),
]


@pytest.mark.parametrize(
    ("region", "legacy", "fips", "dualstack", "host", "signing_region"),
    HOST_CASES,
    ids=[f"{c[0]}-legacy{int(c[1])}-fips{int(c[2])}-ds{int(c[3])}" for c in HOST_CASES],
)
def test_sts_endpoint_table(
    region: str | None, legacy: bool, fips: bool, dualstack: bool, host: str, signing_region: str
) -> None:
    assert sts_endpoint(region, legacy=legacy, fips=fips, dualstack=dualstack) == (
        host,
        signing_region,
    )
    # Whatever kubeiam signs for, its own verifier accepts for that partition.
    partition = "aws-us-gov" if (region or "").startswith("us-gov-") else None
    partition = partition or ("aws-cn" if (region or "").startswith("cn-") else None)
    partition = partition or ("aws-iso" if (region or "").startswith("us-iso-") else None)
    partition = partition or ("aws-eusc" if (region or "").startswith("eusc-") else "aws")
    assert sts_host_region(host, partition) == signing_region


def test_legacy_global_regions_are_botocores() -> None:
    assert set(botocore.args.LEGACY_GLOBAL_STS_REGIONS) == LEGACY_GLOBAL_REGIONS


def test_fips_without_region_signs_for_us_east_1_not_botocores_missing_host() -> None:
    # Deliberate difference: botocore builds sts-fips.aws-global.amazonaws.com, which does not
    # exist; kubeiam signs for us-east-1.
    assert sts_endpoint(None, fips=True) == ("sts-fips.us-east-1.amazonaws.com", "us-east-1")
    assert sts_endpoint(None, dualstack=True) == ("sts.us-east-1.api.aws", "us-east-1")


@pytest.mark.parametrize("region", ["us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1"])
def test_dualstack_refused_where_kubeiam_knows_no_dualstack_domain(region: str) -> None:
    with pytest.raises(ValueError, match="no dual-stack"):
        sts_endpoint(region, dualstack=True)


def test_known_vector() -> None:
    # Computed once with botocore 1.44 (the property test above keeps checking it).
    url = presign_get_caller_identity(
        access_key_id="AKIDEXAMPLE",
        secret_access_key="secret",
        session_token="tok/+= en",
        region="us-west-2",
        host="sts.us-west-2.amazonaws.com",
        cluster_id="  my  cluster/ü ",
        now=datetime(2026, 1, 2, 3, 4, 5),
    )
    assert url == (
        "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Fus-west-2%2Fsts%2Faws4_request"
        "&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"
        "&X-Amz-Security-Token=tok%2F%2B%3D%20en"
        "&X-Amz-Signature=d97867f0fad751cb346277c7576abd96f029f9ac47f12ead7c0c72396d4723f2"
    )


def test_aware_and_naive_now_sign_the_same_instant() -> None:
    kwargs: dict[str, Any] = {
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": "s",
        "session_token": None,
        "region": "us-east-1",
        "host": "sts.us-east-1.amazonaws.com",
        "cluster_id": "c",
    }
    naive = presign_get_caller_identity(now=datetime(2026, 5, 1, 12, 0, 0), **kwargs)
    plus_two = timezone(timedelta(hours=2))
    aware = presign_get_caller_identity(
        now=datetime(2026, 5, 1, 14, 0, 0, tzinfo=plus_two), **kwargs
    )
    assert naive == aware


def test_cluster_id_is_a_signed_header_not_a_query_parameter() -> None:
    url = presign_get_caller_identity(
        access_key_id="AKIDEXAMPLE",
        secret_access_key="s",
        session_token=None,
        region="us-east-1",
        host="sts.us-east-1.amazonaws.com",
        cluster_id="prod-cluster",
        now=datetime(2026, 5, 1),
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert "prod-cluster" not in url
    assert query["X-Amz-SignedHeaders"] == ["host;x-k8s-aws-id"]
    assert query["X-Amz-Expires"] == ["60"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_uri_encode_is_rfc3986(value: str) -> None:
    assert uri_encode(value) == urllib.parse.quote(value, safe="-_.~")


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=200), msg=st.binary(max_size=300))
def test_hmac_sha256_matches_the_stdlib(key: bytes, msg: bytes) -> None:
    assert hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="abcz09-A_.\n ", max_size=12)
    | st.from_regex(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", fullmatch=True)
)
def test_region_label_check_equals_the_pattern(label: str) -> None:
    assert is_region_label(label) == bool(REGION_LABEL.fullmatch(label))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_encode_token_is_unpadded_base64url(url: str) -> None:
    token = encode_token(url)
    body = token.removeprefix("k8s-aws-v1.")
    assert body == base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    assert decode_token(token) == url


@settings(max_examples=100, deadline=None)
@given(now=_NOW)
def test_unix_seconds_sign_like_the_datetime(now: datetime) -> None:
    kwargs: dict[str, Any] = {
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": "s",
        "session_token": "t",
        "region": "eu-west-1",
        "host": "sts.eu-west-1.amazonaws.com",
        "cluster_id": "c",
    }
    seconds = now.replace(tzinfo=UTC).timestamp()
    assert presign_get_caller_identity(now=seconds, **kwargs) == presign_get_caller_identity(
        now=now, **kwargs
    )
    assert presign_get_caller_identity(now=seconds + 0.9, **kwargs) == presign_get_caller_identity(
        now=now, **kwargs
    )
