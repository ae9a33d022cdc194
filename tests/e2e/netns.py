"""A network namespace of our own, for programs that cannot be pointed at a local STS.

The reference aws-iam-authenticator calls `https://sts.<region>.amazonaws.com` with the system
trust store and offers no override. Inside a namespace made here, only a loopback interface
exists (no route leaves it), and `ip netns exec` bind-mounts `/etc/netns/<name>/hosts` over
`/etc/hosts`, so the real STS host names resolve to 127.0.0.1 where the local STS front listens
on port 443; `SSL_CERT_FILE` then makes the test CA the trusted one.

    with network_namespace(hosts=sts_host_names()) as ns:
        proc = ns.popen([...], env=...)      # a process inside the namespace (hosts file applied)
        ns.call(lambda: boto3_call(...))     # Python code whose sockets live in the namespace
        with ns.entered(): ...               # this thread (and what it starts) inside meanwhile

`ns.call` runs a function on a worker thread that has joined the namespace with setns(2) (a
thread's network namespace is its own), so this process can talk to servers inside without a
helper process. Everything is torn down on exit, also after a failure: processes still inside
(SIGTERM, then SIGKILL), the worker thread, the namespace and `/etc/netns/<name>`.

Needs root (CAP_SYS_ADMIN) and iproute2's `ip`; `namespace_problem()` says what is missing.
"""

from __future__ import annotations

import configparser
import contextlib
import ctypes
import os
import queue
import secrets
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

NAME_PREFIX = "kubeiam-e2e-"
NETNS_RUN_DIR = Path("/run/netns")
NETNS_ETC_DIR = Path("/etc/netns")
#: setns(2) nstype for a network namespace.
CLONE_NEWNET = 0x40000000
#: How long a process inside gets between SIGTERM and SIGKILL at teardown (the reference server
#: only stops serving on a second signal).
STOP_GRACE_SECONDS = 5.0
_IP_TIMEOUT = 30


class NamespaceError(RuntimeError):
    """An `ip netns` step failed; the message carries the command and its output."""


def namespace_problem(ip: str | None = None) -> str | None:
    """One line saying why a network namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run as root or skip"
    ip = ip or shutil.which("ip")
    if ip is None:
        return "iproute2's `ip` is not on PATH (apt-get install iproute2)"
    probe = f"{NAME_PREFIX}probe-{secrets.token_hex(4)}"
    added = _run([ip, "netns", "add", probe], check=False)
    if added.returncode != 0:
        return f"`ip netns add` failed: {added.stderr.strip() or added.returncode}"
    _run([ip, "netns", "delete", probe], check=False)
    return None


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=_IP_TIMEOUT, check=False
    )
    if check and done.returncode != 0:
        raise NamespaceError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def hosts_file_text(names: Iterable[str], address: str = "127.0.0.1") -> str:
    """An /etc/hosts mapping `localhost` and every name to `address` (a loopback address)."""
    if not address.startswith("127."):
        raise ValueError(f"{address} is not a loopback address")
    lines = [f"{address} localhost", *(f"{address} {name}" for name in dict.fromkeys(names))]
    return "\n".join(lines) + "\n"


def _enter(path: Path) -> None:
    """Move the calling thread into the network namespace bound at `path` (setns(2))."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


