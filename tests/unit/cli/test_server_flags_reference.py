"""Drop-in: `kubeiam server` takes the argument lists that aws-iam-authenticator's manifests pass.

Each list below is copied verbatim from a manifest that installs the reference (the source is
named beside it); only the host paths are moved under a temporary directory, and the values an
installer fills into its template are given as that installer fills them. Everything up to the
server's start runs for real (flag parsing, the config file, the merge); `run` itself, which would
bind the reference's fixed port 21362, is replaced by a recorder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from kubeiam.cli import server as server_cli
from kubeiam.server.config import BackendMode, ServerConfig

# kubernetes/kops, upup/models/cloudup/resources/addons/authentication.aws/k8s-1.12.yaml.template
KOPS_ARGS = [
    "server",
    "--config=/etc/aws-iam-authenticator/config.yaml",
    "--state-dir=/var/aws-iam-authenticator",
    "--kubeconfig-pregenerated=true",
]
# aws/eks-anywhere, pkg/awsiamauth/config/aws-iam-authenticator.yaml ({{.backendMode}} and
# {{.partition}} filled in as EKS Anywhere does for a cluster with the aws-auth ConfigMap).
EKSA_ARGS = [
    "server",
    "--backend-mode=EKSConfigMap",
    "--partition=aws",
    "--config=/etc/aws-iam-authenticator/config.yaml",
    "--state-dir=/var/aws-iam-authenticator",
    "--generate-kubeconfig=/etc/kubernetes/aws-iam-authenticator/kubeconfig.yaml",
    "--kubeconfig-pregenerated=true",
]
# kubernetes-sigs/aws-iam-authenticator v0.7.10, deploy/example.yaml (its commented-out lines
# switched on: the EKS-style ConfigMap and the kOps pregenerated kubeconfig).
REFERENCE_EXAMPLE_ARGS = [
    "server",
    "--backend-mode=EKSConfigMap",
    "--config=/etc/aws-iam-authenticator/config.yaml",
    "--state-dir=/var/aws-iam-authenticator",
    "--generate-kubeconfig=/etc/kubernetes/aws-iam-authenticator/kubeconfig.yaml",
    "--kubeconfig-pregenerated=true",
]
# The same example as shipped (both lines commented out): the server writes the kubeconfig.
REFERENCE_EXAMPLE_DEFAULT_ARGS = [
    "server",
    "--config=/etc/aws-iam-authenticator/config.yaml",
    "--state-dir=/var/aws-iam-authenticator",
    "--generate-kubeconfig=/etc/kubernetes/aws-iam-authenticator/kubeconfig.yaml",
]
# kubernetes-sigs/aws-iam-authenticator v0.7.10, hack/e2e/deploy.yaml: the server container...
REFERENCE_E2E_ARGS = [
    "server",
    "--config=/etc/aws-iam-authenticator/config.yaml",
    "--state-dir=/var/aws-iam-authenticator",
    "--kubeconfig-pregenerated=true",
]
# ...and its init container, <CLUSTER_NAME> filled in. There "-i <CLUSTER_NAME>" is one
# argument, which the reference's flag parser reads as the id " <CLUSTER_NAME>" (a leading
# blank); kubeiam refuses an id with a blank (test_bad_spaced_id below), so it is split here.
REFERENCE_E2E_INIT_ARGS = [
    "init",
    "-i",
    "e2e-cluster",
    "--feature-gates=ConfiguredInitDirectories=true",
]
HOST_PREFIXES = ("/etc/aws-iam-authenticator", "/var/aws-iam-authenticator", "/etc/kubernetes")


def relocate(args: list[str], root: Path) -> list[str]:
    out = []
    for arg in args:
        for prefix in HOST_PREFIXES:
            arg = arg.replace(f"={prefix}", f"={root}{prefix}")
        out.append(arg)
    return out


class Recorded:
    config: ServerConfig | None = None
    level: int | None = None


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    from kubeiam.server import logwriter, run

    seen = Recorded()

    def fake_run(config: ServerConfig, **_: Any) -> None:
        seen.config = config

    def fake_logging(fmt: Any, *, level: int = logging.INFO, **_: Any) -> None:
        seen.level = level

    monkeypatch.setattr(run, "run", fake_run)
    monkeypatch.setattr(logwriter, "configure_logging", fake_logging)
    monkeypatch.delenv("AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY", raising=False)
    return seen


@pytest.fixture
def host(tmp_path: Path) -> Path:
    config = tmp_path / "etc/aws-iam-authenticator/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("clusterID: manifest-cluster\n")
    return tmp_path


def start(args: list[str]) -> None:
    assert args[0] == "server"
    server_cli.server_command.main(args=args[1:], prog_name="kubeiam server", standalone_mode=False)


@pytest.mark.parametrize(
    ("args", "backends", "writes_kubeconfig"),
    [
        pytest.param(KOPS_ARGS, (BackendMode.MOUNTED_FILE,), False, id="kops-1.12"),
        pytest.param(EKSA_ARGS, (BackendMode.EKS_CONFIG_MAP,), False, id="eks-anywhere"),
        pytest.param(
            REFERENCE_EXAMPLE_ARGS, (BackendMode.EKS_CONFIG_MAP,), False, id="reference-example"
        ),
        pytest.param(REFERENCE_E2E_ARGS, (BackendMode.MOUNTED_FILE,), False, id="reference-e2e"),
        pytest.param(
            REFERENCE_EXAMPLE_DEFAULT_ARGS,
            (BackendMode.MOUNTED_FILE,),
            True,
            id="reference-example-as-shipped",
        ),
    ],
)
def test_reference_manifest_args_start_the_server(
    args: list[str],
    backends: tuple[BackendMode, ...],
    writes_kubeconfig: bool,
    host: Path,
    recorded: Recorded,
) -> None:
    start(relocate(args, host))
    config = recorded.config
    assert config is not None
    assert config.cluster_id == "manifest-cluster"
    assert config.state_dir == host / "var/aws-iam-authenticator"
    assert config.backend_mode == backends
    assert config.partition == "aws"
    expected = host / "etc/kubernetes/aws-iam-authenticator/kubeconfig.yaml"
    # --kubeconfig-pregenerated=true: `init` wrote it; the reference then writes none either.
    assert config.generate_kubeconfig == (expected if writes_kubeconfig else None)


@pytest.mark.parametrize(
    ("flag", "pregenerated"),
    [
        pytest.param("--kubeconfig-pregenerated", True, id="bare"),
        pytest.param("--kubeconfig-pregenerated=true", True, id="true"),
        pytest.param("--kubeconfig-pregenerated=True", True, id="True"),
        pytest.param("--kubeconfig-pregenerated=false", False, id="false"),
    ],
)
def test_kubeconfig_pregenerated_spellings(
    flag: str, pregenerated: bool, host: Path, recorded: Recorded
) -> None:
    out = host / "kc.yaml"
    start(["server", "-i", "c1", f"--generate-kubeconfig={out}", flag, f"--state-dir={host}"])
    assert recorded.config is not None
    assert recorded.config.generate_kubeconfig == (None if pregenerated else out)


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("panic", logging.CRITICAL),
        ("fatal", logging.CRITICAL),
        ("error", logging.ERROR),
        ("warning", logging.WARNING),
        ("info", logging.INFO),
        ("debug", logging.DEBUG),
        ("trace", logging.DEBUG),
    ],
)
def test_log_verbosity_levels(value: str, level: int, host: Path, recorded: Recorded) -> None:
    start(["server", "-i", "c1", "-v", value, f"--state-dir={host}"])
    assert recorded.level == level


def test_log_verbosity_from_the_reference_env(
    host: Path, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_IAM_AUTHENTICATOR_LOG_VERBOSITY", "debug")
    start(["server", "-i", "c1", f"--state-dir={host}"])
    assert recorded.level == logging.DEBUG


def test_known_feature_gates_are_accepted(host: Path, recorded: Recorded) -> None:
    start(
        [
            "server",
            "-i",
            "c1",
            "--feature-gates=IAMIdentityMappingCRD=true,SSORoleMatch=false, AllAlpha=TRUE",
            f"--state-dir={host}",
        ]
    )
    assert recorded.config is not None


def run_cli(args: list[str]) -> tuple[int, str]:
    from click.testing import CliRunner

    from kubeiam.cli.app import cli

    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(["--feature-gates=NoSuchGate=true"], "unknown gate 'NoSuchGate'", id="gate"),
        pytest.param(["--feature-gates=SSORoleMatch"], "is not KEY=true", id="gate-no-value"),
        pytest.param(["--feature-gates=SSORoleMatch=yes"], "is not KEY=true", id="gate-value"),
        pytest.param(["--master=https://10.0.0.1"], "does not take --master", id="master"),
        pytest.param(["--kubeconfig-pregenerated=maybe"], "maybe", id="pregenerated-value"),
        pytest.param(["-v", "loud"], "loud", id="verbosity"),
        pytest.param(["--partition=aws-mars"], "aws-mars", id="partition"),
    ],
)
def test_bad_reference_flags_are_refused(
    extra: list[str], message: str, host: Path, recorded: Recorded
) -> None:
    code, output = run_cli(["server", "-i", "c1", f"--state-dir={host}", *extra])
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output
    assert recorded.config is None


def test_reference_e2e_init_container_args(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: Path, recorded: Recorded
) -> None:
    """The init container's list writes where the server container's list then reads: the
    gate sends the key to the server's default state directory and the kubeconfig to its
    default path (moved under tmp_path: the defaults are host paths)."""
    from kubeiam.cli import init as init_cli

    state = host / "var/aws-iam-authenticator"
    kubeconfig = host / "etc/kubernetes/aws-iam-authenticator/kubeconfig.yaml"
    monkeypatch.setattr(init_cli, "DEFAULT_STATE_DIR", state)
    monkeypatch.setattr(init_cli, "CONFIGURED_KUBECONFIG", kubeconfig)
    code, output = run_cli(REFERENCE_E2E_INIT_ARGS)
    assert code == 0, output
    assert (state / "key.pem").exists()
    assert (state / "cert.pem").exists()
    assert "certificate-authority-data" in kubeconfig.read_text()
    start(relocate(REFERENCE_E2E_ARGS, host))
    assert recorded.config is not None
    assert recorded.config.state_dir == state
    assert recorded.config.generate_kubeconfig is None


def test_init_without_the_gate_writes_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = run_cli(["init", "-i", "c1", "--feature-gates=ConfiguredInitDirectories=false"])
    assert code == 0, output
    assert (tmp_path / "key.pem").exists()
    assert (tmp_path / "aws-iam-authenticator.kubeconfig").exists()


def test_init_refuses_an_unknown_gate(tmp_path: Path) -> None:
    code, output = run_cli(
        ["init", "-i", "c1", f"--state-dir={tmp_path}", "--feature-gates=Nope=true"]
    )
    assert code == 2
    assert "unknown gate 'Nope'" in output
    assert not list(tmp_path.iterdir())


def test_bad_spaced_id(tmp_path: Path) -> None:
    """The e2e manifest's joined "-i <name>": refused in one line, nothing written."""
    code, output = run_cli(["init", "-i e2e-cluster", f"--state-dir={tmp_path}"])
    assert code == 2
    assert "has a space" in output
    assert not list(tmp_path.iterdir())
