"""EKS access entries on the real kube-apiserver, served as EKS serves them (eks_standin.py).

The stand-in renders the local EKS's access entries into the DynamicFile that `kubeiam server`
reads before aws-auth (API_AND_CONFIG_MAP), or alone (API), and their access policies into RBAC
with the permissions AWS documents. The cluster starts in CONFIG_MAP (aws-auth alone) and moves
forward as a migration does. kubectl then shows, through kubeiam, what EKS would decide: the
entry's username, the policy's permissions (cluster-wide or in its namespaces only), the entry
winning over an aws-auth row for the same principal, aws-auth ignored in API mode, and an entry
that stops matching once its role is deleted and recreated under the same ARN. kubeiam's own
reading of the cluster (`whoami --cluster`, `mapping explain`) must agree with each answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from eks_standin import EksStandIns
from system import IamUser, System, aws_env, groups_of, run_kubeiam, wait_for

VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
TEAM_NAMESPACE = "e2e-ae-team"


def _can_i(system: System, kubeconfig: Path, *args: str) -> str:
    """`kubectl auth can-i ...` as that user: "yes" or "no" (anything else fails the test)."""
    done = system.kubectl(kubeconfig, "auth", "can-i", *args)
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i {' '.join(args)}: {done.stderr}"
    return answer


def _store_env(system: System, workdir: Path) -> dict[str, str]:
    """`kubeiam mapping --store access-entries` as the local AWS's administrator."""
    admin = system.aws.admin
    return {
        **aws_env(system.aws, admin.access_key_id, admin.secret_access_key, workdir),
        "KUBEIAM_STATE_DIR": str(workdir / "state"),
    }


def _add_aws_auth_users(system: System, *rows: dict[str, Any]) -> None:
    """Append ``rows`` to aws-auth's mapUsers in one write (kubeiam's aws-auth store is proven
    by test_seeds.py; here it is only the other source)."""
    data = system.aws_auth_data()
    users = yaml.safe_load(data.get("mapUsers") or "[]") or []
    system.write_aws_auth({**data, "mapUsers": yaml.safe_dump([*users, *rows])})


#: A kubeiam command line and its environment.
KubeiamCall = tuple[list[str], dict[str, str]]
#: What `kubeiam whoami --cluster` reads with the caller's own credentials.
WHOAMI_READS = [
    "eks:DescribeCluster",
    "eks:ListAccessEntries",
    "eks:DescribeAccessEntry",
    "eks:ListAssociatedAccessPolicies",
    "iam:ListGroupsForUser",
]


def _may_ask_eks(system: System, user: IamUser) -> None:
    """Let ``user`` run `kubeiam whoami --cluster` (moto enforces IAM)."""
    statement = {"Effect": "Allow", "Action": WHOAMI_READS, "Resource": "*"}
    system.aws.boto3_client("iam").put_user_policy(
        UserName=user.name,
        PolicyName="e2e-ae-whoami",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )


def _whoami_args(system: System, cluster: str, user: IamUser, workdir: Path) -> KubeiamCall:
    """`kubeiam whoami --cluster` as ``user``: access entries from EKS with its own keys,
    aws-auth through the admin kubeconfig's context."""
    admin = system.plane.admin_kubeconfig
    context = yaml.safe_load(admin.read_text())["current-context"]
    env = {
        **aws_env(system.aws, user.access_key_id, user.secret_access_key, workdir),
        "KUBECONFIG": "",
    }
    args = ["whoami", "--cluster", cluster, "--kubeconfig", str(admin), "--context", context]
    return args, env


