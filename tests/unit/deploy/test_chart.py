"""deploy/helm/kubeiam renders what docs/deploy.md promises: the security settings, the RBAC and
CRD of deploy/ unchanged, a config kubeiam reads, and arguments `kubeiam server` accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import CHART, REPO, Render, StartServer, find, relocate, template_error

from kubeiam.cli.init import SERVER_GID, SERVER_UID, static_pod_manifest
from kubeiam.server.config import BackendMode

ALL_VALUES = CHART / "ci/all-values.yaml"


def daemonset_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = find(docs, "DaemonSet")["spec"]["template"]["spec"]
    return pod


def test_server_runs_non_root_read_only_without_capabilities(render: Render) -> None:
    pod = daemonset_pod(render("clusterID=c1"))
    (server,) = pod["containers"]
    assert server["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": SERVER_UID,
        "runAsGroup": SERVER_GID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["hostNetwork"] is True
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
            "effect": "NoSchedule"} in pod["tolerations"]  # fmt: skip


def test_init_container_is_the_same_image_with_chown_alone(render: Render) -> None:
    pod = daemonset_pod(render("clusterID=c1", "image.repository=reg.example/kubeiam"))
    (init,) = pod["initContainers"]
    (server,) = pod["containers"]
    assert init["image"] == server["image"] == "reg.example/kubeiam:0.1.0"
    context = init["securityContext"]
    assert context["runAsUser"] == 0
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert init["args"][:1] == ["init"]
    assert f"--owner={SERVER_UID}:{SERVER_GID}" in init["args"]
    # Every host path the server writes is prepared, and nothing else.
    writable = {m["mountPath"] for m in server["volumeMounts"] if not m.get("readOnly")}
    prepared = {a.removeprefix("--prepare-dir=") for a in init["args"] if "--prepare-dir" in a}
    assert (
        prepared
        == writable
        == {"/var/aws-iam-authenticator", "/etc/kubernetes/aws-iam-authenticator"}
    )


def test_no_init_container_when_host_paths_are_prepared(render: Render) -> None:
    pod = daemonset_pod(render("clusterID=c1", "prepareHostPaths=false"))
    assert "initContainers" not in pod


def test_static_pod_has_the_charts_security(render: Render) -> None:
    pod = daemonset_pod(render("clusterID=c1"))
    static = static_pod_manifest(
        image="kubeiam:0.1.0",
        cluster_id="c1",
        state_dir=Path("/var/aws-iam-authenticator"),
        server_config=Path("/etc/kubeiam/config.yaml"),
        address="127.0.0.1",
        port=21362,
        hostname=None,
    )["spec"]
    assert static["containers"][0]["securityContext"] == pod["containers"][0]["securityContext"]
    assert (
        static["initContainers"][0]["securityContext"]
        == pod["initContainers"][0]["securityContext"]
    )
    assert static["securityContext"] == pod["securityContext"]


def test_cluster_id_is_required(helm: Path) -> None:
    assert "clusterID is required" in template_error(helm)


def test_rbac_and_crd_are_deploys_own(render: Render) -> None:
    """One source: the chart's RBAC rules and CRD are deploy/rbac.yaml's and deploy/crd.yaml's."""
    docs = render("clusterID=c1", namespace="auth")
    static = [d for d in yaml.safe_load_all((REPO / "deploy/rbac.yaml").read_text()) if d]
    for source in static:
        rendered = find(docs, source["kind"], source["metadata"]["name"])
        assert rendered.get("rules") == source.get("rules")
        assert rendered.get("roleRef") == source.get("roleRef")
        if "namespace" in source["metadata"]:
            assert rendered["metadata"]["namespace"] == "auth"
        for subject in rendered.get("subjects", []):
            assert subject["namespace"] == "auth"
    crd = yaml.safe_load((REPO / "deploy/crd.yaml").read_text())
    assert find(docs, "CustomResourceDefinition") == crd
    assert (CHART / "crds/iamidentitymapping.yaml").resolve() == REPO / "deploy/crd.yaml"
    assert (CHART / "files/rbac.yaml").resolve() == REPO / "deploy/rbac.yaml"


