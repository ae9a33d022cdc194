"""The whole system on one machine, as users run it.

kubectl --(exec plugin: `kubeiam token`)--> kube-apiserver --(TokenReview webhook, from
`kubeiam init`)--> `kubeiam server` --(presigned GetCallerIdentity)--> the local STS front, with
moto behind it for IAM, AssumeRole and EC2. The server maps identities with the MountedFile,
EKSConfigMap and CRD backends together and reads the API server as the service account that
deploy/rbac.yaml grants, with a bound token of that account.

Timing facts the tests rely on (see README.md):
* a mapping edit reaches the server through its watch within a second or two;
* kube-apiserver caches a *successful* token review for 10 s plus the webhook cache TTL, so an
  identity revoked on the server side keeps working that long with the same token; a refusal is
  cached only for the TTL.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from cluster.control_plane import (
    APISERVER_TOKEN_SUCCESS_CACHE_SECONDS,
    ControlPlane,
    ControlPlaneError,
    ManagedProcess,
)

from kubeiam.localaws import LocalAWS
from support import cli
from support.cli import KUBEIAM
from support.metrics import sample_sum

T = TypeVar("T")

CLUSTER_ID = "kubeiam-e2e"
#: kube-apiserver's --authentication-token-webhook-cache-ttl in these tests.
WEBHOOK_CACHE_TTL_SECONDS = 1.0
#: How long kubeiam server keeps a user's IAM group memberships (iamGroupCacheTTL).
IAM_GROUP_TTL_SECONDS = 2.0
#: An edit of aws-auth or an IAMIdentityMapping reaches the server's watch, then the next review.
GRANT_SECONDS = 30.0
#: A revoked identity may keep working with the token it already has for the API server's
#: success cache plus the webhook TTL; the rest is slack for the watch and kubectl start-up.
REVOCATION_SECONDS = APISERVER_TOKEN_SUCCESS_CACHE_SECONDS + WEBHOOK_CACHE_TTL_SECONDS + 20.0
SERVER_READY_SECONDS = 60.0
_POLL_SECONDS = 0.5


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited."""


