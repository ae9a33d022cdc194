"""The effective-access report: IAM ways in x mapping rows x RBAC rights, with findings (pure).

Input: the cluster's mapping rows (:class:`MappingRow`, one per entry of every store the
cluster's server reads, in its order: whoever reads the stores turns their entries into rows),
an :class:`~kubeiam.access.iam_graph.IAMGraph` over the account, and the cluster's
:class:`~kubeiam.access.rbac.RBAC`. Output: a :class:`Report` whose :func:`report_json` is the
stable ``-o json`` document (``schemaVersion`` 1, docs/access-report.md).

For each row, every way into its principal (:meth:`IAMGraph.who_can_become`; a ``mapGroups``
row: the group's members; an ``sso`` row: the permission set's roles) becomes one
:class:`PrincipalEntry` carrying the row's Kubernetes username and groups and their rights.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kubeiam.access.iam_graph import EntryKind, IAMGraph, IAMGroup, Path
from kubeiam.access.policy import Clause, Decision, Unseen, Verdict
from kubeiam.access.rbac import RBAC, Grant, Level, Rights, Rule
from kubeiam.arn import sso_permission_set
from kubeiam.eks.access_policies import ScopeType, access_policy

SCHEMA_VERSION = 1
#: Access keys older than this reaching cluster-admin are a finding (CIS AWS 1.14 rotates at 90).
MAX_KEY_AGE = timedelta(days=90)
#: Groups the API server or its authorizers give meaning to on their own: never "dead".
SYSTEM_GROUP_PREFIX = "system:"
#: An access entry's createdAt and its principal's CreateDate are compared in whole seconds:
#: IAM writes CreateDate to the second, EKS createdAt to the millisecond, and the two services'
#: clocks are not the same clock. A principal recreated within the second of its entry is
#: missed; a finer comparison could flag an entry made right after its principal.
CREATED_RESOLUTION_SECONDS = 1


class Severity(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class RowKind(enum.Enum):
    ROLE = "role"
    USER = "user"
    #: ``mapGroups``: every IAM user in one IAM group.
    GROUP = "group"
    #: ``mapAccounts``: any principal of one account.
    ACCOUNT = "account"
    #: ``sso`` matcher: every role of one IAM Identity Center permission set.
    SSO = "sso"


@dataclass(frozen=True, slots=True)
class AccessPolicyAssociation:
    """An EKS access entry's associated access policy and its scope."""

    policy: str
    scope: ScopeType = ScopeType.CLUSTER
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MappingRow:
    """One mapping entry as the report needs it."""

    #: The store's name: aws-auth, crd, file or access-entries.
    source: str
    kind: RowKind
    #: Role/user/group ARN, account id, or permission set name (for SSO).
    principal: str
    #: The Kubernetes username as written (templates such as ``{{SessionName}}`` kept).
    username: str
    groups: tuple[str, ...] = ()
    #: The principal id the source is bound to (access entries, strict DynamicFile), if any.
    principal_id: str = ""
    #: For an SSO row: the account whose permission-set roles it matches.
    account: str = ""
    access_policies: tuple[AccessPolicyAssociation, ...] = ()
    #: When the store made the row (an access entry's createdAt), if known: a principal created
    #: after it is a recreated one (EKS returns no principal id to compare).
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PrincipalEntry:
    """One way into the cluster: who starts, through what, as whom, with what rights."""

    arn: str
    kind: str
    via: tuple[str, ...]
    decision: Decision
    conditions: tuple[str, ...]
    username: str
    groups: tuple[str, ...]
    source: str
    mapped: str
    rights: tuple[str, ...]
    cluster_admin: bool


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str
    message: str
    arns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    cluster: str
    principals: tuple[PrincipalEntry, ...]
    findings: tuple[Finding, ...]
    #: What no part of the report could see (shown once, not per principal).
    caveats: tuple[str, ...] = field(default=())

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def fails(self, threshold: Severity) -> bool:
        """``--fail-on``: a finding of ``threshold`` or above exists."""
        worst = self.worst()
        return worst is not None and worst >= threshold


#: Shown with every report: what an account's own IAM data cannot tell.
CAVEATS = (
    "service control policies (AWS Organizations) are not readable from a member account: "
    "'allowed' means allowed by this account's own policies",
    "conditions are shown, not evaluated",
)


