"""`kubeiam migrate apply|verify|finish|rollback` against the local AWS, as real processes.

aws-auth comes from a file (``--aws-auth-file``): the EKS side (mode, entries, associations) is
the local AWS's emulator; the Kubernetes side (the aws-auth backup ConfigMap, RBAC bindings) is
proven on the real kube-apiserver in tests/e2e/test_migrate_e2e.py. The faults are real: a
principal deleted between plan and apply makes EKS refuse the entry mid-apply.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from kubeiam.localaws.environment import LocalAWS
from support.cli import run_kubeiam
from support.eks_cluster import ADMIN, EDIT, VIEW, Cluster, make_cluster


def write_aws_auth(path: Path, roles: list[dict[str, object]], **more: object) -> Path:
    data = {"mapRoles": yaml.safe_dump(roles)}
    data.update({k: yaml.safe_dump(v) for k, v in more.items()})
    meta = {"name": "aws-auth", "namespace": "kube-system"}
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
    path.write_text(yaml.safe_dump(configmap))
    return path


@pytest.fixture
def cluster(local_aws: LocalAWS, admin_cli_env: dict[str, str], tmp_path: Path) -> Cluster:
    return make_cluster(local_aws, admin_cli_env, tmp_path, "CONFIG_MAP")


def migrate(
    cluster: Cluster, command: str, aws_auth: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return run_kubeiam(
        "migrate", command, "--cluster", cluster.name, "--aws-auth-file", str(aws_auth), *args,
        env=cluster.env,
    )  # fmt: skip


def ok(cluster: Cluster, command: str, aws_auth: Path, *args: str) -> str:
    done = migrate(cluster, command, aws_auth, *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def mode(cluster: Cluster) -> str:
    cfg = cluster.eks.describe_cluster(name=cluster.name)["cluster"]["accessConfig"]
    return str(cfg["authenticationMode"])


def record(cluster: Cluster) -> dict[str, object]:
    (path,) = (Path(cluster.env["KUBEIAM_STATE_DIR"]) / "migrations").glob("*.json")
    return dict(json.loads(path.read_text()))


@pytest.fixture
def seeded(cluster: Cluster, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Both seed workflows and the awkward rows."""
    arns = {
        "admin": cluster.role(),
        "team": cluster.role(path="/teams/"),
        "user": cluster.user(),
        "nodes": cluster.role(),
        "gone": cluster.role(),
    }
    cluster.iam.delete_role(RoleName=arns["gone"].rsplit("/", 1)[1])
    short = arns["team"].replace("/teams/", "/")
    roles = [
        {"rolearn": arns["admin"], "username": "admin", "groups": ["system:masters"]},
        {"rolearn": short, "username": "devs:{{SessionName}}", "groups": ["first"]},
        {"rolearn": short, "username": "devs:{{SessionName}}", "groups": ["devs"]},
        {"rolearn": arns["nodes"], "username": "system:node:{{EC2PrivateDNSName}}",
         "groups": ["system:bootstrappers", "system:nodes"]},
        {"rolearn": arns["gone"], "username": "gone", "groups": ["x"]},
    ]  # fmt: skip
    path = write_aws_auth(
        tmp_path / "aws-auth.yaml",
        roles,
        mapUsers=[{"userarn": arns["user"], "username": "alice", "groups": ["devs"]}],
        mapAccounts=["123456789012"],
    )
    return path, arns


