"""`kubeiam migrate plan`: what each aws-auth row becomes as an EKS access entry (pure).

For every row of ``mapRoles``, ``mapUsers``, ``mapAccounts`` and kubeiam's ``mapGroups`` the plan
says what it becomes (entry type, principal ARN, username, groups, access policies with scopes)
and gives a verdict:

* ``exact``: the same username and groups;
* ``equivalent``: the same access by another route, with the reason (``system:masters`` becomes
  ``AmazonEKSClusterAdminPolicy`` on the cluster; a node row becomes a node entry type whose
  username and groups EKS sets; ``system:authenticated`` is dropped, every caller has it);
* ``needs-rbac``: a ``system:`` group an access entry cannot carry whose meaning is only its RBAC
  bindings: the entry gets a replacement group (:func:`replacement_group`) and the plan lists the
  bindings to copy to it;
* ``cannot-migrate``: with the reason and what to do instead (mapAccounts, IAM groups, permission
  sets, a principal that no longer exists, usernames EKS refuses, templates EKS does not render,
  groups whose meaning comes from built-in authorizers and controllers);
* ``ignored``: an earlier row for the same ARN. aws-iam-authenticator reads each section into a
  map keyed by ARN, so the LAST row for an ARN is the one that applied (eksctl keeps the first);
  the plan migrates that one and says the others never applied.

The plan refuses to proceed (:attr:`Plan.ok` False) when the result would leave no cluster admin:
no planned entry and no existing access entry with ``AmazonEKSClusterAdminPolicy`` on the whole
cluster. Inputs are values: the aws-auth ``data``, what IAM says about each principal
(:class:`Principals`), the cluster's existing entries and RBAC bindings; the command gathers them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeiam.arn import arn_key, canonicalize_mapping_arn
from kubeiam.documents import parse_yaml
from kubeiam.eks.access_entries import (
    RESERVED_USERNAME_PREFIXES,
    STANDARD,
    AccessEntry,
    PolicyGrant,
    default_username,
)
from kubeiam.eks.access_policies import CLUSTER_ADMIN_POLICY, policy_arn
from kubeiam.errors import MappingError


class Verdict(enum.StrEnum):
    EXACT = "exact"
    EQUIVALENT = "equivalent"
    NEEDS_RBAC = "needs-rbac"
    CANNOT_MIGRATE = "cannot-migrate"
    IGNORED = "ignored"


#: Worst first wins when a row has several reasons.
_ORDER = [Verdict.EXACT, Verdict.EQUIVALENT, Verdict.NEEDS_RBAC, Verdict.CANNOT_MIGRATE]

MASTERS = "system:masters"
#: Every authenticated caller is in it anyway: dropping it changes nothing.
IMPLICIT_GROUPS = frozenset({"system:authenticated"})
#: Groups whose meaning comes from built-in authorizers and controllers (the Node authorizer,
#: the CSR approver, service-account handling), not from RBAC bindings a copy could carry.
BUILTIN_GROUPS = frozenset(
    {"system:nodes", "system:bootstrappers", "system:serviceaccounts", "system:unauthenticated"}
)
#: Node rows: the groups EKS's node entry types carry.
NODE_GROUPS = frozenset({"system:nodes", "system:bootstrappers"})
#: The group EKS's Windows nodes carried in aws-auth (EKS's Windows support docs).
WINDOWS_NODE_GROUP = "eks:kube-proxy-windows"
#: Fargate pod execution roles carried this group in aws-auth.
FARGATE_GROUP = "system:node-proxier"
#: Templates a STANDARD access entry's username can use, per the "Create access entries" page;
#: CHOSEN: any other placeholder (``{{EC2PrivateDNSName}}``, ``{{AccessKeyID}}``) is refused.
ENTRY_TEMPLATES = ("{{SessionName}}", "{{SessionNameRaw}}", "{{AccountID}}")
#: The prefix of the groups that replace ``system:`` groups (``system:x`` -> ``kubeiam:x``).
REPLACEMENT_PREFIX = "kubeiam:"


def replacement_group(group: str) -> str:
    """The group an access entry carries instead of ``system:`` group ``group``."""
    return REPLACEMENT_PREFIX + group.removeprefix("system:")


@dataclass(frozen=True, slots=True)
class Binding:
    """A (Cluster)RoleBinding of the cluster, reduced to what the plan copies."""

    kind: str  # ClusterRoleBinding or RoleBinding
    name: str
    namespace: str
    role_kind: str
    role_name: str
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewBinding:
    """A binding the plan creates: ``copy_of`` with ``group`` as its subject."""

    kind: str
    name: str
    namespace: str
    role_kind: str
    role_name: str
    group: str
    copy_of: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace or None,
            "roleRef": {"kind": self.role_kind, "name": self.role_name},
            "group": self.group,
            "copyOf": self.copy_of,
        }


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One aws-auth row and what it becomes."""

    source: str
    written: str
    verdict: Verdict
    reasons: tuple[str, ...]
    entry: AccessEntry | None = None
    bindings: tuple[NewBinding, ...] = ()
    #: The cluster already has an entry for the principal: "same" or what differs.
    existing: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "written": self.written,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "entry": self.entry.to_json() if self.entry is not None else None,
            "rbacBindings": [b.to_json() for b in self.bindings],
            "existingEntry": self.existing or None,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    rows: tuple[PlanRow, ...]
    admins: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """False when the result would leave no cluster admin (the plan must not proceed)."""
        return bool(self.admins)

    def counts(self) -> dict[str, int]:
        return {v.value: sum(1 for r in self.rows if r.verdict is v) for v in Verdict}

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "clusterAdmins": list(self.admins),
            "counts": self.counts(),
            "rows": [r.to_json() for r in self.rows],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Principals:
    """What IAM says: lower-cased ``kind/name`` -> the principal's full ARN (a role's path
    included). ``known`` False: IAM was not asked, every principal is taken as written."""

    arns: Mapping[str, str] = field(default_factory=dict)
    known: bool = True

    def find(self, kind: str, name: str) -> str | None:
        return self.arns.get(f"{kind}/{name}".lower())