@dataclass
class NetNamespace:
    """A live namespace: run programs in it (`command`, `popen`) and Python code (`call`)."""

    name: str
    ip: str
    _worker: ThreadPoolExecutor | None = None
    _processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def etc_dir(self) -> Path:
        return NETNS_ETC_DIR / self.name

    def command(self, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        """`argv` wrapped in `ip netns exec NAME` (the hosts file is applied to it)."""
        return [self.ip, "netns", "exec", self.name, *(os.fspath(arg) for arg in argv)]

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: dict[str, str],
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside to completion; output captured, never raises on exit status."""
        return subprocess.run(
            self.command(argv),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )

    def popen(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: dict[str, str],
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> subprocess.Popen[str]:
        """Start a long-running process inside, in its own process group; stopped at exit."""
        proc = subprocess.Popen(
            self.command(argv),
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self._processes.append(proc)
        return proc

    def call(self, fn: Callable[[], T], timeout: float = 60) -> T:
        """Run `fn` on the worker thread whose sockets live in this namespace; return its value."""
        if self._worker is None:
            raise NamespaceError(f"namespace {self.name} is not open")
        return self._worker.submit(fn).result(timeout)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Move the calling thread into this namespace's network for the `with` block.

        Sockets it opens and processes it starts meanwhile (which inherit the namespace, but not
        the hosts file: use `popen` for those that look names up) reach loopback only. The
        thread returns to the network namespace it came from afterwards.
        """
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _enter(NETNS_RUN_DIR / self.name)
            try:
                yield
            finally:
                _enter(Path(f"/proc/self/fd/{own}"))
        finally:
            os.close(own)

    def pids(self) -> list[int]:
        """Processes whose network namespace is this one (all started by this helper)."""
        listed = _run([self.ip, "netns", "pids", self.name], check=False)
        return [int(p) for p in listed.stdout.split() if p.isdigit() and int(p) != os.getpid()]

    def stop_processes(self) -> None:
        """SIGTERM every process inside, then SIGKILL what is left after the grace period."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in self._processes:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, sig)
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + (STOP_GRACE_SECONDS if sig == signal.SIGTERM else 10)
            while time.monotonic() < deadline and (
                any(p.poll() is None for p in self._processes) or self.pids()
            ):
                time.sleep(0.05)
            if not self.pids() and all(p.poll() is not None for p in self._processes):
                break
        for proc in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)


@contextlib.contextmanager
def network_namespace(*, hosts: Iterable[str]) -> Iterator[NetNamespace]:
    """Create `kubeiam-e2e-<random>` with loopback up and a hosts file mapping `hosts` to
    127.0.0.1; remove the namespace, its processes and `/etc/netns/<name>` on exit."""
    ip = shutil.which("ip")
    if ip is None:
        raise NamespaceError("iproute2's `ip` is not on PATH")
    ns = NetNamespace(name=f"{NAME_PREFIX}{secrets.token_hex(4)}", ip=ip)
    _run([ip, "netns", "add", ns.name])
    try:
        _run([*ns.command(["ip", "link", "set", "lo", "up"])])
        ns.etc_dir.mkdir(parents=True, exist_ok=False)
        (ns.etc_dir / "hosts").write_text(hosts_file_text(hosts))
        ns._worker = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=ns.name,
            initializer=_enter,
            initargs=(NETNS_RUN_DIR / ns.name,),
        )
        yield ns
    finally:
        try:
            ns.stop_processes()
        finally:
            if ns._worker is not None:
                ns._worker.shutdown(wait=True, cancel_futures=True)
                ns._worker = None
            _run([ip, "netns", "delete", ns.name], check=False)
            shutil.rmtree(ns.etc_dir, ignore_errors=True)


@dataclass(frozen=True)
class LocalAWSInside:
    """`kubeiam localaws --sts-port 443 --relay-sts-calls` running inside a namespace."""

    process: subprocess.Popen[str]
    #: moto (IAM, STS, EKS, EC2), http on 127.0.0.1 inside the namespace.
    moto_url: str
    #: The test CA: SSL_CERT_FILE for processes that reach the STS front by its host names.
    ca_bundle: Path
    #: The allow-everything admin's (access key id, secret); never print the secret.
    admin_keys: tuple[str, str]

    def __repr__(self) -> str:
        return f"LocalAWSInside(moto_url={self.moto_url!r}, ca_bundle={str(self.ca_bundle)!r})"


def start_localaws_inside(
    ns: NetNamespace, kubeiam: Path, *, env: dict[str, str], log: Path, timeout: float = 60
) -> LocalAWSInside:
    """Start the local AWS environment inside `ns`, its STS front on 443 relaying AssumeRole to
    moto, and read what its `--print-env` exports say. Stopped with the namespace."""
    with log.open("w") as handle:
        proc = ns.popen(
            [kubeiam, "localaws", "--print-env", "--sts-port", "443", "--relay-sts-calls"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=handle,
        )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, name=f"{ns.name}-localaws", daemon=True).start()
    exports: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    # The exports come sorted; SSL_CERT_FILE is the last one.
    while "SSL_CERT_FILE" not in exports:
        try:
            line = lines.get(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
        except queue.Empty:
            if time.monotonic() >= deadline or proc.poll() is not None:
                raise NamespaceError(
                    f"kubeiam localaws did not start in {ns.name}: {log.read_text()[-2000:]}"
                ) from None
            continue
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").rstrip("\n").partition("=")
            exports[name] = shlex.split(value)[0]
    credentials = configparser.ConfigParser()
    credentials.read(exports["AWS_SHARED_CREDENTIALS_FILE"])
    admin = credentials[exports["AWS_PROFILE"]]
    return LocalAWSInside(
        process=proc,
        moto_url=exports["AWS_ENDPOINT_URL_IAM"],
        ca_bundle=Path(exports["SSL_CERT_FILE"]),
        admin_keys=(admin["aws_access_key_id"], admin["aws_secret_access_key"]),
    )
