"""`kubeiam iam ...` as real processes against the local AWS environment."""

from __future__ import annotations

import configparser
import json
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubeiam.localaws.environment import LocalAWS
from kubeiam.token.launcher import launcher_paths
from support.cli import run_kubeiam


@pytest.fixture
def cli_env(admin_cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**admin_cli_env, "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws" / "credentials")}


def kubeiam(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_kubeiam("iam", *args, env=env)


def secret_in(path: Path, profile: str) -> str:
    parser = configparser.RawConfigParser()
    parser.read(path)
    return parser.get(profile, "aws_secret_access_key")


def test_onboard_and_offboard_user(cli_env: dict[str, str], tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    mapping = tmp_path / "dynamic.json"
    args = [
        "onboard-user",
        name,
        "--cluster",
        "kubedemy",
        "--group",
        "system:masters",
        "--tag",
        "owner=kubedemy",
        "--file",
        str(mapping),
    ]
    first = kubeiam(cli_env, *args, "-o", "json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["userName"] == name
    assert summary["kubeconfigCommand"] == (
        f"kubeiam kubeconfig update --cluster kubedemy --region us-east-1 --profile {name}"
    )
    creds = Path(cli_env["AWS_SHARED_CREDENTIALS_FILE"])
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    secret = secret_in(creds, name)
    assert secret not in first.stdout
    assert secret not in first.stderr
    assert "created IAM user" in first.stderr
    assert json.loads(mapping.read_text())["mapUsers"][0]["userarn"] == summary["userArn"]

    second = kubeiam(cli_env, *args)  # idempotent, table output
    assert second.returncode == 0, second.stderr
    assert "IAM User ARN" in second.stdout
    assert summary["userArn"] in second.stdout
    assert secret not in second.stdout + second.stderr
    assert secret_in(creds, name) == secret

    offboard = ["offboard-user", name, "--file", str(mapping), "-o", "json"]
    # The user holds the file's only system:masters mapping: the file store's guard refuses its
    # removal, before anything else is removed, until --force says so.
    refused = kubeiam(cli_env, *offboard)
    assert refused.returncode == 5, refused.stderr
    assert "last system:masters" in refused.stderr
    assert "--force" in refused.stderr
    assert json.loads(mapping.read_text())["mapUsers"][0]["userarn"] == summary["userArn"]
    assert secret_in(creds, name) == secret

    off = kubeiam(cli_env, *offboard, "--force")
    assert off.returncode == 0, off.stderr
    assert f"IAM user {name}" in json.loads(off.stdout)["removed"]
    assert "mapUsers" not in json.loads(mapping.read_text())
    # Like `kubeiam mapping --store file`: the previous content was saved before the write.
    history = json.loads(mapping.with_name("dynamic.json.kubeiam-backup.json").read_text())
    assert summary["userArn"] in history[-1]["state"]
    assert all(secret not in text for text in (off.stdout, off.stderr, str(history)))


def test_print_credentials_prints_the_secret_once_on_stdout(
    cli_env: dict[str, str], local_aws: LocalAWS
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    done = kubeiam(
        cli_env, "onboard-user", name, "--cluster", "c", "--group", "g", "--print-credentials"
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    secret = out["credentials"]["SecretAccessKey"]
    assert done.stdout.count(secret) == 1
    assert secret not in done.stderr
    assert not Path(cli_env["AWS_SHARED_CREDENTIALS_FILE"]).exists()
    sts = local_aws.boto3_client("sts", credentials=(out["credentials"]["AccessKeyId"], secret))
    assert sts.get_caller_identity()["Arn"].endswith(f":user/{name}")
    again = kubeiam(
        cli_env, "onboard-user", name, "--cluster", "c", "--group", "g", "--print-credentials"
    )
    assert "credentials" not in json.loads(again.stdout)  # never a second key unasked
    assert "--new-key" in again.stderr


def test_access_role_grant_revoke_delete(
    cli_env: dict[str, str], local_aws: LocalAWS, tmp_path: Path
) -> None:
    role, user = f"role-{uuid.uuid4().hex[:8]}", f"cli-{uuid.uuid4().hex[:8]}"
    mapping = tmp_path / "server.yaml"
    iam = local_aws.boto3_client("iam")
    iam.create_user(UserName=user)

    made = kubeiam(
        cli_env,
        "create-access-role",
        role,
        "--cluster",
        "kubedemy",
        "--group",
        "system:masters",
        "--file",
        str(mapping),
        "-o",
        "json",
    )
    assert made.returncode == 0, made.stderr
    result: dict[str, Any] = json.loads(made.stdout)
    assert f"roleARN: {result['roleArn']}" in mapping.read_text()

    granted = kubeiam(cli_env, "grant", user, "--access-role", role, "-o", "json")
    assert json.loads(granted.stdout)["changed"] is True
    groups = [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]]
    assert groups == [role]

    revoked = kubeiam(cli_env, "revoke", user, "--access-role", role, "-o", "json")
    assert json.loads(revoked.stdout)["changed"] is True
    assert iam.list_groups_for_user(UserName=user)["Groups"] == []

    # The role's mapping is the file's only system:masters mapping: removing it needs --force.
    deleted = kubeiam(cli_env, "delete-access-role", role, "--file", str(mapping), "--force")
    assert deleted.returncode == 0, deleted.stderr
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=role)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_group(GroupName=role)
    assert result["roleArn"] not in mapping.read_text()


def test_errors_exit_non_zero_with_a_hint(cli_env: dict[str, str]) -> None:
    missing = kubeiam(cli_env, "grant", "nobody", "--access-role", "no-such-role")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert "access role no-such-role does not exist" in missing.stderr
    assert "fix:" in missing.stderr

    bad_tag = kubeiam(
        cli_env, "onboard-user", "x", "--cluster", "c", "--group", "g", "--tag", "novalue"
    )
    assert bad_tag.returncode == 2
    assert "KEY=VALUE" in bad_tag.stderr


def test_a_failure_midway_rolls_back_in_a_real_process(
    cli_env: dict[str, str], local_aws: LocalAWS, tmp_path: Path
) -> None:
    """The mapping file maps the user's ARN differently: the run fails after creating the user
    and its policy, and removes both."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    arn = f"arn:aws:iam::{local_aws.account_id}:user/{name}"
    mapping = tmp_path / "dynamic.json"
    mapping.write_text(json.dumps({"mapUsers": [{"userarn": arn, "username": "x", "groups": []}]}))
    done = kubeiam(
        cli_env,
        "onboard-user",
        name,
        "--cluster",
        "c",
        "--group",
        "g",
        "--file",
        str(mapping),
    )
    assert done.returncode == 2, done.stderr  # MappingError
    assert "rolled back: IAM user" in done.stderr
    iam = local_aws.boto3_client("iam")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_user(UserName=name)


def test_seed_one_end_to_end_token_verifies_as_the_new_user(
    cli_env: dict[str, str], local_aws: LocalAWS, tmp_path: Path
) -> None:
    """onboard-user, then the printed kubeconfig command, then the exec entry kubectl would run:
    the token it prints verifies as the onboarded user, although the environment holds the
    admin's keys (the profile is an argument, so it wins)."""
    import shlex

    import yaml

    name = f"cli-{uuid.uuid4().hex[:8]}"
    eks = local_aws.boto3_client("eks")
    eks.create_cluster(
        name=name,
        roleArn=f"arn:aws:iam::{local_aws.account_id}:role/eks",
        resourcesVpcConfig={"subnetIds": []},
    )
    onboarded = kubeiam(
        cli_env, "onboard-user", name, "--cluster", name, "--group", "system:masters", "-o", "json"
    )
    assert onboarded.returncode == 0, onboarded.stderr
    # moto evaluates identity policies against resource "*" only, so the user's policy scoped to
    # the cluster ARN (checked in the unit tests) cannot allow DescribeCluster here: add a
    # moto-only grant on "*" so the user can run the printed command as the seed does.
    local_aws.boto3_client("iam").put_user_policy(
        UserName=name,
        PolicyName="moto-resource-star",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "eks:DescribeCluster", "Resource": "*"}
                ],
            }
        ),
    )
    command = shlex.split(json.loads(onboarded.stdout)["kubeconfigCommand"])
    assert command[:3] == ["kubeiam", "kubeconfig", "update"]
    cli_env["HOME"] = str(tmp_path / "home")
    updated = run_kubeiam(*command[1:], env=cli_env)
    assert updated.returncode == 0, updated.stderr

    kubeconfig = yaml.safe_load((tmp_path / "home" / ".kube" / "config").read_text())
    exec_ = kubeconfig["users"][0]["user"]["exec"]
    assert launcher_paths(exec_["command"], exec_["args"]) is not None  # the default launcher
    plugin_env = dict(cli_env)
    plugin_env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {
            "kind": "ExecCredential",
            "apiVersion": exec_["apiVersion"],
            "spec": {"interactive": False},
        }
    )
    token_run = subprocess.run(  # the entry itself, as kubectl runs it
        [exec_["command"], *exec_["args"]],
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert token_run.returncode == 0, token_run.stderr
    token = json.loads(token_run.stdout)["status"]["token"]
    flags = ("-i", name, "-t", "-", "-o", "json", *local_aws.verify_flags())
    verified = run_kubeiam("verify", *flags, env=cli_env, input=token)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count(f":user/{name}") >= 1
    assert local_aws.admin.access_key_id not in verified.stdout


# --- typos are not successes ---------------------------------------------------------------------


def test_removals_of_what_does_not_exist_exit_one_with_the_closest_names(
    cli_env: dict[str, str], local_aws: LocalAWS
) -> None:
    iam = local_aws.boto3_client("iam")
    # Prefixes no other test uses: the closest-name search looks at every user in the shared
    # local AWS, and another test's random "cli-" user could be as close as this one.
    user = f"absentee-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    role = f"ghostly-role-{uuid.uuid4().hex[:6]}"
    created = kubeiam(cli_env, "create-access-role", role, "--cluster", "c", "--group", "dev")
    assert created.returncode == 0, created.stderr
    typo_user, typo_role = user[:-1] + "Q", role[:-1] + "Q"
    cases = {
        "offboard-user": (["offboard-user", typo_user], f"IAM user {typo_user} not found", user),
        "delete-access-role": (
            ["delete-access-role", typo_role],
            f"IAM role {typo_role} not found",
            role,
        ),
        "revoke": (
            ["revoke", typo_user, "--access-role", role],
            f"IAM user {typo_user} not found",
            user,
        ),
    }
    for command, (args, message, closest) in cases.items():
        done = kubeiam(cli_env, *args)
        assert done.returncode == 1, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert lines[-2] == f"kubeiam: error: {message} (closest: {closest})", (command, lines)
        assert lines[-1].startswith("  fix: "), command
        assert "--ignore-not-found" in lines[-1], command
        assert "Traceback" not in done.stderr
        ignored = kubeiam(cli_env, *args, "--ignore-not-found", "-o", "json")
        assert ignored.returncode == 0, (command, ignored.stderr)
        summary = json.loads(ignored.stdout)
        assert summary.get("removed", []) == [], command
        assert not summary.get("changed"), command
    # adds stay idempotent: granting twice is fine, and the typo'd names were never created
    assert kubeiam(cli_env, "grant", user, "--access-role", role).returncode == 0
    assert kubeiam(cli_env, "grant", user, "--access-role", role).returncode == 0
    assert typo_user not in {u["UserName"] for u in iam.list_users()["Users"]}