def _rows(data: Mapping[str, str], section: str) -> list[tuple[str, Any]]:
    text = next((v for k, v in data.items() if k.lower() == section.lower()), None)
    if not text:
        return []
    # Untyped: every scalar stays as written (an account id 012345678901 is not a number).
    raw = parse_yaml(text, source=f"aws-auth {section}", typed=False)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise MappingError(f"aws-auth {section} is not a list")
    return [(f"{section}[{i}]", row) for i, row in enumerate(raw)]


def plan_migration(
    data: Mapping[str, str],
    principals: Principals,
    *,
    partition: str = "aws",
    existing: Sequence[AccessEntry] = (),
    bindings: Sequence[Binding] | None = None,
) -> Plan:
    """The plan for aws-auth ``data`` (see the module docstring). ``bindings``: the cluster's
    RBAC bindings, or None when not read (then needs-rbac rows say which bindings to copy)."""
    rows: list[PlanRow] = []
    for section, kind in (("mapRoles", "role"), ("mapUsers", "user")):
        found = _rows(data, section)
        last: dict[str, int] = {}
        for index, (_, raw) in enumerate(found):
            arn = str(_lower(raw).get(f"{kind}arn", "")) if isinstance(raw, Mapping) else ""
            if arn:
                last[arn_key(_canonical(arn))] = index
        for index, (source, raw) in enumerate(found):
            arn = str(_lower(raw).get(f"{kind}arn", "")) if isinstance(raw, Mapping) else ""
            winner = last.get(arn_key(_canonical(arn))) if arn else None
            if winner is not None and winner != index:
                rows.append(
                    PlanRow(
                        source,
                        arn,
                        Verdict.IGNORED,
                        (
                            f"{found[winner][0]} maps the same ARN later: aws-iam-authenticator "
                            "keeps the last row for an ARN, so this one never applied",
                        ),
                    )
                )
                continue
            rows.append(_plan_row(source, kind, raw, principals, partition, bindings))
    for source, raw in _rows(data, "mapAccounts"):
        rows.append(
            PlanRow(
                source,
                str(raw),
                Verdict.CANNOT_MIGRATE,
                (
                    "an access entry maps one IAM user or role, not a whole account: add an "
                    "entry for each role or user of the account that needs access",
                ),
            )
        )
    for source, raw in _rows(data, "mapGroups"):
        written = str(_lower(raw).get("grouparn", raw)) if isinstance(raw, Mapping) else str(raw)
        rows.append(
            PlanRow(
                source,
                written,
                Verdict.CANNOT_MIGRATE,
                (
                    "EKS has no access entry for an IAM group: give the group a role its members "
                    "assume (`kubeiam iam create-access-role --store access-entries`)",
                ),
            )
        )
    rows = [_with_existing(r, existing) for r in rows]
    admins = sorted(
        {
            r.entry.principal_arn
            for r in rows
            if _migrates(r) and r.entry and r.entry.is_cluster_admin
        }
        | {e.principal_arn for e in existing if e.is_cluster_admin}
    )
    notes = []
    if not admins:
        notes.append(
            "refused: no planned or existing access entry has AmazonEKSClusterAdminPolicy on the "
            "cluster; after the switch to API nobody could administer the cluster. Add a "
            "break-glass admin entry first (`kubeiam mapping add-role ARN --store access-entries "
            "--access-policy AmazonEKSClusterAdminPolicy`)"
        )
    if bindings is None and any(r.verdict is Verdict.NEEDS_RBAC for r in rows):
        notes.append(
            "RBAC bindings were not read (no kubeconfig): for each needs-rbac group, copy every "
            "ClusterRoleBinding and RoleBinding that names it to its replacement group"
        )
    return Plan(tuple(rows), tuple(admins), tuple(notes))


