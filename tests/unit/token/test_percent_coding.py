"""The product's one SigV4 URI encoder (presign.uri_encode, which validation re-serialises with),
and validation's strict decoding.

Both are on every review's path; each is checked against a byte-by-byte statement of its rule.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.errors import TokenFormatError
from kubeiam.token.presign import uri_encode
from kubeiam.token.validation import percent_decode

CASES = [
    ("", ""),
    ("GetCallerIdentity", "GetCallerIdentity"),
    (
        "AKIAEXAMPLE/20261123/us-east-1/sts/aws4_request",
        "AKIAEXAMPLE%2F20261123%2Fus-east-1%2Fsts%2Faws4_request",
    ),
    ("host;x-k8s-aws-id", "host%3Bx-k8s-aws-id"),
    ("IQoJb3+/==", "IQoJb3%2B%2F%3D%3D"),
    ("a b~c-d_e.f", "a%20b~c-d_e.f"),
    ("é", "%C3%A9"),
]


@pytest.mark.parametrize(("text", "encoded"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_known_values(text: str, encoded: str) -> None:
    assert uri_encode(text) == encoded


#: SigV4's unreserved characters, written out from the specification.
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def sigv4_encode(text: str) -> str:
    """The rule, byte by byte: the oracle the faster implementation must agree with."""
    return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))


@settings(max_examples=200)
@given(st.text())
def test_agrees_with_the_byte_by_byte_rule(text: str) -> None:
    assert uri_encode(text) == sigv4_encode(text)


@settings(max_examples=200)
@given(st.text(alphabet="ABCXYZabcxyz0189-_.~+/=%&;: ", max_size=200))
def test_agrees_on_query_like_text(text: str) -> None:
    assert uri_encode(text) == sigv4_encode(text)


def strict_decode(text: str) -> str:
    """The decoding rule, character by character: the oracle for percent_decode."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
                raise ValueError("malformed")
            out.append(int(pair, 16))
            i += 3
        else:
            out += text[i].encode("ascii")
            i += 1
    return out.decode("utf-8")


#: Literal characters, hex digits of both cases, and the backslash and ``x`` the decoder's
#: codec would read as escapes if it were handed them unguarded.
QUERY_CHARS = "ABCFXYZabcfxyz012789-_.~+/=:%\\"


@settings(max_examples=200)
@given(st.text(alphabet=QUERY_CHARS, max_size=120))
def test_decode_agrees_with_the_character_by_character_rule(text: str) -> None:
    assert_decodes_as_the_rule_says(text)


def assert_decodes_as_the_rule_says(text: str) -> None:
    """percent_decode gives what strict_decode gives, or refuses what it refuses."""
    try:
        expected = strict_decode(text)
    except (ValueError, UnicodeDecodeError):
        with pytest.raises(TokenFormatError):
            percent_decode(text)
    else:
        assert percent_decode(text) == expected


@settings(max_examples=300)
@given(st.binary(max_size=60), st.randoms(use_true_random=False))
def test_decode_agrees_on_any_bytes_escaped_any_way(raw: bytes, rnd: random.Random) -> None:
    """Every byte either escaped (upper or lower case hex) or, if printable ASCII other than %,
    written as itself: the decoder yields the bytes' UTF-8 text or refuses invalid UTF-8."""
    text = "".join(
        chr(b)
        if 0x20 < b < 0x7F and b != 0x25 and rnd.random() < 0.5
        else rnd.choice(("%{:02X}", "%{:02x}")).format(b)
        for b in raw
    )
    assert_decodes_as_the_rule_says(text)


@settings(max_examples=200)
@given(st.text(max_size=80))
def test_decode_inverts_encode(text: str) -> None:
    assert percent_decode(uri_encode(text)) == text


DECODED = {
    "session-token": ("IQoJb3%2B%2F%3D%3d", "IQoJb3+/=="),
    "escaped-percent-then-hex": ("%2541", "%41"),
    "escape-spelling-an-escape": ("%25%34%31", "%41"),
    "backslash-before-escape": ("\\x4%41", "\\x4A"),
    "escaped-backslash-x": ("%5Cx41", "\\x41"),
    "two-byte-utf8": ("%C3%a9", "\u00e9"),
}


@pytest.mark.parametrize(("text", "expected"), list(DECODED.values()), ids=list(DECODED))
def test_decode_known_values(text: str, expected: str) -> None:
    assert percent_decode(text) == expected


MALFORMED = {
    "lone": "%",
    "trailing": "a%",
    "one-digit": "a%4",
    "non-hex": "%4g",
    "double": "%%41",
    "non-hex-first": "%G1",
    "bad-utf8": "%ff",
    "cut-utf8": "%C3",
    "surrogate": "%ED%A0%80",
    "non-ascii-literal": "é%41",
}


@pytest.mark.parametrize("text", list(MALFORMED.values()), ids=list(MALFORMED))
def test_decode_refuses_malformed_escapes(text: str) -> None:
    with pytest.raises(TokenFormatError):
        percent_decode(text)