def test_apply_verify_rollback_apply_finish(
    cluster: Cluster, seeded: tuple[Path, dict[str, str]]
) -> None:
    path, arns = seeded
    out = ok(cluster, "apply", path)
    assert "CONFIG_MAP -> API_AND_CONFIG_MAP" in out
    assert mode(cluster) == "API_AND_CONFIG_MAP"
    entries = cluster.entries()
    assert entries[arns["admin"]]["policies"] == {ADMIN: {"type": "cluster", "namespaces": []}}
    assert entries[arns["admin"]]["username"] == "admin"
    assert entries[arns["team"]]["groups"] == ["devs"]  # the LAST duplicate, with its path
    assert entries[arns["team"]]["username"] == "devs:{{SessionName}}"
    assert entries[arns["user"]] | {"policies": {}} == {
        "type": "STANDARD", "username": "alice", "groups": ["devs"], "policies": {},
    }  # fmt: skip
    assert entries[arns["nodes"]]["type"] == "EC2_LINUX"
    assert arns["gone"] not in entries
    created = {e["principalArn"] for e in record(cluster)["created"]}  # type: ignore[attr-defined]
    assert created == {arns[k] for k in ("admin", "team", "user", "nodes")}
    # The cluster creator's own entry (EKS's bootstrap admin) is not apply's: it stays.
    others = {arn: e for arn, e in entries.items() if arn not in created}
    assert all(ADMIN in e["policies"] for e in others.values())
    assert record(cluster)["awsAuthBefore"]["mapAccounts"]  # type: ignore[index]

    # Idempotent: the cluster already holds the plan.
    again = ok(cluster, "apply", path)
    assert "nothing to do" in again
    assert cluster.entries() == entries

    verified = json.loads(ok(cluster, "verify", path, "-o", "json"))
    assert verified["ok"] is True
    assert {c["status"] for c in verified["checks"]} == {"ok"}
    assert len(verified["checks"]) == 4
    still = {d["source"] for d in verified["stillDependsOnAwsAuth"]}
    assert still == {"mapRoles[4]", "mapAccounts[0]"}
    assert set(verified["clusterAdminEntries"]) == {arns["admin"], *others}

    # Rollback deletes exactly what apply created; the mode stays (one way).
    undone = ok(cluster, "rollback", path)
    assert "authentication mode stays API_AND_CONFIG_MAP" in undone
    assert "aws-auth was left as it is" in undone
    assert cluster.entries() == others
    assert mode(cluster) == "API_AND_CONFIG_MAP"
    assert record(cluster)["created"] == []

    # Apply again (now from mode API_AND_CONFIG_MAP), then finish.
    assert "CONFIG_MAP -> " not in ok(cluster, "apply", path)
    refused = migrate(cluster, "finish", path)  # not a terminal and no --yes
    assert refused.returncode == 5, refused.stderr
    assert "never moves back" in refused.stderr
    assert mode(cluster) == "API_AND_CONFIG_MAP"
    finished = ok(cluster, "finish", path, "--yes")
    assert "this cannot be undone" in finished
    assert "kubectl -n kube-system delete configmap aws-auth" in finished
    assert mode(cluster) == "API"
    late = migrate(cluster, "rollback", path)
    assert late.returncode == 5
    assert "was finished" in late.stderr
    assert set(cluster.entries()) == set(entries)  # rollback refused: nothing deleted


def test_an_entry_apply_changed_is_restored_by_rollback(
    local_aws: LocalAWS, admin_cli_env: dict[str, str], tmp_path: Path
) -> None:
    cluster = make_cluster(local_aws, admin_cli_env, tmp_path, "API_AND_CONFIG_MAP")
    admin, user = cluster.role(), cluster.user()
    # Someone already gave the user an entry: another group and a view policy.
    cluster.eks.create_access_entry(
        clusterName=cluster.name, principalArn=user, username="alice", kubernetesGroups=["old"]
    )
    cluster.eks.associate_access_policy(
        clusterName=cluster.name, principalArn=user, policyArn=VIEW,
        accessScope={"type": "namespace", "namespaces": ["dev"]},
    )  # fmt: skip
    before = cluster.entries()
    path = write_aws_auth(
        tmp_path / "aws-auth.yaml",
        [{"rolearn": admin, "username": "admin", "groups": ["system:masters"]}],
        mapUsers=[{"userarn": user, "username": "alice", "groups": ["devs"]}],
    )
    ok(cluster, "apply", path)
    changed = cluster.entries()[user]
    assert (changed["groups"], changed["policies"]) == (["devs"], {})
    (kept,) = record(cluster)["changed"]  # type: ignore[misc]
    assert kept["before"]["kubernetesGroups"] == ["old"]
    ok(cluster, "rollback", path)
    assert cluster.entries() == before  # the user's entry is back as it was; admin's is gone


