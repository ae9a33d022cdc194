"""The Helm chart's DaemonSet on a real node: helm install, upgrade, pod loss (issue 12, section 3).

A control plane with kube-scheduler and kube-controller-manager (the DaemonSet, node
lifecycle, service-account and root-CA controllers) and one kubelet node labelled as a
control-plane node, as kubeadm labels it. `helm install` puts the chart's DaemonSet there with
`make image`'s image; its init container gives the host's state and kubeconfig directories to
the server's UID; the server writes kube-apiserver's webhook kubeconfig on the host; kube-apiserver
restarts with it (what a kubeadm user does once) and an IAM user authenticates through the pod.
Then `helm upgrade` with a changed mapping rolls the pod and the new mapping answers, and a
deleted pod comes back with authentication recovered.

Values differ from the defaults only where this machine differs from a node: host paths under
the test's directory instead of /var and /etc, a free port, the local STS, `pullPolicy: Never`.
The tests run in file order and share the module's cluster: rendering first, then install,
upgrade, deletion. Needs root (the node): off CI skipped with one line, on CI that fails.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.binaries import cache_root
from cluster.control_plane import ControlPlane, Webhook, free_port
from cluster.node import (
    IMAGE_REFERENCE,
    SERVER_UID,
    Controllers,
    Node,
    NodeTools,
    container_id,
    container_memory,
    ensure_image,
    helm_binary,
    is_ready,
    process_facts,
    start_controllers,
    start_node,
    wait_pod,
    webhook_server,
)
from system import (
    CLUSTER_ID,
    GRANT_SECONDS,
    WEBHOOK_CACHE_TTL_SECONDS,
    IamUser,
    System,
    wait_for,
)

from kubeiam.localaws import LocalAWS

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "deploy" / "helm" / "kubeiam"
RELEASE = "kubeiam"
NAMESPACE = "kube-system"
SELECTOR = f"app.kubernetes.io/name=kubeiam,app.kubernetes.io/instance={RELEASE}"
HELM_SECONDS = 120


@dataclass(slots=True)
class ChartSetup:
    plane: ControlPlane
    node: Node
    controllers: Controllers
    system: System
    helm: Path
    workdir: Path
    port: int
    state_dir: Path
    kubeconfig_dir: Path
    user: IamUser
    local_aws: LocalAWS
    #: The pod uids seen so far, oldest first.
    pods: list[str] = field(default_factory=list)

    def log_tails(self, lines: int = 60) -> dict[str, str]:
        """The control plane's, the node's, the controllers' and the kubeiam container's logs."""
        return {
            **self.plane.log_tails(lines),
            **self.node.log_tails(lines),
            "kubeiam container": self.node.container_log("kubeiam", lines),
        }

    @property
    def webhook_config(self) -> Path:
        return self.kubeconfig_dir / "kubeconfig.yaml"

    def values(self, username: str) -> Path:
        """A values file mapping `user` to `username`; everything else as for a real node."""
        values = {
            "clusterID": CLUSTER_ID,
            "image": {"pullPolicy": "Never"},
            "stateDir": str(self.state_dir),
            "generateKubeconfig": {"hostPath": str(self.kubeconfig_dir), "file": "kubeconfig.yaml"},
            "server": {
                "port": self.port,
                "mapUsers": [
                    {"userarn": self.user.arn, "username": username, "groups": ["e2e-chart"]}
                ],
                "extraArgs": [
                    f"--sts-resolve={self.local_aws.sts_resolve()}",
                    f"--sts-ca-bundle={self.state_dir / 'sts-ca.pem'}",
                ],
            },
        }
        path = self.workdir / f"values-{username}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def helm_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.helm), *args, "--kubeconfig", str(self.plane.admin_kubeconfig)],
            capture_output=True,
            text=True,
            timeout=HELM_SECONDS,
            check=False,
            env={**os.environ, "HOME": str(self.workdir), "KUBECONFIG": ""},
        )
        assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stderr}"
        return done

    def current_pod(self) -> dict[str, Any] | None:
        """The DaemonSet's pod that is not terminating (None while there is none)."""
        done = self.plane.kubectl(
            "get", "pods", "-n", NAMESPACE, "-l", SELECTOR, "-o", "json", check=False
        )
        if done.returncode != 0:
            return None
        for pod in json.loads(done.stdout)["items"]:
            if not pod["metadata"].get("deletionTimestamp"):
                found: dict[str, Any] = pod
                return found
        return None

    def wait_new_ready_pod(self, what: str) -> tuple[dict[str, Any], float]:
        """Wait for a Ready pod whose uid was not seen before; returns it and the seconds."""
        started = time.monotonic()

        def fresh() -> dict[str, Any] | None:
            pod = self.current_pod()
            if pod is None or pod["metadata"]["uid"] in self.pods:
                return None
            return pod

        pod = wait_pod(self.plane, NAMESPACE, fresh, what=what, node=self.node)
        self.pods.append(pod["metadata"]["uid"])
        return pod, time.monotonic() - started


