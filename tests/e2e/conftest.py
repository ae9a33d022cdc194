"""Fixtures for the end-to-end suite: the real etcd and kube-apiserver on 127.0.0.1.

Prerequisites are settled once per session, at collection: the binaries cached under
`~/.cache/kubeiam/e2e/` (built here when Go is on PATH and they are missing). Off CI, a machine
without Go and without the cache skips the suite with one line saying what is missing; with
CI=true that is a failure. See tests/e2e/README.md for the fixture API.
"""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cluster.binaries import Binaries, BuildError, Outcome, binaries, cache_root, ensure, is_ci
from cluster.binaries import missing_prerequisite as find_missing_prerequisite
from cluster.control_plane import ControlPlane, Webhook, free_port, start_control_plane
from cluster.node import NodeError, NodeTools, node_tools
from cluster.node import prepare as prepare_node
from eks_standin import EksStandIns
from system import (
    CLUSTER_ID,
    WEBHOOK_CACHE_TTL_SECONDS,
    IamUser,
    KubeiamServer,
    System,
    aws_env,
    run_kubeiam,
    server_config,
)

from kubeiam.localaws import LocalAWS

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parent.parent
DEPLOY_DIR = REPO_ROOT / "deploy"
#: The deploy/ manifests in the order they must be applied (CRD first; written by its owners).
DEPLOY_MANIFESTS = ("crd.yaml", "rbac.yaml", "daemonset.yaml")
#: Start-up of kube-apiserver on 2 shared cores takes tens of seconds; the first test pays it.
E2E_TIMEOUT_SECONDS = 300
KUBEIAM_SERVICE_ACCOUNT = ("kubeiam", "kube-system")


@dataclass(frozen=True, slots=True)
class Prerequisites:
    """What collection found: the binaries, or the one line saying why the suite cannot run."""

    binaries: Binaries | None
    problem: str | None
    #: Off CI a missing toolchain skips the suite; a failed build always fails it.
    skippable: bool = False


_PREREQUISITES = pytest.StashKey[Prerequisites]()


def _settle_prerequisites(config: pytest.Config) -> Prerequisites:
    root = cache_root(os.environ)
    go = shutil.which("go")
    missing = find_missing_prerequisite(root, go)
    if missing is not None:
        return Prerequisites(binaries=None, problem=missing, skippable=True)
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(outcome: Outcome) -> None:
        if reporter is not None and outcome.built:
            reporter.write_line(f"e2e: {outcome.describe()}")

    try:
        ensure(root, go=go, environ=os.environ, on_outcome=say)
    except BuildError as error:
        return Prerequisites(binaries=None, problem=str(error))
    return Prerequisites(binaries=binaries(root), problem=None)


