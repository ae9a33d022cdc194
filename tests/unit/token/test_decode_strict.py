"""Property tests: the decoder accepts exactly strict, canonical, unpadded base64url."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.errors import TokenFormatError
from kubeiam.token.encoding import decode_token, encode_token
from kubeiam.token.protocol import MAX_TOKEN_BYTES, TOKEN_PREFIX

ALPHABET = string.ascii_letters + string.digits + "-_"
alphabet_text = st.text(alphabet=ALPHABET, max_size=200)
#: Any character outside the alphabet, padding and the standard alphabet's +/ included.
forbidden = st.characters(exclude_characters=ALPHABET, codec="utf-8") | st.sampled_from("=+/ \n")
#: Texts that keep a token under the length limit even when every character is 4 UTF-8 bytes.
payloads = st.text(max_size=600)


@settings(max_examples=200)
@given(payloads)
def test_round_trip(payload: str) -> None:
    token = encode_token(payload)
    if not payload:
        with pytest.raises(TokenFormatError):
            decode_token(token)
        return
    assert "=" not in token
    assert decode_token(token) == payload


@settings(max_examples=200)
@given(alphabet_text, forbidden, alphabet_text)
def test_any_character_outside_the_alphabet_is_refused(before: str, bad: str, after: str) -> None:
    with pytest.raises(TokenFormatError):
        decode_token(TOKEN_PREFIX + before + bad + after)


@settings(max_examples=200)
@given(payloads.filter(bool), st.integers(min_value=1, max_value=3))
def test_padding_is_refused(payload: str, pad: int) -> None:
    with pytest.raises(TokenFormatError):
        decode_token(encode_token(payload) + "=" * pad)


@settings(max_examples=300)
@given(alphabet_text.filter(bool))
def test_every_accepted_body_is_the_one_canonical_spelling(body: str) -> None:
    """Whatever alphabet string is fed in, either it is refused or it re-encodes to itself."""
    try:
        decoded = decode_token(TOKEN_PREFIX + body)
    except TokenFormatError:
        return
    assert encode_token(decoded) == TOKEN_PREFIX + body


@settings(max_examples=50)
@given(
    st.integers(min_value=MAX_TOKEN_BYTES - len(TOKEN_PREFIX) + 1, max_value=3 * MAX_TOKEN_BYTES)
)
def test_anything_longer_than_the_limit_is_refused(length: int) -> None:
    with pytest.raises(TokenFormatError, match="longer than"):
        decode_token(TOKEN_PREFIX + "A" * length)


@settings(max_examples=100)
@given(st.text(max_size=40))
def test_other_prefixes_are_refused(text: str) -> None:
    if text.startswith(TOKEN_PREFIX):
        return
    with pytest.raises(TokenFormatError):
        decode_token(text)
