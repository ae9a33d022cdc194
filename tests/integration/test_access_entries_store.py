"""`kubeiam mapping ... --store access-entries`: the fourth store, as real processes against the
local EKS (moto's EKS with the access-entry API of kubeiam.localaws).

One table per class of bad input (each must exit non-zero with a one-line error and a fix, and
leave the cluster's entries as they were), then the behaviours: idempotent adds, --replace,
--dry-run diffs, list in three formats, the node-entry and last-admin guards, backup/restore,
lint and explain.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kubeiam.localaws.environment import LocalAWS
from support.cli import run_kubeiam
from support.eks_cluster import ADMIN, EDIT, VIEW, Cluster, make_cluster, new_cluster, unique


@pytest.fixture
def cluster(local_aws: LocalAWS, admin_cli_env: dict[str, str], tmp_path: Path) -> Cluster:
    return make_cluster(local_aws, admin_cli_env, tmp_path)


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error text of a refused command: no traceback, a `kubeiam: error:` line."""
    assert "Traceback" not in done.stderr, done.stderr
    assert "kubeiam: error:" in done.stderr or "Error:" in done.stderr, done.stderr
    return done.stderr


# -- bad input, one table per class -----------------------------------------------------------

BAD_ADDS: list[tuple[str, Callable[[Cluster], list[str]], int, list[str]]] = [
    (
        "unknown-policy-name-suggests-the-closest",
        lambda c: ["add-role", c.role(), "--access-policy", "AmazonEKSViewPolicey"],
        2,
        ["unknown access policy", "closest: AmazonEKSViewPolicy", "fix:"],
    ),
    (
        "policy-arn-of-another-service",
        lambda c: ["add-role", c.role(), "--access-policy", "arn:aws:iam::aws:policy/ReadOnly"],
        2,
        ["is not an EKS access-policy ARN", "fix:"],
    ),
    (
        "policy-arn-of-another-partition",
        lambda c: [
            "add-role",
            c.role(),
            "--access-policy",
            "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
        ],
        2,
        ["partition aws-cn", "fix:"],
    ),
    (
        "namespaces-on-a-cluster-only-policy",
        lambda c: ["add-role", c.role(), "--access-policy", "AmazonEKSHybridPolicy:dev"],
        2,
        ["cluster-wide policy", "fix: pass --access-policy AmazonEKSHybridPolicy"],
    ),
    (
        "bad-namespace-name",
        lambda c: ["add-role", c.role(), "--access-policy", "AmazonEKSViewPolicy:Team_A"],
        2,
        ["is not a namespace name"],
    ),
    (
        "same-policy-twice-with-different-scopes",
        lambda c: [
            "add-role",
            c.role(),
            "--access-policy",
            "AmazonEKSViewPolicy",
            "--access-policy",
            "AmazonEKSViewPolicy:dev",
        ],
        2,
        ["given twice with different scopes", "fix:"],
    ),
    (
        "system-username",
        lambda c: ["add-user", c.user(), "--username", "system:admin"],
        2,
        ["starts with 'system:'", "fix:"],
    ),
    (
        "eks-username",
        lambda c: ["add-user", c.user(), "--username", "eks:me"],
        2,
        ["starts with 'eks:'", "fix:"],
    ),
    (
        "session-name-without-colon",
        lambda c: ["add-role", c.role(), "--username", "dev{{SessionName}}"],
        2,
        ["colon before {{SessionName}}", "fix:"],
    ),
    (
        "system-masters-group",
        lambda c: ["add-user", c.user(), "--group", "system:masters"],
        2,
        ["refuses system: groups", "fix: associate --access-policy AmazonEKSClusterAdminPolicy"],
    ),
    (
        "other-system-group",
        lambda c: ["add-user", c.user(), "--group", "devs,system:authenticated"],
        2,
        ["refuses system: groups", "fix: use a group of your own"],
    ),
    (
        "user-that-does-not-exist",
        lambda c: ["add-user", "arn:aws:iam::123456789012:user/nobody-" + unique("x")],
        1,
        ["does not exist", "fix:"],
    ),
    (
        "role-named-without-its-path",
        lambda c: ["add-role", c.role(path="/team/").replace("/team/", "/")],
        1,
        ["does not exist; the role named", ":role/team/", "fix: access entries name a role"],
    ),
    (
        "role-arn-given-to-add-user",
        lambda c: ["add-user", c.role()],
        2,
        ["is not an IAM user ARN", "fix: use `add-role`"],
    ),
    (
        "not-an-arn",
        lambda c: ["add-role", "alice"],
        2,
        ["is not an ARN"],
    ),
    (
        "permission-set-has-no-entry-form",
        lambda c: ["add-sso", "Admin", "--account", "123456789012", "--username", "a"],
        2,
        ["cannot map an IAM Identity Center permission set", "fix:"],
    ),
    (
        "iam-group-has-no-entry-form",
        lambda c: ["add-group", "arn:aws:iam::123456789012:group/devs", "--username", "a"],
        2,
        ["cannot map an IAM group", "fix:"],
    ),
    (
        "account-has-no-entry-form",
        lambda c: ["add-account", "123456789012"],
        2,
        ["cannot map a whole account", "fix:"],
    ),
]


