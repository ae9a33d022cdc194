"""The access-entries document (pure): its upserts follow the other stores' rules, its entries
load into the mapping model with what the guards need, and lint's access-entry codes."""

from __future__ import annotations

import pytest

from kubeiam.admin.editing.access_entries_document import (
    AccessEntriesMappings,
    entries_from_state,
    lint_entries,
)
from kubeiam.admin.editing.guards import check_guards
from kubeiam.eks.access_entries import AccessEntry, PolicyGrant
from kubeiam.eks.access_policies import ScopeType
from kubeiam.errors import ConfigError, GuardError, MappingError
from kubeiam.mapping.aws_auth import Change

P = "arn:aws:eks::aws:cluster-access-policy/"
ADMIN = PolicyGrant(P + "AmazonEKSClusterAdminPolicy")
VIEW = PolicyGrant(P + "AmazonEKSViewPolicy")
ROLE = "arn:aws:iam::111122223333:role/"
USER = "arn:aws:iam::111122223333:user/"
CN_USER = "arn:aws-cn:iam::111122223333:user/a"
NODE = AccessEntry(ROLE + "nodes", "system:node:{{EC2PrivateDNSName}}", (), "EC2_LINUX")
BOSS = AccessEntry(ROLE + "boss", "boss", (), "STANDARD", (ADMIN,))


def doc(*entries: AccessEntry) -> AccessEntriesMappings:
    return AccessEntriesMappings(entries)


def test_upserts_are_idempotent_and_need_replace() -> None:
    d = doc()
    assert d.upsert_entry("role", ROLE + "team/dev", None, ["devs"], [VIEW], replace=False) is (
        Change.ADDED
    )
    assert d.upsert_entry("role", ROLE + "team/dev", None, ["devs"], [VIEW], replace=False) is (
        Change.UNCHANGED
    )
    with pytest.raises(MappingError, match="already has an access entry"):
        d.upsert_entry("role", ROLE + "team/dev", "x", ["devs"], [VIEW], replace=False)
    assert d.upsert_entry("role", ROLE + "team/dev", "x", [], [], replace=True) is Change.REPLACED
    assert d.remove(ROLE + "TEAM/DEV") is Change.REMOVED  # ARNs compare case-insensitively
    assert d.remove(ROLE + "team/dev") is Change.UNCHANGED


NO_FORM = [
    (
        "sso",
        lambda d: d.upsert_sso("Admin", "111122223333", "a", [], partition="aws", replace=False),
    ),
    (
        "group",
        lambda d: d.upsert_group("arn:aws:iam::111122223333:group/g", "a", [], replace=False),
    ),
    ("account", lambda d: d.add_account("111122223333")),
    ("remove-sso", lambda d: d.remove_sso("Admin", "111122223333", partition="aws")),
    (
        "node-to-standard",
        lambda d: d.upsert_entry("role", ROLE + "nodes", "n", [], [], replace=True),
    ),
    (
        "other-partition",
        lambda d: d.upsert_user(CN_USER, "a", [], replace=False),
    ),
]


@pytest.mark.parametrize("operation", [c[1] for c in NO_FORM], ids=[c[0] for c in NO_FORM])
def test_what_access_entries_cannot_hold(operation) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MappingError, match=r"cannot|partition|node access entry"):
        operation(doc(NODE))


def test_the_guards_see_node_entries_and_the_cluster_admin_policy() -> None:
    before = doc(NODE, BOSS)
    after = doc(NODE, BOSS)
    after.remove(ROLE + "nodes")
    with pytest.raises(GuardError, match="node entry"):
        check_guards(before.load(), after.load(), force=False)
    after = doc(NODE, BOSS)
    after.remove(ROLE + "boss")
    with pytest.raises(GuardError, match="last AmazonEKSClusterAdminPolicy mapping"):
        check_guards(before.load(), after.load(), force=False)
    scoped = doc(NODE, AccessEntry(ROLE + "boss", "boss", (), "STANDARD", (
        PolicyGrant(ADMIN.policy_arn, ScopeType.NAMESPACE, ("dev",)),)))  # fmt: skip
    with pytest.raises(GuardError):  # cluster-admin in one namespace is no cluster admin
        check_guards(before.load(), scoped.load(), force=False)


def test_state_round_trip() -> None:
    d = doc(NODE, BOSS)
    assert entries_from_state(d.state()) == d.ordered()
    with pytest.raises(ConfigError):
        entries_from_state({"mapRoles": ""})


LINTS = [
    ("admin", BOSS, "cluster-admin-policy"),
    ("nothing", AccessEntry(USER + "a", "a"), "grants-nothing"),
    ("unknown", AccessEntry(USER + "a", "a", (), "STANDARD", (PolicyGrant(P + "AmazonEKSNew"),)),
     "unknown-policy"),
    ("useless-scope", AccessEntry(USER + "a", "a", (), "STANDARD", (
        PolicyGrant(P + "AmazonEKSHybridPolicy", ScopeType.NAMESPACE, ("dev",)),)),
     "namespace-scope-no-effect"),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "code"), [c[1:] for c in LINTS], ids=[c[0] for c in LINTS])
def test_lint_codes(entry: AccessEntry, code: str) -> None:
    codes = [f.code for f in lint_entries(doc(entry))]
    assert code in codes
    assert ("no-cluster-admin" in codes) is (not entry.is_cluster_admin)
