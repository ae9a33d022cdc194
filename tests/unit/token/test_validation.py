"""Every pre-network rule of protocol.md section 2, and the attack classes of section 5."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from token_factory import (
    AKID,
    DATE,
    FIXTURES,
    NOW,
    SESSION_TOKEN,
    SIGNATURE,
    botocore_presigned_url,
    build_token,
    build_url,
    encode_query,
    query_pairs,
)

from kubeiam.errors import ConfigError, TokenExpiredError, TokenFormatError
from kubeiam.token.encoding import encode_token
from kubeiam.token.presign import uri_encode
from kubeiam.token.protocol import MAX_TOKEN_BYTES, TOKEN_PREFIX
from kubeiam.token.validation import (
    PresignedRequest,
    parse_allowed_hosts,
    percent_decode,
    serialise_url,
    split_query,
    validate_token,
)

HOST = "sts.us-east-1.amazonaws.com"

ERRORS: dict[str, type[Exception]] = {
    "TokenFormatError": TokenFormatError,
    "TokenExpiredError": TokenExpiredError,
}


def _attack_cases() -> list[Any]:
    doc = json.loads((FIXTURES / "attacks.json").read_text())
    assert datetime.fromisoformat(doc["now"].replace("Z", "+00:00")) == NOW
    return [pytest.param(case, id=case["id"]) for case in doc["cases"]]


def assert_refused(
    token: str,
    error: type[Exception],
    fragment: str,
    *,
    partition: str = "aws",
    now: datetime = NOW,
    allowed_hosts: Any = frozenset(),
) -> None:
    with pytest.raises(error) as info:
        validate_token(token, partition=partition, now=now, allowed_hosts=allowed_hosts)
    text = str(info.value)
    assert fragment in text
    # Never echo the token, the URL inside it, or the signature.
    assert token not in text
    assert SIGNATURE not in text
    body = token[len(TOKEN_PREFIX) :]
    if len(body) > 16:
        assert body[:16] not in text


# --- section 5: the attack vectors kept as a file (the server's tests reuse it) ----------------


@pytest.mark.parametrize("case", _attack_cases())
def test_attack_vectors_are_refused_before_any_network_call(case: dict[str, str]) -> None:
    assert_refused(
        encode_token(case["url"]),
        ERRORS[case["error"]],
        case["message"],
        partition=case["partition"],
    )


# --- accepted tokens ---------------------------------------------------------------------------

ACCEPTED = [
    pytest.param("aws", "sts.us-east-1.amazonaws.com", "us-east-1", {}, id="regional"),
    pytest.param("aws", "sts.eu-west-1.amazonaws.com", "eu-west-1", {}, id="eu-west-1"),
    pytest.param("aws", "sts.amazonaws.com", "us-east-1", {}, id="global-signs-us-east-1"),
    pytest.param("aws", "sts-fips.us-east-2.amazonaws.com", "us-east-2", {}, id="fips"),
    pytest.param("aws", "sts.us-west-2.api.aws", "us-west-2", {}, id="dual-stack"),
    pytest.param("aws-cn", "sts.cn-north-1.amazonaws.com.cn", "cn-north-1", {}, id="china"),
    pytest.param(
        "aws-cn", "sts.cn-northwest-1.api.amazonwebservices.com.cn", "cn-northwest-1", {},
        id="china-dual-stack",
    ),
    pytest.param("aws-us-gov", "sts.us-gov-west-1.amazonaws.com", "us-gov-west-1", {}, id="gov"),
    pytest.param("aws-iso", "sts.us-iso-east-1.c2s.ic.gov", "us-iso-east-1", {}, id="iso"),
    pytest.param("aws-eusc", "sts.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1", {}, id="eusc"),
    pytest.param("aws", "sts.us-east-1.amazonaws.com", "us-east-1",
                 {"session_token": SESSION_TOKEN}, id="session-token"),
    pytest.param("aws", "sts.us-east-1.amazonaws.com", "us-east-1", {"X_Amz_Expires": "0"},
                 id="expires-0"),
    pytest.param("aws", "sts.us-east-1.amazonaws.com", "us-east-1", {"X_Amz_Expires": "900"},
                 id="expires-900"),
    pytest.param("aws", "sts.us-east-1.amazonaws.com", "us-east-1",
                 {"X_Amz_SignedHeaders": "host;x-amz-date;x-k8s-aws-id"}, id="more-signed-headers"),
]  # fmt: skip


@pytest.mark.parametrize(("partition", "host", "region", "kwargs"), ACCEPTED)
def test_accepted_token_yields_the_checked_request(
    partition: str, host: str, region: str, kwargs: dict[str, str]
) -> None:
    url = build_url(host, region=region, **kwargs)
    request = validate_token(encode_token(url), partition=partition, now=NOW)
    assert request == PresignedRequest(
        url=url,
        host=host,
        region=region,
        access_key_id=AKID,
        signed_at=NOW,
        expires_at=NOW + timedelta(minutes=15),
    )


def test_operator_listed_vpc_endpoint_is_accepted_with_its_region() -> None:
    host = "vpce-0abc-xyz.sts.eu-west-1.vpce.amazonaws.com"
    token = build_token(host, region="eu-west-1")
    request = validate_token(token, partition="aws", now=NOW, allowed_hosts={host: "eu-west-1"})
    assert (request.host, request.region) == (host, "eu-west-1")
    as_strings = frozenset({f"{host}=eu-west-1"})
    assert validate_token(token, partition="aws", now=NOW, allowed_hosts=as_strings) == request
    # Listing a host does not change the scope check: it still signs for the listed region.
    assert_refused(
        build_token(host, region="us-east-1"),
        TokenFormatError,
        "signed for region",
        allowed_hosts={host: "eu-west-1"},
    )


@pytest.mark.parametrize(
    "entry",
    [
        "no-region",
        "Upper.Example=us-east-1",
        "host.example=",
        "host.example=US-EAST-1",
        "=us-east-1",
    ],
    ids=["no-equals", "upper-case-host", "empty-region", "upper-case-region", "empty-host"],
)
def test_malformed_allowed_host_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError):
        parse_allowed_hosts([entry])


def test_unknown_partition_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown AWS partition"):
        validate_token(build_token(), partition="aws-mars", now=NOW)


# --- re-serialisation: what STS receives is what was checked ----------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            encode_query(query_pairs()).replace("%2F", "%2f"),
            encode_query(query_pairs()),
            id="lower-case-escapes-upper-cased",
        ),
        pytest.param(
            encode_query(query_pairs(session_token="AAA+BBB")).replace("%2B", "+"),
            encode_query(query_pairs(session_token="AAA+BBB")),
            id="literal-plus-is-a-plus",
        ),
        pytest.param(
            encode_query(query_pairs()).replace("Action=", "%41ction="),
            encode_query(query_pairs()),
            id="escaped-key-normalised",
        ),
        pytest.param(
            encode_query(list(reversed(query_pairs()))),
            encode_query(list(reversed(query_pairs()))),
            id="order-kept",
        ),
    ],
)
def test_url_is_reserialised_from_the_parsed_parts(query: str, expected: str) -> None:
    request = validate_token(build_token(query=query), partition="aws", now=NOW)
    assert request.url == f"https://sts.us-east-1.amazonaws.com/?{expected}"


def rebuilt(host: str, pairs: list[tuple[str, str]]) -> str:
    """The URL rebuilt from decoded parts: what serialise_url must send, however it gets there."""
    return f"https://{host}/?" + "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in pairs)


def spell(raw: bytes, style: int) -> str:
    """``raw`` percent-encoded one way: 0 canonical, 1 lower-case hex, 2 everything escaped,
    3 printable characters literal (as careless clients write)."""
    if style == 0:
        return uri_encode(raw.decode("utf-8", "replace"))
    escape = "%{:02x}" if style == 1 else "%{:02X}"
    return "".join(
        chr(b) if style == 3 and 0x20 < b < 0x7F and chr(b) not in "%&=" else escape.format(b)
        for b in raw
    )


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.binary(min_size=1, max_size=40), st.binary(min_size=1, max_size=40)),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(0, 3), min_size=12, max_size=12),
)
def test_serialised_url_is_the_rebuilt_url_however_the_query_was_spelled(
    raw_pairs: list[tuple[bytes, bytes]], styles: list[int]
) -> None:
    """A query already in canonical form is sent as it came; any other spelling is rebuilt:
    either way STS receives the re-encoding of exactly the parts that were checked."""
    query = "&".join(
        f"{spell(k, styles[2 * i])}={spell(v, styles[2 * i + 1])}"
        for i, (k, v) in enumerate(raw_pairs)
    )
    try:
        pairs = split_query(query)
    except TokenFormatError:
        return  # bytes that are not UTF-8: refused before any URL is built
    assert serialise_url(HOST, query, pairs) == rebuilt(HOST, pairs)


@pytest.mark.parametrize("case", ["{:02X}", "{:02x}"], ids=["upper", "lower"])
def test_every_escaped_byte_reaches_sts_in_canonical_form(case: str) -> None:
    for byte in range(0x80):
        query = "Action=GetCallerIdentity&v=%" + case.format(byte)
        pairs = split_query(query)
        assert serialise_url(HOST, query, pairs) == rebuilt(HOST, pairs), hex(byte)


BOTOCORE_HOSTS = [
    pytest.param("sts.us-east-1.amazonaws.com", "us-east-1", "aws", None, id="regional"),
    pytest.param("sts.amazonaws.com", "us-east-1", "aws", None, id="global"),
    pytest.param("sts-fips.us-west-2.amazonaws.com", "us-west-2", "aws", None, id="fips"),
    pytest.param("sts.ap-south-1.api.aws", "ap-south-1", "aws", SESSION_TOKEN,
                 id="dualstack-session"),
    pytest.param("sts.cn-north-1.amazonaws.com.cn", "cn-north-1", "aws-cn", None, id="china"),
    pytest.param("sts.us-gov-east-1.amazonaws.com", "us-gov-east-1", "aws-us-gov", SESSION_TOKEN,
                 id="gov-session"),
]  # fmt: skip


@pytest.mark.parametrize(("host", "region", "partition", "session_token"), BOTOCORE_HOSTS)
def test_botocore_presigned_urls_pass_and_reserialise_byte_for_byte(
    host: str, region: str, partition: str, session_token: str | None
) -> None:
    url = botocore_presigned_url(host=host, region=region, session_token=session_token)
    request = validate_token(encode_token(url), partition=partition, now=datetime.now(UTC))
    assert request.url == url
    assert (request.host, request.region, request.access_key_id) == (host, region, AKID)


def test_presigned_request_repr_hides_the_url() -> None:
    request = validate_token(build_token(session_token=SESSION_TOKEN), partition="aws", now=NOW)
    assert SIGNATURE not in repr(request)
    assert "Security-Token" not in repr(request)
    assert AKID in repr(request)


# --- rules 1 and 2: the token's envelope -------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


ENVELOPE = [
    pytest.param(TOKEN_PREFIX + "A" * MAX_TOKEN_BYTES, "longer than", id="too-long"),
    pytest.param("k8s-aws-v2." + _b64(b"https://x/"), "does not start", id="other-prefix"),
    pytest.param("K8S-AWS-V1." + _b64(b"https://x/"), "does not start", id="upper-prefix"),
    pytest.param(TOKEN_PREFIX, "nothing after", id="empty-body"),
    pytest.param(TOKEN_PREFIX + "aHR0cHM6Ly94Lw==", "unpadded base64url", id="padding"),
    pytest.param(TOKEN_PREFIX + "aHR0+cHM6", "unpadded base64url", id="plus"),
    pytest.param(TOKEN_PREFIX + "aHR0/cHM6", "unpadded base64url", id="slash"),
    pytest.param(TOKEN_PREFIX + "aHR0cHM6\n", "unpadded base64url", id="trailing-newline"),
    pytest.param(TOKEN_PREFIX + "aHR0 cHM6", "unpadded base64url", id="space"),
    pytest.param(TOKEN_PREFIX + "aHR0c", "impossible base64url length", id="length-1-mod-4"),
    pytest.param(TOKEN_PREFIX + "aHR0cHN", "not canonical", id="non-canonical-bits"),
    pytest.param(TOKEN_PREFIX + _b64(b"https://\xff/"), "UTF-8", id="not-utf8"),
]


@pytest.mark.parametrize(("token", "fragment"), ENVELOPE)
def test_envelope_rules(token: str, fragment: str) -> None:
    assert_refused(token, TokenFormatError, fragment)


def test_token_of_exactly_the_maximum_length_passes_the_length_rule() -> None:
    # A long session token brings a real token near the limit; 4096 itself is still allowed.
    token = build_token(session_token="A" * 2600)
    assert len(token) <= MAX_TOKEN_BYTES
    assert validate_token(token, partition="aws", now=NOW).access_key_id == AKID


# --- rule 5: the query ------------------------------------------------------------------------

BASE = encode_query(query_pairs())

QUERY = [
    pytest.param(BASE + "&", "empty parameter", id="trailing-ampersand"),
    pytest.param(BASE.replace("&", "&&", 1), "empty parameter", id="double-ampersand"),
    pytest.param(BASE + "&Version", "no value", id="key-without-value"),
    pytest.param(BASE + "&X-Amz-Security-Token=", "Security-Token is empty", id="empty-value"),
    pytest.param(BASE + "&Foo=bar", "'Foo'", id="unknown-key-named"),
    pytest.param(BASE + "&%0A=bar", "(unprintable)", id="unknown-key-unprintable"),
    pytest.param(BASE.replace("Action=", "Act%zzion="), "percent-escape", id="bad-escape"),
    pytest.param(BASE + "&X-Amz-Security-Token=abc%4", "percent-escape", id="truncated-escape"),
    pytest.param(BASE + "&X-Amz-Security-Token=%ff", "UTF-8", id="escaped-invalid-utf8"),
    pytest.param(BASE + "&X-Amz-Security-Token=a%0Ab", "control", id="escaped-newline-value"),
    pytest.param(BASE + "&X-Amz-Security-Token=a%20b", "spaces", id="escaped-space-value"),
    pytest.param(
        encode_query(query_pairs(X_Amz_Signature=None)), "lacks X-Amz-Signature", id="no-signature"
    ),
    pytest.param(encode_query(query_pairs(Action=None)), "lacks Action", id="no-action"),
    pytest.param(
        encode_query(query_pairs(X_Amz_Date=None, Version=None)),
        "lacks Version, X-Amz-Date",
        id="missing-keys-listed",
    ),
]


@pytest.mark.parametrize(("query", "fragment"), QUERY)
def test_query_rules(query: str, fragment: str) -> None:
    assert_refused(build_token(query=query), TokenFormatError, fragment)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("abc", "abc"), ("a%2Fb", "a/b"), ("a%2fb", "a/b"), ("a+b", "a+b"), ("%C3%A9", "é")],
    ids=["plain", "upper-escape", "lower-escape", "plus-is-literal", "utf8"],
)
def test_percent_decode(text: str, expected: str) -> None:
    assert percent_decode(text) == expected


# --- rules 6 to 10: the parameters ------------------------------------------------------------

PARAMS = [
    pytest.param({"X_Amz_SignedHeaders": "x-k8s-aws-id"}, "host header", id="host-not-signed"),
    pytest.param({"X_Amz_SignedHeaders": "host;;x-k8s-aws-id"}, "SignedHeaders", id="empty-header"),
    pytest.param({"X_Amz_SignedHeaders": "Host;X-K8s-Aws-Id"}, "SignedHeaders", id="upper-headers"),
    pytest.param({"X_Amz_Signature": SIGNATURE.upper()}, "X-Amz-Signature", id="upper-hex-sig"),
    pytest.param({"X_Amz_Signature": SIGNATURE[:-1]}, "X-Amz-Signature", id="short-signature"),
    pytest.param({"X_Amz_Signature": "g" * 64}, "X-Amz-Signature", id="non-hex-signature"),
    pytest.param({"X_Amz_Expires": "-1"}, "X-Amz-Expires", id="expires-negative"),
    pytest.param({"X_Amz_Expires": "901"}, "X-Amz-Expires", id="expires-901"),
    pytest.param({"X_Amz_Expires": "60.0"}, "X-Amz-Expires", id="expires-float"),
    pytest.param({"X_Amz_Expires": ""}, "X-Amz-Expires is empty", id="expires-empty"),
    pytest.param({"X_Amz_Expires": "0x10"}, "X-Amz-Expires", id="expires-hex"),
    pytest.param({"X_Amz_Date": "2026-11-23T15:00:00Z"}, "form", id="date-iso-format"),
    pytest.param({"X_Amz_Date": "20261123T150000"}, "form", id="date-no-z"),
    pytest.param({"X_Amz_Date": "20261332T250000Z"}, "valid date", id="date-impossible"),
    pytest.param(
        {"X_Amz_Credential": f"{AKID}/20261123/us-east-1/sts"}, "AKID/", id="cred-4-parts"
    ),
    pytest.param(
        {"X_Amz_Credential": f"{AKID}/20261123/us-east-1/sts/aws4_request/x"},
        "AKID/",
        id="cred-6-parts",
    ),
    pytest.param(
        {"X_Amz_Credential": "akiaiosfodnn7example/20261123/us-east-1/sts/aws4_request"},
        "access key id",
        id="cred-lower-akid",
    ),
    pytest.param(
        {"X_Amz_Credential": f"{AKID}/20261123/us-east-1/sts/aws4"},
        "sts/aws4_request",
        id="cred-terminator",
    ),
    pytest.param(
        {"X_Amz_Credential": f"{AKID}/20261123/US-EAST-1/sts/aws4_request"},
        "signed for region",
        id="cred-upper-region",
    ),
    pytest.param(
        {"X_Amz_Credential": f"{AKID}/20261123/us-east-1!/sts/aws4_request"},
        "(malformed)",
        id="cred-malformed-region",
    ),
]


@pytest.mark.parametrize(("overrides", "fragment"), PARAMS)
def test_parameter_rules(overrides: dict[str, str], fragment: str) -> None:
    assert_refused(build_token(**overrides), TokenFormatError, fragment)


def test_credential_messages_name_the_access_key_id() -> None:
    with pytest.raises(TokenFormatError, match=AKID):
        validate_token(build_token(region="us-west-2"), partition="aws", now=NOW)


def test_fips_host_needs_its_own_region_in_the_scope() -> None:
    assert_refused(
        build_token("sts-fips.us-east-2.amazonaws.com", region="us-east-1"),
        TokenFormatError,
        "signed for region",
    )


# --- rule 9: the 15-minute window and the skew bound -------------------------------------------

WINDOW = [
    pytest.param(timedelta(0), True, id="just-signed"),
    pytest.param(timedelta(minutes=15), True, id="exactly-15-min-old"),
    pytest.param(timedelta(minutes=15, seconds=1), False, id="15-min-1-s-old"),
    pytest.param(timedelta(hours=5), False, id="hours-old"),
    pytest.param(-timedelta(minutes=5), True, id="exactly-5-min-ahead"),
    pytest.param(-timedelta(minutes=5, seconds=1), False, id="5-min-1-s-ahead"),
    pytest.param(-timedelta(days=1), False, id="a-day-ahead"),
]


@pytest.mark.parametrize(("age", "accepted"), WINDOW)
def test_time_window(age: timedelta, accepted: bool) -> None:
    token = build_token()
    now = NOW + age
    if accepted:
        assert validate_token(token, partition="aws", now=now).signed_at == NOW
    else:
        assert_refused(token, TokenExpiredError, "", now=now)


def test_expired_message_says_when_and_how_to_fix() -> None:
    with pytest.raises(TokenExpiredError) as info:
        validate_token(build_token(), partition="aws", now=NOW + timedelta(minutes=20))
    assert "2026-11-23T15:00:00Z" in str(info.value)
    assert "1200 s ago" in str(info.value)
    assert info.value.hint is not None


def test_naive_clock_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_token(build_token(), partition="aws", now=NOW.replace(tzinfo=None))


def test_day_check_uses_the_date_parameter() -> None:
    # Signed one second before midnight: the credential's day is the previous day.
    date = "20261122T235959Z"
    token = build_token(date=date)
    request = validate_token(token, partition="aws", now=NOW - timedelta(hours=15))
    assert request.signed_at == datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC)
    assert DATE[:8] not in request.url
