"""`kubeiam migrate plan` against the local AWS: an aws-auth holding both seed workflows (an
onboarded user, an IAM group's role) and awkward rows (a role written without its path, a
duplicate ARN, a non-masters system: group, a role that no longer exists, mapAccounts, a node
row) is planned row by row; bad input is refused with a fix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from kubeiam.localaws.environment import LocalAWS
from support.cli import run_kubeiam
from support.eks_cluster import Cluster, make_cluster


@pytest.fixture
def cluster(local_aws: LocalAWS, admin_cli_env: dict[str, str], tmp_path: Path) -> Cluster:
    return make_cluster(local_aws, admin_cli_env, tmp_path, "CONFIG_MAP")


def plan(cluster: Cluster, aws_auth: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kubeiam(
        "migrate", "plan", "--cluster", cluster.name, "--aws-auth-file", str(aws_auth), *args,
        env=cluster.env,
    )  # fmt: skip


def write_aws_auth(path: Path, roles: list[dict[str, object]], **more: object) -> Path:
    data = {"mapRoles": yaml.safe_dump(roles)}
    data.update({k: yaml.safe_dump(v) for k, v in more.items()})
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "aws-auth", "namespace": "kube-system"},
                "data": data,
            }
        )
    )
    return path


def test_plan_of_both_workflows_and_the_awkward_rows(cluster: Cluster, tmp_path: Path) -> None:
    admin = cluster.role()
    group_role = cluster.role(path="/teams/")  # the IAM group's access role, with a path
    user = cluster.user()  # the onboarded user
    nodes = cluster.role()
    monitoring = cluster.role()
    gone = cluster.role()
    cluster.iam.delete_role(RoleName=gone.rsplit("/", 1)[1])
    short = group_role.replace("/teams/", "/")
    roles = [
        {"rolearn": admin, "username": "admin", "groups": ["system:masters"]},
        {"rolearn": short, "username": "devs:{{SessionName}}", "groups": ["first"]},
        {"rolearn": short, "username": "devs:{{SessionName}}", "groups": ["devs"]},
        {"rolearn": nodes, "username": "system:node:{{EC2PrivateDNSName}}",
         "groups": ["system:bootstrappers", "system:nodes"]},
        {"rolearn": monitoring, "username": "mon", "groups": ["system:monitoring"]},
        {"rolearn": gone, "username": "gone", "groups": ["x"]},
    ]  # fmt: skip
    path = write_aws_auth(
        tmp_path / "aws-auth.yaml",
        roles,
        mapUsers=[{"userarn": user, "username": "alice", "groups": ["devs"]}],
        mapAccounts=["123456789012"],
    )
    done = plan(cluster, path, "-o", "json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["authenticationMode"] == "CONFIG_MAP"
    verdicts = {r["source"]: r["verdict"] for r in body["rows"]}
    assert verdicts == {
        "mapRoles[0]": "equivalent",
        "mapRoles[1]": "ignored",
        "mapRoles[2]": "exact",
        "mapRoles[3]": "equivalent",
        "mapRoles[4]": "needs-rbac",
        "mapRoles[5]": "cannot-migrate",
        "mapUsers[0]": "exact",
        "mapAccounts[0]": "cannot-migrate",
    }
    rows = {r["source"]: r for r in body["rows"]}
    assert rows["mapRoles[2]"]["entry"]["principalArn"] == group_role  # the path, from IAM
    assert rows["mapRoles[2]"]["entry"]["kubernetesGroups"] == ["devs"]  # the LAST row
    assert rows["mapRoles[0]"]["entry"]["accessPolicies"][0]["policyArn"].endswith(
        "/AmazonEKSClusterAdminPolicy"
    )
    assert rows["mapRoles[3]"]["entry"]["type"] == "EC2_LINUX"
    assert rows["mapRoles[4]"]["entry"]["kubernetesGroups"] == ["kubeiam:monitoring"]
    assert "no longer exists" in rows["mapRoles[5]"]["reasons"][0]
    assert body["ok"] is True
    assert body["clusterAdmins"] == [admin]

    table = plan(cluster, path)
    assert table.returncode == 0, table.stderr
    assert "AWS-AUTH ROW" in table.stdout
    assert "ignored" in next(line for line in table.stdout.splitlines() if "mapRoles[1]" in line)
    assert (
        "8 row(s): 2 exact, 2 equivalent, 1 needs-rbac, 2 cannot-migrate, 1 ignored" in table.stdout
    )
    assert "cluster admins after migration: " + admin in table.stdout
    # The plan changes nothing: still CONFIG_MAP (the entry API off).
    mode = cluster.eks.describe_cluster(name=cluster.name)["cluster"]["accessConfig"]
    assert mode["authenticationMode"] == "CONFIG_MAP"


def test_a_plan_that_leaves_no_admin_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    path = write_aws_auth(
        tmp_path / "aws-auth.yaml", [{"rolearn": cluster.role(), "username": "dev"}]
    )
    done = plan(cluster, path, "-o", "json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["ok"] is False
    assert "leaves no cluster admin" in done.stderr


BAD = [
    ("unknown-cluster", lambda c, p: ["--cluster", c.name + "x", "--aws-auth-file", str(p)], 1,
     "not found (closest:"),
    ("not-aws-auth", lambda c, p: ["--cluster", c.name, "--aws-auth-file", str(p.with_name("x"))],
     2, "is not the aws-auth ConfigMap"),
    ("missing-file", lambda c, p: ["--cluster", c.name, "--aws-auth-file", str(p) + ".nope"],
     2, "no such file"),
    ("file-and-context", lambda c, p: ["--cluster", c.name, "--aws-auth-file", str(p),
                                       "--context", "x"], 2, "pass one or the other"),
]  # fmt: skip


@pytest.mark.parametrize(("args_of", "code", "says"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(cluster: Cluster, tmp_path: Path, args_of, code: int, says: str) -> None:  # type: ignore[no-untyped-def]
    path = write_aws_auth(tmp_path / "aws-auth.yaml", [])
    (tmp_path / "x").write_text("just: [a, list]\n")
    done = run_kubeiam("migrate", "plan", *args_of(cluster, path), env=cluster.env)
    assert done.returncode == code, done.stderr
    assert says in done.stderr
    assert "kubeiam: error:" in done.stderr
    assert "Traceback" not in done.stderr
