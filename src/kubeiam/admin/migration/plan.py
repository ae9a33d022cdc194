"""What `migrate apply` must do to make the cluster hold a plan (pure).

The planner (:mod:`kubeiam.eks.migration`) says what each aws-auth row becomes; this module
compares that with the entries the cluster holds now and lists the steps: create an entry,
change one that differs (username and groups, then the policies one by one), create an RBAC
binding. A row whose entry already holds the plan needs no step, so a second apply does nothing.
It also reads a plan back from `migrate plan -o json`, so apply can carry out exactly the plan a
person reviewed (``--plan FILE``) rather than a fresh one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeiam.arn import arn_key
from kubeiam.eks.access_entries import AccessEntry
from kubeiam.eks.migration import NewBinding, Plan, PlanRow, Verdict
from kubeiam.errors import ConfigError, MappingError

#: How the planner's note that RBAC bindings were not read begins (kubeiam.eks.migration).
RBAC_NOT_READ = "RBAC bindings were not read"
#: The verdicts whose rows become access entries.
MIGRATING = (Verdict.EXACT, Verdict.EQUIVALENT, Verdict.NEEDS_RBAC)


@dataclass(frozen=True, slots=True)
class CreateEntry:
    entry: AccessEntry
    source: str


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    """An existing entry made to hold ``after``; ``before`` is kept in the record."""

    before: AccessEntry
    after: AccessEntry
    source: str


@dataclass(frozen=True, slots=True)
class CreateBinding:
    binding: NewBinding
    source: str


Step = CreateEntry | ChangeEntry | CreateBinding


def migrating_rows(plan: Plan) -> list[PlanRow]:
    return [r for r in plan.rows if r.verdict in MIGRATING and r.entry is not None]


def rbac_unknown(plan: Plan) -> bool:
    """The plan was made without reading the cluster's RBAC bindings (``--aws-auth-file``)."""
    return any(note.startswith(RBAC_NOT_READ) for note in plan.notes)


def held_back(plan: Plan, *, can_bind: bool) -> list[PlanRow]:
    """needs-rbac rows apply must not carry out: without their bindings copied (none known, or
    no cluster to create them in) the entry, which wins over the aws-auth row, would take the
    principal's access away. They stay on aws-auth; verify lists them, so finish is refused."""
    if can_bind and not rbac_unknown(plan):
        return []
    return [r for r in migrating_rows(plan) if r.verdict is Verdict.NEEDS_RBAC]


def steps_for(plan: Plan, existing: Sequence[AccessEntry], *, can_bind: bool = True) -> list[Step]:
    """The steps that make the cluster's entries hold ``plan``, entries first, then bindings;
    rows :func:`held_back` are left out."""
    by_key = {arn_key(e.principal_arn): e for e in existing}
    skip = {r.source for r in held_back(plan, can_bind=can_bind)}
    out: list[Step] = []
    for row in migrating_rows(plan):
        assert row.entry is not None
        if row.source in skip:
            continue
        current = by_key.get(arn_key(row.entry.principal_arn))
        if current is None:
            out.append(CreateEntry(row.entry, row.source))
        elif not same_entry(current, row.entry):
            out.append(ChangeEntry(current, row.entry, row.source))
    for row in migrating_rows(plan):
        if row.source not in skip:
            out.extend(CreateBinding(b, row.source) for b in row.bindings)
    return out


def same_entry(a: AccessEntry, b: AccessEntry) -> bool:
    """The same identity: principal, type, username, groups (in any order), policies."""
    return (
        arn_key(a.principal_arn) == arn_key(b.principal_arn)
        and a.entry_type == b.entry_type
        and a.username == b.username
        and sorted(a.groups) == sorted(b.groups)
        and sorted(a.policies) == sorted(b.policies)
    )


def plan_from_json(raw: Any, *, source: str) -> tuple[str, Plan]:
    """The cluster name and plan of a `migrate plan -o json` document; ConfigError naming what is
    wrong otherwise."""
    try:
        cluster = str(raw["cluster"])
        rows = tuple(_row(r) for r in raw["rows"])
        admins = tuple(str(a) for a in raw.get("clusterAdmins") or ())
        notes = tuple(str(n) for n in raw.get("notes") or ())
    except (KeyError, TypeError, ValueError, AttributeError, MappingError) as exc:
        raise ConfigError(
            f"{source} is not a plan written by `kubeiam migrate plan -o json` "
            f"({type(exc).__name__}: {exc})",
            hint="kubeiam migrate plan --cluster NAME -o json > plan.json",
        ) from None
    return cluster, Plan(rows, admins, notes)


def _row(raw: Mapping[str, Any]) -> PlanRow:
    entry = AccessEntry.from_json(raw["entry"]) if raw.get("entry") else None
    bindings = tuple(
        NewBinding(
            str(b["kind"]),
            str(b["name"]),
            str(b.get("namespace") or ""),
            str(b["roleRef"]["kind"]),
            str(b["roleRef"]["name"]),
            str(b["group"]),
            str(b.get("copyOf") or ""),
        )
        for b in raw.get("rbacBindings") or ()
    )
    return PlanRow(
        str(raw["source"]),
        str(raw["written"]),
        Verdict(raw["verdict"]),
        tuple(str(r) for r in raw.get("reasons") or ()),
        entry,
        bindings,
        str(raw.get("existingEntry") or ""),
    )
