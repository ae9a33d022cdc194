"""`make demo`: two IAM workflows end to end on this machine, with no AWS account.

Onboard an IAM user (kubedemy): the user created, mapped to ``system:masters``, a kubeconfig that
runs ``kubeiam token``, and ``kubectl auth whoami`` as that user. Give an IAM group access
through a role: an access role mapped to Kubernetes groups, an IAM group allowed to assume it, a
user granted, reaching the cluster through the role, then revoked and refused (shown as the
expected outcome it is). It ends with commands to try next.

Everything runs against the local AWS environment (:mod:`kubeiam.localaws`: moto and the STS
front that verifies presigned requests), a ``kubeiam server`` webhook, and the real etcd +
kube-apiserver of the end-to-end harness when their binaries are cached under
``~/.cache/kubeiam/e2e`` (``tests/e2e/README.md``). Without them it shows the webhook's own
TokenReview answers instead of kubectl's and says so; ``--build`` (``make demo DEMO_BUILD=1``)
builds them first when Go is installed (about 15 minutes on two cores, once).

Every kubeiam and kubectl command is a real process, printed before it runs, with a private
temporary HOME (AWS profiles, kubeconfig, token cache) so nothing of the user's own ~/.aws or
~/.kube is read or written. Secrets are never printed. Everything started is stopped and the
temporary directory removed on exit, on failure and on Ctrl-C.

    python demo/run.py [--mode auto|cluster|server] [--build]
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
# The end-to-end harness (tests/e2e/cluster) is imported as tests.e2e.cluster from the root.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from rich.console import Console
    from tests.e2e.cluster.binaries import Binaries
    from tests.e2e.cluster.control_plane import ControlPlane

    from kubeiam.localaws.environment import LocalAWS

CLUSTER = "kubedemy"
REGION = "eu-west-2"
ADMIN_PROFILE = "localaws-admin"
USER = "kubedemy"
ROLE = "K8sAdmins"
MEMBER = "alice"
MODE_ENV = "KUBEIAM_DEMO_MODE"
BUILD_ENV = "DEMO_BUILD"
COMMAND_TIMEOUT = 120.0
SERVER_START_SECONDS = 30.0
#: How long a review may wait for the server to see a mapping just written (DynamicFile is
#: polled every second; aws-auth is watched).
MAPPING_PROPAGATION_SECONDS = 8.0
#: Shapes that must never reach the terminal even if a command printed them.
_TOKEN = re.compile(r"k8s-aws-v1\.[A-Za-z0-9_-]+")
_SIGNATURE = re.compile(r"(X-Amz-Signature=)[0-9a-f]+", re.IGNORECASE)


class DemoError(Exception):
    """A step failed: the message says which and what it printed."""


class Redactor:
    """Replaces every known secret (and any token or signature) with ``****``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        if secret:
            self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        text = _TOKEN.sub("k8s-aws-v1.****", text)
        return _SIGNATURE.sub(r"\1****", text)


@dataclass(frozen=True, slots=True)
class Plan:
    """Whether the real API server takes part, and the one line that says why (or why not)."""

    binaries: Binaries | None
    line: str
    #: The API server was wanted but its binaries are not built (the closing section says how).
    missing_binaries: bool = False


# -- choosing the mode -----------------------------------------------------------------------


def choose_plan(mode: str, build: bool, say: Callable[[str], None]) -> Plan:
    """Cluster when kube-apiserver, kubectl and etcd are cached (or built with ``build``)."""
    from tests.e2e.cluster.binaries import (
        ETCD,
        KUBERNETES,
        BuildError,
        binaries,
        cache_root,
        ensure,
        is_cached,
    )

    if mode == "server":
        return Plan(None, "server-only mode requested: showing the webhook's answers")
    root = cache_root(os.environ)
    needed = (KUBERNETES, ETCD)
    go = shutil.which("go")
    if not all(is_cached(recipe, root) for recipe in needed):
        fallback = "showing the webhook's answers instead of kubectl's"
        if go is None:
            if mode == "cluster":
                raise DemoError(
                    f"--mode cluster: no kube-apiserver binaries in {root} and Go not found; "
                    "install Go 1.25+ and run `make demo DEMO_BUILD=1` once"
                )
            return Plan(None, f"no kube-apiserver binaries (Go not found): {fallback}", True)
        how = (
            "run `make demo DEMO_BUILD=1` once to build them with Go (about 15 minutes on "
            "2 cores), then `make demo` shows kubectl"
        )
        if not build:
            if mode == "cluster":
                raise DemoError(f"--mode cluster: no kube-apiserver binaries in {root}; {how}")
            line = f"no kube-apiserver binaries cached in {root}: {fallback}; {how}"
            return Plan(None, line, True)
        say(f"building kube-apiserver, kubectl and etcd into {root} (once; about 15 minutes)")
        try:
            ensure(
                root,
                go=go,
                environ=os.environ,
                recipes=needed,
                on_outcome=lambda outcome: say(outcome.describe()),
            )
        except BuildError as error:
            raise DemoError(str(error)) from None
    found = binaries(root)
    return Plan(found, f"real etcd + kube-apiserver {KUBERNETES.version} from {root}")


