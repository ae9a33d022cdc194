"""`kubeiam iam onboard-user` and `create-access-role` with `--store access-entries`: both
workflows end to end on an API-mode cluster (the user, and the role the IAM group's members
assume, get access entries with their access policies)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kubeiam.localaws.environment import LocalAWS
from support.cli import run_kubeiam
from support.eks_cluster import EDIT, VIEW, Cluster, make_cluster, unique


@pytest.fixture
def cluster(local_aws: LocalAWS, admin_cli_env: dict[str, str], tmp_path: Path) -> Cluster:
    return make_cluster(local_aws, admin_cli_env, tmp_path, "API")


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert "kubeiam: error:" in done.stderr, done.stderr
    return done.stderr


def test_both_iam_workflows_write_access_entries(cluster: Cluster, tmp_path: Path) -> None:
    """`kubeiam iam onboard-user` and `create-access-role` with --store access-entries: the user
    and the role (whose IAM group's members assume it) get entries with their policies."""
    user = unique("dev")
    args = ["--cluster", cluster.name, "--store", "access-entries", "-o", "json"]
    done = run_kubeiam(
        "iam", "onboard-user", user, *args, "--group", "devs",
        "--access-policy", "AmazonEKSViewPolicy:dev",
        "--credentials-file", str(tmp_path / "credentials"),
        env=cluster.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    role = unique("ops")
    done = run_kubeiam(
        "iam", "create-access-role", role, *args, "--group", "ops",
        "--access-policy", "AmazonEKSEditPolicy", env=cluster.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    entries = cluster.entries()
    assert entries[cluster.aws.user_arn(user)] == {
        "type": "STANDARD",
        "username": user,
        "groups": ["devs"],
        "policies": {VIEW: {"type": "namespace", "namespaces": ["dev"]}},
    }
    role_arn = json.loads(done.stdout)["roleArn"]
    assert entries[role_arn] == {
        "type": "STANDARD",
        "username": f"{role}:{{{{SessionName}}}}",
        "groups": ["ops"],
        "policies": {EDIT: {"type": "cluster", "namespaces": []}},
    }
    # Run again: idempotent, nothing changes.
    again = run_kubeiam(
        "iam", "create-access-role", role, *args, "--group", "ops",
        "--access-policy", "AmazonEKSEditPolicy", env=cluster.env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert cluster.entries() == entries


def test_iam_workflow_with_a_policy_but_no_access_entries_store(
    cluster: Cluster, tmp_path: Path
) -> None:
    done = run_kubeiam(
        "iam", "create-access-role", unique("ops"), "--cluster", cluster.name, "--group", "ops",
        "--access-policy", "AmazonEKSEditPolicy", "--file", str(tmp_path / "m.yaml"),
        env=cluster.env,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--access-policy is for --store access-entries" in one_error(done)


def test_offboard_and_delete_remove_the_entries(cluster: Cluster, tmp_path: Path) -> None:
    """The removals undo both workflows on an API-mode cluster: the entries go with the IAM
    user and role."""
    user, role = unique("dev"), unique("ops")
    where = ["--cluster", cluster.name, "--store", "access-entries"]
    for args in (
        ["onboard-user", user, "--group", "devs",
         "--credentials-file", str(tmp_path / "credentials")],
        ["create-access-role", role, "--group", "ops", "--access-policy", "AmazonEKSViewPolicy"],
    ):  # fmt: skip
        done = run_kubeiam("iam", *args, *where, env=cluster.env)
        assert done.returncode == 0, done.stderr
    before = cluster.entries()
    assert cluster.aws.user_arn(user) in before
    for args in (
        ["offboard-user", user, "--credentials-file", str(tmp_path / "credentials")],
        ["delete-access-role", role],
    ):
        done = run_kubeiam("iam", *args, *where, env=cluster.env)
        assert done.returncode == 0, done.stderr
    after = cluster.entries()
    assert cluster.aws.user_arn(user) not in after
    assert not [arn for arn in after if arn.endswith(f"/{role}")]
    assert len(after) == len(before) - 2  # the creator's admin entry stays


def test_a_removal_without_cluster_says_so(cluster: Cluster) -> None:
    done = run_kubeiam(
        "iam", "offboard-user", unique("dev"), "--store", "access-entries", env=cluster.env
    )
    assert done.returncode == 2
    assert "needs --cluster NAME" in one_error(done)
