"""The wire constants both sides share: what the presigner writes is what the verifier allows."""

from __future__ import annotations

import pytest

from kubeiam.token import protocol
from kubeiam.token.presign import presign_get_caller_identity
from kubeiam.token.validation import ALLOWED_KEYS, REQUIRED_KEYS


def _keys(session_token: str | None) -> list[str]:
    url = presign_get_caller_identity(
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="secret",
        session_token=session_token,
        region="us-west-2",
        host="sts.us-west-2.amazonaws.com",
        cluster_id="demo",
        now=1_800_000_000,
    )
    query = url.partition("?")[2]
    return [pair.partition("=")[0] for pair in query.split("&")]


@pytest.mark.parametrize("session_token", ["FwoG", None], ids=["temporary", "static"])
def test_presigned_keys_are_the_protocols_in_its_order(session_token: str | None) -> None:
    expected = [
        k
        for k in protocol.QUERY_KEYS
        if session_token is not None or k != protocol.SECURITY_TOKEN_KEY
    ]
    assert _keys(session_token) == expected


def test_verifier_allows_exactly_the_protocols_keys() -> None:
    assert sorted(ALLOWED_KEYS.values()) == sorted(protocol.QUERY_KEYS)
    assert {k.lower() for k in protocol.QUERY_KEYS} - {"x-amz-security-token"} == REQUIRED_KEYS


def test_kubectl_is_told_a_minute_less_than_sts_honours() -> None:
    assert protocol.TOKEN_LIFETIME_SECONDS == 15 * 60
    assert protocol.EXEC_CREDENTIAL_LIFETIME_SECONDS == 14 * 60
