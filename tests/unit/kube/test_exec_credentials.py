"""The exec plugin's answer, parsed (pure): every odd shape is a ValueError without a secret."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from kubeiam.errors import ConfigError
from kubeiam.kube.credentials import (
    MAX_EXEC_OUTPUT_BYTES,
    credential_source,
    parse_exec_credential,
)
from kubeiam.kube.kubeconfig import ClusterAccess

V1 = "client.authentication.k8s.io/v1"


def _doc(**status: object) -> bytes:
    return json.dumps({"apiVersion": V1, "kind": "ExecCredential", "status": status}).encode()


def test_token_with_expiry() -> None:
    got = parse_exec_credential(_doc(token="t0p", expirationTimestamp="2030-01-01T00:00:00Z"), V1)
    assert got.token == "t0p"
    assert got.expires_at == 1893456000.0
    assert "t0p" not in repr(got)
    offset = parse_exec_credential(
        _doc(token="x", expirationTimestamp="2030-01-01T01:00:00.5+01:00"), V1
    )
    assert offset.expires_at == 1893456000.5


@pytest.mark.parametrize(
    ("output", "pattern"),
    [
        (b"", "not JSON"),
        (b"[" * 200000, "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"kind": "Other"}', "kind 'Other'"),
        (_doc(token=5), "status.token is not a string"),
        (_doc(clientCertificateData="c"), "only one of"),
        (_doc(token="s3cret", expirationTimestamp="99999-01-01T00:00:00Z"), "not RFC 3339"),
        (_doc(token="s3cret", expirationTimestamp="2030-01-01T00:00:00"), "no time zone"),
        (_doc(token="s3cret", expirationTimestamp=7), "not a string"),
        (b" " * (MAX_EXEC_OUTPUT_BYTES + 1), "more than"),
        (_doc(token="s3cret\nX-Injected: 1"), "whitespace or control characters"),
    ],
    ids=[
        "empty",
        "deep",
        "list",
        "kind",
        "token-type",
        "cert-alone",
        "year-99999",
        "naive-time",
        "expiry-type",
        "huge",
        "token-newline",
    ],
)
def test_unusable_answers(output: bytes, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as caught:
        parse_exec_credential(output, V1)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "token", ["s3cret\n", "s3c ret\r\nX: y", "s3cret\x00", " s3cret", ""], ids=repr
)
def test_kubeconfig_and_file_tokens_must_fit_a_header(tmp_path: Path, token: str) -> None:
    access = ClusterAccess(origin="kubeconfig k", context="c", server="https://k", token=token)
    with pytest.raises(ConfigError, match="whitespace or control characters") as caught:
        credential_source(access)
    assert "s3c" not in str(caught.value)
    (tmp_path / "token").write_text(token + "\x00")
    source = credential_source(
        ClusterAccess(origin="o", context="c", server="https://k", token_file=tmp_path / "token")
    )
    assert source is not None
    with pytest.raises(ConfigError, match="token file") as caught:
        asyncio.run(source.current())
    assert "s3c" not in str(caught.value)
