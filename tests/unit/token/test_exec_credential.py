"""The ExecCredential document and its apiVersion negotiation (protocol.md section 1)."""

from __future__ import annotations

import json

import pytest

from kubeiam.token.exec_credential import (
    API_V1,
    API_V1BETA1,
    api_version_from_exec_info,
    build_exec_credential,
    format_timestamp,
    render_exec_credential,
)

V1_INFO = json.dumps(
    {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "spec": {"interactive": False},
    }
)

CASES = [
    # (KUBERNETES_EXEC_INFO, apiVersion answered, warning expected containing)
    (None, API_V1BETA1, None),
    ("", API_V1BETA1, None),
    (V1_INFO, API_V1, None),
    (json.dumps({"apiVersion": API_V1BETA1, "kind": "ExecCredential"}), API_V1BETA1, None),
    (
        json.dumps({"apiVersion": "client.authentication.k8s.io/v1alpha1"}),
        API_V1BETA1,
        "kubectl 1.24 removed",
    ),
    (json.dumps({"apiVersion": "client.authentication.k8s.io/v2"}), API_V1BETA1, "does not know"),
    (json.dumps({"kind": "ExecCredential"}), API_V1BETA1, "does not know"),
    ("{not json", API_V1BETA1, "not JSON"),
    (json.dumps(["apiVersion", API_V1]), API_V1BETA1, "does not know"),
]


@pytest.mark.parametrize(
    ("exec_info", "expected", "warning"),
    CASES,
    ids=["unset", "empty", "v1", "v1beta1", "v1alpha1", "unknown", "no-version", "garbage", "list"],
)
def test_api_version_from_exec_info(
    exec_info: str | None, expected: str, warning: str | None
) -> None:
    version, message = api_version_from_exec_info(exec_info)
    assert version == expected
    if warning is None:
        assert message is None
    else:
        assert message is not None
        assert warning in message


def test_document_shape_and_timestamp() -> None:
    doc = build_exec_credential("k8s-aws-v1.abc", 1_795_000_000.9, API_V1)
    parsed = json.loads(render_exec_credential(doc))
    assert parsed == {
        "kind": "ExecCredential",
        "apiVersion": API_V1,
        "spec": {},
        "status": {"expirationTimestamp": "2026-11-18T11:06:40Z", "token": "k8s-aws-v1.abc"},
    }


@pytest.mark.parametrize(
    ("epoch", "text"),
    [(0, "1970-01-01T00:00:00Z"), (1_700_000_000.999, "2023-11-14T22:13:20Z")],
    ids=["epoch", "fraction-truncated"],
)
def test_format_timestamp(epoch: float, text: str) -> None:
    assert format_timestamp(epoch) == text
