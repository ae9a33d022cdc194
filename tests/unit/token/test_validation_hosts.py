"""Issue 9, section 1: STS hosts whose region has a real region's shape, DNS length limits, and
query keys folded with ASCII-only case folding. All refused before any network call."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from token_factory import NOW, SIGNATURE, build_token, query_pairs

from kubeiam.errors import ConfigError, TokenFormatError
from kubeiam.token.protocol import TOKEN_PREFIX
from kubeiam.token.validation import (
    MAX_LABEL_LENGTH,
    check_query_keys,
    fold_key,
    is_visible_ascii,
    parse_allowed_hosts,
    validate_token,
)


def refused(token: str, fragment: str, *, partition: str = "aws", allowed: Any = None) -> str:
    with pytest.raises(TokenFormatError) as info:
        validate_token(token, partition=partition, now=NOW, allowed_hosts=allowed or frozenset())
    text = str(info.value)
    assert fragment in text
    assert SIGNATURE not in text
    assert token[len(TOKEN_PREFIX) :][:16] not in text
    return text


# --- the host's region must look like a region of the partition -------------------------------

ACCEPTED = [
    ("aws", "sts.us-east-1.amazonaws.com", "us-east-1", "real"),
    ("aws", "sts.ap-southeast-7.amazonaws.com", "ap-southeast-7", "newest"),
    ("aws", "sts.zz-north-17.amazonaws.com", "zz-north-17", "well-formed-fake"),
    ("aws", "sts-fips.us-west-2.amazonaws.com", "us-west-2", "fips"),
    ("aws", "sts.eu-west-1.api.aws", "eu-west-1", "dual-stack"),
    ("aws-us-gov", "sts.us-gov-west-1.amazonaws.com", "us-gov-west-1", "gov"),
    ("aws-cn", "sts.cn-northwest-1.amazonaws.com.cn", "cn-northwest-1", "china"),
    ("aws-eusc", "sts.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1", "eusc-country"),
    ("aws-iso-b", "sts.us-isob-east-1.sc2s.sgov.gov", "us-isob-east-1", "iso-b"),
]


@pytest.mark.parametrize(
    ("partition", "host", "region"), [pytest.param(*c[:3], id=c[3]) for c in ACCEPTED]
)
def test_hosts_with_a_region_shape_are_accepted(partition: str, host: str, region: str) -> None:
    request = validate_token(build_token(host, region=region), partition=partition, now=NOW)
    assert request.region == region


REFUSED = [
    ("sts.evil.amazonaws.com", "evil", "word"),
    ("sts.us-east.amazonaws.com", "us-east", "no-number"),
    ("sts.us-east-01.amazonaws.com", "us-east-01", "leading-zero"),
    ("sts.us-east-100.amazonaws.com", "us-east-100", "three-digits"),
    ("sts.us-up-1.amazonaws.com", "us-up-1", "not-a-direction"),
    ("sts.usa-east-1.amazonaws.com", "usa-east-1", "three-letter-geography"),
    ("sts.us-x-east-1.amazonaws.com", "us-x-east-1", "extra-label"),
    ("sts.eu-gov-west-1.amazonaws.com", "eu-gov-west-1", "gov-infix-outside-gov"),
    ("sts.us-gov-west-1.amazonaws.com", "us-gov-west-1", "other-partitions-region"),
    ("sts.1a-east-1.amazonaws.com", "1a-east-1", "digit-in-geography"),
    ("sts." + "a" * 40 + "-east-1.amazonaws.com", "a" * 40 + "-east-1", "long-region"),
]


@pytest.mark.parametrize(("host", "region"), [pytest.param(*c[:2], id=c[2]) for c in REFUSED])
def test_hosts_without_a_region_shape_are_refused(host: str, region: str) -> None:
    refused(build_token(host, region=region), "is not an STS endpoint of partition aws")


@pytest.mark.parametrize(
    "host",
    [
        "sts." + "a" * (MAX_LABEL_LENGTH + 1) + ".amazonaws.com",
        "sts." + "a" * 200 + ".amazonaws.com",
        "sts-fips." + "b-" * 40 + "c.amazonaws.com",
        ".".join(["a" * 60] * 5),
    ],
    ids=["label-64", "label-200", "label-hyphens-81", "name-304"],
)
def test_labels_beyond_dns_limits_are_refused_as_token_errors(host: str) -> None:
    """A label over 63 characters once escaped as an HTTP 500 (the IDNA codec's UnicodeError)."""
    refused(build_token(host), "not a valid host name")


def test_an_allowed_host_is_the_only_way_past_the_shape() -> None:
    host = "vpce-0abc-xyz.sts.eu-west-1.vpce.amazonaws.com"
    token = build_token(host, region="eu-west-1")
    refused(token, "--sts-allowed-host")
    assert validate_token(
        token, partition="aws", now=NOW, allowed_hosts=frozenset({f"{host}=eu-west-1"})
    )


@pytest.mark.parametrize(
    "entry",
    [
        "a" * 64 + ".example=us-east-1",
        "vpce.example=evil",
        "vpce.example=us-east-001",
        "vpce.example=" + "a" * 70,
    ],
    ids=["long-label", "region-word", "region-number", "region-long"],
)
def test_allowed_host_entries_are_bounded_too(entry: str) -> None:
    with pytest.raises(ConfigError, match="is not HOST=REGION"):
        parse_allowed_hosts([entry])


# --- query keys fold ASCII letters only -------------------------------------------------------

KELVIN = "\u212a"  # lower-cases to 'k'
DOTLESS_I = "\u0131"  # upper-cases to 'I'
DOTTED_CAPITAL_I = "\u0130"  # lower-cases to 'i' + combining dot
LONG_S = "\u017f"  # upper-cases to 'S'


@pytest.mark.parametrize(
    ("key", "canonical"),
    [
        (f"X-Amz-Security-To{KELVIN}en", "X-Amz-Security-Token"),
        (f"X-Amz-S{DOTLESS_I}gnature", "X-Amz-Signature"),
        (f"Act{DOTTED_CAPITAL_I}on", "Action"),
        (f"X-Amz-{LONG_S}ignedHeaders", "X-Amz-SignedHeaders"),
        ("X-Amz-Date\u0000", "X-Amz-Date"),
    ],
    ids=["kelvin-sign", "dotless-i", "dotted-capital-i", "long-s", "nul"],
)
def test_keys_that_match_only_through_unicode_case_folding_are_refused(
    key: str, canonical: str
) -> None:
    assert fold_key(key) != canonical.lower()
    pairs = [(key if k == canonical else k, v) for k, v in query_pairs(session_token="FwoG")]
    with pytest.raises(TokenFormatError, match="is not allowed") as info:
        check_query_keys(pairs)
    assert "(unprintable)" in str(info.value)
    # ... and through the whole pipeline, percent-encoded as UTF-8 inside a token
    refused(build_token(pairs=pairs), "is not allowed")


def test_kelvin_sign_would_have_folded_with_str_lower() -> None:
    """The class of bug this guards against: Python's lower() maps U+212A to ASCII 'k'."""
    assert f"X-Amz-Security-To{KELVIN}en".lower() == "x-amz-security-token"
    assert fold_key(f"X-Amz-Security-To{KELVIN}en") != "x-amz-security-token"


def test_ascii_case_still_folds() -> None:
    pairs = [(k.upper(), v) for k, v in query_pairs()]
    assert set(check_query_keys(pairs)) >= {"action", "x-amz-date", "x-amz-signature"}


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_fold_key_lowers_ascii_letters_only(key: str) -> None:
    expected = "".join(c.lower() if "A" <= c <= "Z" else c for c in key)
    assert fold_key(key) == expected


def test_visible_ascii_is_exactly_x21_to_x7e() -> None:
    for code in range(0x3000):
        char = chr(code)
        assert is_visible_ascii(f"a{char}b") is (0x21 <= code <= 0x7E), hex(code)
    assert is_visible_ascii("")