def _migrates(row: PlanRow) -> bool:
    return row.verdict in (Verdict.EXACT, Verdict.EQUIVALENT, Verdict.NEEDS_RBAC)


def _lower(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in raw.items()}


def _canonical(arn: str) -> str:
    try:
        return canonicalize_mapping_arn(arn).canonical
    except MappingError:
        return arn


def _worst(verdicts: Sequence[Verdict]) -> Verdict:
    return max(verdicts, key=_ORDER.index, default=Verdict.EXACT)


def _plan_row(
    source: str,
    kind: str,
    raw: Any,
    principals: Principals,
    partition: str,
    bindings: Sequence[Binding] | None,
) -> PlanRow:
    if not isinstance(raw, Mapping):
        return PlanRow(source, str(raw), Verdict.CANNOT_MIGRATE, ("not a mapping row",))
    row = _lower(raw)
    if "sso" in row:
        return PlanRow(
            source,
            str(row["sso"]),
            Verdict.CANNOT_MIGRATE,
            (
                "a permission-set row (kubeiam's sso form) has no access-entry form: add an "
                "entry for the set's provisioned role (AWSReservedSSO_<set>_<suffix>, with its "
                "path) and again whenever the set is re-provisioned",
            ),
        )
    written = str(row.get(f"{kind}arn", ""))
    try:
        mapped = canonicalize_mapping_arn(written)
    except MappingError as exc:
        return PlanRow(source, written, Verdict.CANNOT_MIGRATE, (exc.message,))
    name = (
        mapped.canonical.rsplit("/", 1)[-1]
        if kind == "role"
        else mapped.canonical.split(":user/")[1]
    )
    principal = principals.find(kind, name) if principals.known else written
    if principal is None:
        return PlanRow(
            source,
            written,
            Verdict.CANNOT_MIGRATE,
            (
                f"IAM {kind} {name} no longer exists (EKS refuses an entry for it): remove the "
                "row, or recreate the principal first",
            ),
        )
    reasons: list[str] = []
    verdicts: list[Verdict] = [Verdict.EXACT]
    if principal != written:
        reasons.append(f"the entry names the {kind} by its full ARN {principal}")
    username = str(row.get("username") or "")
    groups = [str(g) for g in row.get("groups") or ()]
    node = _node_type(username, groups)
    if node is not None:
        if kind != "role":
            return PlanRow(
                source, written, Verdict.CANNOT_MIGRATE, ("a node row must map an IAM role",)
            )
        entry = AccessEntry(principal, default_username(principal, node), (), node, ())
        reason = (
            f"node row -> entry type {node}: EKS sets username {entry.username} and the node groups"
        )
        return PlanRow(source, written, Verdict.EQUIVALENT, (*reasons, reason), entry)
    problem = _username_problem(username)
    if problem is not None:
        return PlanRow(source, written, Verdict.CANNOT_MIGRATE, (*reasons, problem))
    if not username:
        username = default_username(principal)
        verdicts.append(Verdict.EQUIVALENT)
        reasons.append(f"no username in aws-auth: EKS's default {username}")
    kept: list[str] = []
    policies: list[PolicyGrant] = []
    new_bindings: list[NewBinding] = []
    for group in groups:
        if group == MASTERS:
            policies.append(PolicyGrant(policy_arn(CLUSTER_ADMIN_POLICY, partition)))
            verdicts.append(Verdict.EQUIVALENT)
            reasons.append(
                "system:masters -> AmazonEKSClusterAdminPolicy on the cluster: the same "
                "cluster-admin, through EKS's authorizer instead of the group (RBAC bindings to "
                "system:masters and `kubectl auth whoami` no longer show it)"
            )
        elif group in IMPLICIT_GROUPS:
            verdicts.append(Verdict.EQUIVALENT)
            reasons.append(f"{group} dropped: every authenticated caller is in it")
        elif group in BUILTIN_GROUPS or group.startswith("system:serviceaccounts:"):
            verdicts.append(Verdict.CANNOT_MIGRATE)
            reasons.append(
                f"{group}'s meaning comes from Kubernetes' built-in authorizers and controllers, "
                "not from RBAC bindings a replacement group could copy"
            )
        elif group.startswith("system:") or group == FARGATE_GROUP:
            new = replacement_group(group)
            kept.append(new)
            verdicts.append(Verdict.NEEDS_RBAC)
            copies = _copies(group, new, bindings)
            new_bindings += copies
            reasons.append(
                f"{group} -> {new} (EKS refuses system: groups); "
                + (
                    f"{len(copies)} binding(s) copied to it"
                    if bindings is not None
                    else "copy its RBAC bindings to it"
                )
            )
        else:
            kept.append(group)
    verdict = _worst(verdicts)
    if verdict is Verdict.CANNOT_MIGRATE:
        return PlanRow(source, written, verdict, tuple(reasons))
    entry = AccessEntry(principal, username, tuple(kept), STANDARD, tuple(sorted(policies)))
    return PlanRow(source, written, verdict, tuple(reasons), entry, tuple(new_bindings))


