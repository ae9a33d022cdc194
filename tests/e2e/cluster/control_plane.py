"""etcd and kube-apiserver as child processes on 127.0.0.1, with temporary directories.

Each process runs in its own process group with a parent-death signal, so a killed test run does
not leave them behind; `stop` sends SIGTERM to the group, then SIGKILL after a timeout. Their
output goes to log files in the work directory; `log_tails` returns the last lines for failure
reports.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .binaries import Binaries
from .kubeconfig import write_cert_kubeconfig, write_exec_kubeconfig, write_token_kubeconfig
from .pki import CertFiles, ControlPlanePki, write_client_cert, write_pki

LOOPBACK = "127.0.0.1"
#: Only a setting the API server insists on; nothing is ever sent to these addresses.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
#: kube-apiserver caches every successful token authentication for 10 s on top of the webhook's
#: own cache (TokenSuccessCacheTTL, no flag), so a revoked token is refused 10 s + cache_ttl later.
APISERVER_TOKEN_SUCCESS_CACHE_SECONDS = 10.0
ETCD_READY_SECONDS = 30.0
APISERVER_READY_SECONDS = 150.0
STOP_SECONDS = 15.0
_START_ATTEMPTS = 3
_POLL_SECONDS = 0.2


class ControlPlaneError(RuntimeError):
    """A process of the control plane failed to start or a kubectl call failed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"KUBECONFIG", "KUBERNETES_EXEC_INFO"}}
    env.update(extra or {})
    return env


class ManagedProcess:
    """One long-running child process with its output in a log file.

    Start it from the main thread: the parent-death signal fires when the *thread* that started
    the child ends, so a child started from a worker thread dies with that thread.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        #: Added to the scrubbed environment of the test run (e.g. a server's AWS endpoints).
        self.env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        if self.running:
            raise ControlPlaneError(f"{self.name} is already running")
        self._log = self.log_path.open("ab")
        self._log.write(f"==== starting {self.name} at {time.strftime('%H:%M:%S')}\n".encode())
        self._log.flush()
        # The parent-death signal ends the child even when pytest itself is killed.
        wrapper = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
        self._process = subprocess.Popen(
            [*wrapper, *self.argv],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_child_environment(self.env),
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout)
            except ProcessLookupError:
                process.wait(timeout=timeout)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, problem: str) -> ControlPlaneError:
        return ControlPlaneError(
            f"{self.name} {problem}; last lines of {self.log_path}:\n{self.tail()}"
        )


def _wait_until(
    process: ManagedProcess,
    probe: urllib.request.Request,
    context: ssl.SSLContext | None,
    seconds: float,
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process.running:
            raise process.fail("exited during start-up")
        try:
            with urllib.request.urlopen(probe, timeout=5, context=context) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
            pass
        time.sleep(_POLL_SECONDS)
    raise process.fail(f"not ready after {seconds:.0f} s")


@dataclass(frozen=True, slots=True)
class Webhook:
    """kube-apiserver's token webhook settings (the config file is a kubeconfig, e.g. from init)."""

    config_file: Path
    version: str = "v1"
    #: Short, so that a revoked mapping is observable within a test.
    cache_ttl: str = "1s"

    def flags(self) -> list[str]:
        return [
            f"--authentication-token-webhook-config-file={self.config_file}",
            f"--authentication-token-webhook-version={self.version}",
            f"--authentication-token-webhook-cache-ttl={self.cache_ttl}",
        ]


