"""The pure parts of `kubeiam migrate apply|verify|finish|rollback`: the steps apply takes for a
plan (per verdict class: which rows become steps), a plan read back from `plan -o json`, verify's
checks (ok / missing / differs, node entries, who still depends on aws-auth), finish's refusals,
and the record's round trip. The planner's own verdict tables: tests/unit/eks/test_migration.py."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import yaml

from kubeiam.admin.migration.finish import check_finish
from kubeiam.admin.migration.plan import (
    ChangeEntry,
    CreateBinding,
    CreateEntry,
    plan_from_json,
    steps_for,
)
from kubeiam.admin.migration.record import BindingRef, MigrationRecord
from kubeiam.admin.migration.verify import verify
from kubeiam.eks.access_entries import AccessEntry, PolicyGrant
from kubeiam.eks.access_policies import ScopeType
from kubeiam.eks.migration import Binding, Principals, Verdict, plan_migration
from kubeiam.errors import ConfigError, GuardError

ROLE = "arn:aws:iam::111122223333:role/"
USER = "arn:aws:iam::111122223333:user/"
ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
PRINCIPALS = Principals(
    {
        "role/admin": ROLE + "admin",
        "role/dev": ROLE + "team/dev",
        "role/nodes": ROLE + "nodes",
        "role/mon": ROLE + "mon",
        "user/alice": USER + "alice",
    }
)
#: One row of every verdict class (the gone role is cannot-migrate; dev appears twice).
ROLES = [
    {"rolearn": ROLE + "admin", "username": "admin", "groups": ["system:masters"]},  # equivalent
    {"rolearn": ROLE + "dev", "username": "dev:{{SessionName}}", "groups": ["old"]},  # ignored
    {"rolearn": ROLE + "dev", "username": "dev:{{SessionName}}", "groups": ["devs"]},  # exact
    {"rolearn": ROLE + "nodes", "username": "system:node:{{EC2PrivateDNSName}}",
     "groups": ["system:bootstrappers", "system:nodes"]},  # equivalent: EC2_LINUX
    {"rolearn": ROLE + "mon", "username": "mon", "groups": ["system:monitoring"]},  # needs-rbac
    {"rolearn": ROLE + "gone", "username": "gone", "groups": ["x"]},  # cannot-migrate
]  # fmt: skip
DATA = {
    "mapRoles": yaml.safe_dump(ROLES),
    "mapUsers": yaml.safe_dump([{"userarn": USER + "alice", "username": "alice"}]),
    "mapAccounts": yaml.safe_dump(["111122223333"]),
}
BINDINGS = [
    Binding("ClusterRoleBinding", "mon", "", "ClusterRole", "monitoring", ("system:monitoring",))
]


def plan(existing: list[AccessEntry] = (), bindings: list[Binding] | None = BINDINGS):  # type: ignore[assignment,no-untyped-def]
    return plan_migration(DATA, PRINCIPALS, existing=existing, bindings=bindings)


def test_each_verdict_class_becomes_steps_or_none() -> None:
    p = plan()
    verdicts = {r.source: r.verdict for r in p.rows}
    assert verdicts["mapRoles[4]"] is Verdict.NEEDS_RBAC
    steps = steps_for(p, [])
    created = [s.source for s in steps if isinstance(s, CreateEntry)]
    # exact, equivalent and needs-rbac rows become entries; ignored and cannot-migrate do not.
    assert created == ["mapRoles[0]", "mapRoles[2]", "mapRoles[3]", "mapRoles[4]", "mapUsers[0]"]
    (binding,) = [s for s in steps if isinstance(s, CreateBinding)]
    assert binding.binding.group == "kubeiam:monitoring"
    assert binding.binding.role_name == "monitoring"
    assert isinstance(steps[-1], CreateBinding)  # bindings after every entry


@pytest.mark.parametrize(
    ("bindings", "can_bind"), [(None, True), (BINDINGS, False)], ids=["not-read", "no-cluster"]
)
def test_needs_rbac_rows_are_held_back_without_their_bindings(
    bindings: list[Binding] | None, can_bind: bool
) -> None:
    steps = steps_for(plan(bindings=bindings), [], can_bind=can_bind)
    assert "mapRoles[4]" not in {s.source for s in steps}
    assert not [s for s in steps if isinstance(s, CreateBinding)]
    assert len(steps) == 4  # the other migrating rows still go


def test_what_the_cluster_already_holds_needs_no_step() -> None:
    first = plan()
    held = [r.entry for r in first.rows if r.entry is not None]
    # Groups listed in another order are the same entry.
    held = [dataclasses.replace(e, groups=tuple(reversed(e.groups))) for e in held]
    assert [s for s in steps_for(plan(held), held) if not isinstance(s, CreateBinding)] == []


def test_an_entry_that_differs_is_changed_with_its_before_kept() -> None:
    other = AccessEntry(USER + "alice", "alice", ("old",), "STANDARD", (PolicyGrant(VIEW),))
    steps = steps_for(plan([other]), [other])
    (change,) = [s for s in steps if isinstance(s, ChangeEntry)]
    assert change.before == other
    assert change.after.groups == ()
    assert change.after.policies == ()


def test_a_plan_reads_back_from_its_json() -> None:
    p = plan()
    cluster, again = plan_from_json(
        json.loads(json.dumps({"cluster": "c", **p.to_json()})), source="x"
    )
    assert cluster == "c"
    assert again == p


BAD_PLANS = [
    ("not-a-mapping", [1, 2]),
    ("no-cluster", {"rows": []}),
    ("no-rows", {"cluster": "c"}),
    ("unknown-verdict", {"cluster": "c", "rows": [{"source": "s", "written": "w",
                                                   "verdict": "maybe"}]}),
    ("bad-entry", {"cluster": "c", "rows": [{"source": "s", "written": "w", "verdict": "exact",
                                             "entry": {"username": "x"}}]}),
    ("bad-binding", {"cluster": "c", "rows": [{"source": "s", "written": "w", "verdict": "exact",
                                               "rbacBindings": [{"kind": "X"}]}]}),
]  # fmt: skip


@pytest.mark.parametrize("raw", [b[1] for b in BAD_PLANS], ids=[b[0] for b in BAD_PLANS])
def test_a_bad_plan_file_is_a_config_error(raw: Any) -> None:
    with pytest.raises(ConfigError, match="is not a plan written by") as caught:
        plan_from_json(raw, source="plan.json")
    assert caught.value.hint == "kubeiam migrate plan --cluster NAME -o json > plan.json"


def test_verify_passes_when_every_migrated_principal_gets_the_planned_identity() -> None:
    p = plan()
    held = [r.entry for r in p.rows if r.entry is not None]
    result = verify(p, held)
    assert result.ok
    assert [c.status for c in result.checks] == ["ok"] * 5
    assert {d.source for d in result.dependents} == {"mapRoles[5]", "mapAccounts[0]"}
    assert result.admins == (ROLE + "admin",)
    check_finish(result)  # no refusal


def test_verify_names_a_missing_and_a_differing_entry() -> None:
    p = plan()
    held = {r.entry.principal_arn: r.entry for r in p.rows if r.entry is not None}
    del held[ROLE + "team/dev"]
    held[USER + "alice"] = dataclasses.replace(held[USER + "alice"], groups=("extra",))
    # A node entry is compared by type and username (EKS sets its groups).
    held[ROLE + "nodes"] = dataclasses.replace(held[ROLE + "nodes"], groups=("system:nodes",))
    result = verify(p, list(held.values()))
    status = {c.source: c.status for c in result.checks}
    assert status == {
        "mapRoles[0]": "ok", "mapRoles[2]": "missing", "mapRoles[3]": "ok",
        "mapRoles[4]": "ok", "mapUsers[0]": "differs",
    }  # fmt: skip
    assert not result.ok
    with pytest.raises(GuardError, match="verify fails for 2 principal"):
        check_finish(result)


def test_finish_needs_a_break_glass_admin_entry() -> None:
    p = plan()
    held = [r.entry for r in p.rows if r.entry is not None]
    # The admin entry's policy narrowed to one namespace: no cluster admin any more.
    narrowed = [
        dataclasses.replace(e, policies=(PolicyGrant(ADMIN, ScopeType.NAMESPACE, ("dev",)),))
        if e.is_cluster_admin
        else e
        for e in held
    ]
    result = verify(
        dataclasses.replace(p, rows=tuple(r for r in p.rows if r.source != "mapRoles[0]")), narrowed
    )
    assert result.ok
    with pytest.raises(GuardError, match="no break-glass admin"):
        check_finish(result)


def test_the_record_round_trips() -> None:
    entry = AccessEntry(ROLE + "admin", "admin", (), "STANDARD", (PolicyGrant(ADMIN),))
    record = MigrationRecord(
        "c", "arn:aws:eks:us-east-1:111122223333:cluster/c", "CONFIG_MAP", {"mapRoles": "[]"},
        "ConfigMap kube-system/aws-auth-kubeiam-backup revision 1", (entry,),
        ((dataclasses.replace(entry, groups=("old",)), entry),),
        (BindingRef("RoleBinding", "b", "dev"),), "", ("t: applied",),
    )  # fmt: skip
    assert MigrationRecord.from_json(json.loads(json.dumps(record.to_json())), source="r") == record


BAD_RECORDS = [
    ("not-a-mapping", []),
    ("other-kind", {"kind": "x", "version": 1}),
    ("newer-version", {"kind": "kubeiam-migration-record", "version": 2}),
    ("no-cluster", {"kind": "kubeiam-migration-record", "version": 1}),
    ("bad-entry", {"kind": "kubeiam-migration-record", "version": 1, "cluster": "c",
                   "clusterArn": "a", "modeBefore": "CONFIG_MAP", "created": [{"x": 1}]}),
]  # fmt: skip


@pytest.mark.parametrize("raw", [b[1] for b in BAD_RECORDS], ids=[b[0] for b in BAD_RECORDS])
def test_a_bad_record_is_a_config_error(raw: Any) -> None:
    with pytest.raises(ConfigError, match="is not a kubeiam migration record"):
        MigrationRecord.from_json(raw, source="record.json")


class _SlowEks:
    """EKS taking a while to report a mode change: the local EKS switches at once, a real one
    takes minutes, so this stand-in (a stub, for a delay the emulator cannot produce) answers
    with the old mode ``polls`` times first."""

    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.updates: list[dict[str, Any]] = []

    def update_cluster_config(self, **kwargs: Any) -> None:
        self.updates.append(kwargs)

    def describe_cluster(self, name: str) -> dict[str, Any]:
        mode = "CONFIG_MAP" if self.polls > 0 else "API_AND_CONFIG_MAP"
        self.polls -= 1
        arn = f"arn:aws:eks:us-east-1:111122223333:cluster/{name}"
        return {"cluster": {"arn": arn, "accessConfig": {"authenticationMode": mode}}}


def test_switching_the_mode_waits_until_eks_reports_it() -> None:
    from kubeiam.admin.migration.apply import MODE_POLL_SECONDS, switch_mode
    from kubeiam.eks.access_policies import AuthenticationMode
    from kubeiam.eks.entries_client import EntriesClient

    eks = _SlowEks(polls=3)
    slept: list[float] = []
    switch_mode(EntriesClient(eks, "c"), AuthenticationMode.API_AND_CONFIG_MAP, sleep=slept.append)
    assert eks.updates == [
        {"name": "c", "accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP"}}
    ]
    assert slept == [MODE_POLL_SECONDS] * 3


def test_a_mode_that_never_arrives_is_an_error_with_the_fix() -> None:
    from kubeiam.admin.migration.apply import MODE_WAIT_SECONDS, switch_mode
    from kubeiam.eks.access_policies import AuthenticationMode
    from kubeiam.eks.entries_client import EntriesClient
    from kubeiam.errors import KubeIAMError

    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(KubeIAMError, match="did not report mode API_AND_CONFIG_MAP") as caught:
        switch_mode(
            EntriesClient(_SlowEks(polls=10**6), "c"),
            AuthenticationMode.API_AND_CONFIG_MAP,
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert now[0] >= MODE_WAIT_SECONDS
    assert caught.value.hint is not None
    assert "describe-cluster --name c" in caught.value.hint