def build_report(
    cluster: str,
    rows: Sequence[MappingRow],
    graph: IAMGraph,
    rbac: RBAC,
    *,
    now: datetime,
    access_keys: Mapping[str, Sequence[datetime]] | None = None,
    max_key_age: timedelta = MAX_KEY_AGE,
) -> Report:
    """Join ``rows`` with IAM and RBAC; ``access_keys`` maps user ARNs to their active keys'
    creation times (for the old-key finding); ``now`` is injected."""
    principals: list[PrincipalEntry] = []
    findings: list[Finding] = []
    for row in rows:
        rights = _rights(row, rbac)
        paths, row_findings = _paths(row, graph)
        findings += row_findings
        entries = [_entry(row, p, rights) for p in paths]
        principals += entries
        findings += _row_findings(row, paths, entries, graph)
        findings += _recreated_since_row(row, graph, cluster)
    findings += _key_findings(principals, access_keys or {}, now, max_key_age)
    findings += _group_findings(rows, rbac)
    ordered = sorted(_dedupe(findings), key=lambda f: (-f.severity, f.code, f.message))
    return Report(cluster, tuple(principals), tuple(ordered), CAVEATS)


def who_can(
    rows: Sequence[MappingRow],
    graph: IAMGraph,
    rbac: RBAC,
    verb: str,
    resource: str,
    namespace: str | None = None,
) -> tuple[PrincipalEntry, ...]:
    """``who-can VERB RESOURCE [-n NAMESPACE]``: every way in, from IAM through a mapping row,
    whose Kubernetes identity may do the request (``resource`` as kubectl writes it:
    ``secrets``, ``deployments.apps``, ``pods/exec``)."""
    found: list[PrincipalEntry] = []
    for row in rows:
        rights = _rights(row, rbac)
        if rights.can(verb, resource, namespace):
            paths, _ = _paths(row, graph)
            found += (_entry(row, p, rights) for p in paths)
    return tuple(found)


def _rights(row: MappingRow, rbac: RBAC) -> Rights:
    base = rbac.rights(row.username, row.groups)
    extra = tuple(g for a in row.access_policies for g in _policy_grants(row, a))
    return Rights(base.username, base.groups, base.unrestricted, base.grants + extra)


def _policy_grants(row: MappingRow, association: AccessPolicyAssociation) -> list[Grant]:
    """An access policy association as grants: cluster scope is cluster-wide; a namespace
    scope grants the namespaced rules in each listed namespace."""
    known = access_policy(association.policy)
    name = known.name if known else association.policy
    label = f"access policy {name} ({association.scope.value} scope)"
    if known is None or not known.rules_documented:
        role = f"{name} (rules not documented by AWS)"
        return [Grant(label, role, None, "User", row.username, (), Level.CUSTOM)]
    rules = tuple(
        Rule(r.verbs, r.api_groups, r.resources, (), r.non_resource_urls) for r in known.rules
    )
    if association.scope is ScopeType.CLUSTER:
        return [Grant(label, name, None, "User", row.username, rules, _level_of(name, rules, None))]
    namespaced = tuple(r for r, raw in zip(rules, known.rules, strict=True) if raw.namespaced)
    return [
        Grant(label, name, ns, "User", row.username, namespaced, _level_of(name, namespaced, ns))
        for ns in association.namespaces
    ]


#: The user-facing access policies and the default ClusterRoles they correspond to (the EKS
#: user guide compares them to admin, edit and view).
POLICY_LEVELS = {
    "AmazonEKSAdminPolicy": Level.ADMIN,
    "AmazonEKSEditPolicy": Level.EDIT,
    "AmazonEKSViewPolicy": Level.VIEW,
}


def _level_of(name: str, rules: Sequence[Rule], namespace: str | None) -> Level:
    if any(r.is_everything for r in rules):
        return Level.CLUSTER_ADMIN if namespace is None else Level.ADMIN
    return POLICY_LEVELS.get(name, Level.CUSTOM)