def test_rendered_config_and_args_start_the_server(
    render: Render, tmp_path: Path, start_server: StartServer
) -> None:
    """The ConfigMap's config.yaml and the container's args, as kubelet would hand them over."""
    docs = render(values=ALL_VALUES)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config_map = find(docs, "ConfigMap")
    (config_dir / "config.yaml").write_text(config_map["data"]["config.yaml"])
    (server,) = daemonset_pod(docs)["containers"]
    args = relocate(
        server["args"],
        {
            "/etc/kubeiam": config_dir,
            "/var/aws-iam-authenticator": tmp_path / "state",
            "/etc/kubernetes/aws-iam-authenticator": tmp_path / "kc",
        },
    )
    started = start_server(args)
    assert started.workers == 2
    config = started.config
    assert config.cluster_id == "ci-cluster"
    assert config.address == "0.0.0.0"  # noqa: S104 (what all-values.yaml asks for)
    assert config.backend_mode == (
        BackendMode.MOUNTED_FILE,
        BackendMode.EKS_CONFIG_MAP,
        BackendMode.CRD,
    )
    assert config.identity_cache_ttl == 30
    assert config.generate_kubeconfig == tmp_path / "kc/kubeconfig.yaml"
    assert config.state_dir == tmp_path / "state"
    # Probes go to loopback when the server listens on every address.
    assert server["readinessProbe"]["httpGet"]["host"] == "127.0.0.1"


def test_mapping_change_rolls_the_pods(render: Render) -> None:
    """A changed mapping changes the pod template (config checksum), so `helm upgrade` rolls it."""
    role = "arn:aws:iam::111122223333:role/dev"
    before = daemonset_pod(render("clusterID=c1"))
    before_meta = find(render("clusterID=c1"), "DaemonSet")["spec"]["template"]["metadata"]
    after_meta = find(
        render(
            "clusterID=c1", f"server.mapRoles[0].rolearn={role}", "server.mapRoles[0].username=dev"
        ),
        "DaemonSet",
    )["spec"]["template"]["metadata"]
    assert before["containers"]
    assert (
        before_meta["annotations"]["checksum/config"]
        != after_meta["annotations"]["checksum/config"]
    )


@pytest.mark.parametrize(
    ("sets", "kinds"),
    [
        pytest.param((), set(), id="off"),
        pytest.param(("metrics.service.enabled=true",), {"Service"}, id="service"),
        pytest.param(
            ("metrics.serviceMonitor.enabled=true",), {"Service", "ServiceMonitor"}, id="monitor"
        ),
    ],
)
def test_metrics_objects_are_optional(
    render: Render, sets: tuple[str, ...], kinds: set[str]
) -> None:
    docs = render("clusterID=c1", *sets)
    assert {d["kind"] for d in docs} & {"Service", "ServiceMonitor"} == kinds


def test_rbac_can_be_left_out(render: Render) -> None:
    kinds = {d["kind"] for d in render("clusterID=c1", "rbac.create=false")}
    assert not kinds & {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    }


def test_resources_priority_and_scheduling_follow_values(render: Render) -> None:
    pod = daemonset_pod(
        render(
            "clusterID=c1",
            "priorityClassName=my-critical",
            "resources.limits.memory=512Mi",
            "nodeSelector.role=auth",
            "tolerations=null",
        )
    )
    assert pod["priorityClassName"] == "my-critical"
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "512Mi"
    assert pod["nodeSelector"]["role"] == "auth"
    assert "tolerations" not in pod


@pytest.mark.parametrize(
    "workers",
    [
        pytest.param("0", id="zero"),
        pytest.param("-1", id="negative"),
        pytest.param("65", id="over-the-cli-bound"),
        pytest.param("2.5", id="fraction"),
        pytest.param("two", id="word"),
    ],
)
def test_workers_outside_the_servers_bounds_refuse_to_render(helm: Path, workers: str) -> None:
    """`helm install` names the bad value and the bounds; no pod crash-loops on --workers."""
    error = template_error(helm, "clusterID=c1", f"server.workers={workers}")
    assert f"server.workers is {workers}: give a whole number from 1 to 64" in error


@pytest.mark.parametrize(
    "setting",
    [
        pytest.param("stateDir=/", id="state-root"),
        pytest.param("stateDir=/var/lib", id="state-var-lib"),
        pytest.param("generateKubeconfig.hostPath=/etc/kubernetes", id="kubeconfig-etc-kubernetes"),
        pytest.param("generateKubeconfig.hostPath=/etc/kubernetes/", id="trailing-slash"),
        pytest.param("generateKubeconfig.hostPath=/etc", id="kubeconfig-etc"),
    ],
)
def test_system_directories_are_never_given_away(helm: Path, setting: str) -> None:
    """The init container chowns these host paths: a typo must not hand over /etc/kubernetes."""
    assert "is a system directory" in template_error(helm, "clusterID=c1", setting)
