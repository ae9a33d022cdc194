"""`kubeiam migrate plan`'s planner (kubeiam.eks.migration): one row per verdict class, duplicate
ARNs resolved as aws-iam-authenticator resolves them, and the no-admin refusal."""

from __future__ import annotations

import json

import pytest
import yaml

from kubeiam.eks.access_entries import AccessEntry, PolicyGrant
from kubeiam.eks.migration import Binding, Principals, Verdict, plan_migration

ACCT = "111122223333"
ROLE = f"arn:aws:iam::{ACCT}:role/"
USER = f"arn:aws:iam::{ACCT}:user/"
ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
PRINCIPALS = Principals(
    {
        "role/admin": ROLE + "admin",
        "role/dev": ROLE + "team/dev",  # the real role has a path
        "role/nodes": ROLE + "nodes",
        "role/win": ROLE + "win",
        "role/pods": ROLE + "pods",
        "role/mon": ROLE + "mon",
        "role/odd": ROLE + "odd",
        "user/alice": USER + "alice",
    }
)


def data(roles: list[dict[str, object]], users: list[dict[str, object]] = ()) -> dict[str, str]:  # type: ignore[assignment]
    out = {"mapRoles": yaml.safe_dump(roles)}
    if users:
        out["mapUsers"] = yaml.safe_dump(list(users))
    return out


ADMIN_ROW = {"rolearn": ROLE + "admin", "username": "admin", "groups": ["system:masters"]}

NODE = "system:node:{{EC2PrivateDNSName}}"
BOOT = ["system:bootstrappers", "system:nodes"]
EQ, EXACT, RBAC, NO = Verdict.EQUIVALENT, Verdict.EXACT, Verdict.NEEDS_RBAC, Verdict.CANNOT_MIGRATE


def role(name: str, username: str | None = None, *groups: str) -> dict[str, object]:
    row: dict[str, object] = {"rolearn": ROLE + name, "groups": list(groups)}
    if username is not None:
        row["username"] = username
    return row


