"""Kubeconfig files for the loopback API server: client certificate, bearer token, exec plugin.

Every kubeconfig names the same cluster entry (the API server's URL and its CA file) and one user;
files are written 0600 because they may hold a bearer token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

CLUSTER_NAME = "kubeiam-e2e"


def _write(
    path: Path, *, server: str, ca_file: Path, user: str, credentials: dict[str, Any]
) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": user,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def write_cert_kubeconfig(
    path: Path, *, server: str, ca_file: Path, user: str, cert: Path, key: Path
) -> Path:
    """A kubeconfig whose user authenticates with a client certificate."""
    credentials = {"client-certificate": str(cert), "client-key": str(key)}
    return _write(path, server=server, ca_file=ca_file, user=user, credentials=credentials)


def write_token_kubeconfig(
    path: Path, *, server: str, ca_file: Path, user: str, token: str
) -> Path:
    """A kubeconfig whose user sends a bearer token (for example a service account's)."""
    return _write(path, server=server, ca_file=ca_file, user=user, credentials={"token": token})


def write_exec_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_file: Path,
    user: str,
    command: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    api_version: str = "client.authentication.k8s.io/v1",
) -> Path:
    """A kubeconfig whose user runs an exec credential plugin (`kubeiam token`, the reference)."""
    exec_entry: dict[str, Any] = {
        "apiVersion": api_version,
        "command": command,
        "args": list(args),
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()] or None,
        "provideClusterInfo": False,
    }
    if api_version.endswith("/v1"):
        # client.authentication.k8s.io/v1 requires it; the plugin never prompts.
        exec_entry["interactiveMode"] = "Never"
    return _write(path, server=server, ca_file=ca_file, user=user, credentials={"exec": exec_entry})


def write_webhook_kubeconfig(
    path: Path,
    *,
    url: str,
    ca_file: Path,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> Path:
    """kube-apiserver's `--authentication-token-webhook-config-file`: the webhook is the cluster.

    `kubeiam init` writes the real one; this is for fixtures that stand up their own webhook.
    """
    credentials: dict[str, Any] = {}
    if client_cert is not None and client_key is not None:
        credentials = {"client-certificate": str(client_cert), "client-key": str(client_key)}
    return _write(path, server=url, ca_file=ca_file, user="kube-apiserver", credentials=credentials)