def _paths(row: MappingRow, graph: IAMGraph) -> tuple[list[Path], list[Finding]]:
    """The ways into a row's principal, and the findings about the row's principal itself."""
    account = graph.account
    if row.kind in (RowKind.ROLE, RowKind.USER):
        found = account.find(row.principal)
        if found is None:
            return _unresolved(row, graph)
        findings = []
        if row.principal_id and row.principal_id != getattr(found, "unique_id", ""):
            findings.append(
                Finding(
                    Severity.MEDIUM,
                    "recreated-principal",
                    f"{row.source}: {row.principal} was deleted and recreated: the entry is bound"
                    f" to principal id {row.principal_id}, which no longer exists",
                    (row.principal,),
                )
            )
        return list(graph.who_can_become(found.arn)), findings
    if row.kind is RowKind.GROUP:
        group = account.find(row.principal)
        if not isinstance(group, IAMGroup):
            return _unresolved(row, graph)
        members = [u for u in account.users if group.arn in u.groups]
        always = Verdict(Clause.always())
        return [
            Path(EntryKind.USER, u.arn, (group.arn,), always, unseen=u.unseen) for u in members
        ], []
    if row.kind is RowKind.SSO:
        roles = [r for r in account.roles if sso_permission_set(r.name) == row.principal]
        if row.account and row.account != account.account_id:
            return [_unknown(EntryKind.SSO, row.principal, f"roles of account {row.account}")], []
        return [p for r in roles for p in graph.who_can_become(r.arn)], []
    # mapAccounts: any principal of the account authenticates, named by its own ARN.
    if row.principal == account.account_id:
        return [Path(EntryKind.ACCOUNT, row.principal, (), Verdict(Clause.always()))], []
    return [
        _unknown(EntryKind.ACCOUNT, row.principal, f"principals of account {row.principal}")
    ], []