def wait_for(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Call `probe` until it returns something other than None, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(_POLL_SECONDS)


def aws_env(aws: LocalAWS, key_id: str, secret: str, workdir: Path) -> dict[str, str]:
    """A kubeiam process's AWS environment: the local AWS's endpoints, these keys, and no
    config or credentials file of the machine's (they would name other profiles)."""
    return {
        **aws.client_env(),
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
    }


def groups_of(info: Mapping[str, object]) -> set[str]:
    """The groups of a `kubectl auth whoami -o json` answer."""
    groups = info["groups"]
    assert isinstance(groups, list)
    return set(groups)


def is_unauthorized(stderr: str) -> bool:
    """kubectl's words for a 401 (they differ between commands)."""
    return "Unauthorized" in stderr or "server has asked for the client to provide credentials" in (
        stderr
    )


def run_kubeiam(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run the `kubeiam` CLI; never raises on a non-zero exit (the caller asserts)."""
    return cli.run_kubeiam(*args, env={**os.environ, **(env or {})}, timeout=timeout)


@dataclass(frozen=True, slots=True)
class IamUser:
    """An IAM user in moto with one access key (the secret stays out of repr)."""

    name: str
    arn: str
    access_key_id: str
    secret_access_key: str = field(repr=False)


def profile_home(home: Path, user: IamUser, profile: str, region: str) -> dict[str, str]:
    """``aws configure`` in ``home``: a 0600 credentials file holding ``user``'s key as
    ``profile`` and a config file with its region; returns the environment that points there."""
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    credentials = home / ".aws" / "credentials"
    credentials.write_text(
        f"[{profile}]\naws_access_key_id = {user.access_key_id}\n"
        f"aws_secret_access_key = {user.secret_access_key}\n"
    )
    credentials.chmod(0o600)
    (home / ".aws" / "config").write_text(f"[profile {profile}]\nregion = {region}\n")
    return {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
    }


class KubeiamServer:
    """`kubeiam server` as a real process on a fixed loopback port (so it can come back)."""

    def __init__(
        self,
        *,
        config: Path,
        state_dir: Path,
        port: int,
        log_path: Path,
        env: Mapping[str, str],
        flags: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.port = port
        self.state_dir = state_dir
        self.process = ManagedProcess(
            "kubeiam-server", [KUBEIAM, "server", "--config", str(config), *flags], log_path, env
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` over HTTPS trusting the server's own certificate: status and body."""
        context = ssl.create_default_context(cafile=str(self.state_dir / "cert.pem"))
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=5, context=context) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
            return False

    def metric(self, name: str) -> float:
        """The sum of every sample of metric `name` (0 when absent)."""
        status, text = self.get("/metrics")
        assert status == 200, text
        return sample_sum(text, name)

    def start(self) -> None:
        self.process.start()
        deadline = time.monotonic() + SERVER_READY_SECONDS
        while not self.ready():
            if not self.process.running:
                raise self.process.fail("exited during start-up")
            if time.monotonic() >= deadline:
                raise self.process.fail(f"not ready after {SERVER_READY_SECONDS:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.stop()

    def tail(self, lines: int = 60) -> str:
        return self.process.tail(lines)

    def log_text(self) -> str:
        return self.process.log_path.read_text(errors="replace")


@dataclass(slots=True)
class System:
    """The running system; tests use distinct IAM users and roles so they can share it."""

    plane: ControlPlane
    aws: LocalAWS
    server: KubeiamServer
    workdir: Path
    webhook_config: Path
    file_user: IamUser
    users: dict[str, IamUser] = field(default_factory=dict)

    @classmethod
    def around_pod(
        cls,
        *,
        plane: ControlPlane,
        aws: LocalAWS,
        workdir: Path,
        config: Path,
        state_dir: Path,
        port: int,
        webhook_config: Path,
        file_user: IamUser,
    ) -> System:
        """The system whose `kubeiam server` runs in a pod on the node: its server object is
        never started, only its port and state directory are used, so the helpers (token
        kubeconfigs, whoami, ready(), metric()) reach the pod's server."""
        server = KubeiamServer(
            config=config, state_dir=state_dir, port=port, log_path=workdir / "unused.log", env={}
        )
        return cls(
            plane=plane,
            aws=aws,
            server=server,
            workdir=workdir,
            webhook_config=webhook_config,
            file_user=file_user,
        )

    # -- IAM -------------------------------------------------------------------------------
    def create_user(self, name: str) -> IamUser:
        key_id, secret = self.aws.create_user(name)
        user = IamUser(name, self.aws.user_arn(name), key_id, secret)
        self.users[name] = user
        return user

    def secrets(self) -> list[str]:
        """Every secret access key handed out, to check that none reaches a log."""
        return [user.secret_access_key for user in self.users.values()]

    # -- kubeconfigs -----------------------------------------------------------------------
    def token_kubeconfig(
        self,
        user: IamUser,
        *,
        role: str | None = None,
        session_name: str | None = None,
        cache: bool = True,
        label: str | None = None,
    ) -> Path:
        """A kubeconfig whose user runs `kubeiam token` with `user`'s keys in the environment.

        Each kubeconfig has its own HOME, so the plugin's token cache is private to it.
        """
        name = label or user.name
        home = self.workdir / "homes" / name
        home.mkdir(parents=True, exist_ok=True)
        args = ["token", "-i", CLUSTER_ID]
        if role is not None:
            args += ["-r", role]
        if session_name is not None:
            args += ["-s", session_name]
        if not cache:
            args.append("--no-cache")
        env = {
            **self.aws.client_env(),
            "HOME": str(home),
            "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
            "AWS_ACCESS_KEY_ID": user.access_key_id,
            "AWS_SECRET_ACCESS_KEY": user.secret_access_key,
        }
        return self.plane.exec_kubeconfig(
            self.workdir / "kubeconfigs" / f"{name}.kubeconfig",
            user=name,
            command=KUBEIAM,
            args=args,
            env=env,
        )

    # -- kubectl as a user -----------------------------------------------------------------
    def kubectl(
        self, kubeconfig: Path, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, kubeconfig=kubeconfig, check=False, env=env)

    def whoami(
        self, kubeconfig: Path, env: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """`kubectl auth whoami` as that user: its userInfo, or None when Unauthorized."""
        done = self.kubectl(kubeconfig, "auth", "whoami", "-o", "json", env=env)
        if done.returncode == 0:
            info: dict[str, Any] = json.loads(done.stdout)["status"]["userInfo"]
            return info
        if is_unauthorized(done.stderr):
            return None
        raise ControlPlaneError(f"kubectl auth whoami failed unexpectedly:\n{done.stderr}")

    def wait_authenticated(
        self, kubeconfig: Path, *, timeout: float = GRANT_SECONDS
    ) -> dict[str, Any]:
        return wait_for(
            lambda: self.whoami(kubeconfig), timeout=timeout, what=f"{kubeconfig.stem} accepted"
        )

    def wait_unauthorized(self, kubeconfig: Path, *, timeout: float = REVOCATION_SECONDS) -> float:
        """Poll until the user is refused; returns the seconds it took."""
        started = time.monotonic()
        wait_for(
            lambda: True if self.whoami(kubeconfig) is None else None,
            timeout=timeout,
            what=f"{kubeconfig.stem} refused",
        )
        return time.monotonic() - started

    # -- mappings, as the cluster owner ----------------------------------------------------
    def mapping(self, *args: str, store: str = "aws-auth") -> subprocess.CompletedProcess[str]:
        """`kubeiam mapping ...` with the admin kubeconfig; asserts success."""
        done = run_kubeiam(
            "mapping",
            *args,
            "--store",
            store,
            "--kubeconfig",
            str(self.plane.admin_kubeconfig),
            env={"KUBECONFIG": ""},
        )
        assert done.returncode == 0, f"kubeiam mapping {' '.join(args)}:\n{done.stderr}"
        return done

    def aws_auth_data(self) -> dict[str, str]:
        done = self.plane.kubectl(
            "get", "configmap", "aws-auth", "-n", "kube-system", "-o", "json", check=False
        )
        if done.returncode != 0:
            return {}
        data: dict[str, str] = json.loads(done.stdout).get("data") or {}
        return data

    def write_aws_auth(self, data: Mapping[str, str]) -> None:
        """Replace aws-auth's data as an admin with `kubectl apply` (what the seed does)."""
        manifest = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "aws-auth", "namespace": "kube-system"},
            "data": dict(data),
        }
        self.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    # -- diagnostics -----------------------------------------------------------------------
    def log_tails(self, lines: int = 60) -> dict[str, str]:
        return {**self.plane.log_tails(lines), "kubeiam server": self.server.tail(lines)}


def server_config(
    *,
    port: int,
    state_dir: Path,
    kubeconfig: Path,
    file_user: IamUser,
) -> dict[str, Any]:
    """The server's config: three backends; MountedFile holds one user of its own."""
    return {
        "clusterID": CLUSTER_ID,
        "server": {
            "address": "127.0.0.1",
            "port": port,
            "stateDir": str(state_dir),
            "backendMode": ["MountedFile", "EKSConfigMap", "CRD"],
            "kubeconfig": str(kubeconfig),
            "mapUsers": [
                {"userarn": file_user.arn, "username": "file-user", "groups": ["e2e-file-group"]}
            ],
            # mapGroups entries (test_iam_groups.py): memberships from moto's IAM, kept briefly.
            "iamGroupMapping": True,
            "iamGroupCacheTTL": IAM_GROUP_TTL_SECONDS,
        },
    }