@dataclass(slots=True)
class Etcd:
    """An etcd member on loopback with its data in a temporary directory."""

    binary: Path
    workdir: Path
    client_port: int = 0
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.client_port}"

    def start(self) -> None:
        for attempt in range(_START_ATTEMPTS):
            self.client_port, peer_port = free_port(), free_port()
            peer = f"http://{LOOPBACK}:{peer_port}"
            data_dir = self.workdir / "etcd-data"
            shutil.rmtree(data_dir, ignore_errors=True)
            self.process = ManagedProcess(
                "etcd",
                [
                    str(self.binary),
                    "--name=e2e",
                    f"--data-dir={data_dir}",
                    f"--listen-client-urls={self.url}",
                    f"--advertise-client-urls={self.url}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=e2e={peer}",
                    "--unsafe-no-fsync",  # throwaway data: fsync only slows the tests
                    "--log-level=warn",
                ],
                self.workdir / "etcd.log",
            )
            self.process.start()
            try:
                _wait_until(
                    self.process,
                    urllib.request.Request(f"{self.url}/health"),
                    None,
                    ETCD_READY_SECONDS,
                )
                return
            except ControlPlaneError:
                self.process.stop()
                if attempt == _START_ATTEMPTS - 1:
                    raise

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass(slots=True)
class ControlPlane:
    """etcd + kube-apiserver on 127.0.0.1, an admin kubeconfig and kubectl helpers.

    Build one with `start_control_plane`; `stop` ends both processes.
    """

    binaries: Binaries
    workdir: Path
    pki: ControlPlanePki
    etcd: Etcd
    port: int = 0
    webhook: Webhook | None = None
    extra_args: tuple[str, ...] = ()
    apiserver: ManagedProcess | None = None
    admin_kubeconfig: Path = field(init=False)

    def __post_init__(self) -> None:
        self.admin_kubeconfig = self.workdir / "admin.kubeconfig"

    # -- addresses and files -------------------------------------------------------------
    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.pki.ca.cert

    # -- kube-apiserver ------------------------------------------------------------------
    def _apiserver_argv(self) -> list[str]:
        certs = self.workdir / "apiserver-certs"
        certs.mkdir(exist_ok=True)
        argv = [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={self.etcd.url}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.port}",
            f"--cert-dir={certs}",
            f"--tls-cert-file={self.pki.serving.cert}",
            f"--tls-private-key-file={self.pki.serving.key}",
            f"--client-ca-file={self.pki.ca.cert}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--service-account-issuer=https://{LOOPBACK}:{self.port}",
            f"--service-account-key-file={self.pki.service_account_public_key}",
            f"--service-account-signing-key-file={self.pki.service_account_key}",
            "--authorization-mode=Node,RBAC",
            "--profiling=false",
        ]
        if self.webhook is not None:
            argv += self.webhook.flags()
        return [*argv, *self.extra_args]

    def _admin_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return context

    def _start_apiserver(self) -> None:
        self.apiserver = ManagedProcess(
            "kube-apiserver", self._apiserver_argv(), self.workdir / "kube-apiserver.log"
        )
        self.apiserver.start()
        readyz = urllib.request.Request(f"{self.server}/readyz")
        _wait_until(self.apiserver, readyz, self._admin_ssl_context(), APISERVER_READY_SECONDS)

    def start(self) -> None:
        """Start etcd, then kube-apiserver on a free loopback port; write the admin kubeconfig."""
        self.etcd.start()
        for attempt in range(_START_ATTEMPTS):
            self.port = free_port()
            try:
                self._start_apiserver()
                break
            except ControlPlaneError:
                if self.apiserver is not None:
                    self.apiserver.stop()
                clash = "address already in use" in (
                    self.apiserver.tail() if self.apiserver else ""
                )
                if not clash or attempt == _START_ATTEMPTS - 1:
                    raise
        write_cert_kubeconfig(
            self.admin_kubeconfig,
            server=self.server,
            ca_file=self.ca_file,
            user="kubeiam-e2e-admin",
            cert=self.pki.admin.cert,
            key=self.pki.admin.key,
        )

    def restart_apiserver(
        self, *, webhook: Webhook | None, extra_args: Sequence[str] | None = None
    ) -> None:
        """Restart kube-apiserver on the same port and etcd with new webhook settings.

        Stored objects (RBAC, ConfigMaps, service accounts) survive; kubeconfigs stay valid.
        """
        if self.apiserver is not None:
            self.apiserver.stop()
        self.webhook = webhook
        if extra_args is not None:
            self.extra_args = tuple(extra_args)
        self._start_apiserver()

    def stop(self) -> None:
        if self.apiserver is not None:
            self.apiserver.stop()
        self.etcd.stop()

    def log_tails(self, lines: int = 60) -> dict[str, str]:
        """The last lines of each process's log, for failure reports."""
        processes = [self.etcd.process, self.apiserver]
        return {p.name: p.tail(lines) for p in processes if p is not None}

    # -- kubectl -------------------------------------------------------------------------
    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl, as admin unless `kubeconfig` is given; raise if `check` fails."""
        config = kubeconfig or self.admin_kubeconfig
        argv = [str(self.binaries.kubectl), f"--kubeconfig={config}", *args]
        done = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_child_environment(env),
            check=False,
        )
        if check and done.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr.strip()}"
            )
        return done

    def apply(self, *paths: Path) -> str:
        """`kubectl apply -f` each path as admin; returns kubectl's output."""
        files = [arg for path in paths for arg in ("-f", str(path))]
        return self.kubectl("apply", *files).stdout

    def create_token(self, service_account: str, namespace: str, *, duration: str = "1h") -> str:
        """A bound service-account token from the TokenRequest API (`kubectl create token`)."""
        done = self.kubectl(
            "create", "token", service_account, "-n", namespace, f"--duration={duration}"
        )
        return done.stdout.strip()

    def service_account_kubeconfig(
        self, path: Path, service_account: str, namespace: str, *, duration: str = "1h"
    ) -> Path:
        """A kubeconfig that reaches the API server as `system:serviceaccount:<ns>:<name>`."""
        token = self.create_token(service_account, namespace, duration=duration)
        user = f"system:serviceaccount:{namespace}:{service_account}"
        return write_token_kubeconfig(
            path, server=self.server, ca_file=self.ca_file, user=user, token=token
        )

    def client_cert_kubeconfig(
        self, path: Path, *, user: str, groups: tuple[str, ...] = (), now: datetime.datetime
    ) -> Path:
        """A kubeconfig for any user and groups through a client certificate signed by the CA."""
        files: CertFiles = write_client_cert(
            self.pki.ca, path.parent, user=user, groups=groups, now=now
        )
        return write_cert_kubeconfig(
            path,
            server=self.server,
            ca_file=self.ca_file,
            user=user,
            cert=files.cert,
            key=files.key,
        )

    def exec_kubeconfig(
        self,
        path: Path,
        *,
        user: str,
        command: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        api_version: str = "client.authentication.k8s.io/v1",
    ) -> Path:
        """A kubeconfig whose user runs an exec credential plugin such as `kubeiam token`."""
        return write_exec_kubeconfig(
            path,
            server=self.server,
            ca_file=self.ca_file,
            user=user,
            command=command,
            args=args,
            env=env,
            api_version=api_version,
        )


def start_control_plane(
    binaries: Binaries,
    workdir: Path,
    *,
    now: datetime.datetime,
    webhook: Webhook | None = None,
    extra_args: Sequence[str] = (),
) -> ControlPlane:
    """Generate keys, start etcd and kube-apiserver under `workdir`; the caller must `stop` it."""
    workdir.mkdir(parents=True, exist_ok=True)
    pki = write_pki(workdir / "pki", now=now)
    plane = ControlPlane(
        binaries=binaries,
        workdir=workdir,
        pki=pki,
        etcd=Etcd(binary=binaries.etcd, workdir=workdir),
        webhook=webhook,
        extra_args=tuple(extra_args),
    )
    try:
        plane.start()
    except BaseException:
        plane.stop()
        raise
    return plane
