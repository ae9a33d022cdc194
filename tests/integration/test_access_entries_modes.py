"""`kubeiam whoami --cluster` and `kubeiam mapping explain --store access-entries` answer as the
cluster's authentication mode decides, against the local EKS: the access entry (with its
policies) in API and API_AND_CONFIG_MAP, aws-auth not needed when an entry decided, and what
happens when nothing decides. (Which source wins when both map a principal is the pure table of
tests/unit/eks/test_modes.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kubeiam.localaws.environment import LocalAWS
from support.cli import run_kubeiam
from support.eks_cluster import ADMIN, Cluster, make_cluster, unique


@pytest.fixture(params=["API", "API_AND_CONFIG_MAP"])
def cluster(
    request: pytest.FixtureRequest,
    local_aws: LocalAWS,
    admin_cli_env: dict[str, str],
    tmp_path: Path,
) -> Cluster:
    return make_cluster(local_aws, admin_cli_env, tmp_path, request.param)


def whoami(
    cluster: Cluster, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_kubeiam("whoami", "--cluster", cluster.name, *args, env=env or cluster.env)


#: What whoami --cluster needs to read a cluster's mode and access entries with the caller's own
#: credentials (docs/access-entries.md says the same).
READ_ENTRIES = ["eks:DescribeCluster", "eks:ListAccessEntries", "eks:DescribeAccessEntry",
                "eks:ListAssociatedAccessPolicies"]  # fmt: skip


def as_new_user(cluster: Cluster, actions: list[str] = READ_ENTRIES) -> tuple[str, dict[str, str]]:
    """A new IAM user with keys allowed ``actions``, and the CLI environment that runs as it."""
    name = unique("dev")
    key, secret = cluster.aws.create_user(name)
    allow = {"Effect": "Allow", "Action": actions, "Resource": "*"}
    cluster.iam.put_user_policy(
        UserName=name,
        PolicyName="read-entries",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow]}),
    )
    env = {**cluster.env, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    return cluster.aws.user_arn(name), env


def test_whoami_the_entry_decides_with_its_policies(cluster: Cluster) -> None:
    """The creator's bootstrap entry decides; no kubeconfig is needed even when the mode still
    reads aws-auth (a note says aws-auth was not read)."""
    done = whoami(cluster, "-o", "json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    eks = summary["eks"]
    mode = eks["authenticationMode"]
    assert eks["source"] == "access-entry"
    assert eks["username"] == summary["username"] == cluster.aws.admin.arn
    assert eks["accessPolicies"] == [
        {"policyArn": ADMIN, "accessScope": {"type": "cluster", "namespaces": []}}
    ]
    could_not_read = [n for n in eks["notes"] if "cannot change this answer" in n]
    assert bool(could_not_read) is (mode == "API_AND_CONFIG_MAP")

    text = whoami(cluster)
    assert text.returncode == 0, text.stderr
    assert f"EKS cluster {cluster.name} (authentication mode {mode}):" in text.stdout
    assert "decided by: access-entry" in text.stdout
    assert "access policies: AmazonEKSClusterAdminPolicy" in text.stdout


def test_whoami_a_principal_without_an_entry(cluster: Cluster) -> None:
    arn, env = as_new_user(cluster)
    done = whoami(cluster, env=env)
    mode = cluster.eks.describe_cluster(name=cluster.name)["cluster"]["accessConfig"]
    if mode["authenticationMode"] == "API_AND_CONFIG_MAP":
        # aws-auth decides next, and there is no kubeconfig to read it with: say so.
        assert done.returncode == 2, done.stderr
        assert "--cluster needs a kubeconfig" in done.stderr
        return
    assert done.returncode == 1, done.stderr
    assert "decided by: nothing: no access" in done.stdout
    assert f"no match for {arn}" in done.stdout

    cluster.ok("add-user", arn, "--username", "dev", "--access-policy", "AmazonEKSViewPolicy:dev")
    done = whoami(cluster, "-o", "json", env=env)
    assert done.returncode == 0, done.stderr
    eks = json.loads(done.stdout)["eks"]
    assert (eks["source"], eks["username"]) == ("access-entry", "dev")
    assert eks["accessPolicies"][0]["accessScope"] == {"type": "namespace", "namespaces": ["dev"]}


def test_mapping_explain_a_role_session_under_the_mode(cluster: Cluster) -> None:
    role = cluster.role(path="/team/")
    cluster.ok("add-role", role, "--username", "dev:{{SessionName}}", "--group", "devs",
               "--access-policy", "AmazonEKSEditPolicy:dev,test")  # fmt: skip
    session = f"arn:aws:sts::123456789012:assumed-role/{role.rsplit('/', 1)[1]}/alice"
    done = cluster.ok("explain", session)
    assert "decided by: access-entry" in done.stdout
    assert "username: dev:alice" in done.stdout
    assert "access policies: AmazonEKSEditPolicy:dev,test" in done.stdout
    other = cluster.kubeiam("explain", "arn:aws:iam::123456789012:role/nobody", "-o", "json")
    assert other.returncode == 1
    eks = json.loads(other.stdout)["eks"]
    assert eks["source"] is None
    if eks["authenticationMode"] == "API_AND_CONFIG_MAP":
        assert any("does not read it" in n for n in eks["notes"]), eks["notes"]


def test_config_map_mode_and_an_unknown_cluster(
    local_aws: LocalAWS, admin_cli_env: dict[str, str], tmp_path: Path
) -> None:
    cluster = make_cluster(local_aws, admin_cli_env, tmp_path, "CONFIG_MAP")
    done = cluster.kubeiam("explain", local_aws.admin.arn)
    assert done.returncode == 1  # no access entry decides: aws-auth does, not read here
    assert "mode CONFIG_MAP: EKS reads aws-auth only" in done.stdout
    assert "does not read it" in done.stdout
    listed = cluster.kubeiam("list")  # the store itself has nothing to list
    assert listed.returncode == 2
    assert "authentication mode CONFIG_MAP" in listed.stderr
    # whoami on a CONFIG_MAP cluster reads aws-auth, as before: through the kubeconfig.
    done = whoami(cluster)
    assert done.returncode == 2
    assert "--cluster needs a kubeconfig" in done.stderr
    # A cluster EKS does not know (kubeiam's own server): a note, then the kubeconfig's stores.
    unknown = run_kubeiam("whoami", "--cluster", unique("onprem"), env=cluster.env)
    assert unknown.returncode == 2
    assert "not found" in unknown.stderr
    assert "explaining the kubeconfig's mappings instead" in unknown.stderr
    assert "Traceback" not in unknown.stderr + done.stderr


@pytest.mark.parametrize(
    ("actions", "code", "says"),
    [
        (["sts:GetCallerIdentity"], 2, "explaining the kubeconfig's mappings instead"),
        (["eks:DescribeCluster"], 1, "needs eks:ListAccessEntries"),
    ],
    ids=["may-not-describe-the-cluster", "may-not-read-the-entries"],
)
def test_whoami_without_permission_to_read_the_cluster(
    cluster: Cluster, actions: list[str], code: int, says: str
) -> None:
    _, env = as_new_user(cluster, actions)
    done = whoami(cluster, env=env)
    assert done.returncode == code, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