def _prepare_node(config: pytest.Config) -> None:
    """The node tests' images and helm, built here (no test timeout) when `make e2e` did not;
    a failure is said in one line and the node tests then fail with it."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    try:
        lines = prepare_node(cache_root(os.environ), ci=is_ci(os.environ))
    except NodeError as error:
        lines = [f"node: {error}"]
    for line in lines:
        if reporter is not None and not line.startswith("reused"):
            reporter.write_line(f"e2e: {line}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if E2E_DIR in Path(str(item.path)).parents]
    if not ours or config.option.collectonly:
        return
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_SECONDS))
    found = _settle_prerequisites(config)
    config.stash[_PREREQUISITES] = found
    if found.binaries is not None and any(i.path.name.startswith("test_node") for i in ours):
        _prepare_node(config)
    if found.skippable and not is_ci(os.environ):
        # One line for the whole suite: the first test carries the skip, the rest are deselected.
        first, rest = ours[0], ours[1:]
        first.add_marker(pytest.mark.skip(reason=f"e2e: {found.problem}"))
        if rest:
            config.hook.pytest_deselected(items=rest)
            dropped = {id(item) for item in rest}
            items[:] = [item for item in items if id(item) not in dropped]


@pytest.fixture(scope="session", autouse=True)
def e2e_binaries(pytestconfig: pytest.Config) -> Binaries:
    """The built kube-apiserver, kubectl, etcd and reference; skip off CI, fail on CI without."""
    found = pytestconfig.stash.get(_PREREQUISITES, None)
    if found is None:
        found = _settle_prerequisites(pytestconfig)
        pytestconfig.stash[_PREREQUISITES] = found
    if found.binaries is not None:
        return found.binaries
    problem = found.problem or "prerequisites unknown"
    if found.skippable and not is_ci(os.environ):
        pytest.skip(f"e2e: {problem}")
    pytest.fail(f"e2e: {problem}", pytrace=False)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="session")
def cluster_factory(
    e2e_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ControlPlane]]:
    """Start extra, independent control planes: `cluster_factory(webhook=Webhook(...))`.

    Every control plane started through it is stopped at the end of the session.
    """
    started: list[ControlPlane] = []

    def start(*, webhook: Webhook | None = None, extra_args: tuple[str, ...] = ()) -> ControlPlane:
        workdir = tmp_path_factory.mktemp("cluster")
        plane = start_control_plane(
            e2e_binaries, workdir, now=_now(), webhook=webhook, extra_args=extra_args
        )
        started.append(plane)
        return plane

    yield start
    for plane in reversed(started):
        plane.stop()


@pytest.fixture(scope="session")
def e2e_node_tools(e2e_binaries: Binaries) -> NodeTools:
    """containerd, runc, the kubelet and the pause image (cluster/node.py); skip off CI without
    root or the Debian packages (one line; on CI that is a failure, as every skip is)."""
    try:
        return node_tools(cache_root(os.environ))
    except NodeError as error:
        pytest.skip(f"node: {error}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures node tests measured (record_property "measured: ..."), one line each."""
    for report in terminalreporter.getreports("passed"):
        for name, value in report.user_properties:
            if str(name).startswith("measured: "):
                terminalreporter.write_line(f"e2e {name}: {value}")


@pytest.fixture(scope="session")
def cluster(cluster_factory: Callable[..., ControlPlane]) -> ControlPlane:
    """The session's shared control plane (no webhook until a test restarts it with one)."""
    return cluster_factory()


@pytest.fixture(scope="session")
def deployed(cluster: ControlPlane) -> tuple[Path, ...]:
    """The shipped deploy/ manifests applied to `cluster` as admin; returns the files applied."""
    manifests = tuple(
        DEPLOY_DIR / name for name in DEPLOY_MANIFESTS if (DEPLOY_DIR / name).is_file()
    )
    cluster.apply(*manifests)
    return manifests


