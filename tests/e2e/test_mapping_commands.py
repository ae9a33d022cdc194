"""`kubeiam mapping` against the real kube-apiserver: aws-auth and IAMIdentityMapping objects.

Every command runs as a real `kubeiam` process with the harness's admin kubeconfig, except the
bounded-history check, which drives the same editor in-process to make twelve edits quickly.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cluster.control_plane import ControlPlane
from cluster.kubeconfig import CLUSTER_NAME

from kubeiam.admin.editing.backups import BACKUP_HISTORY
from kubeiam.admin.editing.editor import MappingEditor
from kubeiam.admin.editing.kube_stores import AwsAuthStore
from kubeiam.admin.editing.store import Snapshot
from kubeiam.kube.client import make_async_client
from kubeiam.localaws.environment import LocalAWS
from support.cli import KUBEIAM

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
ACCOUNT = "111122223333"
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/NodeInstanceRole"

#: aws-auth as EKS and a person leave it: comments, an unknown key, a label, and a node entry.
SEEDED_MAP_ROLES = f"""\
# managed by EKS: keep the node role
- rolearn: {NODE_ROLE}
  username: system:node:{{{{EC2PrivateDNSName}}}}
  groups:
    - system:bootstrappers
    - system:nodes
  # note for humans
"""


def kubeiam(
    cluster: ControlPlane, *args: str, store: str = "aws-auth"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            KUBEIAM,
            "mapping",
            *args,
            "--store",
            store,
            "--kubeconfig",
            str(cluster.admin_kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "KUBECONFIG": ""},
    )


def get_json(cluster: ControlPlane, *args: str) -> dict[str, object]:
    out: dict[str, object] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return out


def aws_auth(cluster: ControlPlane) -> dict[str, object]:
    return get_json(cluster, "configmap", "aws-auth", "-n", "kube-system")


def no_secrets(cluster: ControlPlane, done: subprocess.CompletedProcess[str]) -> None:
    """The admin kubeconfig's client key never reaches kubeiam's output."""
    key_lines = cluster.pki.admin.key.read_text().splitlines()[1:-1]
    for text in (done.stdout, done.stderr):
        assert "PRIVATE KEY" not in text
        assert not any(line in text for line in key_lines)


@pytest.fixture
def fresh_aws_auth(cluster: ControlPlane) -> Iterator[None]:
    """No aws-auth and no backup ConfigMap before and after each test."""

    def clean() -> None:
        cluster.kubectl(
            "delete",
            "configmap",
            "aws-auth",
            "aws-auth-kubeiam-backup",
            "-n",
            "kube-system",
            "--ignore-not-found",
        )

    clean()
    yield
    clean()


def seed_aws_auth(cluster: ControlPlane) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "aws-auth",
            "namespace": "kube-system",
            "labels": {"owner": "platform-team"},
        },
        "data": {"mapRoles": SEEDED_MAP_ROLES, "somethingElse": "kept: true\n"},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))


def test_aws_auth_created_when_absent_and_adds_are_idempotent(
    cluster: ControlPlane, fresh_aws_auth: None
) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:user/kubedemy"
    args = ("add-user", arn, "--username", "kubedemy", "--group", "system:masters")
    first = kubeiam(cluster, *args)
    assert first.returncode == 0, first.stderr
    assert "added user" in first.stderr
    version = aws_auth(cluster)["metadata"]["resourceVersion"]  # type: ignore[index]
    second = kubeiam(cluster, *args)
    assert second.returncode == 0, second.stderr
    assert "unchanged" in second.stderr
    assert aws_auth(cluster)["metadata"]["resourceVersion"] == version  # type: ignore[index]
    data = aws_auth(cluster)["data"]
    assert data == {  # the seed's mapUsers
        "mapUsers": f"- userarn: {arn}\n  username: kubedemy\n  groups:\n    - system:masters\n"
    }
    different = kubeiam(cluster, "add-user", arn, "--username", "other", "--group", "dev")
    assert different.returncode == 2
    assert "--replace" in different.stderr
    # Replacing it would drop the only system:masters grant: guarded too.
    guarded = kubeiam(
        cluster, "add-user", arn, "--username", "other", "--group", "dev", "--replace"
    )
    assert guarded.returncode == 5
    assert "last system:masters" in guarded.stderr
    replaced = kubeiam(
        cluster, "add-user", arn, "--username", "other", "--group", "dev", "--replace", "--force"
    )
    assert replaced.returncode == 0, replaced.stderr
    assert "username: other" in aws_auth(cluster)["data"]["mapUsers"]  # type: ignore[index]
    listed = kubeiam(cluster, "list", "-o", "json")
    assert json.loads(listed.stdout)[0]["username"] == "other"
    for done in (first, second, different, replaced, listed):
        no_secrets(cluster, done)


def test_untouched_lines_keys_and_labels_are_kept(
    cluster: ControlPlane, fresh_aws_auth: None
) -> None:
    seed_aws_auth(cluster)
    done = kubeiam(
        cluster,
        "add-role",
        f"arn:aws:iam::{ACCOUNT}:role/team/Admins",
        "--username",
        "admin:{{SessionName}}",
        "--group",
        "admins",
    )
    assert done.returncode == 0, done.stderr
    assert "has an IAM path" in done.stderr
    after = aws_auth(cluster)
    data = after["data"]
    assert isinstance(data, dict)
    assert data["mapRoles"].startswith(SEEDED_MAP_ROLES)
    assert data["mapRoles"][len(SEEDED_MAP_ROLES) :] == (
        f"- rolearn: arn:aws:iam::{ACCOUNT}:role/team/Admins\n"
        "  username: admin:{{SessionName}}\n  groups:\n    - admins\n"
    )
    assert data["somethingElse"] == "kept: true\n"
    assert after["metadata"]["labels"] == {"owner": "platform-team"}  # type: ignore[index]
    explained = kubeiam(
        cluster,
        "explain",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Admins/alice",
        "-o",
        "json",
    )
    found = json.loads(explained.stdout)
    assert found["matched"]
    assert found["username"] == "admin:alice"
    assert found["backend"] == "EKSConfigMap"
    assert any("path stripping" in n for n in found["notes"])


def test_dry_run_prints_a_diff_and_writes_nothing(
    cluster: ControlPlane, fresh_aws_auth: None
) -> None:
    seed_aws_auth(cluster)
    before = aws_auth(cluster)
    done = kubeiam(cluster, "add-account", "444455556666", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert '+mapAccounts: |\n+  - "444455556666"\n' in done.stdout
    assert "nothing written" in done.stderr
    assert aws_auth(cluster) == before
    backups = cluster.kubectl(
        "get", "configmap", "aws-auth-kubeiam-backup", "-n", "kube-system", check=False
    )
    assert backups.returncode != 0  # not even a backup


def test_node_role_is_guarded_and_restore_rolls_back(
    cluster: ControlPlane, fresh_aws_auth: None
) -> None:
    seed_aws_auth(cluster)
    original = aws_auth(cluster)["data"]
    refused = kubeiam(cluster, "remove", NODE_ROLE)
    assert refused.returncode == 5
    assert "every node using role" in refused.stderr
    assert "--force" in refused.stderr
    changed = kubeiam(
        cluster, "add-role", NODE_ROLE, "--username", "nodes", "--group", "x", "--replace"
    )
    assert changed.returncode == 5
    assert aws_auth(cluster)["data"] == original
    forced = kubeiam(cluster, "remove", NODE_ROLE, "--force")
    assert forced.returncode == 0, forced.stderr
    left = aws_auth(cluster)["data"]
    assert isinstance(left, dict)
    assert "rolearn" not in left.get("mapRoles", "")  # comments outside the entry stay
    history = kubeiam(cluster, "restore", "--list")
    assert "remove" in history.stdout
    restored = kubeiam(cluster, "restore", "--latest")
    assert restored.returncode == 0, restored.stderr
    assert aws_auth(cluster)["data"] == original


def test_last_system_masters_needs_force(cluster: ControlPlane, fresh_aws_auth: None) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:user/admin"
    assert (
        kubeiam(cluster, "add-user", arn, "--username", "a", "--group", "system:masters").returncode
        == 0
    )
    refused = kubeiam(cluster, "remove", arn)
    assert refused.returncode == 5
    assert "last system:masters" in refused.stderr
    assert kubeiam(cluster, "remove", arn, "--force").returncode == 0


def test_backup_file_round_trip(
    cluster: ControlPlane, fresh_aws_auth: None, tmp_path: Path
) -> None:
    seed_aws_auth(cluster)
    original = aws_auth(cluster)["data"]
    saved = tmp_path / "aws-auth.backup.json"
    done = kubeiam(cluster, "backup", "--output-file", str(saved))
    assert done.returncode == 0, done.stderr
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    user = f"arn:aws:iam::{ACCOUNT}:user/temp"
    assert kubeiam(cluster, "add-user", user, "--username", "t").returncode == 0
    assert kubeiam(cluster, "add-account", "444455556666").returncode == 0
    restored = kubeiam(cluster, "restore", str(saved))
    assert restored.returncode == 0, restored.stderr
    assert aws_auth(cluster)["data"] == original
    # The restore itself was backed up first: it can be undone.
    undo = kubeiam(cluster, "restore", "--latest")
    assert undo.returncode == 0, undo.stderr
    assert "444455556666" in aws_auth(cluster)["data"]["mapAccounts"]  # type: ignore[index]


def test_backup_history_is_bounded(cluster: ControlPlane, fresh_aws_auth: None) -> None:
    async def edits() -> int:
        client = make_async_client(cluster.admin_kubeconfig)
        store = AwsAuthStore(client)
        editor = MappingEditor(store, now=lambda: datetime.now(UTC), by="test", command="t")
        for i in range(BACKUP_HISTORY + 3):
            await editor.edit(
                lambda d, i=i: d.upsert_user(
                    f"arn:aws:iam::{ACCOUNT}:user/u{i}", f"u{i}", ["g"], replace=False
                )
            )
        records = await store.backups()
        await store.close()
        assert [r.revision for r in records] == list(range(3, BACKUP_HISTORY + 3))
        return len(records)

    assert asyncio.run(edits()) == BACKUP_HISTORY


def test_two_writers_racing_lose_nothing(cluster: ControlPlane, fresh_aws_auth: None) -> None:
    seed_aws_auth(cluster)
    users = [f"arn:aws:iam::{ACCOUNT}:user/racer{i}" for i in range(6)]
    procs = [
        subprocess.Popen(
            [
                KUBEIAM,
                "mapping",
                "add-user",
                arn,
                "--username",
                arn.rsplit("/", 1)[1],
                "--group",
                "racers",
                "--kubeconfig",
                str(cluster.admin_kubeconfig),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for arn in users
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for code, err in results:
        assert code == 0, err
    data = aws_auth(cluster)["data"]
    assert isinstance(data, dict)
    for arn in users:
        assert f"userarn: {arn}\n" in data["mapUsers"]
    assert data["mapRoles"] == SEEDED_MAP_ROLES
    assert data["somethingElse"] == "kept: true\n"


def test_lint_finds_a_missing_node_role_when_nodes_exist(
    cluster: ControlPlane, fresh_aws_auth: None
) -> None:
    user = f"arn:aws:iam::{ACCOUNT}:user/kubedemy"
    assert (
        kubeiam(
            cluster, "add-user", user, "--username", "kubedemy", "--group", "system:masters"
        ).returncode
        == 0
    )
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-0-0-1.ec2.internal"}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(node))
    try:
        done = kubeiam(cluster, "lint", "-o", "json")
        assert done.returncode == 1, done.stderr
        codes = {f["code"]: f["level"] for f in json.loads(done.stdout)}
        assert codes["missing-node-role"] == "error"
        assert codes["system-masters"] == "warning"
        add = kubeiam(
            cluster,
            "add-role",
            NODE_ROLE,
            "--username",
            "system:node:{{EC2PrivateDNSName}}",
            "--group",
            "system:bootstrappers,system:nodes",
        )
        assert add.returncode == 0, add.stderr
        clean = kubeiam(cluster, "lint")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "missing-node-role" not in clean.stdout
    finally:
        cluster.kubectl("delete", "node", node["metadata"]["name"], "--ignore-not-found")  # type: ignore[index]


def test_server_rbac_cannot_read_the_backups(
    cluster: ControlPlane, deployed: tuple[Path, ...]
) -> None:
    answer = cluster.kubectl(
        "auth",
        "can-i",
        "get",
        "configmap/aws-auth-kubeiam-backup",
        "-n",
        "kube-system",
        "--as",
        "system:serviceaccount:kube-system:kubeiam",
        check=False,
    )
    assert answer.stdout.strip() == "no"


# --------------------------------------------------------------------------------------------
# IAMIdentityMapping objects


@pytest.fixture
def crd(cluster: ControlPlane) -> Iterator[None]:
    cluster.apply(REPO_ROOT / "deploy" / "crd.yaml")
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/iamidentitymappings.iamauthenticator.k8s.aws",
        "--timeout=60s",
    )

    def clean() -> None:
        cluster.kubectl("delete", "iamidentitymappings", "--all")
        cluster.kubectl(
            "delete",
            "configmap",
            "iamidentitymapping-kubeiam-backup",
            "-n",
            "kube-system",
            "--ignore-not-found",
        )

    clean()
    yield
    clean()


def crd_specs(cluster: ControlPlane) -> list[dict[str, object]]:
    items = get_json(cluster, "iamidentitymappings")["items"]
    assert isinstance(items, list)
    return [i["spec"] for i in items]


def test_crd_store_add_list_explain_remove(cluster: ControlPlane, crd: None) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/Developers"
    args = ("add-role", role, "--username", "dev:{{SessionName}}", "--group", "developers")
    first = kubeiam(cluster, *args, store="crd")
    assert first.returncode == 0, first.stderr
    assert kubeiam(cluster, *args, store="crd").stderr.count("unchanged") == 1
    assert crd_specs(cluster) == [
        {"arn": role, "username": "dev:{{SessionName}}", "groups": ["developers"]}
    ]
    listed = json.loads(kubeiam(cluster, "list", "-o", "json", store="crd").stdout)
    assert [r["key"] for r in listed] == [role]
    explained = kubeiam(cluster, "explain", role, "--session-name", "bob", store="crd")
    assert explained.returncode == 0, explained.stderr
    assert "username: dev:bob" in explained.stdout
    assert "CRD" in explained.stdout
    refused = kubeiam(cluster, "add-account", ACCOUNT, store="crd")
    assert refused.returncode == 2
    assert "--store aws-auth|file" in refused.stderr
    removed = kubeiam(cluster, "remove", role, store="crd")
    assert removed.returncode == 0, removed.stderr
    assert crd_specs(cluster) == []
    restored = kubeiam(cluster, "restore", "--latest", store="crd")
    assert restored.returncode == 0, restored.stderr
    assert [s["arn"] for s in crd_specs(cluster)] == [role]


def test_crd_store_guards_node_entries_and_conflicts(cluster: ControlPlane, crd: None) -> None:
    node_args = (
        "add-role",
        NODE_ROLE,
        "--username",
        "system:node:{{EC2PrivateDNSName}}",
        "--group",
        "system:nodes",
    )
    assert kubeiam(cluster, *node_args, store="crd").returncode == 0
    refused = kubeiam(cluster, "remove", NODE_ROLE, store="crd")
    assert refused.returncode == 5
    assert "every node using role" in refused.stderr
    different = kubeiam(
        cluster, "add-role", NODE_ROLE, "--username", "x", "--group", "y", store="crd"
    )
    assert different.returncode == 2
    assert len(crd_specs(cluster)) == 1
    lint = kubeiam(cluster, "lint", "-o", "json", store="crd")
    assert lint.returncode == 1  # CRD reserves system: for usernames: the server would deny it
    assert "reserved-prefix" in {f["code"] for f in json.loads(lint.stdout)}


# --------------------------------------------------------------------------------------------
# The IAM workflows write through the same editor (the MappingWriter seam)


def test_onboard_user_writes_aws_auth(
    cluster: ControlPlane, fresh_aws_auth: None, local_aws: LocalAWS, tmp_path: Path
) -> None:
    seed_aws_auth(cluster)
    env = {
        **os.environ,
        **local_aws.client_env(),
        "AWS_ACCESS_KEY_ID": local_aws.admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": local_aws.admin.secret_access_key,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "KUBECONFIG": str(cluster.admin_kubeconfig),
    }
    name = f"kubedemy-{uuid.uuid4().hex[:6]}"
    args = [
        KUBEIAM,
        "iam",
        "onboard-user",
        name,
        "--cluster",
        "kubedemy",
        "--group",
        "developers",
        "--store",
        "aws-auth",
        "-o",
        "json",
    ]
    for _ in range(2):  # the second run repairs nothing and changes nothing
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    arn = json.loads(done.stdout)["userArn"]
    data = aws_auth(cluster)["data"]
    assert isinstance(data, dict)
    assert data["mapRoles"] == SEEDED_MAP_ROLES
    assert data["mapUsers"].count(f"userarn: {arn}\n") == 1
    secret = (tmp_path / "credentials").read_text().split("aws_secret_access_key = ")[1].split()[0]
    assert secret not in done.stdout + done.stderr
    off = subprocess.run(
        [KUBEIAM, "iam", "offboard-user", name, "--store", "aws-auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert off.returncode == 0, off.stderr
    assert arn not in aws_auth(cluster)["data"].get("mapUsers", "")  # type: ignore[union-attr]
    assert aws_auth(cluster)["data"]["mapRoles"] == SEEDED_MAP_ROLES  # type: ignore[index]


def test_whoami_in_a_cluster(
    cluster: ControlPlane, fresh_aws_auth: None, local_aws: LocalAWS
) -> None:
    name = f"whoami-{uuid.uuid4().hex[:6]}"
    key_id, secret = local_aws.create_user(name)
    arn = local_aws.user_arn(name)
    added = kubeiam(cluster, "add-user", arn, "--username", "kubedemy", "--group", "developers")
    assert added.returncode == 0, added.stderr
    env = {
        **os.environ,
        **local_aws.client_env(),
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    done = subprocess.run(
        [
            KUBEIAM,
            "whoami",
            "--cluster",
            CLUSTER_NAME,
            "--kubeconfig",
            str(cluster.admin_kubeconfig),
            "-o",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    me = json.loads(done.stdout)
    assert me["arn"] == arn
    assert me["username"] == "kubedemy"
    assert me["groups"] == ["developers"]
    assert me["mappings"][0]["backend"] == "EKSConfigMap"
    assert secret not in done.stdout + done.stderr


class RacedAwsAuthStore(AwsAuthStore):
    """After its first read, another writer (kubectl) changes aws-auth: the write that follows
    carries a stale resourceVersion and the API server answers 409 for real."""

    def __init__(self, client: object, cluster: ControlPlane) -> None:
        super().__init__(client)
        self.cluster = cluster
        self.reads = 0

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        snapshot = await super().read(missing_ok=missing_ok)
        self.reads += 1
        if self.reads == 1:
            patch = {"data": {"mapAccounts": '- "444455556666"\n'}}
            await asyncio.to_thread(
                self.cluster.kubectl,
                "patch",
                "configmap",
                "aws-auth",
                "-n",
                "kube-system",
                "--type",
                "merge",
                "-p",
                json.dumps(patch),
            )
        return snapshot


def test_a_409_is_retried_with_a_fresh_read(cluster: ControlPlane, fresh_aws_auth: None) -> None:
    seed_aws_auth(cluster)

    async def edit() -> int:
        store = RacedAwsAuthStore(make_async_client(cluster.admin_kubeconfig), cluster)
        editor = MappingEditor(store, now=lambda: datetime.now(UTC), by="test", command="t")
        try:
            result = await editor.edit(
                lambda d: d.upsert_user(
                    f"arn:aws:iam::{ACCOUNT}:user/late", "late", [], replace=False
                )
            )
        finally:
            await store.close()
        return result.attempts

    assert asyncio.run(edit()) == 2
    data = aws_auth(cluster)["data"]
    assert isinstance(data, dict)
    assert data["mapAccounts"] == '- "444455556666"\n'  # the other writer's change survived
    assert f"userarn: arn:aws:iam::{ACCOUNT}:user/late\n" in data["mapUsers"]
    assert data["mapRoles"] == SEEDED_MAP_ROLES
