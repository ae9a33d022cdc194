"""kubeiam as a static pod on a real kubelet: the kubeadm route (issue 12, section 3).

`kubeiam init --static-pod` writes the state directory, kube-apiserver's webhook kubeconfig and
the pod manifest; kube-apiserver starts with that kubeconfig; a kubelet built from the same
Kubernetes release (tests/e2e/cluster/node.py: containerd + runc, cgroupfs, host networking)
runs the manifest with `make image`'s image. No scheduler or controllers: the kubelet alone.
The pod's init container gives the root-owned state directory to the server's UID; the server
runs as 10000 with a read-only root filesystem and no capabilities, and an IAM user
authenticates through it (`kubectl auth whoami`). The only edit to the written manifest is the
test's STS (the local AWS front) and `imagePullPolicy: Never`: nothing here ever pulls.

Needs root (the node): off CI the module is skipped with one line, on CI that fails.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.control_plane import ControlPlane, Webhook, free_port
from cluster.node import (
    IMAGE_REFERENCE,
    SERVER_UID,
    Node,
    NodeTools,
    container_id,
    container_memory,
    ensure_image,
    pod_json,
    process_facts,
    start_node,
    wait_pod,
    webhook_server,
)
from system import (
    CLUSTER_ID,
    WEBHOOK_CACHE_TTL_SECONDS,
    IamUser,
    System,
    run_kubeiam,
)

from kubeiam.localaws import LocalAWS

#: The mirror pod's name: the manifest's name plus the node's.
MIRROR_POD = "kubeiam-kubeiam-e2e-node"
NAMESPACE = "kube-system"


@dataclass(slots=True)
class StaticPodSetup:
    plane: ControlPlane
    node: Node
    system: System
    manifest: dict[str, Any]
    port: int
    state_dir: Path
    webhook_config: Path
    user: IamUser

    def log_tails(self, lines: int = 60) -> dict[str, str]:
        """kube-apiserver, etcd, kubelet, containerd and the kubeiam container's log."""
        return {
            **self.plane.log_tails(lines),
            **self.node.log_tails(lines),
            "kubeiam container": self.node.container_log("kubeiam", lines),
        }


@pytest.fixture(scope="module")
def static_pod(
    e2e_node_tools: NodeTools,
    cluster_factory: Callable[..., ControlPlane],
    local_aws: LocalAWS,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StaticPodSetup]:
    archive = ensure_image()
    workdir = tmp_path_factory.mktemp("node-static")
    state_dir = workdir / "state"
    config = workdir / "etc-kubeiam" / "config.yaml"
    manifest_file = workdir / "kubeiam.yaml"
    port = free_port()
    done = run_kubeiam(
        "init",
        "-i",
        CLUSTER_ID,
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        "--static-pod",
        str(manifest_file),
        "--server-config",
        str(config),
    )
    assert done.returncode == 0, done.stderr
    webhook_config = state_dir / "aws-iam-authenticator.kubeconfig"
    key_id, secret = local_aws.create_user("e2e-node-static")
    user = IamUser("e2e-node-static", local_aws.user_arn("e2e-node-static"), key_id, secret)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        yaml.safe_dump(
            {
                "clusterID": CLUSTER_ID,
                "server": {
                    "backendMode": ["MountedFile"],
                    "mapUsers": [
                        {"userarn": user.arn, "username": "node-static", "groups": ["e2e-node"]}
                    ],
                },
            }
        )
    )
    # The test's STS: the local front's CA next to the state, readable by the server's UID.
    shutil.copy(local_aws.ca_bundle, state_dir / "sts-ca.pem")
    (state_dir / "sts-ca.pem").chmod(0o644)
    manifest: dict[str, Any] = yaml.safe_load(manifest_file.read_text())
    server = manifest["spec"]["containers"][0]
    server["args"] += [
        *("--sts-resolve", local_aws.sts_resolve()),
        *("--sts-ca-bundle", str(state_dir / "sts-ca.pem")),
    ]
    for container in [*manifest["spec"]["initContainers"], server]:
        assert container["image"] == f"kubeiam:{IMAGE_REFERENCE.rpartition(':')[2]}"
        container["imagePullPolicy"] = "Never"
    plane = cluster_factory(
        webhook=Webhook(
            config_file=webhook_config, version="v1", cache_ttl=f"{WEBHOOK_CACHE_TTL_SECONDS:g}s"
        )
    )
    node = start_node(e2e_node_tools, plane, workdir / "node")
    try:
        node.import_image(archive, IMAGE_REFERENCE)
        system = System.around_pod(
            plane=plane,
            aws=local_aws,
            workdir=workdir,
            config=config,
            state_dir=state_dir,
            port=port,
            webhook_config=webhook_config,
            file_user=user,
        )
        yield StaticPodSetup(plane, node, system, manifest, port, state_dir, webhook_config, user)
    finally:
        node.stop()
        plane.stop()  # only this module uses it; free its memory for the rest of the session


def _start_static_pod(setup: StaticPodSetup) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    (setup.node.static_pod_dir / "kubeiam.yaml").write_text(yaml.safe_dump(setup.manifest))
    pod = wait_pod(
        setup.plane,
        NAMESPACE,
        lambda: pod_json(setup.plane, NAMESPACE, MIRROR_POD),
        what="the kubeiam static pod",
        node=setup.node,
    )
    return pod, time.monotonic() - started


def test_static_pod_from_init_runs_non_root_read_only_and_authenticates(
    static_pod: StaticPodSetup, record_property: Callable[[str, object], None]
) -> None:
    setup = static_pod
    pod, seconds = _start_static_pod(setup)
    record_property("measured: static pod, manifest written to Ready (s)", round(seconds, 1))

    # kube-apiserver's webhook kubeconfig points at the pod's host port.
    host_ports = {p["hostPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert host_ports == {setup.port}
    assert webhook_server(setup.webhook_config) == f"https://127.0.0.1:{setup.port}/authenticate"

    # What the kernel says about the server process, not what the manifest asks for.
    pid = setup.node.container_pid(container_id(pod, "kubeiam"))
    facts = process_facts(pid)
    assert (facts.uid, facts.gid) == (SERVER_UID, SERVER_UID)
    assert facts.root_read_only
    assert facts.no_new_privs
    assert facts.effective_capabilities == 0
    # The init container gave the root-created state directory to the server's UID.
    assert setup.state_dir.stat().st_uid == SERVER_UID

    kubeconfig = setup.system.token_kubeconfig(setup.user, cache=False)
    info = setup.system.wait_authenticated(kubeconfig)
    assert info["username"] == "node-static"
    assert "e2e-node" in info["groups"]

    memory = container_memory(pid)
    record_property("measured: static pod, server container memory", memory.describe())
    assert memory.working_set_bytes < 256 * 1024 * 1024  # the manifest's limit


def test_stopping_the_node_leaves_no_container_mount_or_cgroup(static_pod: StaticPodSetup) -> None:
    """Runs last: the node's teardown kills its containers and undoes its mounts and cgroups."""
    node = static_pod.node
    pod = pod_json(static_pod.plane, NAMESPACE, MIRROR_POD)
    assert pod is not None
    pid = node.container_pid(container_id(pod, "kubeiam"))
    node.stop()
    assert not Path(f"/proc/{pid}").exists()
    assert node.kubelet is not None
    assert not node.kubelet.running
    assert node.containerd is not None
    assert not node.containerd.running
    workdir = str(node.workdir.resolve()) + os.sep
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert [m for m in mounts if m.startswith(workdir)] == []
    assert list(Path("/sys/fs/cgroup").glob(f"*/{node.cgroup_root}")) == []
