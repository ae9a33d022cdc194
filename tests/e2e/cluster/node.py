"""A real node on this machine: containerd + runc + kubelet, registered to a ControlPlane.

containerd runs with its own root, state and socket under the node's work directory (nothing in
/var/lib/containerd or /run/containerd), and the kubelet with its own root directory, the
cgroupfs driver and a static-pod directory. Pods use host networking: containerd's CNI
configuration names only the loopback plugin, enough for it to report the network ready, and no
CNI plugin ever runs (hostNetwork pods get no network namespace).

Registries are unreachable, so the sandbox (pause) image is built here from `pause.c` (gcc
-static) and wrapped as an OCI image with umoci; it is cached beside the other binaries.
`kube-scheduler` and `kube-controller-manager` (`Controllers`) are only needed for workloads
such as a DaemonSet; a static pod needs none. Needs root (cgroups, mounts, containerd).

`stop` kills every container the node started, unmounts what the kubelet and containerd mounted
under the work directory and removes the pod cgroups, so a test run leaves nothing behind.

Also here: the kubeiam image (`ensure_image`, `make image`'s archive) and helm the node tests
install, `prepare` (builds both and the pause image before the tests: binaries.py, conftest),
and what the kernel says about a pod's process (`process_facts`, `container_memory`).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from .binaries import (
    CONTROLLERS,
    KUBELET,
    BuildError,
)
from .control_plane import (
    LOOPBACK,
    ControlPlane,
    ControlPlaneError,
    ManagedProcess,
    free_port,
)

#: The sandbox image's name inside containerd; `.test` is reserved, so nothing resolves it,
#: and the image is always present before the first pod (nothing is ever pulled).
PAUSE_IMAGE = "kubeiam.test/pause:3.10"
PAUSE_SOURCE = Path(__file__).resolve().parent / "pause.c"
#: Bump when pause.c changes: the cached image is keyed by it.
PAUSE_VERSION = "1"
NODE_NAME = "kubeiam-e2e-node"
#: The containerd namespace the CRI plugin (and so the kubelet) uses.
CRI_NAMESPACE = "k8s.io"
#: Every cgroup a node's kubelet creates lives under `<prefix><pid of the test run>-<n>` (kubelet
#: `cgroupRoot`), so `stop` removes exactly what that node made, concurrent runs never touch
#: each other's, and a run killed before `stop` is recognised by its dead pid and swept.
CGROUP_PREFIX = "kubeiam-e2e-"
_NODES = itertools.count()
CGROUP_V1_ROOT = Path("/sys/fs/cgroup")
#: linux/capability.h
CAP_SYS_RESOURCE = 24
CONTAINERD_READY_SECONDS = 30.0
NODE_READY_SECONDS = 120.0
_POLL_SECONDS = 0.5


class NodeError(RuntimeError):
    """The node could not start or a node operation failed; the message says what and why."""


@dataclass(frozen=True, slots=True)
class NodeTools:
    """The executables a node needs, found on PATH or in the cache (absolute paths)."""

    kubelet: Path
    containerd: Path
    containerd_shim: Path
    ctr: Path
    #: runc, else crun: the OCI runtime containerd's runc shim drives (crun 1.8 refuses this
    #: machine's hybrid cgroup layout: "cgroups in hybrid mode not supported").
    oci_runtime: Path
    pause_image: Path


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return None if found is None else Path(found)


#: Debian packages giving the node's executables (runc: crun 1.8 refuses hybrid cgroups).
DEBIAN_PACKAGES = ("containerd", "runc", "umoci", "gcc", "libc6-dev")
_EXECUTABLES = ("containerd", "containerd-shim-runc-v2", "ctr", "gcc", "umoci")


def _absent_executables() -> list[str]:
    absent = [name for name in _EXECUTABLES if not _which(name)]
    if not (_which("runc") or _which("crun")):
        absent.append("runc or crun")
    return absent


def missing_node_prerequisite() -> str | None:
    """One line naming what stops a node from running here, or None."""
    if os.geteuid() != 0:
        return "the node (containerd, kubelet) needs root: cgroups, mounts, containerd"
    if absent := _absent_executables():
        return (
            f"not on PATH: {', '.join(absent)}"
            f" (Debian: apt-get install {' '.join(DEBIAN_PACKAGES)})"
        )
    if (
        not (CGROUP_V1_ROOT / "memory").is_dir()
        and not (CGROUP_V1_ROOT / "cgroup.controllers").is_file()
    ):
        return f"no cgroup hierarchy under {CGROUP_V1_ROOT}"
    return None


def install_debian_packages() -> str | None:
    """On CI, as root: apt-get install the node's packages when any executable is missing.

    Returns a line saying what was installed, or None when nothing was needed or possible.
    """
    if os.geteuid() != 0 or not _absent_executables() or not _which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *DEBIAN_PACKAGES],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise NodeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return f"installed Debian packages: {' '.join(DEBIAN_PACKAGES)}"


def node_tools(cache: Path) -> NodeTools:
    """The node's executables and the (built or cached) pause image; NodeError when absent."""
    problem = missing_node_prerequisite()
    if problem is not None:
        raise NodeError(problem)
    kubelet = KUBELET.directory(cache) / "kubelet"
    if not os.access(kubelet, os.X_OK):
        raise NodeError(f"kubelet is not built in {kubelet.parent}")
    runtime = _which("runc") or _which("crun")
    assert runtime is not None
    return NodeTools(
        kubelet=kubelet,
        containerd=_require("containerd"),
        containerd_shim=_require("containerd-shim-runc-v2"),
        ctr=_require("ctr"),
        oci_runtime=runtime,
        pause_image=ensure_pause_image(cache),
    )


