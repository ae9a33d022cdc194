"""Shared fixtures. Every test starts from a scrubbed environment and a private HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["kubeiam.localaws.pytest_plugin"]

#: Variables that would let a developer's real AWS or Kubernetes setup leak into a test.
_SCRUBBED_PREFIXES = ("AWS_", "KUBEIAM_")
_SCRUBBED = ("KUBECONFIG", "KUBERNETES_EXEC_INFO", "HOME", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


@pytest.fixture(autouse=True)
def scrubbed_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Remove AWS_*, KUBEIAM_*, KUBECONFIG, KUBERNETES_EXEC_INFO; point HOME at a fresh dir."""
    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES) or name in _SCRUBBED:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    # botocore must never find real config or reach instance metadata from a test.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / ".aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home  # monkeypatch restores the environment after the test