def principal_newer_than_row(row_created: datetime | None, created: datetime | None) -> bool:
    """The principal was created after the row (in whole seconds, CREATED_RESOLUTION_SECONDS);
    False when either time is unknown."""
    if row_created is None or created is None:
        return False
    step = CREATED_RESOLUTION_SECONDS
    return int(created.timestamp() // step) > int(row_created.timestamp() // step)


def _recreated_since_row(row: MappingRow, graph: IAMGraph, cluster: str) -> list[Finding]:
    """An access entry older than its principal was made for an earlier principal of that name:
    EKS keeps the principal id it saw and does not honour the entry for the new one (AWS's
    "Create access entries" page). Rows with a principal id are judged by the id instead."""
    if row.principal_id or row.kind not in (RowKind.ROLE, RowKind.USER):
        return []
    found = graph.account.find(row.principal)
    created = getattr(found, "created", None)
    entry_created = row.created_at
    if entry_created is None or created is None:
        return []
    if not principal_newer_than_row(entry_created, created):
        return []
    where = f"--store {row.source} --cluster {cluster}"
    return [
        Finding(
            Severity.MEDIUM,
            "recreated-principal",
            f"{row.source}: {row.principal} was created {_utc(created)}, after its entry"
            f" ({_utc(entry_created)}): the entry was made for an earlier {row.kind.value} of"
            " that name and EKS does not honour it for this one; fix: kubeiam mapping remove"
            f" {row.principal} {where}, then kubeiam mapping add-{row.kind.value}"
            f" {row.principal} {where} with the same username, groups and access policies",
            (row.principal,),
        )
    ]


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unresolved(row: MappingRow, graph: IAMGraph) -> tuple[list[Path], list[Finding]]:
    """A row naming a principal that is not in the account read: dangling if it should be."""
    own = f":{graph.account.account_id}:"
    if own in row.principal or not row.principal.startswith("arn:"):
        finding = Finding(
            Severity.MEDIUM,
            "dangling-mapping",
            f"{row.source}: {row.principal} does not exist; whoever creates a {row.kind.value}"
            f" with that name gets {row.username}'s access",
            (row.principal,),
        )
        return [], [finding]
    kind = EntryKind.ROLE if row.kind is RowKind.ROLE else EntryKind.USER
    return [_unknown(kind, row.principal, f"{row.principal} (another account)")], []


def _unknown(kind: EntryKind, start: str, what: str) -> Path:
    return Path(kind, start, (), Verdict(Clause.when([Unseen(what)])))


def _entry(row: MappingRow, path: Path, rights: Rights) -> PrincipalEntry:
    unseen = tuple(f"unknown: {u}" for u in path.unseen)
    return PrincipalEntry(
        arn=path.start,
        kind=path.kind.value,
        via=path.via,
        decision=path.decision,
        conditions=path.verdict.conditions + unseen,
        username=row.username,
        groups=row.groups,
        source=row.source,
        mapped=row.principal,
        rights=rights.summary(),
        cluster_admin=rights.cluster_admin,
    )


def _row_findings(
    row: MappingRow, paths: Sequence[Path], entries: Sequence[PrincipalEntry], graph: IAMGraph
) -> list[Finding]:
    findings: list[Finding] = []
    own = graph.account.account_id
    for path in paths:
        target = path.via[-1] if path.via else row.principal
        if path.kind is EntryKind.ANYONE:
            findings.append(
                Finding(
                    Severity.CRITICAL,
                    "trusted-by-anyone",
                    f"{target} trusts every AWS principal ('*') and is mapped into the cluster",
                    (target,),
                )
            )
        elif path.kind is EntryKind.ACCOUNT and path.via:
            other = path.start != own
            findings.append(
                Finding(
                    Severity.HIGH if other else Severity.MEDIUM,
                    "trusted-by-account",
                    f"{target} trusts the whole account {path.start}"
                    + (" (another account)" if other else "")
                    + " and is mapped into the cluster",
                    (target,),
                )
            )
    admins = [e for e in entries if e.cluster_admin and e.decision is not Decision.DENIED]
    if admins:
        wide = any(e.kind in (EntryKind.ANYONE.value, EntryKind.ACCOUNT.value) for e in admins)
        findings.append(
            Finding(
                Severity.CRITICAL if wide else Severity.HIGH,
                "cluster-admin",
                f"{len(admins)} way(s) into cluster-admin through {row.principal} ({row.source})",
                tuple(dict.fromkeys(e.arn for e in admins)),
            )
        )
    return findings


def _key_findings(
    entries: Iterable[PrincipalEntry],
    keys: Mapping[str, Sequence[datetime]],
    now: datetime,
    max_age: timedelta,
) -> list[Finding]:
    old = sorted(
        {
            e.arn
            for e in entries
            if e.cluster_admin and e.kind == EntryKind.USER.value
            for created in keys.get(e.arn, ())
            if now - created > max_age
        }
    )
    if not old:
        return []
    return [
        Finding(
            Severity.HIGH,
            "old-access-key-admin",
            f"{len(old)} IAM user(s) with access keys older than {max_age.days} days reach"
            " cluster-admin",
            tuple(old),
        )
    ]


def _group_findings(rows: Sequence[MappingRow], rbac: RBAC) -> list[Finding]:
    bound = rbac.bound_groups()
    produced = {g for r in rows for g in r.groups}
    dead: dict[str, list[str]] = {}
    for r in rows:
        for g in r.groups:
            if g not in bound and not g.startswith(SYSTEM_GROUP_PREFIX):
                dead.setdefault(g, []).append(r.principal)
    findings = [
        Finding(
            Severity.LOW,
            "dead-mapping-group",
            f"group {g} is given by {len(principals)} mapping(s) but no RBAC binding names it",
            tuple(dict.fromkeys(principals)),
        )
        for g, principals in sorted(dead.items())
    ]
    findings += [
        Finding(
            Severity.LOW,
            "unmapped-binding-group",
            f"RBAC binds group {g}, which no mapping produces",
        )
        for g in sorted(bound - produced)
        if not g.startswith(SYSTEM_GROUP_PREFIX)
    ]
    return findings


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))


def report_json(report: Report) -> dict[str, object]:
    """The ``-o json`` document (schemaVersion 1; docs/access-report.md)."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "cluster": report.cluster,
        "principals": [principal_json(e) for e in report.principals],
        "findings": [
            {
                "severity": f.severity.label,
                "code": f.code,
                "message": f.message,
                "arns": list(f.arns),
            }
            for f in report.findings
        ],
        "caveats": list(report.caveats),
    }


def principal_json(entry: PrincipalEntry) -> dict[str, object]:
    """One ``principals[]`` item (also ``who-can -o json``'s)."""
    return {
        "arn": entry.arn,
        "kind": entry.kind,
        "via": list(entry.via),
        "decision": entry.decision.value,
        "conditions": list(entry.conditions),
        "username": entry.username,
        "groups": list(entry.groups),
        "source": entry.source,
        "mapped": entry.mapped,
        "rights": list(entry.rights),
        "clusterAdmin": entry.cluster_admin,
    }
