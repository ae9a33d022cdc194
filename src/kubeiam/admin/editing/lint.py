"""`kubeiam mapping lint`: every problem of a loaded mapping, with a code per kind (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kubeiam.mapping.chain import DEFAULT_RESERVED_PREFIX_CONFIG
from kubeiam.mapping.model import (
    RESERVED_GROUP,
    SESSION_TEMPLATE,
    AccountMapping,
    GroupMapping,
    LoadResult,
    RoleMapping,
    Severity,
    SSOMapping,
    UserMapping,
    reserved_group_problems,
)
from kubeiam.mapping.templates import DEFAULT_RESERVED_PREFIXES, reserved_prefix_of


class Level(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding."""

    level: Level
    code: str
    location: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "level": self.level.value,
            "code": self.code,
            "location": self.location,
            "message": self.message,
        }


def lint(
    result: LoadResult,
    *,
    backend: str,
    node_count: int | None = None,
) -> list[Finding]:
    """Every problem of a loaded mapping: the loader's issues and kubeiam's own checks."""
    findings: list[Finding] = []
    for issue in result.issues:
        code = issue.code
        level = Level.WARNING if issue.severity is Severity.WARNING else Level.ERROR
        if code in _ERRORS_FOR_LINT:
            level = Level.ERROR
        findings.append(Finding(level, code, str(issue.location), issue.message))
    reserved = DEFAULT_RESERVED_PREFIX_CONFIG.get(backend, ())
    entries = result.mappings.entries
    accounts = {e.account_id for e in entries if isinstance(e, AccountMapping)}
    for entry in entries:
        where = str(entry.location) if entry.location is not None else entry.display_name
        if isinstance(entry, AccountMapping):
            findings.append(
                Finding(
                    Level.WARNING,
                    "account-wide",
                    where,
                    f"every IAM principal of account {entry.account_id} is accepted (username = "
                    "its ARN); prefer mapping the roles and users that need access",
                )
            )
            continue
        if isinstance(entry, GroupMapping):
            findings.append(
                Finding(
                    Level.WARNING,
                    "iam-group",
                    where,
                    f"{entry.display_name} is matched only by kubeiam server with "
                    "server.iamGroupMapping on (EKS's own authenticator ignores mapGroups), "
                    "for IAM users only; removal from the group applies after iamGroupCacheTTL",
                )
            )
        findings += _session_groups(entry, where)
        prefix = reserved_prefix_of(entry.username, reserved)
        if prefix is not None:
            findings.append(
                Finding(
                    Level.ERROR,
                    "reserved-prefix",
                    where,
                    f"username {entry.username!r} starts with {prefix!r}, which backend "
                    f"{backend} reserves: the server denies this entry",
                )
            )
        elif not entry.is_node and reserved_prefix_of(entry.username, DEFAULT_RESERVED_PREFIXES):
            findings.append(
                Finding(
                    Level.WARNING,
                    "reserved-prefix",
                    where,
                    f"username {entry.username!r} uses a prefix Kubernetes and EKS reserve for "
                    "their own components; pick a name of your own",
                )
            )
        if entry.grants_masters:
            findings.append(
                Finding(
                    Level.WARNING,
                    "system-masters",
                    where,
                    f"{entry.display_name} is granted system:masters: full cluster-admin that no "
                    "RBAC rule can restrict; prefer a group bound to a ClusterRole",
                )
            )
        account = entry.account_id
        if account in accounts:
            findings.append(
                Finding(
                    Level.WARNING,
                    "shadowed",
                    where,
                    f"account {account} is also mapped as a whole; this entry takes precedence "
                    "for its principal",
                )
            )
    if node_count and not any(e.is_node for e in entries):
        level = Level.ERROR if backend != "CRD" else Level.WARNING
        findings.append(
            Finding(
                level,
                "missing-node-role",
                "",
                f"{node_count} node(s) exist but no entry maps nodes (username "
                "system:node:{{EC2PrivateDNSName}}, groups system:bootstrappers and "
                "system:nodes): nodes using IAM authentication cannot join"
                + ("" if level is Level.ERROR else " unless another backend maps them"),
            )
        )
    return findings


#: Loader warnings lint reports as errors: the server loads the entry, but it can never apply as
#: written (every caller is denied or gets an empty name).
_ERRORS_FOR_LINT = frozenset({SESSION_TEMPLATE, RESERVED_GROUP})
#: Placeholders whose value the caller chooses: anyone allowed to assume the role names the
#: session (``aws sts assume-role --role-session-name``).
_CALLER_CHOSEN = ("SessionName", "SessionNameRaw")


def _session_groups(
    entry: RoleMapping | UserMapping | SSOMapping | GroupMapping, where: str
) -> list[Finding]:
    """Groups the caller's session name decides (issue 9): whoever may assume the role picks
    the group by naming the session (a warning). Where a placeholder sits inside a reserved
    prefix the loader already says the entry only denies (``reserved-group``, an error); where
    the session could form a reserved prefix (``{{SessionName}}:masters``) the server refuses
    those renderings (:func:`~kubeiam.mapping.templates.check_rendered_group`)."""
    out = []
    for group in entry.groups:
        if not any("{{" + name + "}}" in group for name in _CALLER_CHOSEN):
            continue
        if reserved_group_problems([group]):
            continue  # reported by the loader
        out.append(
            Finding(
                Level.WARNING,
                "session-group",
                where,
                f"group {group!r} is chosen by the caller: whoever may assume the role names "
                "the session, and with it this group; prefer fixed groups",
            )
        )
    return out