#: one row -> verdict, entry type, username, groups, a reason fragment
ROWS = [
    ("exact", role("odd", "odd:{{SessionName}}", "devs"),
     EXACT, "STANDARD", "odd:{{SessionName}}", ["devs"], None),
    ("path-resolved", role("dev", "dev", "devs"),
     EXACT, "STANDARD", "dev", ["devs"], "full ARN " + ROLE + "team/dev"),
    ("masters-to-admin-policy", ADMIN_ROW, EQ, "STANDARD", "admin", [],
     "system:masters -> AmazonEKSClusterAdminPolicy"),
    ("authenticated-dropped", role("odd", "o", "system:authenticated", "a"),
     EQ, "STANDARD", "o", ["a"], "dropped"),
    ("no-username-default", role("odd", None, "a"),
     EQ, "STANDARD", "arn:aws:sts::" + ACCT + ":assumed-role/odd/{{SessionName}}", ["a"],
     "EKS's default"),
    ("linux-node", role("nodes", NODE, *BOOT), EQ, "EC2_LINUX", NODE, [], "entry type EC2_LINUX"),
    ("windows-node", role("win", NODE, *BOOT, "eks:kube-proxy-windows"),
     EQ, "EC2_WINDOWS", NODE, [], "EC2_WINDOWS"),
    ("fargate", role("pods", "system:node:{{SessionName}}", *BOOT, "system:node-proxier"),
     EQ, "FARGATE_LINUX", "system:node:{{SessionName}}", [], "FARGATE_LINUX"),
    ("custom-system-group", role("mon", "mon", "system:monitoring"),
     RBAC, "STANDARD", "mon", ["kubeiam:monitoring"], "system:monitoring -> kubeiam:monitoring"),
    ("builtin-group-on-a-non-node", role("odd", "o", "system:nodes", "x"),
     NO, None, None, None, "built-in authorizers"),
    ("gone-principal", role("deleted", "d", "x"), NO, None, None, None, "no longer exists"),
    ("reserved-username", role("odd", "eks:thing", "x"), NO, None, None, None, "starts with eks:"),
    ("unsupported-template", role("odd", "k:{{AccessKeyID}}"), NO, None, None, None, "template"),
    ("session-without-colon", role("odd", "dev-{{SessionName}}"),
     NO, None, None, None, "colon before"),
    ("sso-row", {"sso": {"permissionSetName": "Admin", "accountID": ACCT}, "username": "a"},
     NO, None, None, None, "permission-set"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("row", "verdict", "entry_type", "username", "groups", "reason"),
    [c[1:] for c in ROWS],
    ids=[c[0] for c in ROWS],
)
def test_one_row(
    row: dict[str, object],
    verdict: Verdict,
    entry_type: str | None,
    username: str | None,
    groups: list[str] | None,
    reason: str | None,
) -> None:
    plan = plan_migration(data([ADMIN_ROW, row]), PRINCIPALS)
    got = plan.rows[1]
    assert got.verdict is verdict, got.reasons
    if reason is not None:
        assert any(reason in r for r in got.reasons), got.reasons
    if entry_type is None:
        assert got.entry is None
        assert got.reasons
        return
    assert got.entry is not None
    assert (got.entry.entry_type, got.entry.username, list(got.entry.groups)) == (
        entry_type,
        username,
        groups,
    )
    json.dumps(plan.to_json())


def test_duplicate_arns_keep_the_last_row() -> None:
    first = {"rolearn": ROLE + "odd", "username": "first", "groups": ["a"]}
    last = {"rolearn": ROLE + "ODD", "username": "last", "groups": ["b"]}
    plan = plan_migration(data([ADMIN_ROW, first, last]), PRINCIPALS)
    assert plan.rows[1].verdict is Verdict.IGNORED
    assert "mapRoles[2]" in plan.rows[1].reasons[0]
    assert plan.rows[2].entry is not None
    assert plan.rows[2].entry.username == "last"


def test_accounts_and_iam_groups_cannot_migrate() -> None:
    source = {
        **data([ADMIN_ROW]),
        "mapAccounts": yaml.safe_dump([ACCT]),
        "mapGroups": yaml.safe_dump([{"grouparn": f"arn:aws:iam::{ACCT}:group/devs"}]),
    }
    plan = plan_migration(source, PRINCIPALS)
    assert [r.verdict for r in plan.rows[1:]] == [Verdict.CANNOT_MIGRATE] * 2
    assert "one IAM user or role" in plan.rows[1].reasons[0]
    assert "create-access-role" in plan.rows[2].reasons[0]


def test_users_are_planned_too() -> None:
    plan = plan_migration(
        data([ADMIN_ROW], [{"userarn": USER + "alice", "username": "alice", "groups": ["d"]}]),
        PRINCIPALS,
    )
    assert plan.rows[1].verdict is Verdict.EXACT
    assert plan.rows[1].entry == AccessEntry(USER + "alice", "alice", ("d",))


def test_no_admin_left_refuses() -> None:
    plan = plan_migration(data([{"rolearn": ROLE + "odd", "username": "o"}]), PRINCIPALS)
    assert not plan.ok
    assert any("refused" in n for n in plan.notes)
    existing = AccessEntry(ROLE + "admin", "a", (), "STANDARD", (PolicyGrant(ADMIN),))
    again = plan_migration(
        data([{"rolearn": ROLE + "odd", "username": "o"}]), PRINCIPALS, existing=[existing]
    )
    assert again.ok
    assert again.admins == (ROLE + "admin",)


def test_an_existing_entry_is_reported() -> None:
    existing = AccessEntry(ROLE + "admin", "other", (), "STANDARD", ())
    plan = plan_migration(data([ADMIN_ROW]), PRINCIPALS, existing=[existing])
    assert plan.rows[0].existing.startswith("differs")


def test_rbac_bindings_are_copied_to_the_replacement_group() -> None:
    bindings = [
        Binding(
            "ClusterRoleBinding", "mon-read", "", "ClusterRole", "view", ("system:monitoring",)
        ),
        Binding("RoleBinding", "mon-edit", "obs", "Role", "edit", ("system:monitoring", "x")),
        Binding("ClusterRoleBinding", "other", "", "ClusterRole", "view", ("devs",)),
    ]
    row = {"rolearn": ROLE + "mon", "username": "mon", "groups": ["system:monitoring"]}
    plan = plan_migration(data([ADMIN_ROW, row]), PRINCIPALS, bindings=bindings)
    copies = plan.rows[1].bindings
    assert [(b.kind, b.namespace, b.role_name, b.group) for b in copies] == [
        ("ClusterRoleBinding", "", "view", "kubeiam:monitoring"),
        ("RoleBinding", "obs", "edit", "kubeiam:monitoring"),
    ]
    unread = plan_migration(data([ADMIN_ROW, row]), PRINCIPALS)
    assert any("not read" in n for n in unread.notes)


def test_principals_not_known_are_taken_as_written() -> None:
    plan = plan_migration(
        data([ADMIN_ROW, {"rolearn": ROLE + "x", "username": "x"}]), Principals(known=False)
    )
    assert plan.rows[1].verdict is Verdict.EXACT
