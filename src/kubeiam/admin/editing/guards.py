"""Guards of mapping edits: node entries and the last system:masters entry are never removed
or changed without ``force``.
"""

from __future__ import annotations

from kubeiam.admin.editing.writer import (
    NODE_GROUPS,
    NODE_USERNAME_PREFIX,
)
from kubeiam.arn import arn_key
from kubeiam.errors import GuardError
from kubeiam.mapping.model import (
    AccountMapping,
    GroupMapping,
    LoadResult,
    MappingEntry,
    RoleMapping,
    SSOMapping,
)

MASTERS = "system:masters"


def is_node_entry(entry: MappingEntry) -> bool:
    """True for entries that let nodes join (``system:node:*`` usernames or node groups)."""
    if isinstance(entry, AccountMapping):
        return False
    return entry.username.startswith(NODE_USERNAME_PREFIX) or bool(set(entry.groups) & NODE_GROUPS)


def entry_key(entry: MappingEntry) -> tuple[str, ...]:
    """What identifies an entry across versions of a document."""
    if isinstance(entry, AccountMapping):
        return ("account", entry.account_id)
    if isinstance(entry, SSOMapping):
        return ("sso", *entry.key)
    if isinstance(entry, GroupMapping):
        return ("group", entry.key)
    if isinstance(entry, RoleMapping):
        return ("role", arn_key(entry.canonical_arn) or entry.userid)
    return ("user", arn_key(entry.canonical_arn) or entry.userid)


def entry_name(entry: MappingEntry) -> str:
    """The ARN, permission set or account an entry maps, for messages."""
    if isinstance(entry, AccountMapping):
        return f"account {entry.account_id}"
    if isinstance(entry, SSOMapping):
        return f"permission set {entry.permission_set_name} in account {entry.account_id}"
    if isinstance(entry, GroupMapping):
        return f"IAM group {entry.grouparn}"
    if isinstance(entry, RoleMapping):
        return entry.rolearn
    return entry.userarn


def same_mapping(a: MappingEntry, b: MappingEntry) -> bool:
    if isinstance(a, AccountMapping) or isinstance(b, AccountMapping):
        return type(a) is type(b)
    return a.username == b.username and a.groups == b.groups


def check_guards(before: LoadResult, after: LoadResult, *, force: bool) -> list[str]:
    """Refuse (:class:`GuardError`) changes that lock nodes or every admin out, unless ``force``.

    Returns what ``force`` overrode, for the command to say so.
    """
    problems: list[str] = []
    new = {entry_key(e): e for e in after.mappings.entries}
    for entry in before.mappings.entries:
        if not is_node_entry(entry):
            continue
        now = new.get(entry_key(entry))
        if now is not None and same_mapping(entry, now):
            continue
        what = "removes" if now is None else "changes"
        who = f"role {entry_name(entry)}" if isinstance(entry, RoleMapping) else entry_name(entry)
        problems.append(
            f"this {what} the node entry for {entry_name(entry)}: every node using {who} would "
            "lose access to the cluster (kubelets are refused, nodes go NotReady, pods are "
            "evicted); there is no undo on EKS once nodes are gone"
        )
    masters_before = [e for e in before.mappings.entries if grants_masters(e)]
    masters_after = [e for e in after.mappings.entries if grants_masters(e)]
    if masters_before and not masters_after:
        names = ", ".join(entry_name(e) for e in masters_before)
        problems.append(
            f"this removes the last system:masters mapping ({names}): no mapped identity would "
            "keep cluster-admin, and only the cluster creator could repair it"
        )
    if problems and not force:
        raise GuardError(
            "refused: " + "; ".join(problems),
            hint="pass --force if you really mean it (the previous state is saved first; "
            "`kubeiam mapping restore --latest` rolls back)",
        )
    return problems


def grants_masters(entry: MappingEntry) -> bool:
    return not isinstance(entry, AccountMapping) and MASTERS in entry.groups