@pytest.fixture(scope="module")
def chart(
    e2e_node_tools: NodeTools,
    cluster_factory: Callable[..., ControlPlane],
    local_aws: LocalAWS,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ChartSetup]:
    archive = ensure_image()
    helm = helm_binary(cache_root(os.environ))
    workdir = tmp_path_factory.mktemp("node-chart")
    # Root-owned host directories, as on a fresh node; the chart's init container hands them over.
    state_dir = workdir / "host" / "var-aws-iam-authenticator"
    kubeconfig_dir = workdir / "host" / "etc-kubernetes-aws-iam-authenticator"
    state_dir.mkdir(parents=True)
    shutil.copy(local_aws.ca_bundle, state_dir / "sts-ca.pem")
    (state_dir / "sts-ca.pem").chmod(0o644)
    key_id, secret = local_aws.create_user("e2e-node-chart")
    user = IamUser("e2e-node-chart", local_aws.user_arn("e2e-node-chart"), key_id, secret)
    plane = cluster_factory()
    controllers = start_controllers(cache_root(os.environ), plane)
    node: Node | None = None
    try:
        node = start_node(e2e_node_tools, plane, workdir / "node")
        node.extra_processes += [controllers.scheduler, controllers.controller_manager]
        plane.kubectl("label", "node", node.name, "node-role.kubernetes.io/control-plane=")
        node.import_image(archive, IMAGE_REFERENCE)
        port = free_port()
        system = System.around_pod(
            plane=plane,
            aws=local_aws,
            workdir=workdir,
            config=workdir / "unused.yaml",
            state_dir=state_dir,
            port=port,
            webhook_config=kubeconfig_dir / "kubeconfig.yaml",
            file_user=user,
        )
        yield ChartSetup(
            plane=plane,
            node=node,
            controllers=controllers,
            system=system,
            helm=helm,
            workdir=workdir,
            port=port,
            state_dir=state_dir,
            kubeconfig_dir=kubeconfig_dir,
            user=user,
            local_aws=local_aws,
        )
    finally:
        if node is not None:
            node.stop()
        else:
            controllers.stop()
        plane.stop()  # only this module uses it; free its memory for the rest of the session


def test_rendered_chart_is_accepted_by_the_real_api_server(chart: ChartSetup) -> None:
    """`helm template` with defaults (plus the required cluster id) passes server-side dry run."""
    rendered = chart.helm_run(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--include-crds",
        "--set",
        f"clusterID={CLUSTER_ID}",
    ).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert {"DaemonSet", "ConfigMap", "ServiceAccount", "CustomResourceDefinition"} <= kinds
    done = chart.plane.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
    assert "daemonset.apps/kubeiam created (server dry run)" in done.stdout
    # Nothing was created.
    assert chart.current_pod() is None
    absent = chart.plane.kubectl("get", "daemonset", RELEASE, "-n", NAMESPACE, check=False)
    assert absent.returncode != 0