def test_a_failure_mid_apply_undoes_this_runs_changes(
    cluster: Cluster, seeded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, arns = seeded
    plan = tmp_path / "plan.json"
    plan.write_text(ok(cluster, "plan", path, "-o", "json"))
    # Between plan and apply the onboarded user is deleted: EKS refuses its entry, which apply
    # creates after the roles' entries (mapRoles come first).
    cluster.iam.delete_user(UserName=arns["user"].rsplit("/", 1)[1])
    failed = migrate(cluster, "apply", path, "--plan-file", str(plan))
    assert failed.returncode == 1, failed.stderr
    assert "kubeiam: error:" in failed.stderr
    assert "every change this run made was undone" in failed.stderr
    assert "the mode stays API_AND_CONFIG_MAP" in failed.stderr
    assert "Traceback" not in failed.stderr
    # The three role entries it had created are gone; the creator's bootstrap entry stays.
    left = cluster.entries()
    assert not set(left) & set(arns.values())
    assert all(ADMIN in e["policies"] for e in left.values())
    assert mode(cluster) == "API_AND_CONFIG_MAP"  # one way
    assert record(cluster)["created"] == []
    # The same apply with a fresh plan (the user now cannot-migrate) goes through.
    ok(cluster, "apply", path)
    assert len(cluster.entries()) == len(left) + 3


def test_a_refused_association_mid_apply_undoes_the_entry_it_belonged_to(
    cluster: Cluster, seeded: tuple[Path, dict[str, str]], local_aws: LocalAWS
) -> None:
    """A real refusal, by IAM: the admin running apply may do everything but
    eks:AssociateAccessPolicy. The admin row's entry is created, its policy refused; the entry
    (recorded before its policies) is deleted again and nothing else was made."""
    path, arns = seeded
    name = "migrator-" + cluster.name
    key_id, secret = local_aws.create_user(name)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["eks:*", "iam:List*", "iam:Get*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "eks:AssociateAccessPolicy", "Resource": "*"},
    ]}  # fmt: skip
    cluster.iam.put_user_policy(
        UserName=name, PolicyName="migrate", PolicyDocument=json.dumps(policy)
    )
    env = {**cluster.env, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
    failed = run_kubeiam(
        "migrate", "apply", "--cluster", cluster.name, "--aws-auth-file", str(path), env=env
    )
    assert failed.returncode == 1, failed.stderr
    assert "eks:AssociateAccessPolicy" in failed.stderr, failed.stderr
    assert "every change this run made was undone" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert arns["admin"] not in cluster.entries()  # created, then deleted again
    assert not set(cluster.entries()) & set(arns.values())
    assert record(cluster)["created"] == []


def test_finish_is_refused_while_verify_fails(
    cluster: Cluster, seeded: tuple[Path, dict[str, str]]
) -> None:
    path, arns = seeded
    ok(cluster, "apply", path)
    # Someone changes a migrated entry afterwards: verify names it, finish refuses.
    cluster.eks.update_access_entry(
        clusterName=cluster.name, principalArn=arns["user"], kubernetesGroups=["other"]
    )
    cluster.eks.associate_access_policy(
        clusterName=cluster.name, principalArn=arns["user"], policyArn=EDIT,
        accessScope={"type": "cluster"},
    )  # fmt: skip
    verified = migrate(cluster, "verify", path)
    assert verified.returncode == 1
    assert "differs  mapUsers[0]" in verified.stdout
    assert "verify: FAILED" in verified.stdout
    refused = migrate(cluster, "finish", path, "--yes")
    assert refused.returncode == 5, refused.stderr
    assert "verify fails for 1 principal(s)" in refused.stderr
    assert mode(cluster) == "API_AND_CONFIG_MAP"
    # apply again puts the plan back; verify passes.
    ok(cluster, "apply", path)
    assert "verify: passed" in ok(cluster, "verify", path)


def test_needs_rbac_rows_wait_for_their_bindings(cluster: Cluster, tmp_path: Path) -> None:
    """Without the cluster (aws-auth from a file) the bindings of a replacement group cannot be
    copied; an entry without them would win over the aws-auth row and take the access away, so
    apply holds the row back, verify names it and finish is refused."""
    admin, monitoring = cluster.role(), cluster.role()
    path = write_aws_auth(
        tmp_path / "aws-auth.yaml",
        [
            {"rolearn": admin, "username": "admin", "groups": ["system:masters"]},
            {"rolearn": monitoring, "username": "mon", "groups": ["system:monitoring"]},
        ],
    )
    out = ok(cluster, "apply", path)
    assert f"held back: mapRoles[1] {monitoring}: needs its RBAC bindings copied first" in out
    assert monitoring not in cluster.entries()
    verified = migrate(cluster, "verify", path, "-o", "json")
    assert verified.returncode == 1
    status = {c["source"]: c["status"] for c in json.loads(verified.stdout)["checks"]}
    assert status == {"mapRoles[0]": "ok", "mapRoles[1]": "missing"}
    refused = migrate(cluster, "finish", path, "--yes")
    assert refused.returncode == 5
    assert f"verify fails for 1 principal(s) ({monitoring}: missing)" in refused.stderr
    assert mode(cluster) == "API_AND_CONFIG_MAP"


BAD = [
    ("plan-of-another-cluster", "apply", lambda c, p, t: ["--plan-file", str(t / "other.json")], 2,
     "is the plan of cluster other"),
    ("not-a-plan", "apply", lambda c, p, t: ["--plan-file", str(t / "junk.json")], 2,
     "is not a plan written by"),
    ("rollback-without-record", "rollback", lambda c, p, t: [], 2, "nothing to roll back"),
    ("finish-without-record", "finish", lambda c, p, t: ["--yes"], 2, "has not run here"),
    ("not-a-record", "rollback", lambda c, p, t: ["--record", str(t / "junk.json")], 2,
     "is not a kubeiam migration record"),
    ("file-and-context", "apply", lambda c, p, t: ["--context", "x"], 2, "pass one or the other"),
    ("record-of-another-cluster", "rollback", lambda c, p, t: ["--record", str(t / "rec.json")], 2,
     "is the migration record of arn:aws:eks:us-east-1:123456789012:cluster/other"),
    ("no-cluster-admin", "apply", lambda c, p, t: [], 5, "the plan leaves no cluster admin"),
    ("verify-before-apply", "verify", lambda c, p, t: [], 2, "in authentication mode CONFIG_MAP"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "args_of", "code", "says"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input(  # type: ignore[no-untyped-def]
    cluster: Cluster, tmp_path: Path, command: str, args_of, code: int, says: str
) -> None:
    path = write_aws_auth(tmp_path / "aws-auth.yaml", [])
    (tmp_path / "other.json").write_text(json.dumps({"cluster": "other", "rows": []}))
    (tmp_path / "junk.json").write_text(json.dumps({"cluster": cluster.name}))
    other = {"kind": "kubeiam-migration-record", "version": 1, "cluster": "other",
             "clusterArn": "arn:aws:eks:us-east-1:123456789012:cluster/other",
             "modeBefore": "CONFIG_MAP", "created": []}  # fmt: skip
    (tmp_path / "rec.json").write_text(json.dumps(other))
    done = migrate(cluster, command, path, *args_of(cluster, path, tmp_path))
    assert done.returncode == code, done.stderr
    assert says in done.stderr
    assert "kubeiam: error:" in done.stderr
    assert "Traceback" not in done.stderr
    assert mode(cluster) == "CONFIG_MAP"  # nothing changed