@pytest.fixture(scope="session")
def kubeiam_kubeconfig(
    cluster: ControlPlane, deployed: tuple[Path, ...], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A kubeconfig that reaches the API server as the `kubeiam` service account deploy/ ships.

    Its token is a bound service-account token from the TokenRequest API, valid for an hour.
    """
    name, namespace = KUBEIAM_SERVICE_ACCOUNT
    path = tmp_path_factory.mktemp("kubeiam-sa") / "kubeiam.kubeconfig"
    return cluster.service_account_kubeconfig(path, name, namespace)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the last lines of every process's log (kube-apiserver, etcd, kubeiam
    server) to the report; with CI=true, turn any skip into a failure."""
    report: pytest.TestReport = yield
    if report.skipped and is_ci(os.environ) and not hasattr(report, "wasxfail"):
        # On CI nothing in the end-to-end suite may be skipped: a skip there hides a capability.
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"a skip fails the run on CI: {reason}"
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            # ControlPlane, System and the node tests' setups (kubelet, containerd, ...).
            if callable(getattr(value, "log_tails", None)):
                for name, tail in value.log_tails().items():
                    report.sections.append((f"{name} log (last lines)", tail))
    return report


#: Variables that must not reach the processes the system fixture starts (a developer's AWS or
#: Kubernetes setup); the per-test scrubbing fixture has not run yet when session fixtures start.
_SCRUB_PREFIXES = ("AWS_", "KUBEIAM_")
_SCRUB = ("KUBECONFIG", "KUBERNETES_EXEC_INFO", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


@pytest.fixture(scope="session")
def system(
    cluster_factory: Callable[..., ControlPlane],
    local_aws: LocalAWS,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[System]:
    """The whole system, shared by the session (tests use distinct IAM users and roles).

    1. `kubeiam init` writes the webhook's key, certificate and kube-apiserver's webhook
       kubeconfig for a fixed loopback port;
    2. etcd and kube-apiserver start with that webhook (v1, 1 s cache TTL), Node,RBAC;
    3. deploy/crd.yaml and deploy/rbac.yaml are applied as admin;
    4. `kubeiam server` starts with the MountedFile, EKSConfigMap and CRD backends, reading the
       API server with a bound token of the `kubeiam` service account those manifests grant,
       and the local AWS environment behind it (STS front for tokens, moto's EC2 for node
       names, the admin keys for DescribeInstances).
    """
    workdir = tmp_path_factory.mktemp("system")
    state_dir = workdir / "state"
    webhook_config = workdir / "webhook.kubeconfig"
    port = free_port()
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith(_SCRUB_PREFIXES) or name in _SCRUB:
                env.delenv(name)
        done = run_kubeiam(
            "init",
            "-i",
            CLUSTER_ID,
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            "--kubeconfig-out",
            str(webhook_config),
        )
        assert done.returncode == 0, done.stderr
        plane = cluster_factory(
            webhook=Webhook(
                config_file=webhook_config,
                version="v1",
                cache_ttl=f"{WEBHOOK_CACHE_TTL_SECONDS:g}s",
            ),
            # The server's watches would otherwise hold kube-apiserver's graceful shutdown
            # open until the harness kills it (15 s per restart); with a grace period it ends
            # them and exits in about a second, and the server's watches reconnect.
            extra_args=("--shutdown-watch-termination-grace-period=2s",),
        )
        plane.apply(DEPLOY_DIR / "crd.yaml", DEPLOY_DIR / "rbac.yaml")
        crd = "crd/iamidentitymappings.iamauthenticator.k8s.aws"
        plane.kubectl("wait", "--for=condition=Established", crd, "--timeout=60s")
        name, namespace = KUBEIAM_SERVICE_ACCOUNT
        server_kubeconfig = plane.service_account_kubeconfig(
            workdir / "kubeiam-sa.kubeconfig", name, namespace, duration="2h"
        )
        file_key = local_aws.create_user("e2e-file-user")
        file_user = IamUser(
            "e2e-file-user", local_aws.user_arn("e2e-file-user"), file_key[0], file_key[1]
        )
        config = workdir / "server.yaml"
        config.write_text(
            yaml.safe_dump(
                server_config(
                    port=port,
                    state_dir=state_dir,
                    kubeconfig=server_kubeconfig,
                    file_user=file_user,
                )
            )
        )
        admin = local_aws.admin
        server_env = {
            # AWS_ENDPOINT_URL_EC2 -> moto, for {{EC2PrivateDNSName}}
            **aws_env(local_aws, admin.access_key_id, admin.secret_access_key, workdir),
            "HOME": str(workdir),
        }
        sts_flags: list[str] = []
        for host in (local_aws.sts_host, "sts.amazonaws.com"):
            sts_flags += ["--sts-resolve", local_aws.sts_resolve(host)]
        server = KubeiamServer(
            config=config,
            state_dir=state_dir,
            port=port,
            log_path=workdir / "kubeiam-server.log",
            env=server_env,
            flags=[*sts_flags, "--sts-ca-bundle", str(local_aws.ca_bundle)],
        )
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
    the_system = System(
        plane=plane,
        aws=local_aws,
        server=server,
        workdir=workdir,
        webhook_config=webhook_config,
        file_user=file_user,
    )
    the_system.users[file_user.name] = file_user
    try:
        yield the_system
    finally:
        server.stop()


@pytest.fixture
def eks_standin(system: System, tmp_path: Path) -> Iterator[EksStandIns]:
    """EKS's side of authentication for a local EKS cluster (eks_standin.py):
    `eks_standin.start(mode)` serves its access entries to kube-apiserver through a `kubeiam
    server` on the system's port; at teardown the system's own server is back."""
    standins = EksStandIns(system, tmp_path / "eks")
    try:
        yield standins
    finally:
        standins.close()