def _require(name: str) -> Path:
    path = _which(name)
    if path is None:
        raise NodeError(f"{name} is not on PATH")
    return path


def ensure_pause_image(cache: Path) -> Path:
    """Build the pause image once (a static C binary as uid 65535 in a one-layer OCI image)."""
    directory = cache / f"pause-{PAUSE_VERSION}"
    archive = directory / "pause.oci.tar"
    if archive.is_file():
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.is_file():
            return archive
        staging = Path(tempfile.mkdtemp(prefix=".pause-", dir=cache))
        try:
            started = time.monotonic()
            binary = staging / "pause"
            layout = staging / "layout"
            bundle = staging / "bundle"
            ref = f"{layout}:3.10"
            steps = [
                [
                    "gcc",
                    "-static",
                    "-Os",
                    "-s",
                    "-Wall",
                    "-Werror",
                    "-o",
                    str(binary),
                    str(PAUSE_SOURCE),
                ],
                ["umoci", "init", "--layout", str(layout)],
                ["umoci", "new", "--image", ref],
                ["umoci", "unpack", "--image", ref, str(bundle)],
                ["install", "-m", "0755", str(binary), str(bundle / "rootfs" / "pause")],
                ["umoci", "repack", "--image", ref, str(bundle)],
                [
                    "umoci",
                    "config",
                    "--image",
                    ref,
                    "--config.entrypoint",
                    "/pause",
                    "--config.user",
                    "65535:65535",
                    "--os",
                    "linux",
                    "--architecture",
                    "amd64",
                ],
                ["umoci", "gc", "--layout", str(layout)],
                ["tar", "-C", str(layout), "-cf", str(staging / "pause.oci.tar"), "."],
            ]
            for step in steps:
                done = subprocess.run(step, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise BuildError(
                        f"building the pause image failed: $ {' '.join(step)}\n"
                        f"{done.stdout}{done.stderr}"
                    )
            shutil.rmtree(bundle)
            shutil.rmtree(layout)
            info = {
                "component": "pause",
                "version": PAUSE_VERSION,
                "seconds": round(time.monotonic() - started, 1),
            }
            (staging / "build.json").write_text(json.dumps(info, indent=2) + "\n")
            staging.chmod(0o755)
            staging.rename(directory)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return archive


def node_address() -> str:
    """The machine's first global IPv4 address: the node's InternalIP.

    The kubelet refuses a loopback node IP, and without one it would look the node name up in
    DNS; naming an address of this machine avoids both (nothing is sent to it from outside).
    """
    done = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        for link in json.loads(done.stdout or "[]"):
            for info in link.get("addr_info", []):
                if info.get("local"):
                    return str(info["local"])
    raise NodeError(
        "no global IPv4 address on this machine: the kubelet needs a non-loopback node IP"
    )


def _can_lower_oom_score() -> bool:
    """Whether this process may set a negative oom_score_adj (needs CAP_SYS_RESOURCE)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << CAP_SYS_RESOURCE))
    return False


def _cgroup_hierarchies() -> list[Path]:
    """Mount points of the cgroup hierarchies the kubelet and runc write into (every v1 one and,
    in the hybrid layout, the v2 mount beside them; or the v2 root alone)."""
    if (CGROUP_V1_ROOT / "cgroup.controllers").is_file():
        return [CGROUP_V1_ROOT]
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] in {"cgroup", "cgroup2"}:  # hybrid: both
            found.append(Path(fields[1]))
    return found


def _remove_cgroup_tree(top: Path) -> None:
    """Remove `top` and the cgroups below it, deepest first (each must be empty of tasks)."""
    if not top.is_dir():
        return
    nested = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for path in [*nested, top]:
        with contextlib.suppress(OSError):
            path.rmdir()


def _kill_cgroup_tree(top: Path) -> int:
    """SIGKILL every process in `top` and below (only pods of a node started here live there:
    a run killed before `stop` leaves its containers behind); returns how many were found."""
    pids: set[int] = set()
    if top.is_dir():
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _remove_cgroup_roots(names: Sequence[str]) -> None:
    """Kill every process in these node cgroup roots, then remove them (all hierarchies)."""
    hierarchies = _cgroup_hierarchies()
    for hierarchy in hierarchies:
        for name in names:
            _kill_cgroup_tree(hierarchy / name)
    deadline = time.monotonic() + 10
    for hierarchy in hierarchies:
        for name in names:
            while (hierarchy / name).is_dir() and time.monotonic() < deadline:
                _remove_cgroup_tree(hierarchy / name)
                if (hierarchy / name).is_dir():
                    time.sleep(0.1)


def sweep_abandoned_cgroups() -> list[str]:
    """Remove the node cgroup roots of test runs that are gone (killed before `stop`)."""
    abandoned = []
    for hierarchy in _cgroup_hierarchies():
        for root in hierarchy.glob(f"{CGROUP_PREFIX}*"):
            pid = root.name.removeprefix(CGROUP_PREFIX).split("-", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                abandoned.append(root.name)
    _remove_cgroup_roots(sorted(set(abandoned)))
    return abandoned


def _unmount_under(directory: Path) -> None:
    """Unmount (lazily) every mount point under `directory`, deepest first."""
    prefix = str(directory.resolve()) + os.sep
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@dataclass(slots=True)
class Node:
    """containerd and a kubelet registered to `plane` as `NODE_NAME` (see the module doc)."""

    tools: NodeTools
    plane: ControlPlane
    workdir: Path
    name: str = NODE_NAME
    address: str = ""
    containerd: ManagedProcess | None = None
    kubelet: ManagedProcess | None = None
    extra_processes: list[ManagedProcess] = field(default_factory=list)
    cgroup_root: str = field(default_factory=lambda: f"{CGROUP_PREFIX}{os.getpid()}-{next(_NODES)}")

    # -- paths -----------------------------------------------------------------------
    @property
    def socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    @property
    def static_pod_dir(self) -> Path:
        return self.workdir / "manifests"

    @property
    def pod_logs_dir(self) -> Path:
        return self.workdir / "pod-logs"

    @property
    def kubelet_root(self) -> Path:
        return self.workdir / "kubelet"

    # -- containerd ------------------------------------------------------------------
    def _write_containerd_config(self) -> Path:
        base = self.workdir / "containerd"
        cni_conf = base / "cni-conf"
        cni_bin = base / "cni-bin"
        cni_conf.mkdir(parents=True, exist_ok=True)
        cni_bin.mkdir(exist_ok=True)
        # Only for the CRI plugin's NetworkReady status; hostNetwork pods never call CNI.
        (cni_conf / "10-kubeiam-e2e.conflist").write_text(
            json.dumps(
                {"cniVersion": "1.0.0", "name": "kubeiam-e2e", "plugins": [{"type": "loopback"}]}
            )
        )
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        runtime = f"{cri}.containerd.runtimes.e2e"
        config = f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = "{base / "debug.sock"}"
[metrics]
  address = ""
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "{LOOPBACK}"
  # This machine withholds CAP_SYS_RESOURCE even from root, so no process may lower its
  # oom_score_adj below 0; the kubelet asks -998 for sandboxes ("write to
  # /proc/self/oom_score_adj: Permission denied"). Clamp to containerd's own score instead.
  restrict_oom_score_adj = {str(not _can_lower_oom_score()).lower()}
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "e2e"
    [{runtime}]
      runtime_type = "io.containerd.runc.v2"
      [{runtime}.options]
        BinaryName = "{self.tools.oci_runtime}"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"""
        path = base / "config.toml"
        path.write_text(config)
        return path

    def _start_containerd(self) -> None:
        config = self._write_containerd_config()
        self.containerd = ManagedProcess(
            "containerd",
            [str(self.tools.containerd), f"--config={config}", "--log-level=info"],
            self.workdir / "containerd.log",
        )
        self.containerd.start()
        deadline = time.monotonic() + CONTAINERD_READY_SECONDS
        while time.monotonic() < deadline:
            if not self.containerd.running:
                raise NodeError(str(self.containerd.fail("exited during start-up")))
            if self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(_POLL_SECONDS)
        raise NodeError(
            str(self.containerd.fail(f"not ready after {CONTAINERD_READY_SECONDS:.0f} s"))
        )

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """`ctr` against this node's containerd, in the CRI namespace."""
        argv = [
            str(self.tools.ctr),
            "--address",
            str(self.socket),
            "--namespace",
            CRI_NAMESPACE,
            *args,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise NodeError(
                f"ctr {' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}"
            )
        return done

    def import_image(self, archive: Path, reference: str) -> None:
        """Import an OCI archive so that `reference` names it (unpacked for the CRI plugin).

        An index entry with `io.containerd.image.name` (what `make image` writes) is imported
        under that name; one with only a tag (`org.opencontainers.image.ref.name`, the pause
        image) gets the repository part of `reference` through `--base-name`.
        """
        repository = reference.rpartition(":")[0]
        self.ctr("images", "import", "--base-name", repository, str(archive))
        listed = self.ctr("images", "ls", "-q").stdout.split()
        if reference not in listed:
            raise NodeError(f"importing {archive} gave {listed}, not {reference}")

    # -- kubelet ---------------------------------------------------------------------
    def _write_kubelet_config(self, port: int, healthz_port: int) -> Path:
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.address,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": LOOPBACK,
            "healthzPort": healthz_port,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.plane.ca_file)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_root}",
            # Kubernetes 1.34 still runs on cgroup v1 (maintenance mode); this machine has it.
            "failCgroupV1": False,
            "failSwapOn": False,
            "staticPodPath": str(self.static_pod_dir),
            # Static pods are noticed within a second instead of 20 s.
            "fileCheckFrequency": "1s",
            "syncFrequency": "10s",
            "podLogsDirectory": str(self.pod_logs_dir),
            "resolvConf": "",
            # A shared 2-core test machine: never evict or garbage-collect the imported images.
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
        }
        path = self.workdir / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _start_kubelet(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        (self.workdir / "node-credentials").mkdir(parents=True, exist_ok=True)
        kubeconfig = self.plane.client_cert_kubeconfig(
            self.workdir / "node-credentials" / "kubelet.kubeconfig",
            user=f"system:node:{self.name}",
            groups=("system:nodes",),
            now=now,
        )
        for directory in (self.static_pod_dir, self.pod_logs_dir, self.kubelet_root):
            directory.mkdir(parents=True, exist_ok=True)
        for hierarchy in _cgroup_hierarchies():
            (hierarchy / self.cgroup_root).mkdir(exist_ok=True)
        config = self._write_kubelet_config(free_port(), free_port())
        self.kubelet = ManagedProcess(
            "kubelet",
            [
                str(self.tools.kubelet),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.kubelet_root / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.address}",
                "--v=2",
            ],
            self.workdir / "kubelet.log",
        )
        self.kubelet.start()

    def wait_ready(self, seconds: float = NODE_READY_SECONDS) -> float:
        """Wait until the Node object reports Ready; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + seconds
        last = ""
        while time.monotonic() < deadline:
            if self.kubelet is None or not self.kubelet.running:
                raise NodeError(str(self.kubelet.fail("exited") if self.kubelet else "no kubelet"))
            done = self.plane.kubectl(
                "get",
                "node",
                self.name,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
                " {.status.conditions[?(@.type=='Ready')].message}",
                check=False,
            )
            last = (done.stdout or done.stderr).strip()
            if done.returncode == 0 and last.startswith("True"):
                return time.monotonic() - started
            time.sleep(_POLL_SECONDS)
        tail = self.kubelet.tail() if self.kubelet else ""
        raise NodeError(
            f"node {self.name} not Ready after {seconds:.0f} s ({last}); kubelet log:\n{tail}"
        )

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        sweep_abandoned_cgroups()
        self.address = self.address or node_address()
        self._start_containerd()
        self.import_image(self.tools.pause_image, PAUSE_IMAGE)
        self._start_kubelet()
        self.wait_ready()

    # -- inspection ------------------------------------------------------------------
    def container_pid(self, container_id: str) -> int:
        """The host PID of a running container's first process (CRI container id)."""
        done = self.ctr("tasks", "ls")
        for line in done.stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                return int(fields[1])
        raise NodeError(f"no running task {container_id} in containerd")

    def container_log(self, container: str, lines: int = 40) -> str:
        """The last lines of every log the kubelet kept for containers named `container`."""
        logs = sorted(self.pod_logs_dir.glob(f"*/{container}/*.log"))
        return "\n".join(
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) for log in logs
        )

    def log_tails(self, lines: int = 60) -> dict[str, str]:
        processes = [self.containerd, self.kubelet, *self.extra_processes]
        return {p.name: p.tail(lines) for p in processes if p is not None}

    # -- teardown --------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the kubelet, kill every container, stop containerd, undo mounts and cgroups."""
        for process in reversed(self.extra_processes):
            process.stop()
        if self.kubelet is not None:
            self.kubelet.stop()
        if self.containerd is not None and self.containerd.running:
            tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
            for task in tasks:
                self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False, timeout=30)
            deadline = time.monotonic() + 15
            for task in tasks:
                while time.monotonic() < deadline:
                    if self.ctr("tasks", "delete", task, check=False, timeout=30).returncode == 0:
                        break
                    time.sleep(_POLL_SECONDS)
            for container in self.ctr("containers", "ls", "-q", check=False).stdout.split():
                self.ctr("containers", "delete", container, check=False, timeout=30)
            self.containerd.stop()
        _unmount_under(self.workdir)
        _remove_cgroup_roots([self.cgroup_root])


