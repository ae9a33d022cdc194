"""Guards of mapping edits: node entries and the last system:masters entry are never removed
or changed without ``force``.
"""

from __future__ import annotations

from kubeiam.errors import GuardError
from kubeiam.mapping.model import AccountMapping, LoadResult, MappingEntry, RoleMapping


def same_mapping(a: MappingEntry, b: MappingEntry) -> bool:
    """True when ``b`` grants what ``a`` grants (same username and groups)."""
    if isinstance(a, AccountMapping) or isinstance(b, AccountMapping):
        return type(a) is type(b)
    return a.username == b.username and a.groups == b.groups


def check_guards(before: LoadResult, after: LoadResult, *, force: bool) -> list[str]:
    """Refuse (:class:`GuardError`) changes that lock nodes or every admin out, unless ``force``.

    Returns what ``force`` overrode, for the command to say so.
    """
    problems: list[str] = []
    new = {e.entry_key: e for e in after.mappings.entries}
    for entry in before.mappings.entries:
        if not entry.is_node:
            continue
        now = new.get(entry.entry_key)
        if now is not None and same_mapping(entry, now):
            continue
        what = "removes" if now is None else "changes"
        name = entry.display_name
        who = f"role {name}" if isinstance(entry, RoleMapping) else name
        problems.append(
            f"this {what} the node entry for {name}: every node using {who} would "
            "lose access to the cluster (kubelets are refused, nodes go NotReady, pods are "
            "evicted); there is no undo on EKS once nodes are gone"
        )
    masters_before = [e for e in before.mappings.entries if e.grants_masters]
    masters_after = [e for e in after.mappings.entries if e.grants_masters]
    if masters_before and not masters_after:
        names = ", ".join(e.display_name for e in masters_before)
        # An access entry is cluster-admin through a policy, never system:masters.
        grant = " / ".join(
            sorted({getattr(e, "admin_grant", "system:masters") for e in masters_before})
        )
        problems.append(
            f"this removes the last {grant} mapping ({names}): no mapped identity would "
            "keep cluster-admin, and only the cluster creator could repair it"
        )
    if problems and not force:
        raise GuardError(
            "refused: " + "; ".join(problems),
            hint="pass --force if you really mean it (the previous state is saved first; "
            "`kubeiam mapping restore --latest` rolls back)",
        )
    return problems