@pytest.mark.parametrize(
    ("args_of", "code", "says"), [c[1:] for c in BAD_ADDS], ids=[c[0] for c in BAD_ADDS]
)
def test_bad_adds_are_refused_and_change_nothing(
    cluster: Cluster, args_of: Callable[[Cluster], list[str]], code: int, says: list[str]
) -> None:
    args = args_of(cluster)
    before = cluster.entries()
    for extra in ((), ("--dry-run",)):
        done = cluster.kubeiam(*args, *extra)
        assert done.returncode == code, done.stderr
        text = one_error(done)
        for part in says:
            assert part in text, text
        assert done.stdout == ""
    assert cluster.entries() == before


BAD_STORE_FLAGS: list[tuple[str, list[str], int, str]] = [
    ("no-cluster", ["mapping", "list", "--store", "access-entries"], 2, "needs --cluster NAME"),
    (
        "kubeconfig-with-access-entries",
        ["mapping", "list", "--store", "access-entries", "--cluster", "c", "--context", "x"],
        2,
        "not for --store access-entries",
    ),
    (
        "cluster-with-aws-auth",
        ["mapping", "list", "--store", "aws-auth", "--cluster", "c"],
        2,
        "are for --store access-entries",
    ),
    (
        "access-policy-with-file-store",
        ["mapping", "add-user", "arn:aws:iam::123456789012:user/a", "--username", "a",
         "--access-policy", "AmazonEKSViewPolicy", "--file", "x.yaml"],
        2,
        "--access-policy is for --store access-entries",
    ),
    (
        "username-still-required-elsewhere",
        ["mapping", "add-user", "arn:aws:iam::123456789012:user/a", "--file", "x.yaml"],
        2,
        "Missing option '--username'",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "says"), [c[1:] for c in BAD_STORE_FLAGS], ids=[c[0] for c in BAD_STORE_FLAGS]
)
def test_store_flags_are_checked(
    admin_cli_env: dict[str, str], tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    done = run_kubeiam(*args, env={**admin_cli_env, "PWD": str(tmp_path)})
    assert done.returncode == code, done.stderr
    assert says in one_error(done)
    assert not (Path.cwd() / "x.yaml").exists()


def test_cluster_not_found_names_the_closest(cluster: Cluster) -> None:
    done = run_kubeiam(
        "mapping", "list", "--store", "access-entries", "--cluster", cluster.name + "x",
        env=cluster.env,
    )  # fmt: skip
    assert done.returncode == 1
    text = one_error(done)
    assert f"EKS cluster {cluster.name}x not found (closest: {cluster.name}" in text
    assert "fix: check --cluster and --region" in text


def test_cluster_in_config_map_mode_has_no_entries(cluster: Cluster) -> None:
    name = new_cluster(cluster.eks, "CONFIG_MAP")
    for args in (["list"], ["add-user", cluster.user(), "--access-policy", "AmazonEKSViewPolicy"]):
        done = run_kubeiam(
            "mapping", *args, "--store", "access-entries", "--cluster", name, env=cluster.env
        )
        assert done.returncode == 2
        text = one_error(done)
        assert "authentication mode CONFIG_MAP" in text
        assert "authenticationMode=API_AND_CONFIG_MAP" in text


def test_an_entry_created_meanwhile_is_a_difference_not_a_duplicate(cluster: Cluster) -> None:
    arn = cluster.user()
    cluster.eks.create_access_entry(clusterName=cluster.name, principalArn=arn, username="other")
    done = cluster.kubeiam("add-user", arn, "--username", "alice")
    assert done.returncode == 2
    assert "already has an access entry (username other" in one_error(done)
    assert "fix: pass --replace" in done.stderr
    assert cluster.entries()[arn]["username"] == "other"


# -- behaviours -------------------------------------------------------------------------------


def test_add_is_idempotent_and_replace_changes_what_differs(cluster: Cluster) -> None:
    arn = cluster.role()
    args = ["add-role", arn, "--group", "devs", "--access-policy", "AmazonEKSEditPolicy:dev,test"]
    first = cluster.ok(*args, "--access-policy", "AmazonEKSViewPolicy")
    assert f"added role {arn}" in first.stderr
    entry = cluster.entries()[arn]
    name = arn.rsplit("/", 1)[1]
    assert entry["username"] == f"arn:aws:sts::123456789012:assumed-role/{name}/{{{{SessionName}}}}"
    assert entry["groups"] == ["devs"]
    assert entry["policies"] == {
        EDIT: {"type": "namespace", "namespaces": ["dev", "test"]},
        VIEW: {"type": "cluster", "namespaces": []},
    }
    again = cluster.ok(*args, "--access-policy", VIEW)  # the ARN form names the same policy
    assert "unchanged" in again.stderr

    refused = cluster.kubeiam(*args)
    assert refused.returncode == 2
    assert "fix: pass --replace" in refused.stderr
    assert cluster.entries()[arn] == entry

    cluster.ok(
        "add-role", arn, "--username", "dev:{{SessionName}}", "--group", "ops",
        "--access-policy", "AmazonEKSEditPolicy", "--replace",
    )  # fmt: skip
    assert cluster.entries()[arn] == {
        "type": "STANDARD",
        "username": "dev:{{SessionName}}",
        "groups": ["ops"],
        "policies": {EDIT: {"type": "cluster", "namespaces": []}},
    }


def test_dry_run_prints_a_diff_and_writes_nothing(cluster: Cluster) -> None:
    arn = cluster.user()
    done = cluster.ok("add-user", arn, "--access-policy", "AmazonEKSViewPolicy:dev", "--dry-run")
    assert cluster.entries().get(arn) is None
    assert "dry run: would have added" in done.stderr
    assert f"+{arn}:" in done.stdout
    assert "+  - AmazonEKSViewPolicy (namespaces dev)" in done.stdout
    cluster.ok("add-user", arn, "--access-policy", "AmazonEKSViewPolicy:dev")
    done = cluster.ok("remove", arn, "--dry-run")
    assert f"-{arn}:" in done.stdout
    assert arn in cluster.entries()


def test_list_in_three_formats(cluster: Cluster) -> None:
    arn = cluster.user()
    cluster.ok("add-user", arn, "--username", "alice", "--group", "devs",
               "--access-policy", "AmazonEKSEditPolicy:dev")  # fmt: skip
    table = cluster.ok("list").stdout
    header = table.splitlines()[0].split()
    assert header[:3] == ["KIND", "PRINCIPAL", "ARN"]
    line = next(line for line in table.splitlines() if arn in line)
    assert line.split() == ["user", arn, "STANDARD", "alice", "devs", "AmazonEKSEditPolicy:dev"]
    rows = json.loads(cluster.ok("list", "-o", "json").stdout)
    row = next(r for r in rows if r["key"] == arn)
    assert row["type"] == "STANDARD"
    assert row["accessPolicies"] == [
        {"policyArn": EDIT, "accessScope": {"type": "namespace", "namespaces": ["dev"]}}
    ]
    assert yaml.safe_load(cluster.ok("list", "-o", "yaml").stdout) == rows


def test_remove_of_nothing_names_the_closest(cluster: Cluster) -> None:
    arn = cluster.user()
    cluster.ok("add-user", arn)
    done = cluster.kubeiam("remove", arn + "x")
    assert done.returncode == 1
    assert f"(closest: {arn})" in one_error(done)
    assert cluster.ok("remove", arn + "x", "--ignore-not-found").returncode == 0
    cluster.ok("remove", arn)
    assert arn not in cluster.entries()


def test_node_entries_and_the_last_cluster_admin_are_guarded(cluster: Cluster) -> None:
    creator = cluster.aws.admin.arn  # EKS made the creator a cluster admin (bootstrap)
    assert cluster.entries()[creator]["policies"] == {ADMIN: {"type": "cluster", "namespaces": []}}
    node = cluster.role()
    cluster.eks.create_access_entry(clusterName=cluster.name, principalArn=node, type="EC2_LINUX")

    done = cluster.kubeiam("remove", node)
    assert done.returncode == 5
    assert "node entry" in one_error(done)
    assert "fix: pass --force" in done.stderr
    assert node in cluster.entries()

    done = cluster.kubeiam("remove", creator)
    assert done.returncode == 5
    assert "last" in one_error(done)
    assert creator in cluster.entries()
    done = cluster.kubeiam(
        "add-user", creator, "--access-policy", "AmazonEKSViewPolicy", "--replace"
    )
    assert done.returncode == 5, done.stderr
    assert cluster.entries()[creator]["policies"] == {ADMIN: {"type": "cluster", "namespaces": []}}

    other = cluster.role()
    cluster.ok("add-role", other, "--access-policy", "AmazonEKSClusterAdminPolicy")
    cluster.ok("remove", creator)  # another admin is left: no guard
    done = cluster.ok("remove", node, "--force")
    assert "--force: this removes the node entry" in done.stderr
    assert set(cluster.entries()) == {other}


def test_backup_and_restore_round_trip(cluster: Cluster, tmp_path: Path) -> None:
    user, role = cluster.user(), cluster.role()
    cluster.ok("add-user", user, "--username", "alice", "--access-policy", "AmazonEKSViewPolicy")
    cluster.ok("add-role", role, "--group", "devs", "--access-policy", "AmazonEKSEditPolicy:dev")
    before = cluster.entries()
    saved = cluster.ok("backup", "--output-file", str(tmp_path / "saved.json"))
    assert "backup revision" in saved.stderr

    cluster.ok("remove", user)
    cluster.ok("add-role", role, "--group", "ops", "--replace")
    assert cluster.entries() != before

    history = Path(cluster.env["KUBEIAM_STATE_DIR"]) / "access-entries"
    file = history / f"123456789012-{cluster.aws.region}-{cluster.name}.kubeiam-backup.json"
    assert [r["store"] for r in json.loads(file.read_text())] == ["access-entries"] * 4
    assert oct(file.stat().st_mode & 0o777) == "0o600"

    listed = cluster.ok("restore", "--list").stdout
    assert "REVISION" in listed
    cluster.ok("restore", str(tmp_path / "saved.json"))
    assert cluster.entries() == before
    again = cluster.ok("restore", str(tmp_path / "saved.json"))
    assert "unchanged" in again.stderr


def test_restore_refuses_a_backup_of_another_store(cluster: Cluster, tmp_path: Path) -> None:
    other = tmp_path / "aws-auth.json"
    other.write_text(
        json.dumps({"revision": 1, "time": "t", "store": "aws-auth", "state": {"mapRoles": ""}})
    )
    done = cluster.kubeiam("restore", str(other))
    assert done.returncode == 2
    assert "fix: pass --store aws-auth" in one_error(done)


def test_lint_and_explain(cluster: Cluster) -> None:
    arn = cluster.role(path="/team/")
    cluster.ok("add-role", arn, "--username", "dev:{{SessionName}}", "--group", "devs",
               "--access-policy", "AmazonEKSViewPolicy")  # fmt: skip
    bare = cluster.user()
    cluster.eks.create_access_entry(clusterName=cluster.name, principalArn=bare)
    lint = cluster.ok("lint")  # warnings only: exit 0
    assert "role-path" not in lint.stdout  # access entries name roles with their path
    assert "system-masters" not in lint.stdout
    assert "[cluster-admin-policy]" in lint.stdout  # the creator's bootstrap entry
    assert "[grants-nothing] access entry" in lint.stdout
    assert bare in next(line for line in lint.stdout.splitlines() if "grants-nothing" in line)
    codes = {f["code"] for f in json.loads(cluster.ok("lint", "-o", "json").stdout)}
    assert codes == {"cluster-admin-policy", "grants-nothing"}
    name = arn.rsplit("/", 1)[1]
    session = f"arn:aws:sts::123456789012:assumed-role/{name}/alice"
    done = cluster.ok("explain", session, "-o", "json")
    found = json.loads(done.stdout)
    assert found["matched"] is True
    assert found["username"] == "dev:alice"
    assert found["groups"] == ["devs"]
    missing = cluster.kubeiam("explain", "arn:aws:iam::123456789012:user/nobody")
    assert missing.returncode == 1


def test_writers_racing_lose_nothing(cluster: Cluster) -> None:
    """Four adds at once (each reads, then writes only its own entry) all land, and the same
    add racing itself ends with one entry, not an error."""
    from support.cli import KUBEIAM

    users = [cluster.user() for _ in range(3)]
    same = cluster.user()
    argvs = [["add-user", arn, "--access-policy", "AmazonEKSViewPolicy"] for arn in users]
    argvs += [["add-user", same, "--username", "s"]] * 2
    procs = [
        subprocess.Popen(
            [KUBEIAM, "mapping", *argv, "--store", "access-entries", "--cluster", cluster.name],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0] * len(argvs), results
    entries = cluster.entries()
    assert set(users) | {same} <= set(entries)
    assert entries[same]["username"] == "s"