# -- processes -------------------------------------------------------------------------------


class Shell:
    """Runs commands as a user would type them, printing each one and what it printed."""

    def __init__(
        self, console: Console, workdir: Path, env: dict[str, str], redact: Redactor
    ) -> None:
        self.console = console
        self.workdir = workdir
        self.env = env
        self.redact = redact

    def show(self, argv: Sequence[str], env_prefix: Mapping[str, str] | None = None) -> None:
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env_prefix or {}).items())
        line = (prefix + " " if prefix else "") + shlex.join(argv)
        self.console.print(f"[bold cyan]$[/] [bold]{_escape(self.redact(line))}[/]")

    def output(self, text: str, style: str = "") -> None:
        text = self.redact(text).rstrip("\n")
        if not text:
            return
        for line in text.splitlines():
            body = _escape(line.rstrip())
            self.console.print(f"  [{style}]{body}[/]" if style else f"  {body}")

    def run(
        self,
        *argv: str,
        expect: int | None = 0,
        quiet: bool = False,
        hide_stdout: bool = False,
        hide_stderr: bool = False,
        env: Mapping[str, str] | None = None,
        shown_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (looked up on the demo's PATH) in the work directory.

        ``expect``: the exit status required (None: any). ``hide_stdout``: stdout is a secret
        (a token) and is not printed; ``hide_stderr``: the caller tells what it means (an
        expected refusal). ``env``: extra variables, shown as ``shown_env``.
        """
        if not quiet:
            self.show(argv, shown_env)
        full_env = {**self.env, **(env or {})}
        executable = shutil.which(argv[0], path=full_env["PATH"])
        if executable is None:
            raise DemoError(f"{argv[0]} is not on the demo's PATH ({full_env['PATH']})")
        with _interrupts_deferred() as interrupted:
            process = subprocess.Popen(
                [executable, *argv[1:]],
                cwd=self.workdir,
                env=full_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        try:
            if interrupted:
                raise KeyboardInterrupt
            stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
        except BaseException as exc:  # a timeout, Ctrl-C or SIGTERM: the child goes too
            process.kill()
            process.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise DemoError(
                    f"`{shlex.join(argv)}` did not finish in {COMMAND_TIMEOUT:.0f} s"
                ) from None
            raise
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        if not quiet:
            if not hide_stdout:
                self.output(done.stdout)
            if not hide_stderr:
                self.output(done.stderr, "dim")
        if expect is not None and done.returncode != expect:
            details = "" if not quiet else "\n" + self.redact(done.stderr.strip())
            raise DemoError(
                f"`{self.redact(shlex.join(argv))}` exited {done.returncode}, "
                f"expected {expect}{details}"
            )
        return done


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class Background:
    """A long-running child (kubeiam server) in its own process group, its output in a log.

    With ``setpriv`` it also gets a parent-death signal, so even a SIGKILLed demo leaves no
    server behind. (The harness's ManagedProcess does the same but always passes this
    process's environment; the server must get the demo's.)
    """

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
        executable = shutil.which(argv[0], path=env["PATH"])
        if executable is None:
            raise DemoError(f"{argv[0]} is not on the demo's PATH")
        wrapper = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
        self.log_path = log
        self._log: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            [*wrapper, executable, *argv[1:]],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
        self._log.close()


# -- the demo --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Review:
    """What kubectl (or the webhook, without a cluster) says the identity is."""

    username: str
    groups: tuple[str, ...]


class Demo:
    def __init__(
        self,
        console: Console,
        stack: contextlib.ExitStack,
        plan: Plan,
        workdir: Path,
        redact: Redactor,
    ) -> None:
        self.console = console
        self.stack = stack
        self.plan = plan
        self.workdir = workdir
        self.home = workdir / "home"
        self.redact = redact
        self.cluster: ControlPlane | None = None
        self.server: Background | None = None
        self.server_port = 0
        self._log_offset = 0
        self.mapping_file = workdir / "mapping.json"
        self.aws: LocalAWS | None = None
        self.shell: Shell | None = None

    # -- output helpers ----------------------------------------------------------------------
    def step(self, title: str) -> None:
        self.console.print()
        self.console.rule(f"[bold]{_escape(title)}", align="left")

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]#[/] {_escape(self.redact(text))}", soft_wrap=True)

    def ok(self, text: str) -> None:
        self.console.print(f"[bold green]\N{CHECK MARK}[/] {_escape(self.redact(text))}")

    def refused(self, done: subprocess.CompletedProcess[str]) -> None:
        """A refusal the demo set out to show: the wanted outcome, not an error."""
        self.ok(f"refused, as it should be: {refusal_reason(done.stderr)} (exit {done.returncode})")

    @property
    def sh(self) -> Shell:
        assert self.shell is not None
        return self.shell

    @property
    def with_cluster(self) -> bool:
        return self.plan.binaries is not None

    def rel(self, path: Path) -> str:
        """``path`` relative to the work directory (where every command runs)."""
        try:
            return str(path.relative_to(self.workdir))
        except ValueError:
            return str(path)

    # -- set-up ------------------------------------------------------------------------------
    def run(self) -> None:
        started = time.monotonic()
        self.console.print(f"[bold]kubeiam demo[/]: {_escape(self.plan.line)}", soft_wrap=True)
        self.note(
            f"commands run in {self.workdir} with HOME={self.rel(self.home)} there (AWS "
            "profiles, kubeconfig, token cache) and .venv/bin on PATH; all removed at the end"
        )
        self.note(
            "two workflows follow: 1. onboard an IAM user; 2. give an IAM group access through "
            "a role, then take it away"
        )
        self.start_local_aws()
        if self.with_cluster:
            self.start_cluster_and_webhook()
        else:
            self.start_webhook_alone()
        self.onboard_user()
        self.group_access_through_role()
        self.console.print()
        seconds = time.monotonic() - started
        self.ok(f"both workflows done in {seconds:.0f} s; stopping everything")

    def start_local_aws(self) -> None:
        from kubeiam.localaws.environment import start_local_aws

        self.step("Local AWS: moto (IAM, STS, EKS) + an STS front that verifies presigned URLs")
        self.aws = aws = self.stack.enter_context(start_local_aws(REGION))
        self.redact.add(aws.admin.secret_access_key)
        for admin in aws.admins.values():
            self.redact.add(admin.secret_access_key)
        aws_dir = self.home / ".aws"
        aws_dir.mkdir(parents=True, mode=0o700)
        self._add_profile(ADMIN_PROFILE, aws.admin.access_key_id, aws.admin.secret_access_key)
        (aws_dir / "config").write_text(f"[profile {ADMIN_PROFILE}]\nregion = {REGION}\n")
        path = [str(REPO / ".venv" / "bin"), str(Path(sys.executable).parent)]
        if self.plan.binaries is not None:
            path.append(str(self.plan.binaries.kubectl.parent))
        path += ["/usr/local/bin", "/usr/bin", "/bin"]
        env = {
            "PATH": os.pathsep.join(dict.fromkeys(path)),
            "HOME": str(self.home),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            # Tables that kubeiam prints (rich) are laid out for this width instead of 80.
            "COLUMNS": "120",
            **aws.client_env(),
            "AWS_PROFILE": ADMIN_PROFILE,
        }
        self.shell = Shell(self.console, self.workdir, env, self.redact)
        self.note(
            f"moto at {aws.moto_url}, STS front on 127.0.0.1:{aws.sts_port}, account "
            f"{aws.account_id}, region {REGION}"
        )
        self.note(
            f"you are the AWS admin: AWS_PROFILE={ADMIN_PROFILE} (its keys are in "
            "~/.aws/credentials of the demo HOME, mode 0600)"
        )

    def _add_profile(self, profile: str, key_id: str, secret: str) -> None:
        path = self.home / ".aws" / "credentials"
        parser = configparser.RawConfigParser()
        if path.exists():
            parser.read(path)
        parser[profile] = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            parser.write(handle)

    @staticmethod
    def _free_port() -> int:
        from tests.e2e.cluster.control_plane import free_port

        return free_port()

    def _server_argv(self, *extra: str) -> list[str]:
        assert self.aws is not None
        return [
            "kubeiam",
            "server",
            "-i",
            CLUSTER,
            "--state-dir",
            "webhook",
            "--port",
            str(self.server_port),
            *extra,
            "--sts-resolve",
            self.aws.sts_resolve(),
            "--sts-ca-bundle",
            str(self.aws.ca_bundle),
        ]

    def _start_server(self, argv: list[str]) -> None:
        self.sh.show(argv)
        env = {**self.sh.env}
        env.pop("AWS_PROFILE")  # the webhook needs no AWS credentials of its own
        self.server = Background(
            argv, cwd=self.workdir, env=env, log=self.workdir / "kubeiam-server.log"
        )
        self.stack.callback(self.server.stop)
        context = ssl.create_default_context(cafile=str(self.workdir / "webhook" / "cert.pem"))
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.server.process.poll() is not None:
                raise DemoError(f"kubeiam server exited:\n{self.server.tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError, ssl.SSLError):
                url = f"https://127.0.0.1:{self.server_port}/healthz"
                with urllib.request.urlopen(url, timeout=2, context=context) as answer:
                    if answer.status == 200:
                        self.ok(f"kubeiam server is up on https://127.0.0.1:{self.server_port}")
                        return
            time.sleep(0.2)
        raise DemoError(
            f"kubeiam server not up in {SERVER_START_SECONDS:.0f} s:\n{self.server.tail()}"
        )

    def start_cluster_and_webhook(self) -> None:
        from tests.e2e.cluster.control_plane import Webhook, start_control_plane

        assert self.plan.binaries is not None
        self.step("Cluster: the kubeiam webhook, etcd and kube-apiserver on 127.0.0.1")
        self.server_port = self._free_port()
        self.sh.run(
            "kubeiam",
            "init",
            "-i",
            CLUSTER,
            "--state-dir",
            "webhook",
            "--port",
            str(self.server_port),
            "--kubeconfig-out",
            "webhook/kubeconfig.yaml",
        )
        webhook = Webhook(config_file=self.workdir / "webhook" / "kubeconfig.yaml")
        self.note(
            "starting etcd and kube-apiserver with "
            + " ".join(webhook.flags()).replace(str(self.workdir) + "/", "")
        )
        began = time.monotonic()
        plane = start_control_plane(
            self.plan.binaries,
            self.workdir / "cluster",
            now=dt.datetime.now(dt.UTC),
            webhook=webhook,
        )
        self.cluster = plane
        self.stack.callback(plane.stop)
        self.ok(f"kube-apiserver ready at {plane.server} in {time.monotonic() - began:.0f} s")
        admin = self.rel(plane.admin_kubeconfig)
        self.note(f"{admin}: the cluster admin's kubeconfig (client certificate, system:masters)")
        manifests = [str(REPO / "deploy" / n) for n in ("crd.yaml", "rbac.yaml")]
        self.sh.run(
            "kubectl", "--kubeconfig", admin, "apply", "-f", manifests[0], "-f", manifests[1]
        )
        self.note(
            "the webhook reads aws-auth as the kubeiam service account (deploy/rbac.yaml: get, "
            "list, watch on that one ConfigMap)"
        )
        sa_kubeconfig = plane.service_account_kubeconfig(
            self.workdir / "kubeiam-sa.kubeconfig", "kubeiam", "kube-system"
        )
        self._start_server(
            self._server_argv(
                "--backend-mode", "EKSConfigMap", "--kubeconfig", self.rel(sa_kubeconfig)
            )
        )

    def start_webhook_alone(self) -> None:
        self.step("The kubeiam webhook alone (no API server): mappings from a DynamicFile")
        self.server_port = self._free_port()
        self.sh.run(
            "kubeiam",
            "init",
            "-i",
            CLUSTER,
            "--state-dir",
            "webhook",
            "--port",
            str(self.server_port),
        )
        self.mapping_file.write_text("{}\n")
        self.note(
            f"{self.rel(self.mapping_file)}: an empty DynamicFile the server polls every second"
        )
        self._start_server(
            self._server_argv(
                "--backend-mode", "DynamicFile", "--dynamicfilepath", self.rel(self.mapping_file)
            )
        )

    # -- what the cluster says ---------------------------------------------------------------
    def _kubectl_whoami(
        self,
        context: str | None,
        *,
        expect_ok: bool,
        env: Mapping[str, str] | None = None,
        shown_env: Mapping[str, str] | None = None,
    ) -> Review | None:
        args = ["kubectl", *(["--context", context] if context else []), "auth", "whoami"]
        deadline = time.monotonic() + (MAPPING_PROPAGATION_SECONDS if expect_ok else 0)
        waited = False
        while True:
            done = self.sh.run(
                *args,
                expect=None,
                quiet=waited,
                hide_stderr=not expect_ok,
                env=env,
                shown_env=shown_env,
            )
            if done.returncode == 0 or not expect_ok:
                break
            if time.monotonic() > deadline:
                raise DemoError(f"`{shlex.join(args)}` failed:\n{self.redact(done.stderr)}")
            if not waited:
                self.note("not yet: waiting for the webhook to see the new aws-auth")
                waited = True
            time.sleep(0.5)
        if waited:
            self.sh.output(done.stdout)
        if done.returncode != 0:
            self.refused(done)
            return None
        raw = self.sh.run(*args, "-o", "json", quiet=True, env=env)
        user = json.loads(raw.stdout)["status"]["userInfo"]
        return Review(str(user["username"]), tuple(str(g) for g in user.get("groups", [])))

    def _token_review(self, token: str, *, expect_ok: bool) -> Review | None:
        """POST a TokenReview to the webhook exactly as kube-apiserver would."""
        url = f"https://127.0.0.1:{self.server_port}/authenticate"
        self.console.print(
            f"[bold cyan]POST[/] [bold]{url}[/]  (a TokenReview of that token, as "
            "kube-apiserver sends it)"
        )
        context = ssl.create_default_context(cafile=str(self.workdir / "webhook" / "cert.pem"))
        body = json.dumps(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            }
        ).encode()
        deadline = time.monotonic() + (MAPPING_PROPAGATION_SECONDS if expect_ok else 0)
        waited = False
        while True:
            request = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=15, context=context) as answer:
                    status, doc = answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as refused:
                status, doc = refused.code, json.loads(refused.read() or b"{}")
            if status == 200 or not expect_ok or time.monotonic() > deadline:
                break
            if not waited:
                self.note("not yet: waiting for the webhook to reload the mapping file")
                waited = True
            time.sleep(0.3)
        review = doc.get("status", {})
        if status != 200:
            self.sh.output(f"HTTP {status}: authenticated=false, error: {review.get('error', '')}")
            if expect_ok:
                raise DemoError(f"the webhook refused the token: HTTP {status} {review}")
            return None
        user = review["user"]
        found = Review(str(user["username"]), tuple(str(g) for g in user.get("groups", [])))
        self.sh.output("HTTP 200: authenticated=true")
        self.sh.output(f"Username  {found.username}")
        self.sh.output(f"Groups    [{' '.join(found.groups)}]")
        self.sh.output(f"Extra: arn  {user.get('extra', {}).get('arn', [''])[0]}")
        return found

    def webhook_log(self) -> None:
        """The review lines kubeiam server logged since the last call."""
        assert self.server is not None
        with self.server.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            text = handle.read().decode(errors="replace")
            self._log_offset = handle.tell()
        lines = [line for line in text.splitlines() if "token review" in line]
        if lines:
            self.note("kubeiam server's log meanwhile: one line per review, never the token")
            self.sh.output("\n".join(lines), "dim")

    def _kubeconfig_update(self, profile: str, *extra: str) -> None:
        """`kubeiam kubeconfig update` for the local API server, signing as ``profile``."""
        assert self.cluster is not None
        self.sh.run(
            "kubeiam",
            "kubeconfig",
            "update",
            "--cluster",
            CLUSTER,
            "--server",
            self.cluster.server,
            "--certificate-authority",
            self.rel(self.cluster.ca_file),
            "--profile",
            profile,
            *extra,
        )

    def _token(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """`kubeiam token`; ``expect`` non-zero: a refusal the demo means to show."""
        done = self.sh.run(
            "kubeiam",
            "token",
            "-i",
            CLUSTER,
            *args,
            expect=expect,
            hide_stdout=True,
            hide_stderr=expect != 0,
        )
        if done.returncode == 0:
            self.redact.add(done.stdout.strip())
            self.sh.output("(the token went to stdout; not shown)", "dim")
        else:
            self.refused(done)
        return done

    def _mapping_flags(self) -> list[str]:
        """Where the IAM workflows write the mapping: aws-auth as the cluster admin, or the
        webhook's DynamicFile when there is no cluster."""
        if self.cluster is None:
            return ["--file", self.rel(self.mapping_file)]
        admin = self.rel(self.cluster.admin_kubeconfig)
        return ["--store", "aws-auth", "--kubeconfig", admin]

    # -- 1. onboard an IAM user -------------------------------------------------------------
    def onboard_user(self) -> None:
        assert self.aws is not None
        aws = self.aws
        self.step(f"1. Onboard an IAM user: {USER} gets into the cluster as system:masters")
        mapping_flags = self._mapping_flags()
        self.note(
            "one command does it all: the user with its tag, a policy allowing "
            "eks:DescribeCluster, an access key (secret written once to profile kubedemy, "
            "0600) and the mapping to Kubernetes"
        )
        self.sh.run(
            "kubeiam",
            "iam",
            "onboard-user",
            USER,
            "--cluster",
            CLUSTER,
            "--group",
            "system:masters",
            "--tag",
            f"owner={USER}",
            *mapping_flags,
        )
        self._remember_profile_secret(USER)
        user_arn = f"arn:aws:iam::{aws.account_id}:user/{USER}"
        if self.with_cluster:
            assert self.cluster is not None
            admin = self.rel(self.cluster.admin_kubeconfig)
            shown = self.sh.run(
                "kubectl",
                "--kubeconfig",
                admin,
                "get",
                "configmap",
                "aws-auth",
                "-n",
                "kube-system",
                "-o",
                "yaml",
            )
            entry = _aws_auth_entry(shown.stdout, user_arn)
            self.note(
                "the new user points kubectl at the cluster; the profile goes in the entry's "
                "args, so it wins over the admin's AWS_PROFILE"
            )
            self._kubeconfig_update(USER)
            review = self._kubectl_whoami(None, expect_ok=True)
            self.sh.run("kubectl", "get", "nodes")
            self.sh.run("kubectl", "get", "ns")
            mapping_rows = [
                ("ConfigMap Name", "aws-auth"),
                ("ConfigMap Namespace", "kube-system"),
                ("ConfigMap entry", entry),
            ]
        else:
            self.sh.run(
                "kubeiam", "whoami", "--profile", USER, "--file", self.rel(self.mapping_file)
            )
            self.note(
                "what kubectl's exec entry would run (`kubeiam kubeconfig update ... --profile "
                "kubedemy` writes it); the token itself is never shown"
            )
            token = self._token("--profile", USER, "--token-only").stdout.strip()
            review = self._token_review(token, expect_ok=True)
            mapping_rows = [("Mapping", f"{self.rel(self.mapping_file)} (DynamicFile)")]
        assert review is not None
        if review.username != USER or "system:masters" not in review.groups:
            raise DemoError(f"kubedemy maps to {review}, expected {USER} in system:masters")
        self.results_table(user_arn, mapping_rows, review)
        self.webhook_log()

    def _remember_profile_secret(self, profile: str) -> None:
        parser = configparser.RawConfigParser()
        parser.read(self.home / ".aws" / "credentials")
        if parser.has_section(profile):
            self.redact.add(parser.get(profile, "aws_secret_access_key", fallback=None))

    def results_table(
        self, user_arn: str, mapping_rows: list[tuple[str, str]], review: Review
    ) -> None:
        from rich.table import Table
        from rich.text import Text

        assert self.aws is not None
        iam = self.aws.boto3_client("iam")
        arn = str(iam.get_user(UserName=USER)["User"]["Arn"])
        permissions: list[str] = []
        for name in iam.list_user_policies(UserName=USER)["PolicyNames"]:
            document = iam.get_user_policy(UserName=USER, PolicyName=name)["PolicyDocument"]
            if isinstance(document, str):
                document = json.loads(document)
            for statement in document.get("Statement", []):
                actions = statement.get("Action")
                for action in [actions] if isinstance(actions, str) else actions or []:
                    permissions.append(f"{statement.get('Effect')}={action}")
        table = Table(title=f"Results: {USER} onboarded", show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        rows = [
            ("IAM Username", USER),
            ("IAM User ARN", arn),
            ("IAM User Permissions", ", ".join(permissions)),
            *mapping_rows,
            ("Username in Cluster", review.username),
            ("Groups in Cluster", ", ".join(review.groups)),
        ]
        for key, value in rows:
            table.add_row(Text(key), Text(value))  # Text: "[...]" is data, not markup
        self.console.print()
        self.console.print(table)
        if arn != user_arn:
            raise DemoError(f"IAM reports {arn}, expected {user_arn}")
        self.ok(f"onboarded: {USER} is {review.username} in groups {', '.join(review.groups)}")

    # -- 2. give an IAM group access through a role ------------------------------------------
    def group_access_through_role(self) -> None:
        assert self.aws is not None
        aws = self.aws
        self.step(
            f"2. Give an IAM group access through a role: {ROLE}, mapped to system:masters; "
            f"{MEMBER} granted, then revoked"
        )
        key_id, secret = aws.create_user(MEMBER)
        self.redact.add(secret)
        self._add_profile(MEMBER, key_id, secret)
        self.note(
            f"set-up: IAM user {MEMBER} already exists, with an access key in profile {MEMBER}"
        )
        role_arn = f"arn:aws:iam::{aws.account_id}:role/{ROLE}"
        mapping_flags = self._mapping_flags()
        self.sh.run(
            "kubeiam",
            "iam",
            "create-access-role",
            ROLE,
            "--cluster",
            CLUSTER,
            "--group",
            "system:masters",
            *mapping_flags,
        )
        if self.cluster is not None:
            admin = self.rel(self.cluster.admin_kubeconfig)
            self.sh.run("kubeiam", "mapping", "list", "--kubeconfig", admin)
        else:
            self.sh.run("kubeiam", "mapping", "list", "--file", self.rel(self.mapping_file))
        self.sh.run("kubeiam", "iam", "grant", MEMBER, "--access-role", ROLE)
        context = f"{MEMBER}@{CLUSTER}"
        if self.with_cluster:
            assert self.cluster is not None
            self._kubeconfig_update(
                MEMBER,
                "--role-arn",
                role_arn,
                "--context",
                context,
                "--user",
                MEMBER,
                "--no-switch",
            )
            review = self._kubectl_whoami(context, expect_ok=True)
        else:
            token = self._token("--profile", MEMBER, "-r", role_arn, "--token-only").stdout.strip()
            review = self._token_review(token, expect_ok=True)
        assert review is not None
        if not review.username.startswith(f"{ROLE}:") or "system:masters" not in review.groups:
            raise DemoError(f"{MEMBER} through {ROLE} maps to {review}")
        self.ok(
            f"granted: {MEMBER} reaches the cluster as {review.username} in groups "
            f"{', '.join(review.groups)}"
        )

        self.sh.run("kubeiam", "iam", "revoke", MEMBER, "--access-role", ROLE)
        self.note(
            f"{MEMBER}'s next token needs a new AssumeRole (--no-cache: no cached session), "
            "which IAM must now refuse"
        )
        refused = self._token("--profile", MEMBER, "-r", role_arn, "--no-cache", expect=3)
        if "AccessDenied" not in refused.stderr and "AssumeRole" not in refused.stderr:
            raise DemoError(f"unexpected refusal: {self.redact(refused.stderr)}")
        if self.with_cluster:
            fresh = self.workdir / "fresh-cache"
            self.note(
                "kubectl as alice with an empty token cache (as once her cached session has "
                "expired); kube-apiserver also caches successful reviews ~10 s + the webhook "
                "cache TTL, but no new token can be made"
            )
            after = self._kubectl_whoami(
                context,
                expect_ok=False,
                env={"KUBEIAM_CACHE_DIR": str(fresh)},
                shown_env={"KUBEIAM_CACHE_DIR": self.rel(fresh)},
            )
            if after is not None:
                raise DemoError(f"{MEMBER} still reached the cluster after revocation: {after}")
        self.webhook_log()
        self.ok(f"{MEMBER}: access refused after revocation (AssumeRole on {ROLE} denied)")


def _aws_auth_entry(configmap_yaml: str, arn: str) -> str:
    """The ``mapUsers`` entry of ``arn`` in an aws-auth ConfigMap, on one line."""
    import yaml

    document = yaml.safe_load(configmap_yaml) or {}
    users = yaml.safe_load((document.get("data") or {}).get("mapUsers") or "[]") or []
    for user in users:
        if isinstance(user, dict) and user.get("userarn") == arn:
            groups = ", ".join(str(g) for g in user.get("groups") or [])
            return f"mapUsers: {arn} -> {user.get('username')} [{groups}]"
    raise DemoError(f"aws-auth has no mapUsers entry for {arn}")


def refusal_reason(stderr: str) -> str:
    """What a refused command said, on one line: its error lines without the ``kubeiam: error:``
    or ``error:`` prefix, and without ``fix:`` lines (the refusal is the outcome wanted)."""
    lines = (line.strip() for line in stderr.splitlines())
    kept = [
        line.removeprefix("kubeiam: error: ").removeprefix("error: ")
        for line in lines
        if line and not line.startswith("fix:")
    ]
    return "; ".join(dict.fromkeys(kept)) or "no message"


# -- what to try next ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NextStep:
    """One line of the closing section: a command to type (``$``) or a note (``#``)."""

    text: str
    why: str = ""
    is_command: bool = True


#: Shown after the demo. Upper-case words are the reader's own names; every ``kubeiam`` line
#: parses with today's CLI (tests/integration/test_demo.py checks it).
NEXT_STEPS: tuple[NextStep, ...] = (
    NextStep("kubeiam is in .venv/bin here: `. .venv/bin/activate` puts it on PATH", "", False),
    NextStep(
        "on an EKS cluster of yours, with AWS admin credentials in your shell and a kubeconfig "
        "that may edit kube-system/aws-auth:",
        "",
        False,
    ),
    NextStep(
        "kubeiam iam onboard-user NAME --cluster CLUSTER --group GROUP --store aws-auth",
        "onboard an IAM user",
    ),
    NextStep(
        "kubeiam kubeconfig update --cluster CLUSTER --profile NAME",
        "as that user: kubectl now runs kubeiam token",
    ),
    NextStep("kubectl auth whoami"),
    NextStep(
        "kubeiam iam create-access-role ROLE --cluster CLUSTER --group GROUP --store aws-auth",
        "give an IAM group access through a role",
    ),
    NextStep("kubeiam iam grant USER --access-role ROLE", "USER may assume ROLE; revoke undoes it"),
    NextStep("kubeiam whoami --cluster CLUSTER", "who you are, and what that maps to"),
    NextStep(
        "no account at hand: the local AWS this demo ran on, in your own shell (README: Local "
        "AWS for development), with a mapping file instead of aws-auth:",
        "",
        False,
    ),
    NextStep(".venv/bin/kubeiam localaws --print-env > localaws.env &", "runs until Ctrl-C"),
    NextStep(". ./localaws.env", "once it has printed its summary"),
    NextStep("kubeiam iam onboard-user jane --cluster demo --group developers --file mapping.yaml"),
    NextStep("kubeiam whoami --profile jane --file mapping.yaml", "jane, and what she maps to"),
    NextStep(
        "every command and flag: kubeiam --help, kubeiam iam onboard-user --help; the guide: "
        "docs/admin.md",
        "",
        False,
    ),
)
#: Added when the demo could not show kubectl (no kube-apiserver binaries).
BUILD_STEP = NextStep(
    "make demo DEMO_BUILD=1",
    "with Go 1.25+: builds kube-apiserver once (about 15 minutes), then the demo shows kubectl",
)


def next_steps(plan: Plan | None) -> list[NextStep]:
    """The closing section's lines; the build hint only when the API server was missing."""
    steps = list(NEXT_STEPS)
    if plan is not None and plan.missing_binaries:
        steps.append(BUILD_STEP)
    return steps


def print_next_steps(console: Console, steps: Sequence[NextStep]) -> None:
    console.print()
    console.rule("[bold]What to try next", align="left")
    for step in steps:
        if not step.is_command:
            console.print(f"[yellow]#[/] {_escape(step.text)}", soft_wrap=True)
            continue
        why = f"  [yellow]# {_escape(step.why)}[/]" if step.why else ""
        console.print(f"[bold cyan]$[/] [bold]{_escape(step.text)}[/]{why}", soft_wrap=True)


# -- entry point -----------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM while a child is created; yields the list of signals that came.

    An interrupt raised inside ``Popen()`` after the fork would leave a child nobody knows the
    pid of (seen: a Ctrl-C right after the webhook started orphaned `kubeiam iam onboard-user`).
    Deferred, the caller sees it once it holds the Popen, and kills the child before raising.
    """
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kubeiam-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    parser = argparse.ArgumentParser(prog="python demo/run.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--mode",
        choices=["auto", "cluster", "server"],
        default=os.environ.get(MODE_ENV) or "auto",
        help=f"auto: the real API server when its binaries are cached (env {MODE_ENV})",
    )
    parser.add_argument(
        "--build",
        action="store_true",
        default=os.environ.get(BUILD_ENV, "") not in ("", "0"),
        help=f"build kube-apiserver, kubectl and etcd with Go when not cached (env {BUILD_ENV}=1)",
    )
    args = parser.parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    redact = Redactor()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    plan: Plan | None = None
    try:
        with contextlib.ExitStack() as stack:
            workdir = stack.enter_context(_workdir())
            plan = choose_plan(args.mode, args.build, lambda m: console.print(f"# {_escape(m)}"))
            Demo(console, stack, plan, workdir, redact).run()
    except KeyboardInterrupt:
        console.print("\n[bold red]demo interrupted[/]: everything it started has been stopped")
        return 130
    except Exception as error:  # any failure: one clear message, after everything is stopped
        what = str(error) if isinstance(error, DemoError) else f"{type(error).__name__}: {error}"
        console.print(f"\n[bold red]demo failed[/]: {_escape(redact(what))}", soft_wrap=True)
        console.print("everything it started has been stopped and its files removed")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print("[bold green]demo finished[/]: all processes stopped, temporary files removed")
    print_next_steps(console, next_steps(plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