def _kubeiam_answers(calls: dict[str, KubeiamCall]) -> dict[str, dict[str, Any] | None]:
    """kubeiam's own answers (its mode and precedence logic, `-o json`'s "eks" decision) for
    each name, run side by side; None where kubeiam says nothing maps the principal (exit 1)."""

    def one(args: list[str], env: dict[str, str]) -> dict[str, Any] | None:
        done = run_kubeiam(*args, "-o", "json", env=env)
        assert done.returncode in (0, 1), done.stderr
        decision: dict[str, Any] = json.loads(done.stdout)["eks"]
        return decision if done.returncode == 0 else None

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = {name: pool.submit(one, *call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def _same_identity(decision: dict[str, Any] | None, info: dict[str, Any], source: str) -> None:
    """kubeiam's decision names the identity kube-apiserver reported (which adds
    system:authenticated to every authenticated user) and the source it came from."""
    assert decision is not None
    assert decision["source"] == source
    assert decision["username"] == info["username"]
    assert set(decision["groups"]) | {"system:authenticated"} == groups_of(info)


def test_access_entries_decide_identity_and_permissions_as_eks_does(
    system: System,
    eks_standin: EksStandIns,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    started = time.monotonic()
    aws = system.aws
    iam, eks = aws.boto3_client("iam"), aws.boto3_client("eks")
    standin = eks_standin.start("CONFIG_MAP")
    cluster = standin.cluster
    system.plane.kubectl("create", "namespace", TEAM_NAMESPACE)

    # CONFIG_MAP, where every cluster starts: aws-auth alone decides.
    both = system.create_user("e2e-ae-both")  # in both sources, once it has an entry
    legacy = system.create_user("e2e-ae-legacy")  # only ever in aws-auth
    _may_ask_eks(system, both)
    _may_ask_eks(system, legacy)
    _add_aws_auth_users(
        system,
        {"userarn": both.arn, "username": "ae-configmap", "groups": ["system:masters"]},
        {"userarn": legacy.arn, "username": "ae-legacy", "groups": ["e2e-ae-legacy"]},
    )
    # Fresh tokens per request: kube-apiserver's success cache must not answer for the server.
    kubeconfigs = {user.name: system.token_kubeconfig(user, cache=False) for user in (both, legacy)}
    assert standin.backends == ("EKSConfigMap",)
    info = system.wait_authenticated(kubeconfigs[both.name])
    assert info["username"] == "ae-configmap"
    assert "system:masters" in groups_of(info)

    # The first step of a migration: API_AND_CONFIG_MAP, then the entries.
    eks.update_cluster_config(
        name=cluster, accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"}
    )
    # A user with AmazonEKSViewPolicy on the whole cluster, added with kubeiam's own store.
    viewer = system.create_user("e2e-ae-viewer")
    added = run_kubeiam(
        "mapping",
        "add-user",
        viewer.arn,
        "--username",
        "ae-viewer",
        "--access-policy",
        "AmazonEKSViewPolicy",
        "--store",
        "access-entries",
        "--cluster",
        cluster,
        env=_store_env(system, tmp_path),
    )
    assert added.returncode == 0, added.stderr
    # The same policy scoped to one namespace (boto3, as any EKS client would).
    scoped = system.create_user("e2e-ae-scoped")
    eks.create_access_entry(clusterName=cluster, principalArn=scoped.arn, username="ae-scoped")
    eks.associate_access_policy(
        clusterName=cluster,
        principalArn=scoped.arn,
        policyArn=VIEW,
        accessScope={"type": "namespace", "namespaces": [TEAM_NAMESPACE]},
    )
    # The principal in both sources: aws-auth makes it a cluster admin, its entry does not.
    eks.create_access_entry(
        clusterName=cluster,
        principalArn=both.arn,
        username="ae-entry",
        kubernetesGroups=["e2e-ae-entry-group"],
    )
    # A role with an entry, assumed by a member who may assume it.
    member = system.create_user("e2e-ae-member")
    role_name = "e2e-ae-role"
    account_root = f"arn:aws:iam::{aws.account_id}:root"
    role_arn = aws.create_role(role_name, trusted=account_root, grant_to_user=member.name)
    eks.create_access_entry(
        clusterName=cluster,
        principalArn=role_arn,
        username="ae-role:{{SessionName}}",
        kubernetesGroups=["e2e-ae-role-group"],
    )
    rendered = standin.sync()
    assert rendered.backends == ("DynamicFile", "EKSConfigMap")
    assert {u["userarn"] for u in rendered.dynamic_file["mapUsers"]} >= {
        viewer.arn,
        scoped.arn,
        both.arn,
    }

    for user in (viewer, scoped):
        kubeconfigs[user.name] = system.token_kubeconfig(user, cache=False)
    as_role = system.token_kubeconfig(
        member, role=role_arn, session_name="alice", cache=False, label="e2e-ae-role-alice"
    )

    seen: dict[str, dict[str, Any]] = {}
    info = seen["viewer"] = system.wait_authenticated(kubeconfigs[viewer.name])
    assert info["username"] == "ae-viewer"
    assert groups_of(info) == {"system:authenticated"}
    assert info["extra"]["canonicalArn"] == [viewer.arn]
    assert _can_i(system, kubeconfigs[viewer.name], "list", "pods", "--all-namespaces") == "yes"
    assert _can_i(system, kubeconfigs[viewer.name], "create", "deployments") == "no"
    assert _can_i(system, kubeconfigs[viewer.name], "get", "secrets", "-n", "default") == "no"

    seen["scoped"] = system.wait_authenticated(kubeconfigs[scoped.name])
    assert seen["scoped"]["username"] == "ae-scoped"
    team = _can_i(system, kubeconfigs[scoped.name], "list", "pods", "-n", TEAM_NAMESPACE)
    assert team == "yes"
    assert _can_i(system, kubeconfigs[scoped.name], "list", "pods", "-n", "default") == "no"
    assert _can_i(system, kubeconfigs[scoped.name], "list", "pods", "--all-namespaces") == "no"

    info = seen["both"] = system.wait_authenticated(kubeconfigs[both.name])
    assert info["username"] == "ae-entry"
    assert groups_of(info) == {"e2e-ae-entry-group", "system:authenticated"}
    assert _can_i(system, kubeconfigs[both.name], "delete", "nodes") == "no"

    seen["legacy"] = system.wait_authenticated(kubeconfigs[legacy.name])
    assert seen["legacy"]["username"] == "ae-legacy"
    info = seen["role"] = system.wait_authenticated(as_role)
    assert info["username"] == "ae-role:alice"
    assert "e2e-ae-role-group" in groups_of(info)

    # kubeiam's own reading of the cluster (section 3, its code, not the stand-in's) names the
    # identities kube-apiserver saw: the callers' `whoami --cluster` reads both sources.
    store_env = _store_env(system, tmp_path)
    role_session = f"arn:aws:sts::{aws.account_id}:assumed-role/{role_name}/alice"
    explain_role = ["mapping", "explain", role_session, "--store", "access-entries"]
    answers = _kubeiam_answers(
        {
            "both": _whoami_args(system, cluster, both, tmp_path),
            "legacy": _whoami_args(system, cluster, legacy, tmp_path),
            "role": ([*explain_role, "--cluster", cluster, "--session-name", "alice"], store_env),
        }
    )
    _same_identity(answers["both"], seen["both"], "access-entry")
    _same_identity(answers["legacy"], seen["legacy"], "aws-auth")
    _same_identity(answers["role"], seen["role"], "access-entry")

    # The role is deleted and recreated under the same ARN: the entry keeps the old role's id.
    iam.delete_role(RoleName=role_name)
    assert aws.create_role(role_name, trusted=account_root, grant_to_user=member.name) == role_arn
    standin.sync()
    wait_for(
        lambda: True if system.whoami(as_role) is None else None,
        timeout=20,
        what="the recreated role refused",
    )
    stale = [r for r in standin.read()[1] if r.principal_arn == role_arn]
    assert len(stale) == 1
    assert not stale[0].principal_current
    # Made again (what AWS advises), the entry holds the new role's id and the session works.
    eks.delete_access_entry(clusterName=cluster, principalArn=role_arn)
    eks.create_access_entry(
        clusterName=cluster,
        principalArn=role_arn,
        username="ae-role:{{SessionName}}",
        kubernetesGroups=["e2e-ae-role-group"],
    )
    standin.sync()
    assert system.wait_authenticated(as_role)["username"] == "ae-role:alice"

    # API only: aws-auth is no longer read; entries keep working.
    eks.update_cluster_config(name=cluster, accessConfig={"authenticationMode": "API"})
    assert standin.sync().backends == ("DynamicFile",)
    assert system.whoami(kubeconfigs[legacy.name]) is None
    assert system.wait_authenticated(kubeconfigs[viewer.name])["username"] == "ae-viewer"
    info = system.wait_authenticated(kubeconfigs[both.name])
    assert info["username"] == "ae-entry"
    answers = _kubeiam_answers({"legacy": _whoami_args(system, cluster, legacy, tmp_path)})
    assert answers["legacy"] is None  # kubeiam too: aws-auth is not read in API mode

    # A figure, not a gate (speed goals live in bench/): printed at the end of `make e2e`.
    record_property("measured: access entries e2e", f"{time.monotonic() - started:.1f} s")