def test_helm_install_runs_the_daemonset_and_an_iam_user_authenticates_through_it(
    chart: ChartSetup, record_property: Callable[[str, object], None]
) -> None:
    started = time.monotonic()
    chart.helm_run(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", chart.values("chart-user")
    )
    pod, seconds = chart.wait_new_ready_pod("the chart's pod after helm install")
    record_property("measured: helm install to DaemonSet pod Ready (s)", round(seconds, 1))
    record_property(
        "measured: DaemonSet pod, container started to Ready (s)", _started_to_ready(pod)
    )
    assert pod["spec"]["nodeName"] == chart.node.name
    assert {p["hostPort"] for p in pod["spec"]["containers"][0]["ports"]} == {chart.port}

    pid = chart.node.container_pid(container_id(pod, "kubeiam"))
    facts = process_facts(pid)
    assert (facts.uid, facts.gid) == (SERVER_UID, SERVER_UID)
    assert facts.root_read_only
    assert facts.no_new_privs
    assert facts.effective_capabilities == 0
    # The init container handed the root-made host directories to the server's UID.
    assert chart.state_dir.stat().st_uid == SERVER_UID
    assert chart.kubeconfig_dir.stat().st_uid == SERVER_UID

    # The server wrote kube-apiserver's webhook kubeconfig for the pod's host port; the API
    # server starts with it (a kubeadm user adds the flag once).
    assert webhook_server(chart.webhook_config) == f"https://127.0.0.1:{chart.port}/authenticate"
    chart.plane.restart_apiserver(
        webhook=Webhook(
            config_file=chart.webhook_config,
            version="v1",
            cache_ttl=f"{WEBHOOK_CACHE_TTL_SECONDS:g}s",
        )
    )
    kubeconfig = chart.system.token_kubeconfig(chart.user, cache=False)
    info = chart.system.wait_authenticated(kubeconfig)
    assert info["username"] == "chart-user"
    assert "e2e-chart" in info["groups"]
    record_property(
        "measured: helm install to first authentication (s)", round(time.monotonic() - started, 1)
    )
    record_property(
        "measured: DaemonSet pod, server container memory", container_memory(pid).describe()
    )


def test_helm_upgrade_with_a_changed_mapping_takes_effect(chart: ChartSetup) -> None:
    kubeconfig = chart.system.token_kubeconfig(chart.user, cache=False)
    assert chart.system.wait_authenticated(kubeconfig)["username"] == "chart-user"
    chart.helm_run(
        "upgrade",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "-f",
        chart.values("chart-user-renamed"),
    )
    chart.wait_new_ready_pod("the chart's pod after helm upgrade")
    wait_for(
        lambda: (
            True
            if (chart.system.whoami(kubeconfig) or {}).get("username") == "chart-user-renamed"
            else None
        ),
        timeout=GRANT_SECONDS,
        what="the upgraded mapping answers",
    )


def test_a_deleted_pod_comes_back_and_authentication_recovers(
    chart: ChartSetup, record_property: Callable[[str, object], None]
) -> None:
    kubeconfig = chart.system.token_kubeconfig(chart.user, cache=False)
    old = chart.current_pod()
    assert old is not None
    assert is_ready(old)
    started = time.monotonic()
    chart.plane.kubectl("delete", "pod", old["metadata"]["name"], "-n", NAMESPACE, "--wait=false")
    pod, _ = chart.wait_new_ready_pod("the chart's pod after deleting it")
    record_property(
        "measured: DaemonSet pod deleted to replacement Ready (s)",
        round(time.monotonic() - started, 1),
    )
    assert pod["metadata"]["name"] != old["metadata"]["name"]
    info = chart.system.wait_authenticated(kubeconfig)
    assert info["username"] == "chart-user-renamed"


def _started_to_ready(pod: dict[str, Any]) -> float:
    """Seconds from the server container's start to the pod's Ready condition (kubelet clock)."""
    started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    return (_timestamp(ready["lastTransitionTime"]) - _timestamp(started)).total_seconds()


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
