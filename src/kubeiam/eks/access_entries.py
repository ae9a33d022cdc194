"""EKS access entries as values, and the rules kubeiam checks before asking EKS (pure).

An access entry maps one IAM principal (a user, or a role named WITH its IAM path) to a
Kubernetes username and groups, and carries access policies, each with a scope (``cluster``, or
``namespace`` with namespaces). kubeiam checks what EKS would refuse before sending anything, so a
``--dry-run`` shows the refusal and a multi-step write never stops half-way on bad input. The rules
come from AWS's "Create access entries" page (:data:`CREATE_URL`) and "Associate access policies"
(:data:`ASSOCIATE_URL`); where kubeiam is stricter than EKS the comment says ``CHOSEN:``.

This module is kubeiam's reading of EKS; :mod:`kubeiam.localaws.eks_rules` is the emulator's own,
written separately on purpose (the emulator is the independent check).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubeiam.eks.access_policies import (
    ACCESS_POLICIES,
    CLUSTER_ADMIN_POLICY,
    ScopeType,
    policy_arn,
    policy_name_from_arn,
)
from kubeiam.errors import MappingError
from kubeiam.suggestions import closest_names, quote_name

CREATE_URL = "https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html"
ASSOCIATE_URL = "https://docs.aws.amazon.com/eks/latest/userguide/access-policies.html"

#: [CREATE] "If you don't specify a type, Amazon EKS automatically sets the type to STANDARD".
STANDARD = "STANDARD"
#: [CREATE] the node entry types: EKS sets their username and groups; no policy but Auto Mode's.
NODE_TYPES = frozenset({"EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX"})
ENTRY_TYPES = frozenset({STANDARD, *NODE_TYPES})
#: [CREATE] the groups EKS gives node entries (what aws-auth's node rows said explicitly).
NODE_GROUPS = ("system:bootstrappers", "system:nodes")
#: [CREATE] a username "can't start with system:, eks:, aws:, amazon:, or iam:".
RESERVED_USERNAME_PREFIXES = ("system:", "eks:", "aws:", "amazon:", "iam:")
#: EKS refuses group names starting with ``system:`` ("The kubernetes group name system:masters
#: is invalid, it cannot start with system:"); the access policies replace system:masters.
RESERVED_GROUP_PREFIX = "system:"
#: [CREATE] "the username must include a colon before {{SessionName}}".
SESSION_PLACEHOLDERS = ("{{SessionName}}", "{{SessionNameRaw}}")
#: [ASSOCIATE] namespace names with the ``*`` wildcard ("dev-*"): RFC 1123 labels.
_NAMESPACE = re.compile(r"^[a-z0-9*]([-a-z0-9*]{0,61}[a-z0-9*])?$")


@dataclass(frozen=True, slots=True, order=True)
class PolicyGrant:
    """One access policy associated with an entry, and its scope."""

    policy_arn: str
    scope: ScopeType = ScopeType.CLUSTER
    namespaces: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return policy_name_from_arn(self.policy_arn) or self.policy_arn

    @property
    def is_cluster_admin(self) -> bool:
        """AmazonEKSClusterAdminPolicy on the whole cluster: what system:masters was."""
        return self.name == CLUSTER_ADMIN_POLICY and self.scope is ScopeType.CLUSTER

    def describe(self) -> str:
        """``AmazonEKSViewPolicy`` (cluster) or ``AmazonEKSEditPolicy:dev,test``."""
        return self.name + (":" + ",".join(self.namespaces) if self.namespaces else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "policyArn": self.policy_arn,
            "accessScope": {"type": self.scope.value, "namespaces": list(self.namespaces)},
        }


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One access entry as EKS holds it (the fields kubeiam manages)."""

    principal_arn: str
    username: str
    groups: tuple[str, ...] = ()
    entry_type: str = STANDARD
    policies: tuple[PolicyGrant, ...] = field(default=())
    #: When EKS created the entry (``createdAt``), if read from EKS. Not part of what kubeiam
    #: manages (left out of equality and of :meth:`to_json`): the access report compares it
    #: with the IAM principal's CreateDate to find an entry made for an earlier principal.
    created_at: datetime | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        """``user`` or ``role``."""
        return "user" if ":user/" in self.principal_arn else "role"

    @property
    def is_node(self) -> bool:
        return self.entry_type in NODE_TYPES

    @property
    def is_cluster_admin(self) -> bool:
        return any(p.is_cluster_admin for p in self.policies)

    def to_json(self) -> dict[str, Any]:
        return {
            "principalArn": self.principal_arn,
            "type": self.entry_type,
            "username": self.username,
            "kubernetesGroups": list(self.groups),
            "accessPolicies": [p.to_json() for p in self.policies],
        }

    @classmethod
    def from_json(cls, raw: Any) -> AccessEntry:
        """An entry as :meth:`to_json` wrote it; MappingError saying what is wrong otherwise."""
        try:
            policies = tuple(
                sorted(
                    PolicyGrant(
                        str(p["policyArn"]),
                        ScopeType(p["accessScope"]["type"]),
                        tuple(str(n) for n in p["accessScope"].get("namespaces") or ()),
                    )
                    for p in raw.get("accessPolicies") or ()
                )
            )
            return cls(
                str(raw["principalArn"]),
                str(raw["username"]),
                tuple(str(g) for g in raw.get("kubernetesGroups") or ()),
                str(raw.get("type") or STANDARD),
                policies,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MappingError(
                f"not an access entry record ({type(exc).__name__}: {exc})"
            ) from None


def default_username(principal_arn: str, entry_type: str = STANDARD) -> str:
    """[CREATE] "Username value that Amazon EKS automatically sets": the user's ARN; for a role
    the assumed-role STS ARN with ``{{SessionName}}`` and without the IAM path; ``system:node:``
    names for node types (EC2, absent from that table, taken as EC2_LINUX)."""
    if entry_type in ("EC2_LINUX", "EC2_WINDOWS", "EC2"):
        return "system:node:{{EC2PrivateDNSName}}"
    if entry_type in ("FARGATE_LINUX", "HYBRID_LINUX"):
        return "system:node:{{SessionName}}"
    if ":user/" in principal_arn:
        return principal_arn
    partition, account = principal_arn.split(":")[1], principal_arn.split(":")[4]
    name = principal_arn.rsplit("/", 1)[-1]
    return f"arn:{partition}:sts::{account}:assumed-role/{name}/{{{{SessionName}}}}"


def check_username(username: str) -> None:
    """[CREATE] the reserved prefixes and the colon before ``{{SessionName}}``."""
    if not username:
        raise MappingError("the username is empty", hint="pass --username NAME, or omit it")
    for prefix in RESERVED_USERNAME_PREFIXES:
        if username.startswith(prefix):
            raise MappingError(
                f"username {quote_name(username)} starts with {prefix!r}, which EKS reserves "
                "for access entries",
                hint="choose another username (EKS refuses system:, eks:, aws:, amazon: and iam:)",
            )
    for placeholder in SESSION_PLACEHOLDERS:
        at = username.find(placeholder)
        if at != -1 and ":" not in username[:at]:
            raise MappingError(
                f"username {quote_name(username)}: EKS needs a colon before {placeholder}",
                hint=f"e.g. dev:{placeholder}",
            )


def check_groups(groups: Sequence[str]) -> None:
    """EKS refuses empty group names and every ``system:`` group in an access entry."""
    for group in groups:
        if not group:
            raise MappingError("a group name is empty", hint="drop the empty --group value")
        if group.startswith(RESERVED_GROUP_PREFIX):
            hint = (
                "associate --access-policy AmazonEKSClusterAdminPolicy instead"
                if group == "system:masters"
                else "use a group of your own and bind it with RBAC"
            )
            raise MappingError(
                f"group {quote_name(group)}: EKS refuses system: groups in access entries",
                hint=hint,
            )


#: CHOSEN: policies whose documented rules grant nothing under a namespace scope (every rule is
#: about cluster-scoped resources), and the EKS Auto Mode component policies AWS describes for
#: cluster scope only: EKS accepts namespaces for them, but the association would grant nothing
#: or not what AWS describes, so kubeiam refuses it instead of writing a silent no-op.
def cluster_only(name: str) -> bool:
    policy = ACCESS_POLICIES.get(name)
    if policy is None:
        return False
    if not policy.rules_documented:
        return True
    return all(not rule.namespaced for rule in policy.rules)


def parse_policy_option(text: str, partition: str = "aws") -> PolicyGrant:
    """``--access-policy POLICY[:ns1,ns2]``: a short name or an access-policy ARN, and the
    namespaces of a ``namespace`` scope (none: ``cluster`` scope).

    An unknown name is refused naming the closest known names; an ARN of another partition or
    service is refused; namespaces on a cluster-only policy (:func:`cluster_only`) are refused.
    """
    spec = text.strip()
    if spec.startswith("arn:"):
        # An ARN has five colons before the resource; namespaces follow a sixth.
        parts = spec.split(":", 6)
        ref = ":".join(parts[:6])
        ns_text = parts[6] if len(parts) == 7 else None
        name = policy_name_from_arn(ref)
        if name is None:
            raise MappingError(
                f"--access-policy {quote_name(spec)} is not an EKS access-policy ARN",
                hint=f"write a name (AmazonEKSViewPolicy) or {policy_arn('NAME', partition)}",
            )
        if ref.split(":")[1] != partition:
            raise MappingError(
                f"--access-policy {quote_name(ref)} is in partition {ref.split(':')[1]}, the "
                f"cluster in {partition}",
                hint=f"use {policy_arn(name, partition)}, or the short name {name}",
            )
    else:
        name, sep, rest = spec.partition(":")
        ns_text = rest if sep else None
    if name not in ACCESS_POLICIES:
        closest = closest_names(name, ACCESS_POLICIES)
        suggestion = f" (closest: {', '.join(closest)})" if closest else ""
        raise MappingError(
            f"unknown access policy {quote_name(name)}{suggestion}",
            hint="`aws eks list-access-policies` lists them; e.g. AmazonEKSViewPolicy, "
            "AmazonEKSEditPolicy, AmazonEKSAdminPolicy, AmazonEKSClusterAdminPolicy",
        )
    if ns_text is None:
        return PolicyGrant(policy_arn(name, partition))
    namespaces = tuple(n.strip() for n in ns_text.split(","))
    if not namespaces or not all(namespaces):
        raise MappingError(
            f"--access-policy {quote_name(spec)}: an empty namespace",
            hint=f"write {name}:ns1,ns2, or {name} alone for the whole cluster",
        )
    for namespace in namespaces:
        if not _NAMESPACE.match(namespace):
            raise MappingError(
                f"--access-policy {quote_name(spec)}: {quote_name(namespace)} is not a namespace "
                "name (lower-case letters, digits, '-', and '*' as a wildcard)",
            )
    if cluster_only(name):
        raise MappingError(
            f"--access-policy {quote_name(spec)}: {name} is a cluster-wide policy; in a "
            "namespace scope it would grant nothing of what it is for",
            hint=f"pass --access-policy {name} (cluster scope)",
        )
    return PolicyGrant(policy_arn(name, partition), ScopeType.NAMESPACE, tuple(sorted(namespaces)))


def merge_policies(grants: Iterable[PolicyGrant]) -> tuple[PolicyGrant, ...]:
    """One grant per policy (EKS associates each policy once): the same policy twice is refused
    unless it says the same thing."""
    by_arn: dict[str, PolicyGrant] = {}
    for grant in grants:
        seen = by_arn.get(grant.policy_arn)
        if seen is not None and seen != grant:
            raise MappingError(
                f"--access-policy {grant.name} is given twice with different scopes "
                f"({seen.describe()} and {grant.describe()})",
                hint="EKS associates a policy once per entry: give it once, namespaces joined "
                "with commas",
            )
        by_arn[grant.policy_arn] = grant
    return tuple(sorted(by_arn.values()))
