"""`kubeiam migrate verify`: does EKS now give every planned principal the planned identity? (pure)

For every row the plan migrates, the identity EKS gives the principal is worked out as EKS
decides it (:func:`kubeiam.eks.modes.decide`) under mode API, where access entries are the only
source, from the entries the cluster holds now; it must equal the plan's entry (type, username,
groups, access policies with scopes). Every principal the plan does not migrate
(cannot-migrate rows, mapAccounts) that has no access entry is listed as "still depends on
aws-auth": it loses its access at `migrate finish`, as the plan said. Verify passes when every
migrated principal matches; the dependents do not fail it (they are the plan's known losses),
they are listed so a person sees them before finishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubeiam.admin.migration.plan import migrating_rows, same_entry
from kubeiam.arn import arn_key
from kubeiam.eks.access_entries import AccessEntry
from kubeiam.eks.access_policies import AuthenticationMode
from kubeiam.eks.migration import Plan, Verdict
from kubeiam.eks.modes import Candidate, Source, decide


@dataclass(frozen=True, slots=True)
class Check:
    source: str
    principal: str
    #: ``ok``, ``missing`` (no entry) or ``differs`` (the entry gives another identity).
    status: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "principal": self.principal,
            "status": self.status,
            "detail": self.detail or None,
        }


@dataclass(frozen=True, slots=True)
class Dependent:
    """A principal only aws-auth maps: it loses access when the cluster moves to API."""

    source: str
    written: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "principal": self.written, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Verification:
    checks: tuple[Check, ...]
    dependents: tuple[Dependent, ...]
    #: Entries that hold AmazonEKSClusterAdminPolicy on the cluster now (break-glass admins).
    admins: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return all(c.status == "ok" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks],
            "stillDependsOnAwsAuth": [d.to_json() for d in self.dependents],
            "clusterAdminEntries": list(self.admins),
        }


def verify(plan: Plan, entries: Sequence[AccessEntry]) -> Verification:
    by_key = {arn_key(e.principal_arn): e for e in entries}
    checks = []
    for row in migrating_rows(plan):
        assert row.entry is not None
        want = row.entry
        have = by_key.get(arn_key(want.principal_arn))
        checks.append(_check(row.source, want, have))
    dependents = tuple(
        Dependent(row.source, row.written, row.reasons[0] if row.reasons else "")
        for row in plan.rows
        if row.verdict is Verdict.CANNOT_MIGRATE and arn_key(row.written) not in by_key
    )
    admins = tuple(sorted(e.principal_arn for e in entries if e.is_cluster_admin))
    return Verification(tuple(checks), dependents, admins)


def _check(source: str, want: AccessEntry, have: AccessEntry | None) -> Check:
    candidate = (
        Candidate(
            Source.ACCESS_ENTRY,
            True,
            f"access entry {have.principal_arn}",
            have.username,
            have.groups,
            have.policies,
        )
        if have is not None
        else None
    )
    decision = decide(AuthenticationMode.API, candidate, None)
    if not decision.matched or have is None:
        return Check(source, want.principal_arn, "missing", "no access entry: in API it is unknown")
    if have.is_node or want.is_node:
        if (have.entry_type, have.username) == (want.entry_type, want.username):
            return Check(source, want.principal_arn, "ok")
        return Check(
            source,
            want.principal_arn,
            "differs",
            f"entry type {have.entry_type}, username {have.username}; the plan: "
            f"{want.entry_type}, {want.username}",
        )
    got = AccessEntry(
        want.principal_arn, decision.username, decision.groups, have.entry_type, decision.policies
    )
    if same_entry(got, want):
        return Check(source, want.principal_arn, "ok")
    return Check(
        source,
        want.principal_arn,
        "differs",
        f"EKS gives username {got.username}, groups {sorted(got.groups)}, policies "
        f"{[p.describe() for p in got.policies]}; the plan: {want.username}, "
        f"{sorted(want.groups)}, {[p.describe() for p in want.policies]}",
    )
