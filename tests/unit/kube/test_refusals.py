"""RBAC's words for a request, and kubectl's proxy rules (pure)."""

from __future__ import annotations

import pytest

from kubeiam.kube.kubeconfig import ClusterAccess
from kubeiam.kube.refusals import describe_request, refusal, server_message
from kubeiam.kube.transport import _bypassed, proxy_for


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        (
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/aws-auth",
            {},
            "get configmaps aws-auth in kube-system",
        ),
        ("GET", "/api/v1/namespaces/kube-system/configmaps", {}, "list configmaps in kube-system"),
        (
            "GET",
            "/api/v1/namespaces/kube-system/configmaps",
            {"watch": "true"},
            "watch configmaps in kube-system",
        ),
        (
            "PUT",
            "/api/v1/namespaces/kube-system/configmaps/aws-auth",
            {},
            "update configmaps aws-auth in kube-system",
        ),
        (
            "POST",
            "/api/v1/namespaces/kube-system/configmaps",
            {},
            "create configmaps in kube-system",
        ),
        ("GET", "/api/v1/nodes", {}, "list nodes"),
        ("GET", "/api/v1/namespaces", {}, "list namespaces"),
        ("GET", "/api/v1/namespaces/kube-system", {}, "get namespaces kube-system"),
        (
            "DELETE",
            "/apis/iamauthenticator.k8s.aws/v1alpha1/iamidentitymappings/a",
            {},
            "delete iamidentitymappings.iamauthenticator.k8s.aws a",
        ),
        (
            "PATCH",
            "/prefix/k8s/clusters/c-1/api/v1/namespaces/ns/pods/p/status",
            {},
            "patch pods/status p in ns",
        ),
        ("GET", "/version", {}, None),
    ],
    ids=[
        "get",
        "list",
        "watch",
        "update",
        "create",
        "cluster-list",
        "namespaces",
        "namespace",
        "crd-delete",
        "proxied-subresource",
        "non-resource",
    ],
)
def test_describe_request(
    method: str, path: str, query: dict[str, str], expected: str | None
) -> None:
    described = describe_request(method, path, query)
    assert (str(described) if described else None) == expected


def test_forbidden_names_user_verb_resource_and_fix() -> None:
    request = describe_request("GET", "/api/v1/namespaces/kube-system/configmaps/aws-auth", {})
    body = (
        b'{"kind":"Status","message":"configmaps \\"aws-auth\\" is forbidden: User \\"alice\\" '
        b'cannot get resource \\"configmaps\\" in API group \\"\\" in the namespace '
        b'\\"kube-system\\"","code":403}'
    )
    error = refusal(
        403,
        request,
        path="",
        message=server_message(body),
        server="https://k",
        credentials="token",
        origin="kubeconfig x",
    )
    assert error.message == (
        "the Kubernetes API refused user 'alice': get configmaps aws-auth in kube-system "
        "(403 Forbidden)"
    )
    assert error.hint is not None
    assert "RBAC verb 'get' on configmaps" in error.hint
    assert "docs/permissions.md" in error.hint
    assert error.status == 403


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1]", b'{"message": 5}', b"[" * 100000],
    ids=["empty", "text", "list", "number", "deep"],
)
def test_server_message_of_odd_bodies_is_empty(body: bytes) -> None:
    assert server_message(body) == ""


def _access(server: str, proxy_url: str | None = None) -> ClusterAccess:
    return ClusterAccess(origin="o", context="c", server=server, proxy_url=proxy_url)


@pytest.mark.parametrize(
    ("server", "proxy_url", "env", "expected"),
    [
        ("https://k.example:6443", "socks5://127.0.0.1:1080", {}, "socks5://127.0.0.1:1080"),
        ("https://k.example:6443", None, {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        ("https://k.example:6443", None, {"https_proxy": "http://p:3128"}, "http://p:3128"),
        ("https://127.0.0.1:6443", None, {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://localhost:6443", None, {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://k.example:6443", None, {"HTTPS_PROXY": "http://p", "NO_PROXY": ".example"}, None),
        (
            "https://k.example:6443",
            None,
            {"HTTPS_PROXY": "http://p", "NO_PROXY": "k.example:6443"},
            None,
        ),
        (
            "https://10.1.2.3:6443",
            None,
            {"HTTPS_PROXY": "http://p", "NO_PROXY": "10.0.0.0/8"},
            None,
        ),
        ("https://k.example:6443", None, {"HTTPS_PROXY": "http://p", "NO_PROXY": "*"}, None),
        (
            "https://k.example:6443",
            None,
            {"HTTPS_PROXY": "http://p", "NO_PROXY": "other.com"},
            "http://p",
        ),
        ("http://k.example:8080", None, {"HTTPS_PROXY": "http://p"}, None),
    ],
    ids=[
        "proxy-url",
        "env",
        "env-lower",
        "loopback",
        "localhost",
        "no-proxy-domain",
        "no-proxy-port",
        "no-proxy-cidr",
        "no-proxy-star",
        "no-proxy-other",
        "http-server",
    ],
)
def test_proxy_rules(
    server: str, proxy_url: str | None, env: dict[str, str], expected: str | None
) -> None:
    assert proxy_for(_access(server, proxy_url), env) == expected


def test_a_proxy_url_scheme_kubectl_does_not_know_is_refused() -> None:
    from kubeiam.errors import ConfigError

    with pytest.raises(ConfigError, match="proxy-url scheme 'ftp'"):
        proxy_for(_access("https://k", "ftp://p"), {})
    assert not _bypassed("k.example", " , ")
    for bad in ("http://", "http://[::1", "http://127.0.0.1:99999"):
        with pytest.raises(ConfigError, match="is not a valid URL"):
            proxy_for(_access("https://k", bad), {})
