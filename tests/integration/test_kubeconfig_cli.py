"""`kubeiam kubeconfig update` as a real process, against EKS in the local AWS environment."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

import kubeiam
from kubeiam.localaws.environment import LocalAWS
from kubeiam.token.launcher import launcher_paths
from support.cli import KUBEIAM, run_kubeiam

#: The launcher the default entry runs: this interpreter and the directory holding kubeiam.
INSTALLATION = (os.path.realpath(sys.executable), str(Path(kubeiam.__file__).parent.parent))


def kubeiam_args(exec_: dict[str, Any]) -> list[str]:
    """The kubeiam arguments of a default (launcher) exec entry, its installation checked."""
    found = launcher_paths(exec_["command"], exec_["args"])
    assert found is not None, exec_
    python, package_dir, args = found
    assert (os.path.realpath(python), package_dir) == INSTALLATION
    return args


@pytest.fixture
def cli_env(admin_cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = dict(admin_cli_env)
    env["HOME"] = str(tmp_path / "home")
    env["PATH"] = f"{Path(KUBEIAM).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def eks_cluster(local_aws: LocalAWS) -> dict[str, Any]:
    name = f"eks-{uuid.uuid4().hex[:8]}"
    eks = local_aws.boto3_client("eks")
    eks.create_cluster(
        name=name,
        roleArn=f"arn:aws:iam::{local_aws.account_id}:role/eks-cluster",
        resourcesVpcConfig={"subnetIds": []},
    )
    cluster: dict[str, Any] = eks.describe_cluster(name=name)["cluster"]
    return cluster


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_kubeiam("kubeconfig", "update", *args, env=env)


def test_update_from_eks(
    cli_env: dict[str, str], eks_cluster: dict[str, Any], local_aws: LocalAWS, tmp_path: Path
) -> None:
    name, arn = eks_cluster["name"], eks_cluster["arn"]
    # --profile wins over keys in the environment (aws-cli#7794): the env keys are bogus here.
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[dev]\naws_access_key_id = {local_aws.admin.access_key_id}\n"
        f"aws_secret_access_key = {local_aws.admin.secret_access_key}\n"
    )
    cli_env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    cli_env["AWS_ACCESS_KEY_ID"] = "AKIAIOSFODNN7BOGUSXX"
    cli_env["AWS_SECRET_ACCESS_KEY"] = "bogus"
    done = run(
        cli_env,
        "--cluster",
        name,
        "--profile",
        "dev",
        "--role-arn",
        "arn:aws:iam::123456789012:role/K8sAdmins",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert f"Updated context {arn}" in done.stderr
    assert "not a PEM certificate" in done.stderr  # moto's certificate data is random
    path = Path(cli_env["HOME"]) / ".kube" / "config"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = yaml.safe_load(path.read_text())
    (cluster,) = data["clusters"]
    assert cluster == {
        "name": arn,
        "cluster": {
            "server": eks_cluster["endpoint"],
            "certificate-authority-data": eks_cluster["certificateAuthority"]["data"],
        },
    }
    (user,) = data["users"]
    assert kubeiam_args(user["user"]["exec"]) == [
        "token",
        "-i",
        name,
        "--region",
        "us-east-1",
        "--role-arn",
        "arn:aws:iam::123456789012:role/K8sAdmins",
        "--profile",
        "dev",
    ]
    assert data["current-context"] == arn

    again = run(
        cli_env,
        "--cluster",
        name,
        "--profile",
        "dev",
        "--role-arn",
        "arn:aws:iam::123456789012:role/K8sAdmins",
    )
    assert again.returncode == 0, again.stderr
    assert "is up to date" in again.stderr


def test_dry_run_prints_a_diff_on_stdout(
    cli_env: dict[str, str], eks_cluster: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "kc"
    target.write_text("# mine\napiVersion: v1\nkind: Config\n")
    done = run(
        cli_env,
        "--cluster",
        eks_cluster["name"],
        "--kubeconfig",
        str(target),
        "--dry-run",
        "--context",
        "demo",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"--- {target}\n+++ {target}\n")
    assert "+current-context: demo" in done.stdout
    assert target.read_text() == "# mine\napiVersion: v1\nkind: Config\n"


def test_kubeconfig_list_and_no_switch(
    cli_env: dict[str, str], eks_cluster: dict[str, Any], tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text("apiVersion: v1\nkind: Config\ncurrent-context: keep-me\n")
    cli_env["KUBECONFIG"] = f"{first}{os.pathsep}{second}"
    done = run(cli_env, "--cluster", eks_cluster["name"], "--no-switch")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(first.read_text())["current-context"] == "keep-me"
    assert len(yaml.safe_load(first.read_text())["users"]) == 1
    assert not second.exists()


def test_unknown_cluster_and_bad_flags(cli_env: dict[str, str], tmp_path: Path) -> None:
    missing = run(cli_env, "--cluster", "no-such-cluster")
    assert missing.returncode == 1
    assert "ResourceNotFoundException" in missing.stderr
    assert "--region" in missing.stderr  # the hint
    half = run(cli_env, "--cluster", "x", "--server", "https://x")
    assert half.returncode == 2
    assert "go together" in half.stderr


def test_cluster_outside_eks(cli_env: dict[str, str], tmp_path: Path) -> None:
    import trustme

    ca = tmp_path / "ca.pem"
    ca.write_bytes(trustme.CA().cert_pem.bytes())
    target = tmp_path / "kc"
    done = run(
        cli_env,
        "--cluster",
        "kops1",
        "--server",
        "https://api.kops1.example",
        "--certificate-authority",
        str(ca),
        "--kubeconfig",
        str(target),
        "--api-version",
        "v1beta1",
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    exec_ = yaml.safe_load(target.read_text())["users"][0]["user"]["exec"]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert kubeiam_args(exec_) == ["token", "-i", "kops1"]


@pytest.mark.parametrize(
    ("flag", "command"),
    [(["--exec-command", "kubeiam"], "kubeiam"), (["--exec-command", KUBEIAM], KUBEIAM)],
    ids=["kubeiam-from-path", "absolute-path"],
)
def test_exec_command_writes_that_command_instead_of_the_launcher(
    cli_env: dict[str, str], tmp_path: Path, flag: list[str], command: str
) -> None:
    import trustme

    ca = tmp_path / "ca.pem"
    ca.write_bytes(trustme.CA().cert_pem.bytes())
    target = tmp_path / "kc"
    server = ["--server", "https://api.kops1.example", "--certificate-authority", str(ca)]
    done = run(cli_env, "--cluster", "kops1", *server, "--kubeconfig", str(target), *flag)
    assert done.returncode == 0, done.stderr
    exec_ = yaml.safe_load(target.read_text())["users"][0]["user"]["exec"]
    assert exec_["command"] == command
    assert exec_["args"] == ["token", "-i", "kops1"]


def test_the_default_entry_runs_as_kubectl_runs_it(cli_env: dict[str, str], tmp_path: Path) -> None:
    """The entry as kubectl runs it (its command and args, KUBERNETES_EXEC_INFO set) prints a
    credential and nothing on stderr. The real kubectl with a moved installation is
    tests/e2e/test_launcher_kubectl.py."""
    import trustme

    ca = tmp_path / "ca.pem"
    ca.write_bytes(trustme.CA().cert_pem.bytes())
    target = tmp_path / "kc"
    server = ["--server", "https://127.0.0.1:1", "--certificate-authority", str(ca)]
    assert run(cli_env, "--cluster", "kops1", *server, "--kubeconfig", str(target)).returncode == 0
    exec_ = yaml.safe_load(target.read_text())["users"][0]["user"]["exec"]
    keys = {
        **cli_env,
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    }
    fast = subprocess.run(
        [exec_["command"], *exec_["args"]],
        env={**keys, "KUBERNETES_EXEC_INFO": '{"apiVersion":"client.authentication.k8s.io/v1"}'},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert fast.returncode == 0, fast.stderr
    assert fast.stderr == ""
    assert '"kind":"ExecCredential"' in fast.stdout


def test_an_entry_the_sh_launcher_wrote_is_rewritten_to_the_direct_one(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    import trustme

    from kubeiam.token.launcher import PYTHON_FLAGS, legacy_launcher_command

    ca = tmp_path / "ca.pem"
    ca.write_bytes(trustme.CA().cert_pem.bytes())
    target = tmp_path / "kc"
    server = ["--server", "https://api.kops1.example", "--certificate-authority", str(ca)]
    assert run(cli_env, "--cluster", "kops1", *server, "--kubeconfig", str(target)).returncode == 0
    doc = yaml.safe_load(target.read_text())
    command, args = legacy_launcher_command(*INSTALLATION, ["token", "-i", "kops1"])
    doc["users"][0]["user"]["exec"].update(command=command, args=args)
    target.write_text(yaml.safe_dump(doc))
    assert kubeiam_args(doc["users"][0]["user"]["exec"]) == ["token", "-i", "kops1"]

    done = run(cli_env, "--cluster", "kops1", *server, "--kubeconfig", str(target))
    assert done.returncode == 0, done.stderr
    exec_ = yaml.safe_load(target.read_text())["users"][0]["user"]["exec"]
    assert exec_["command"] != "sh"
    assert exec_["args"][0] == PYTHON_FLAGS
    assert kubeiam_args(exec_) == ["token", "-i", "kops1"]


def test_invalid_existing_file_is_left_untouched(cli_env: dict[str, str], tmp_path: Path) -> None:
    import trustme

    ca = tmp_path / "ca.pem"
    ca.write_bytes(trustme.CA().cert_pem.bytes())
    target = tmp_path / "kc"
    target.write_text("clusters: [\n")
    done = run(
        cli_env,
        "--cluster",
        "kops1",
        "--server",
        "https://api",
        "--certificate-authority",
        str(ca),
        "--kubeconfig",
        str(target),
    )
    assert done.returncode == 2
    assert "is not valid YAML" in done.stderr
    assert target.read_text() == "clusters: [\n"


# --- a user's own messy kubeconfig --------------------------------------------------------------

PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def offline_env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "PATH": f"{Path(KUBEIAM).parent}:/usr/bin:/bin"}


def test_a_stale_token_and_insecure_flag_are_replaced_and_reported(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text(PEM)
    target = tmp_path / "config"
    target.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: kops1\n  cluster:\n    server: https://old\n"
        "    insecure-skip-tls-verify: true\n"
        "users:\n- name: kops1\n  user:\n    token: s3cret-static\n"
    )
    done = run(
        offline_env(tmp_path),
        "--cluster",
        "kops1",
        "--server",
        "https://127.0.0.1:6443",
        "--certificate-authority",
        str(tmp_path / "ca.pem"),
        "--kubeconfig",
        str(target),
    )
    assert done.returncode == 0, done.stderr
    assert "kubeiam: warning: user 'kops1': replaced by the kubeiam exec entry; removed token" in (
        done.stderr
    )
    assert "removed insecure-skip-tls-verify" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    data = yaml.safe_load(target.read_text())
    assert list(data["users"][0]["user"]) == ["exec"]
    assert "insecure-skip-tls-verify" not in data["clusters"][0]["cluster"]


def test_duplicate_names_are_refused_in_two_lines(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text(PEM)
    target = tmp_path / "config"
    text = (
        "apiVersion: v1\nkind: Config\n"
        "users:\n- name: dev\n  user: {token: a}\n- name: dev\n  user: {token: b}\n"
    )
    target.write_text(text)
    done = run(
        offline_env(tmp_path),
        "--cluster",
        "kops1",
        "--server",
        "https://127.0.0.1:6443",
        "--certificate-authority",
        str(tmp_path / "ca.pem"),
        "--kubeconfig",
        str(target),
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("kubeiam: error: ")
    assert "users: 2 entries named 'dev' (lines 4, 6)" in lines[0]
    assert lines[1].startswith("  fix: ")
    assert target.read_text() == text
