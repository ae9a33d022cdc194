"""kubeconfig reading by kubectl's rules.

Files, merging, relative paths, refused forms and bad data.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from kube_api import kubeconfig_doc, write_yaml

from kubeiam.errors import ConfigError
from kubeiam.kube.access import find_access, kubeconfig_files
from kubeiam.kube.kubeconfig import InteractiveMode, load_kubeconfigs, resolve_access

SERVER = "https://127.0.0.1:6443"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_kubectl_file_order(tmp_path: Path) -> None:
    a = write_yaml(tmp_path / "a", kubeconfig_doc(SERVER))
    b = write_yaml(tmp_path / "b", kubeconfig_doc(SERVER))
    home = tmp_path / "home"
    env = {"KUBECONFIG": f"{a}{os.pathsep}{tmp_path / 'gone'}{os.pathsep}{b}{os.pathsep}{a}"}
    assert kubeconfig_files(None, {**env, "HOME": str(home)}) == (a, b)
    assert kubeconfig_files(b, env) == (b,)  # --kubeconfig alone, as kubectl
    assert kubeconfig_files(None, {"HOME": str(home)}) == ()  # in-cluster next
    default = write_yaml(home / ".kube" / "config", kubeconfig_doc(SERVER))
    assert kubeconfig_files(None, {"HOME": str(home)}) == (default,)


def test_merge_first_file_wins_each_name_and_the_first_current_context(tmp_path: Path) -> None:
    first = {
        "clusters": [{"name": "c", "cluster": {"server": "https://first"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "first"}}],
    }
    second = {
        "current-context": "ctx",
        "clusters": [
            {"name": "c", "cluster": {"server": "https://second"}},
            {"name": "only-second", "cluster": {"server": "https://only"}},
        ],
        "contexts": [{"name": "other", "context": {"cluster": "only-second"}}],
        "users": [{"name": "u", "user": {"token": "second"}}],
    }
    third = {"current-context": "other"}
    merged = load_kubeconfigs(
        [write_yaml(tmp_path / n, d) for n, d in (("1", first), ("2", second), ("3", third))]
    )
    assert merged.current_context == "ctx"
    access = resolve_access(merged)
    assert (access.server, access.token, access.user) == ("https://first", "first", "u")
    other = resolve_access(merged, "other")
    assert (other.server, other.user, other.token) == ("https://only", None, None)


def test_relative_paths_resolve_against_their_own_file(tmp_path: Path) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
    (tmp_path / "one" / "ca.crt").write_bytes(ca)
    (tmp_path / "two" / "token").write_text("t")
    one = kubeconfig_doc(SERVER, cluster={"certificate-authority": "ca.crt"}, current=None)
    one["users"] = []
    two: dict[str, Any] = {
        "current-context": "test",
        "users": [
            {
                "name": "test",
                "user": {
                    "tokenFile": "token",
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "bin/plugin",
                        "interactiveMode": "Never",
                    },
                },
            }
        ],
    }
    access = find_access(
        [write_yaml(tmp_path / "one" / "kc", one), write_yaml(tmp_path / "two" / "kc", two)]
    )
    assert access.ca_pem == ca
    assert access.token_file == tmp_path / "two" / "token"
    assert access.exec is not None
    assert access.exec.command == str(tmp_path / "two" / "bin" / "plugin")
    assert access.exec.interactive_mode is InteractiveMode.NEVER


def test_a_bare_exec_command_stays_a_path_lookup(tmp_path: Path) -> None:
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubeiam"}}
    access = find_access(write_yaml(tmp_path / "kc", kubeconfig_doc(SERVER, user=user)))
    assert access.exec is not None
    assert access.exec.command == "kubeiam"
    assert access.exec.interactive_mode is InteractiveMode.IF_AVAILABLE  # v1beta1's default


PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
V1 = "client.authentication.k8s.io/v1"


@pytest.mark.parametrize(
    ("cluster", "user", "pattern", "hint"),
    [
        ({}, {"username": "admin", "password": "secret"}, "basic authentication", "exec plugin"),
        ({}, {"auth-provider": {"name": "gcp"}}, "auth-provider plugin 'gcp'", "gke-gcloud"),
        ({}, {"auth-provider": {"name": "azure"}}, "auth-provider plugin 'azure'", "kubelogin"),
        ({}, {"auth-provider": {"name": "oidc"}}, "auth-provider plugin 'oidc'", "oidc-login"),
        ({}, {"auth-provider": {"name": "x"}}, "auth-provider plugin 'x'", "exec plugin"),
        ({}, {"exec": {"apiVersion": V1, "command": "k"}}, "interactiveMode must be set", None),
        (
            {},
            {"exec": {"apiVersion": V1, "command": "k", "interactiveMode": "Sometimes"}},
            "interactiveMode 'Sometimes'",
            None,
        ),
        ({}, {"exec": {"apiVersion": "v9", "command": "k"}}, "apiVersion 'v9'", "v1"),
        ({}, {"exec": {"apiVersion": V1, "interactiveMode": "Never"}}, "exec has no command", None),
        (
            {},
            {"exec": {"apiVersion": V1, "command": "k", "interactiveMode": "Never", "env": ["x"]}},
            r"env\[0\]",
            None,
        ),
        (
            {"certificate-authority-data": "not base64!"},
            {},
            "certificate-authority-data is not valid base64",
            "base64",
        ),
        (
            {"certificate-authority-data": b64(b"hello")},
            {},
            "does not hold a PEM certificate",
            "PEM",
        ),
        (
            {"certificate-authority-data": b64(PEM), "insecure-skip-tls-verify": True},
            {},
            "insecure-skip-tls-verify is set beside",
            "remove",
        ),
        ({"certificate-authority": "/nonexistent/ca.crt"}, {}, "cannot read certificate", None),
        ({}, {"client-certificate-data": b64(PEM)}, "needs both the certificate and the key", None),
        ({}, {"client-key-data": "%%%"}, "client-key-data is not valid base64", None),
        ({"tls-server-name": "bad name"}, {}, "tls-server-name 'bad name' is not a host", "DNS"),
        ({"insecure-skip-tls-verify": "false"}, {}, "is 'false', not true or false", None),
        ({"tls-server-name": ".."}, {}, "is not a host name", None),
        ({"tls-server-name": "a\x00b"}, {}, r"control character U\+0000", None),
        (
            {},
            {
                "exec": {
                    "apiVersion": V1,
                    "command": "k",
                    "interactiveMode": "Never",
                    "env": [{"name": "A=B", "value": "v"}],
                }
            },
            "not a usable environment variable",
            None,
        ),
        (
            {},
            {
                "exec": {
                    "apiVersion": V1,
                    "command": "k",
                    "interactiveMode": "Never",
                    "args": ["a\x00"],
                }
            },
            r"control character U\+0000",
            None,
        ),
    ],
    ids=[
        "basic-auth",
        "gcp",
        "azure",
        "oidc",
        "other-provider",
        "v1-no-interactive-mode",
        "bad-interactive-mode",
        "bad-exec-version",
        "exec-no-command",
        "exec-bad-env",
        "ca-not-base64",
        "ca-not-pem",
        "ca-and-insecure",
        "ca-file-missing",
        "cert-without-key",
        "key-not-base64",
        "sni-space",
        "insecure-string",
        "sni-dots",
        "sni-nul",
        "exec-env-equals",
        "exec-arg-nul",
    ],
)
def test_refused_kubeconfig_users_and_clusters(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], pattern: str, hint: str | None
) -> None:
    path = write_yaml(tmp_path / "kc", kubeconfig_doc(SERVER, cluster=cluster, user=user))
    with pytest.raises(ConfigError, match=pattern) as caught:
        find_access(path)
    assert "secret" not in str(caught.value)
    if hint is not None:
        assert caught.value.hint is not None
        assert hint in caught.value.hint


@pytest.mark.parametrize(
    ("content", "context", "pattern"),
    [
        (b"clusters: [\n", None, "is not valid YAML"),
        (b"\xff\xfe\x00", None, "is not UTF-8"),
        (b"- a list\n", None, "is not a YAML mapping"),
        (b"clusters: 5\n", None, "clusters is not a list"),
        (b"", None, "has no current-context"),
        (
            b"contexts: [{name: a, context: {cluster: c}}]\ncurrent-context: a\n",
            None,
            "cluster 'c' not found",
        ),
        (b"contexts: [{name: a, context: {cluster: c}}]\n", "b", r"context 'b' not found .*a\)"),
        (
            b"clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
            b"contexts: [{name: a, context: {cluster: c, user: u}}]\n",
            "a",
            "user 'u' not found",
        ),
        (b"[" * 100000, None, "is not valid YAML"),
    ],
    ids=[
        "bad-yaml",
        "not-utf8",
        "not-mapping",
        "clusters-not-list",
        "empty",
        "missing-cluster",
        "unknown-context",
        "missing-user",
        "deep-nesting",
    ],
)
def test_unusable_kubeconfig_files(
    tmp_path: Path, content: bytes, context: str | None, pattern: str
) -> None:
    path = tmp_path / "kc"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=pattern):
        find_access(path, context=context)


def test_a_fifo_at_the_kubeconfig_path_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "kc"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        find_access(fifo)


def test_kubeconfig_naming_only_missing_files_says_so(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "gone"), "HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match="none of the files in KUBECONFIG exist"):
        find_access(None, environ=env, use_kubectl_defaults=True)
    with pytest.raises(ConfigError, match="not running inside a cluster"):
        find_access(None, environ={"HOME": str(tmp_path)}, use_kubectl_defaults=True)


@pytest.mark.parametrize(
    ("server", "pattern"),
    [
        ("not-a-url", "not an https://"),
        ("ftp://127.0.0.1:1", "not an https://"),
        ("https://[::1", "Invalid IPv6 URL"),
        ("https://127.0.0.1:99999", "Port out of range"),
        ("https://", "no valid host name"),
    ],
    ids=["no-scheme", "ftp", "bad-ipv6", "port-range", "no-host"],
)
def test_unusable_server_urls_are_refused_before_any_connection(
    tmp_path: Path, server: str, pattern: str
) -> None:
    path = write_yaml(tmp_path / "kc", kubeconfig_doc(server))
    with pytest.raises(ConfigError, match=pattern) as caught:
        find_access(path)
    assert caught.value.hint is not None


@pytest.mark.parametrize("namespace", ["Kube System", "a/b", "x" * 64, "-a"], ids=str)
def test_a_context_namespace_must_be_a_namespace_name(tmp_path: Path, namespace: str) -> None:
    doc = kubeconfig_doc(SERVER)
    doc["contexts"][0]["context"]["namespace"] = namespace
    with pytest.raises(ConfigError, match="is not a Kubernetes namespace name"):
        find_access(write_yaml(tmp_path / "kc", doc))


def test_an_ip_address_is_a_tls_server_name(tmp_path: Path) -> None:
    for name in ("10.0.0.1", "::1", "kube.internal", "_k8s.example."):
        doc = kubeconfig_doc(SERVER, cluster={"tls-server-name": name})
        assert find_access(write_yaml(tmp_path / "kc", doc)).tls_server_name == name


def test_bounded_reading_applies_to_kubeconfigs(tmp_path: Path) -> None:
    """kubeiam.documents' rules: aliases that expand far beyond the text, duplicate keys."""
    laughs = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        laughs += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n"
    path = tmp_path / "laughs"
    path.write_text(laughs)
    with pytest.raises(ConfigError, match=r"alias|expand"):
        find_access(path)
    dup = tmp_path / "dup"
    dup.write_text("current-context: a\ncurrent-context: b\n")
    with pytest.raises(ConfigError, match="current-context"):
        find_access(dup)