def _node_type(username: str, groups: Sequence[str]) -> str | None:
    """The node entry type of a node row: a ``system:node:`` username (what the Node authorizer
    needs) with the node groups. A node group without such a username is no node row."""
    if not username.startswith("system:node:") or not NODE_GROUPS & set(groups):
        return None
    if WINDOWS_NODE_GROUP in groups:
        return "EC2_WINDOWS"
    if FARGATE_GROUP in groups:
        return "FARGATE_LINUX"
    return "EC2_LINUX"


def _username_problem(username: str) -> str | None:
    for prefix in RESERVED_USERNAME_PREFIXES:
        if username.startswith(prefix):
            return (
                f"username {username} starts with {prefix}, which EKS refuses in an access entry: "
                "choose another username (and move its RBAC bindings)"
            )
    rest = username
    for template in ENTRY_TEMPLATES:
        rest = rest.replace(template, "")
    if "{{" in rest:
        return (
            f"username {username} uses a template an access entry does not render (only "
            f"{', '.join(ENTRY_TEMPLATES)})"
        )
    for template in ("{{SessionName}}", "{{SessionNameRaw}}"):
        at = username.find(template)
        if at != -1 and ":" not in username[:at]:
            return (
                f"username {username}: EKS needs a colon before {template} (e.g. "
                f"{username[:at]}:{template}); the new name needs its RBAC bindings moved"
            )
    return None


def _copies(group: str, new: str, bindings: Sequence[Binding] | None) -> list[NewBinding]:
    if bindings is None:
        return []
    return [
        NewBinding(
            b.kind,
            f"{b.name}-{new.replace(':', '-')}"[:253],
            b.namespace,
            b.role_kind,
            b.role_name,
            new,
            f"{b.kind} {b.namespace + '/' if b.namespace else ''}{b.name}",
        )
        for b in bindings
        if group in b.groups
    ]


def _with_existing(row: PlanRow, existing: Sequence[AccessEntry]) -> PlanRow:
    if row.entry is None:
        return row
    by_key = {arn_key(e.principal_arn): e for e in existing}
    current = by_key.get(arn_key(row.entry.principal_arn))
    if current is None:
        return row
    if current == row.entry:
        return _replace(row, existing="same")
    return _replace(
        row,
        existing=f"differs (username {current.username}, groups {list(current.groups)}, "
        f"{len(current.policies)} policies): in API_AND_CONFIG_MAP that entry already wins",
    )


def _replace(row: PlanRow, **changes: Any) -> PlanRow:
    import dataclasses

    return dataclasses.replace(row, **changes)