def start_node(tools: NodeTools, plane: ControlPlane, workdir: Path) -> Node:
    """Start containerd and a kubelet registered to `plane`; the caller must `stop` it."""
    node = Node(tools=tools, plane=plane, workdir=workdir)
    try:
        node.start()
    except BaseException:
        node.stop()
        raise
    return node


@dataclass(slots=True)
class Controllers:
    """kube-scheduler and kube-controller-manager for `plane` (what a DaemonSet needs)."""

    plane: ControlPlane
    scheduler: ManagedProcess
    controller_manager: ManagedProcess

    def stop(self) -> None:
        self.controller_manager.stop()
        self.scheduler.stop()


#: Only the controllers a DaemonSet on one node needs: pods from the DaemonSet, the node's
#: not-ready taint lifted, service accounts and the root CA ConfigMap that token volumes
#: project, and garbage collection of the pods a deleted DaemonSet owned.
CONTROLLER_NAMES: Sequence[str] = (
    "daemonset-controller",
    "node-lifecycle-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "garbage-collector-controller",
)


def start_controllers(cache: Path, plane: ControlPlane) -> Controllers:
    """Start kube-scheduler and kube-controller-manager as admin on loopback (no serving port)."""
    directory = CONTROLLERS.directory(cache)
    kubeconfig = str(plane.admin_kubeconfig)
    scheduler = ManagedProcess(
        "kube-scheduler",
        [
            str(directory / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
        ],
        plane.workdir / "kube-scheduler.log",
    )
    controller_manager = ManagedProcess(
        "kube-controller-manager",
        [
            str(directory / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            f"--root-ca-file={plane.ca_file}",
            f"--controllers={','.join(CONTROLLER_NAMES)}",
            # One node that is the whole cluster: never evict its pods when a probe is slow.
            "--node-monitor-grace-period=120s",
        ],
        plane.workdir / "kube-controller-manager.log",
    )
    scheduler.start()
    controller_manager.start()
    for process in (scheduler, controller_manager):
        time.sleep(0.5)
        if not process.running:
            raise ControlPlaneError(str(process.fail("exited during start-up")))
    return Controllers(plane=plane, scheduler=scheduler, controller_manager=controller_manager)


# -- the kubeiam image, pods and what the kernel says about them -------------------------
REPO_ROOT = Path(__file__).resolve().parents[3]
KUBEIAM_VERSION = version("kubeiam")
#: The name `kubeiam:<version>` (the chart's and `kubeiam init --static-pod`'s default)
#: normalises to inside containerd.
IMAGE_REFERENCE = f"docker.io/library/kubeiam:{KUBEIAM_VERSION}"
IMAGE_ARCHIVE = REPO_ROOT / "dist" / f"kubeiam-{KUBEIAM_VERSION}.oci.tar"
#: The image's build on 2 shared cores: a cold Debian root takes minutes.
IMAGE_BUILD_SECONDS = 1800
#: The server's UID and GID in the image and the chart (the reference's manifests' 10000).
SERVER_UID = 10000
POD_READY_SECONDS = 120.0
_POD_POLL_SECONDS = 0.25


#: What `make image` builds from: when any of these is newer than the archive, it is rebuilt.
IMAGE_INPUTS = (
    "src/kubeiam",
    "packaging/image",
    "pyproject.toml",
    "requirements/lock.txt",
    "LICENSE",
)


def image_is_current() -> bool:
    """True when the archive is newer than every file the image is built from."""
    if not IMAGE_ARCHIVE.is_file():
        return False
    built = IMAGE_ARCHIVE.stat().st_mtime
    for name in IMAGE_INPUTS:
        path = REPO_ROOT / name
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        if any(f.stat().st_mtime > built for f in files if "__pycache__" not in f.parts):
            return False
    return True


@functools.cache
def ensure_image() -> Path:
    """`make image`'s archive for this tree: rebuilt when missing or older than its inputs.

    An archive left by older code would test that code, so staleness is checked against
    IMAGE_INPUTS; `make e2e` builds it before the tests (binaries.py) so its cold build (a
    Debian root, minutes) never counts against a test's timeout. The build caches that root,
    so a rebuild after a code change only repackages the kubeiam layers.
    """
    if image_is_current():
        return IMAGE_ARCHIVE
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "packaging" / "image" / "build.py")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=IMAGE_BUILD_SECONDS,
        check=False,
    )
    if done.returncode != 0 or not IMAGE_ARCHIVE.is_file():
        raise NodeError(f"building the image failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return IMAGE_ARCHIVE


def pod_json(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    done = plane.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
    if done.returncode != 0:
        return None
    pod: dict[str, Any] = json.loads(done.stdout)
    return pod


def is_ready(pod: dict[str, Any] | None) -> bool:
    if pod is None or pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_pod(
    plane: ControlPlane,
    namespace: str,
    find: Callable[[], dict[str, Any] | None],
    *,
    what: str,
    node: Node,
    timeout: float = POD_READY_SECONDS,
) -> dict[str, Any]:
    """Poll until `find()` returns a Ready pod; on timeout say what the pod and kubelet said."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = find()
        if is_ready(last):
            assert last is not None
            return last
        if last is not None and (crashing := _crash_looping(last)):
            raise NodeError(
                f"{what}: {crashing} crash-loops; its log:\n{node.container_log(crashing)}"
            )
        time.sleep(_POD_POLL_SECONDS)
    status = json.dumps((last or {}).get("status", {}), indent=1)[-3000:]
    kubelet = node.log_tails(40).get("kubelet", "")
    raise NodeError(
        f"{what} not Ready after {timeout:.0f} s; status: {status}\nkubelet:\n{kubelet}"
    )


def _crash_looping(pod: dict[str, Any]) -> str | None:
    """The name of a container the kubelet backs off restarting, if any."""
    status = pod.get("status", {})
    for container in [
        *status.get("initContainerStatuses", []),
        *status.get("containerStatuses", []),
    ]:
        if container.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff":
            name: str = container["name"]
            return name
    return None


def container_id(pod: dict[str, Any], name: str) -> str:
    for status in pod["status"]["containerStatuses"]:
        if status["name"] == name:
            value: str = status["containerID"]
            return value.split("://", 1)[1]
    raise AssertionError(f"no container {name} in {pod['metadata']['name']}")


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What the kernel says about a container's main process."""

    uid: int
    gid: int
    root_read_only: bool
    no_new_privs: bool
    effective_capabilities: int


def process_facts(pid: int) -> ProcessFacts:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    # The container's root: mount point "/" in its own mount namespace.
    root_options = ""
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        parts = line.split()
        if parts[4] == "/":
            root_options = parts[5]
    return ProcessFacts(
        uid=int(fields["Uid"].split()[1]),
        gid=int(fields["Gid"].split()[1]),
        root_read_only="ro" in root_options.split(","),
        no_new_privs=fields.get("NoNewPrivs", "0").strip() == "1",
        effective_capabilities=int(fields["CapEff"].strip(), 16),
    )


@dataclass(frozen=True, slots=True)
class Memory:
    """A container's memory from its cgroup (v1 files; what the kubelet reports as working set)."""

    usage_bytes: int
    working_set_bytes: int
    rss_bytes: int

    def describe(self) -> str:
        mib = 1024 * 1024
        return (
            f"working set {self.working_set_bytes / mib:.1f} MiB, rss {self.rss_bytes / mib:.1f}"
            f" MiB, usage {self.usage_bytes / mib:.1f} MiB"
        )


def container_memory(pid: int) -> Memory:
    """Memory of the cgroup holding `pid` (cgroup v1 memory controller, or v2's unified file)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            group = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            stat = _stat(group / "memory.stat")
            usage = int((group / "memory.usage_in_bytes").read_text())
            inactive = stat.get("total_inactive_file", 0)
            return Memory(usage, max(usage - inactive, 0), stat.get("total_rss", 0))
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").is_file():
            group = Path("/sys/fs/cgroup") / path.lstrip("/")
            stat = _stat(group / "memory.stat")
            usage = int((group / "memory.current").read_text())
            inactive = stat.get("inactive_file", 0)
            return Memory(usage, max(usage - inactive, 0), stat.get("anon", 0))
    raise AssertionError(f"no memory cgroup for pid {pid}")


def _stat(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def webhook_server(kubeconfig: Path) -> str:
    """The `server` URL of kube-apiserver's webhook kubeconfig."""
    text = kubeconfig.read_text()
    match = re.search(r"server:\s*(\S+)", text)
    assert match, text
    return match.group(1)


def helm_binary(cache: Path) -> Path:
    """helm from packaging/helm.sh (built once into `cache` from the Go module proxy)."""
    done = subprocess.run(
        [str(REPO_ROOT / "packaging" / "helm.sh")],
        capture_output=True,
        text=True,
        timeout=IMAGE_BUILD_SECONDS,
        check=False,
        env={**os.environ, "KUBEIAM_E2E_CACHE": str(cache)},
    )
    if done.returncode != 0:
        raise NodeError(f"packaging/helm.sh failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def prepare(cache: Path, *, ci: bool) -> list[str]:
    """Build what the node tests need besides the Go binaries, before the tests run.

    The pause image, `make image`'s archive and helm; one line per part saying what was done.
    On CI (`ci`) missing Debian packages are installed first (apt-get, as root). Without the
    node's prerequisites nothing is built and the line says why (the node tests then skip
    off CI and fail on CI).
    """
    lines = []
    if ci and (installed := install_debian_packages()):
        lines.append(installed)
    problem = missing_node_prerequisite()
    if problem is not None:
        return [*lines, f"node: not prepared: {problem}"]
    steps: tuple[tuple[str, Callable[[], object], Callable[[], bool]], ...] = (
        (
            "pause image",
            lambda: ensure_pause_image(cache),
            lambda: (cache / f"pause-{PAUSE_VERSION}").is_dir(),
        ),
        ("kubeiam image", ensure_image, image_is_current),
        ("helm", lambda: helm_binary(cache), lambda: bool(list(cache.glob("helm-*/helm")))),
    )
    for name, build, current in steps:
        was_current = current()
        started = time.monotonic()
        path = build()
        what = "reused" if was_current else f"built in {time.monotonic() - started:.0f} s"
        lines.append(f"{what}: {name} {path}")
    return lines
