"""The harness itself: the real API server starts, kubectl works, deploy/ RBAC is exact, and a
restart with a token webhook makes kube-apiserver consult it."""

from __future__ import annotations

import datetime
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.binaries import ETCD_VERSION, KUBERNETES_VERSION, REFERENCE_VERSION, Binaries
from cluster.control_plane import APISERVER_TOKEN_SUCCESS_CACHE_SECONDS, ControlPlane, Webhook
from cluster.kubeconfig import write_token_kubeconfig, write_webhook_kubeconfig
from cluster.pki import write_server_cert
from cluster.token_webhook import KnownUser, TokenWebhook

SERVICE_ACCOUNT_USER = "system:serviceaccount:kube-system:kubeiam"


def _whoami(cluster: ControlPlane, kubeconfig: Path | None = None) -> dict[str, object]:
    done = cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig)
    user: dict[str, object] = json.loads(done.stdout)["status"]["userInfo"]
    return user


def test_binaries_report_the_pinned_releases(cluster: ControlPlane, e2e_binaries: Binaries) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert versions["clientVersion"]["gitVersion"] == KUBERNETES_VERSION
    assert versions["serverVersion"]["gitVersion"] == KUBERNETES_VERSION
    etcd = subprocess.run(
        [e2e_binaries.etcd, "--version"], capture_output=True, text=True, check=True
    )
    assert f"etcd Version: {ETCD_VERSION.removeprefix('v')}" in etcd.stdout
    reference = subprocess.run(
        [e2e_binaries.aws_iam_authenticator, "version"], capture_output=True, text=True, check=True
    )
    assert REFERENCE_VERSION in reference.stdout


def test_admin_kubeconfig_lists_namespaces(cluster: ControlPlane) -> None:
    names = cluster.kubectl("get", "ns", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(names)


def test_admin_is_a_cluster_master(cluster: ControlPlane) -> None:
    user = _whoami(cluster)
    assert user["username"] == "kubeiam-e2e-admin"
    assert {"system:masters", "system:authenticated"} <= set(user["groups"])  # type: ignore[call-overload]


def test_kubeiam_service_account_token_reaches_the_api(
    cluster: ControlPlane, kubeiam_kubeconfig: Path
) -> None:
    user = _whoami(cluster, kubeiam_kubeconfig)
    assert user["username"] == SERVICE_ACCOUNT_USER
    assert "system:serviceaccounts:kube-system" in user["groups"]  # type: ignore[operator]


# (verb, resource, namespace, allowed): what deploy/rbac.yaml must grant, and nothing more.
_RBAC_TABLE = [
    ("get", "configmaps/aws-auth", "kube-system", True),
    ("list", "configmaps/aws-auth", "kube-system", True),
    ("watch", "configmaps/aws-auth", "kube-system", True),
    ("update", "configmaps/aws-auth", "kube-system", False),
    ("patch", "configmaps/aws-auth", "kube-system", False),
    ("delete", "configmaps/aws-auth", "kube-system", False),
    ("get", "configmaps/kube-proxy", "kube-system", False),
    ("list", "configmaps", "kube-system", False),
    ("get", "configmaps/aws-auth", "default", False),
    ("get", "iamidentitymappings.iamauthenticator.k8s.aws", "", True),
    ("list", "iamidentitymappings.iamauthenticator.k8s.aws", "", True),
    ("watch", "iamidentitymappings.iamauthenticator.k8s.aws", "", True),
    ("create", "iamidentitymappings.iamauthenticator.k8s.aws", "", False),
    ("delete", "iamidentitymappings.iamauthenticator.k8s.aws", "", False),
    ("get", "secrets", "kube-system", False),
    ("list", "nodes", "", False),
    ("create", "tokenreviews.authentication.k8s.io", "", False),
]


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    _RBAC_TABLE,
    ids=[f"{v}-{r}-{n or 'cluster'}" for v, r, n, _ in _RBAC_TABLE],
)
def test_shipped_rbac_grants_exactly_what_the_server_reads(
    cluster: ControlPlane,
    kubeiam_kubeconfig: Path,
    verb: str,
    resource: str,
    namespace: str,
    allowed: bool,
) -> None:
    scope = ["-n", namespace] if namespace else []
    done = cluster.kubectl(
        "auth", "can-i", verb, resource, *scope, kubeconfig=kubeiam_kubeconfig, check=False
    )
    assert done.stdout.strip() == ("yes" if allowed else "no"), done.stderr


def test_service_account_lists_aws_auth_only_by_name(
    cluster: ControlPlane, kubeiam_kubeconfig: Path
) -> None:
    by_name = cluster.kubectl(
        "get",
        "configmaps",
        "-n",
        "kube-system",
        "--field-selector=metadata.name=aws-auth",
        kubeconfig=kubeiam_kubeconfig,
    )
    assert by_name.returncode == 0
    everything = cluster.kubectl(
        "get", "configmaps", "-n", "kube-system", kubeconfig=kubeiam_kubeconfig, check=False
    )
    assert everything.returncode != 0
    assert "forbidden" in everything.stderr.lower()


