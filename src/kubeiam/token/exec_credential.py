"""The ExecCredential document kubectl reads on the plugin's stdout (pure).

protocol.md section 1: kubectl passes ``KUBERNETES_EXEC_INFO``; its ``apiVersion`` is echoed when
it is v1 or v1beta1, anything else falls back to v1beta1 with a warning (v1alpha1 was removed in
kubectl 1.24). ``expirationTimestamp`` is RFC 3339 in UTC with a ``Z`` and whole seconds.
"""

from __future__ import annotations

import json
import time

API_GROUP = "client.authentication.k8s.io"
API_V1 = f"{API_GROUP}/v1"
API_V1BETA1 = f"{API_GROUP}/v1beta1"
API_V1ALPHA1 = f"{API_GROUP}/v1alpha1"
#: The versions echoed back; the first of them is never the default (kubectl < 1.20 sent nothing).
SUPPORTED_API_VERSIONS = (API_V1, API_V1BETA1)
DEFAULT_API_VERSION = API_V1BETA1

# TypedDicts exist for the type checker only: importing ``typing`` costs the plugin ~10 ms of
# start-up (it pulls in ``re``), which users pay on every kubectl run.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypedDict

    class ExecCredentialStatus(TypedDict):
        expirationTimestamp: str
        token: str

    class ExecCredential(TypedDict):
        kind: str
        apiVersion: str
        spec: dict[str, object]
        status: ExecCredentialStatus


def api_version_from_exec_info(exec_info: str | None) -> tuple[str, str | None]:
    """``(apiVersion, warning)`` for the value of ``KUBERNETES_EXEC_INFO`` (``None`` if unset).

    The warning, when not ``None``, is for stderr: it names the problem and the fix.
    """
    if not exec_info:
        return DEFAULT_API_VERSION, None
    try:
        info = json.loads(exec_info)
    except ValueError:
        return DEFAULT_API_VERSION, (
            f"KUBERNETES_EXEC_INFO is not JSON; answering with {DEFAULT_API_VERSION} "
            "(update kubectl: it sets this variable itself)"
        )
    version = info.get("apiVersion") if isinstance(info, dict) else None
    if version in SUPPORTED_API_VERSIONS:
        assert isinstance(version, str)
        return version, None
    if version == API_V1ALPHA1:
        return DEFAULT_API_VERSION, (
            f"the kubeconfig asks for {API_V1ALPHA1}, which kubectl 1.24 removed; answering with "
            f"{DEFAULT_API_VERSION} (set the exec entry's apiVersion to {API_V1} with "
            "`kubeiam kubeconfig`)"
        )
    return DEFAULT_API_VERSION, (
        f"KUBERNETES_EXEC_INFO asks for apiVersion {version!r}, which kubeiam does not know; "
        f"answering with {DEFAULT_API_VERSION}"
    )


def format_timestamp(epoch_seconds: float) -> str:
    """RFC 3339 UTC with whole seconds (fractions are truncated, never rounded up)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch_seconds)))


def build_exec_credential(token: str, expires_at: float, api_version: str) -> ExecCredential:
    """The ExecCredential for ``token``, expiring at unix time ``expires_at``."""
    return {
        "kind": "ExecCredential",
        "apiVersion": api_version,
        "spec": {},
        "status": {"expirationTimestamp": format_timestamp(expires_at), "token": token},
    }


def render_exec_credential(doc: ExecCredential) -> str:
    """The document as one line of JSON (what kubectl reads)."""
    return json.dumps(doc, separators=(",", ":"))
