"""The kubeconfig kube-apiserver reads through ``--authentication-token-webhook-config-file``.

Its one cluster is the webhook (``https://HOST:PORT/authenticate``) with the webhook's
self-signed certificate as ``certificate-authority-data``; its one user is the API server itself,
with no credentials. Names (cluster ``aws-iam-authenticator``, user ``apiserver``, context
``webhook``) are the reference's, so tooling that edits these files keeps working.
"""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Any

import yaml

from kubeiam.errors import ConfigError
from kubeiam.fileio import write_atomically

WEBHOOK_PATH = "/authenticate"
CLUSTER_NAME = "aws-iam-authenticator"
USER_NAME = "apiserver"
CONTEXT_NAME = "webhook"


def webhook_url(host: str, port: int) -> str:
    """``https://host:port/authenticate``; IPv6 literals are bracketed, unspecified -> loopback."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return f"https://{host}:{port}{WEBHOOK_PATH}"
    if ip.is_unspecified:
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    text = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"https://{text}:{port}{WEBHOOK_PATH}"


def render_webhook_kubeconfig(server_url: str, ca_pem: bytes) -> str:
    """The webhook kubeconfig as YAML text (pure)."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
                    "server": server_url,
                },
            }
        ],
        "users": [{"name": USER_NAME, "user": {}}],
        "contexts": [
            {"name": CONTEXT_NAME, "context": {"cluster": CLUSTER_NAME, "user": USER_NAME}}
        ],
        "current-context": CONTEXT_NAME,
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def write_webhook_kubeconfig(path: Path, server_url: str, ca_pem: bytes) -> None:
    """Write the webhook kubeconfig atomically (mode 0644: it holds only a public certificate)."""
    text = render_webhook_kubeconfig(server_url, ca_pem).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the webhook kubeconfig {path}: {exc.strerror}",
            hint="choose a writable path with --kubeconfig-out (or generateKubeconfig)",
        ) from None