def test_deploy_manifests_are_accepted_by_the_api_server(
    cluster: ControlPlane, deployed: tuple[Path, ...]
) -> None:
    assert {p.name for p in deployed} >= {"rbac.yaml", "daemonset.yaml"}
    daemonset = json.loads(
        cluster.kubectl("get", "daemonset", "kubeiam", "-n", "kube-system", "-o", "json").stdout
    )
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubeiam"
    assert pod["hostNetwork"] is True
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}


@pytest.fixture
def token_webhook(cluster: ControlPlane, tmp_path: Path) -> Iterator[TokenWebhook]:
    now = datetime.datetime.now(datetime.UTC)
    tls = write_server_cert(cluster.pki.ca, tmp_path, name="token-webhook", now=now)
    user = KnownUser(
        token="e2e-harness-token", username="webhook-user", uid="uid-1", groups=("e2e-group",)
    )
    webhook = TokenWebhook(tls=tls, user=user)
    webhook.start()
    yield webhook
    webhook.stop()


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_restart_with_token_webhook_consults_it(
    cluster: ControlPlane, token_webhook: TokenWebhook, tmp_path: Path, version: str
) -> None:
    config = write_webhook_kubeconfig(
        tmp_path / "webhook.kubeconfig", url=token_webhook.url, ca_file=cluster.ca_file
    )
    known = write_token_kubeconfig(
        tmp_path / "known.kubeconfig",
        server=cluster.server,
        ca_file=cluster.ca_file,
        user="known",
        token=token_webhook.user.token,
    )
    unknown = write_token_kubeconfig(
        tmp_path / "unknown.kubeconfig",
        server=cluster.server,
        ca_file=cluster.ca_file,
        user="unknown",
        token="e2e-unknown-token",
    )
    cluster.restart_apiserver(webhook=Webhook(config_file=config, version=version))
    try:
        user = _whoami(cluster, known)
        assert user["username"] == "webhook-user"
        assert user["uid"] == "uid-1"
        assert {"e2e-group", "system:authenticated"} <= set(user["groups"])  # type: ignore[call-overload]
        denied = cluster.kubectl("auth", "whoami", kubeconfig=unknown, check=False)
        assert denied.returncode != 0
        assert "Unauthorized" in denied.stderr
        assert set(token_webhook.received_api_versions) == {f"authentication.k8s.io/{version}"}
    finally:
        cluster.restart_apiserver(webhook=None)
    without = cluster.kubectl("auth", "whoami", kubeconfig=known, check=False)
    assert "Unauthorized" in without.stderr


def test_revocation_is_visible_after_the_short_webhook_cache_ttl(
    cluster: ControlPlane, token_webhook: TokenWebhook, tmp_path: Path
) -> None:
    config = write_webhook_kubeconfig(
        tmp_path / "webhook.kubeconfig", url=token_webhook.url, ca_file=cluster.ca_file
    )
    known = write_token_kubeconfig(
        tmp_path / "known.kubeconfig",
        server=cluster.server,
        ca_file=cluster.ca_file,
        user="known",
        token=token_webhook.user.token,
    )
    cluster.restart_apiserver(webhook=Webhook(config_file=config, cache_ttl="1s"))
    try:
        assert _whoami(cluster, known)["username"] == "webhook-user"
        token_webhook.revoked = True
        revoked_at = time.monotonic()
        # kube-apiserver's own success cache, plus the 1 s webhook TTL, plus kubectl start-up.
        bound = APISERVER_TOKEN_SUCCESS_CACHE_SECONDS + 1 + 5
        deadline = revoked_at + bound + 5
        denied = False
        while not denied and time.monotonic() < deadline:
            done = cluster.kubectl("auth", "whoami", kubeconfig=known, check=False)
            denied = "Unauthorized" in done.stderr
            if not denied:
                time.sleep(0.2)
        assert denied, "kube-apiserver kept accepting a revoked token"
        assert time.monotonic() - revoked_at < bound
    finally:
        cluster.restart_apiserver(webhook=None)


def test_shipped_crd_is_served_and_readable_by_the_service_account(
    cluster: ControlPlane, deployed: tuple[Path, ...], kubeiam_kubeconfig: Path, tmp_path: Path
) -> None:
    assert "crd.yaml" in {p.name for p in deployed}
    crd = "crd/iamidentitymappings.iamauthenticator.k8s.aws"
    cluster.kubectl("wait", "--for=condition=Established", crd, "--timeout=30s")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "apiVersion: iamauthenticator.k8s.aws/v1alpha1\n"
        "kind: IAMIdentityMapping\n"
        "metadata: {name: e2e-harness-probe}\n"
        "spec: {arn: 'arn:aws:iam::111122223333:user/probe', username: probe, groups: [g]}\n"
    )
    cluster.apply(mapping)
    try:
        listed = cluster.kubectl(
            "get", "iamidentitymappings", "-o", "name", kubeconfig=kubeiam_kubeconfig
        )
        assert "iamidentitymapping.iamauthenticator.k8s.aws/e2e-harness-probe" in listed.stdout
        denied = cluster.kubectl(
            "delete",
            "iamidentitymapping",
            "e2e-harness-probe",
            kubeconfig=kubeiam_kubeconfig,
            check=False,
        )
        assert denied.returncode != 0
        assert "forbidden" in denied.stderr.lower()
    finally:
        cluster.kubectl("delete", "iamidentitymapping", "e2e-harness-probe", "--ignore-not-found")
