"""A cluster's EKS access entries opened for editing (pure).

The fourth store's :class:`~kubeiam.admin.editing.document.MappingDocument`: the entries as
read from EKS, changed in memory by the same operations as the other stores (an identical entry
is ``unchanged``; a different one for the same principal needs ``replace``), loaded into the
mapping model for ``list``, ``lint``, ``explain`` and the guards, and rendered as YAML for the
dry run's diff. Access entries map IAM users and roles only: permission sets, IAM groups and
accounts have no access-entry form, and those operations say so.

In the model an entry becomes an :class:`EntryUserMapping` / :class:`EntryRoleMapping` that also
carries its type and access policies, so the guards see what EKS gives: a node entry (type
EC2_LINUX ...) is a node mapping, and ``AmazonEKSClusterAdminPolicy`` on the cluster is what
``system:masters`` was (the last one is guarded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kubeiam.admin.editing.document import check_role_or_user
from kubeiam.admin.editing.lint import Finding, Level
from kubeiam.arn import arn_key, canonicalize_mapping_arn
from kubeiam.eks.access_entries import (
    NODE_GROUPS,
    STANDARD,
    AccessEntry,
    PolicyGrant,
    check_groups,
    check_username,
    cluster_only,
    default_username,
    merge_policies,
)
from kubeiam.eks.access_policies import ACCESS_POLICIES
from kubeiam.errors import ConfigError, MappingError
from kubeiam.mapping.aws_auth import Change
from kubeiam.mapping.model import LoadResult, Location, MappingSet, RoleMapping, UserMapping

#: The server backend EKS serves access entries through (for `explain`).
ACCESS_ENTRIES_BACKEND = "EKSAccessEntries"
#: How entries are located in messages (``access entry [3]``).
_SECTION = "access entry"


class _EntryGrants:
    """What an access entry's policies tell, for both kinds of entry: cluster-admin comes from
    AmazonEKSClusterAdminPolicy, never from system:masters."""

    __slots__ = ()
    policies: tuple[PolicyGrant, ...]

    #: What makes it cluster-admin, for the last-admin guard's message.
    admin_grant: ClassVar[str] = "AmazonEKSClusterAdminPolicy"

    @property
    def grants_masters(self) -> bool:
        return any(p.is_cluster_admin for p in self.policies)


@dataclass(frozen=True, slots=True)
class EntryRoleMapping(_EntryGrants, RoleMapping):
    """An access entry for an IAM role, in the mapping model."""

    entry_type: str = STANDARD
    policies: tuple[PolicyGrant, ...] = ()

    @property
    def is_node(self) -> bool:
        return self.entry_type != STANDARD

    def describe(self) -> str:
        return _describe(self.location, self.rolearn, self.entry_type, self.policies)


@dataclass(frozen=True, slots=True)
class EntryUserMapping(_EntryGrants, UserMapping):
    """An access entry for an IAM user, in the mapping model."""

    entry_type: str = STANDARD
    policies: tuple[PolicyGrant, ...] = ()

    @property
    def is_node(self) -> bool:
        return False

    def describe(self) -> str:
        return _describe(self.location, self.userarn, self.entry_type, self.policies)


def _describe(
    location: Location | None, arn: str, entry_type: str, policies: Sequence[PolicyGrant]
) -> str:
    kind = "" if entry_type == STANDARD else f" (type {entry_type})"
    where = f"{location}: " if location is not None else f"{_SECTION} "
    return f"{where}{arn}{kind}"


def entry_policies(entry: object) -> tuple[PolicyGrant, ...]:
    """The access policies of a mapping-model entry (none for aws-auth, CRD or file entries)."""
    policies = getattr(entry, "policies", ())
    return tuple(policies) if isinstance(policies, tuple) else ()


class AccessEntriesMappings:
    """One cluster's access entries, keyed by principal ARN (case-insensitive)."""

    def __init__(self, entries: Iterable[AccessEntry], *, partition: str = "aws") -> None:
        self.partition = partition
        self.entries: dict[str, AccessEntry] = {arn_key(e.principal_arn): e for e in entries}

    # -- reading --

    def load(self) -> LoadResult:
        users: dict[str, UserMapping] = {}
        roles: dict[str, RoleMapping] = {}
        out: list[EntryRoleMapping | EntryUserMapping] = []
        for index, entry in enumerate(self.ordered()):
            where = Location(_SECTION, index)
            groups = NODE_GROUPS if entry.is_node else entry.groups
            try:
                canonical = canonicalize_mapping_arn(entry.principal_arn).canonical
            except MappingError:
                canonical = entry.principal_arn
            if entry.kind == "user":
                user = EntryUserMapping(
                    entry.principal_arn,
                    entry.username,
                    groups,
                    canonical,
                    location=where,
                    entry_type=entry.entry_type,
                    policies=entry.policies,
                )
                users[arn_key(canonical)] = user
                out.append(user)
            else:
                # EKS names a role with its path and matches its sessions: no path stripping
                # to warn about here (had_path False).
                role = EntryRoleMapping(
                    entry.principal_arn,
                    entry.username,
                    groups,
                    canonical,
                    False,
                    location=where,
                    entry_type=entry.entry_type,
                    policies=entry.policies,
                )
                roles[arn_key(canonical)] = role
                out.append(role)
        return LoadResult(MappingSet(users=users, roles=roles, entries=tuple(out)))

    def ordered(self) -> list[AccessEntry]:
        return [self.entries[k] for k in sorted(self.entries)]

    def text(self) -> str:
        import yaml

        docs = []
        for entry in self.ordered():
            body: dict[str, Any] = {"type": entry.entry_type, "username": entry.username}
            body["groups"] = list(entry.groups)
            body["accessPolicies"] = [_policy_line(p) for p in entry.policies]
            docs.append(yaml.safe_dump({entry.principal_arn: body}, sort_keys=False, width=200))
        return "".join(docs)

    def state(self) -> Any:
        return [e.to_json() for e in self.ordered()]

    def names(self) -> list[str]:
        return [e.principal_arn for e in self.ordered()]

    # -- changing --

    def upsert_entry(
        self,
        kind: str,
        arn: str,
        username: str | None,
        groups: Sequence[str],
        policies: Sequence[PolicyGrant],
        *,
        replace: bool,
    ) -> Change:
        """Add the entry of IAM ``kind`` ``arn`` (``username`` None: the one EKS assigns), or
        leave it when identical; a different entry is refused unless ``replace``."""
        check_role_or_user(arn, kind)
        partition = arn.split(":")[1]
        if partition != self.partition:
            raise MappingError(
                f"{arn} is in partition {partition}, the cluster in {self.partition}",
                hint="access entries name principals of the cluster's partition",
            )
        if username is not None:
            check_username(username)
        check_groups(groups)
        wanted = AccessEntry(
            arn,
            username if username is not None else default_username(arn),
            tuple(groups),
            STANDARD,
            merge_policies(policies),
        )
        key = arn_key(arn)
        current = self.entries.get(key)
        if current == wanted:
            return Change.UNCHANGED
        if current is not None and current.principal_arn != arn:
            raise MappingError(
                f"{arn} differs only in case from the entry for {current.principal_arn}",
                hint=f"write it as {current.principal_arn}",
            )
        if current is not None and not replace:
            raise MappingError(
                f"{arn} already has an access entry ({_summary(current)})",
                hint="pass --replace to make it "
                f"({_summary(wanted)}), or give the same --username, --group and "
                "--access-policy values",
            )
        if current is not None and current.is_node:
            raise MappingError(
                f"{arn} has a node access entry (type {current.entry_type}); it cannot be "
                "turned into a STANDARD entry in place",
                hint="remove it first (`kubeiam mapping remove ... --force`), then add it",
            )
        self.entries[key] = wanted
        return Change.ADDED if current is None else Change.REPLACED

    def upsert_user(
        self, arn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        return self.upsert_entry("user", arn, username, groups, (), replace=replace)

    def upsert_role(
        self, arn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        return self.upsert_entry("role", arn, username, groups, (), replace=replace)

    def upsert_sso(
        self,
        permission_set: str,
        account_id: str,
        username: str,
        groups: Sequence[str],
        *,
        partition: str,
        replace: bool,
    ) -> Change:
        raise _no_form("an IAM Identity Center permission set", "add-role ROLE_ARN")

    def upsert_group(
        self, grouparn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        raise _no_form(
            "an IAM group",
            "a role the group's members may assume (`kubeiam iam create-access-role`)",
        )

    def add_account(self, account_id: str) -> Change:
        raise _no_form("a whole account", "one entry per role or user")

    def remove(self, arn_or_account: str) -> Change:
        if self.entries.pop(arn_key(arn_or_account.strip()), None) is None:
            return Change.UNCHANGED
        return Change.REMOVED

    def remove_sso(self, permission_set: str, account_id: str, *, partition: str) -> Change:
        raise _no_form("an IAM Identity Center permission set", "remove ROLE_ARN")


def _policy_line(grant: PolicyGrant) -> str:
    """``AmazonEKSViewPolicy (cluster)``, ``AmazonEKSEditPolicy (namespaces dev, test)``."""
    if grant.namespaces:
        return f"{grant.name} (namespaces {', '.join(grant.namespaces)})"
    return f"{grant.name} ({grant.scope.value})"


def _summary(entry: AccessEntry) -> str:
    groups = ",".join(entry.groups) or "no groups"
    policies = ", ".join(p.describe() for p in entry.policies) or "no access policies"
    return f"username {entry.username}, {groups}, {policies}"


def _no_form(what: str, instead: str) -> MappingError:
    return MappingError(
        f"EKS access entries cannot map {what}: each entry maps one IAM user or role",
        hint=f"use {instead}, or --store aws-auth / crd / file",
    )


def entries_from_state(state: Any) -> list[AccessEntry]:
    """The entries a backup holds; ConfigError when it is not an access-entries backup."""
    if not isinstance(state, list):
        raise ConfigError("this backup does not hold access entries")
    try:
        return [AccessEntry.from_json(item) for item in state]
    except MappingError as exc:
        raise ConfigError(f"this backup does not hold access entries: {exc.message}") from None


def lint_entries(document: AccessEntriesMappings) -> list[Finding]:
    """What `kubeiam mapping lint` adds for access entries (the mapping-model checks run too;
    their ``system-masters`` finding is replaced by ``cluster-admin-policy`` here, since an entry
    gets cluster-admin from a policy, never from the group)."""
    findings: list[Finding] = []
    admins = 0
    for index, entry in enumerate(document.ordered()):
        where = f"{Location(_SECTION, index)} {entry.principal_arn}"
        if entry.is_cluster_admin:
            admins += 1
            findings.append(
                Finding(
                    Level.WARNING,
                    CLUSTER_ADMIN_POLICY_CODE,
                    where,
                    "AmazonEKSClusterAdminPolicy on the cluster: full cluster-admin that no RBAC "
                    "rule can restrict; prefer a narrower policy or a namespace scope",
                )
            )
        if entry.entry_type == STANDARD and not entry.groups and not entry.policies:
            findings.append(
                Finding(
                    Level.WARNING,
                    GRANTS_NOTHING,
                    where,
                    "no groups and no access policies: the principal can authenticate but is "
                    "allowed nothing beyond what every authenticated user gets",
                )
            )
        for grant in entry.policies:
            if grant.name not in ACCESS_POLICIES:
                findings.append(
                    Finding(
                        Level.WARNING,
                        UNKNOWN_POLICY,
                        where,
                        f"access policy {grant.policy_arn} is not one kubeiam knows: what it "
                        "permits is not checked (newer than this kubeiam?)",
                    )
                )
            elif grant.namespaces and cluster_only(grant.name):
                findings.append(
                    Finding(
                        Level.WARNING,
                        NAMESPACE_SCOPE_NO_EFFECT,
                        where,
                        f"{grant.name} is a cluster-wide policy: scoped to namespaces "
                        f"{', '.join(grant.namespaces)} it grants nothing of what it is for",
                    )
                )
    if document.entries and not admins:
        findings.append(
            Finding(
                Level.WARNING,
                NO_CLUSTER_ADMIN,
                "",
                "no access entry has AmazonEKSClusterAdminPolicy on the cluster: in mode API "
                "nobody (not even the cluster creator) could repair RBAC through the API",
            )
        )
    return findings


#: The lint codes of access entries.
CLUSTER_ADMIN_POLICY_CODE = "cluster-admin-policy"
GRANTS_NOTHING = "grants-nothing"
UNKNOWN_POLICY = "unknown-policy"
NAMESPACE_SCOPE_NO_EFFECT = "namespace-scope-no-effect"
NO_CLUSTER_ADMIN = "no-cluster-admin"
