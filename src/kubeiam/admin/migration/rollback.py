"""`kubeiam migrate rollback`: undo what `migrate apply` did, from its record.

Deletes exactly the RBAC bindings and access entries (with their associations) that apply
created, and gives each entry apply changed its previous username, groups and policies back.
aws-auth is left as it is (apply never changed it). The authentication mode stays where apply
moved it: EKS only moves it forward (CONFIG_MAP -> API_AND_CONFIG_MAP -> API); in
API_AND_CONFIG_MAP with the migrated entries gone, EKS decides from aws-auth again as before.
Refused after `migrate finish` (the cluster then reads access entries only, and deleting them
would lock everyone out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from kubeiam.admin.migration.cluster_side import ClusterSide
from kubeiam.admin.migration.record import BindingRef, MigrationRecord
from kubeiam.eks.access_entries import STANDARD, AccessEntry
from kubeiam.eks.entries_client import EntriesClient
from kubeiam.errors import GuardError, KubeIAMError


@dataclass(frozen=True, slots=True)
class Undone:
    deleted: tuple[str, ...]
    restored: tuple[str, ...]
    bindings: tuple[str, ...]
    mode: str


def undo(
    client: EntriesClient,
    side: ClusterSide | None,
    *,
    created: Sequence[AccessEntry],
    changed: Sequence[tuple[AccessEntry, AccessEntry]],
    bindings: Sequence[BindingRef],
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """Reverse ``bindings``, ``changed`` and ``created``, newest first."""
    for ref in reversed(bindings):
        if side is None:
            raise KubeIAMError(
                f"{ref.describe()} was created by apply and needs the cluster to delete",
                hint="pass --kubeconfig (the one apply used)",
            )
        progress(f"deleting {ref.describe()}")
        side.delete_binding(ref)
    for before, after in reversed(changed):
        progress(f"restoring the access entry of {before.principal_arn}")
        restore(client, before, after)
    for entry in reversed(created):
        progress(f"deleting the access entry of {entry.principal_arn}")
        client.delete(entry.principal_arn)  # its associations go with it


def restore(client: EntriesClient, want: AccessEntry, have: AccessEntry) -> None:
    """Make the entry that holds ``have`` hold ``want`` (username, groups, policies)."""
    renamed = (want.username, sorted(want.groups)) != (have.username, sorted(have.groups))
    if renamed and want.entry_type == STANDARD:  # EKS sets a node entry's username and groups
        client.update(want)
    for grant in have.policies:
        if grant not in want.policies:
            client.disassociate(want.principal_arn, grant.policy_arn)
    for grant in want.policies:
        if grant not in have.policies:
            client.associate(want.principal_arn, grant)


def rollback(
    record: MigrationRecord,
    client: EntriesClient,
    side: ClusterSide | None,
    *,
    mode: str,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[Undone, MigrationRecord]:
    """Undo ``record``; what was undone and the emptied record."""
    if record.finished:
        raise GuardError(
            f"the migration of {record.cluster} was finished at {record.finished}: the cluster "
            "is in mode API and reads access entries only, rollback would lock everyone out",
            hint="change entries one by one with `kubeiam mapping ... --store access-entries`",
        )
    if record.bindings and side is None:
        raise GuardError(
            f"apply created {len(record.bindings)} RBAC binding(s); rollback needs the cluster "
            "to delete them",
            hint="pass --kubeconfig (the one apply used)",
        )
    undo(
        client,
        side,
        created=record.created,
        changed=record.changed,
        bindings=record.bindings,
        progress=progress,
    )
    done = Undone(
        tuple(e.principal_arn for e in record.created),
        tuple(b.principal_arn for b, _ in record.changed),
        tuple(b.describe() for b in record.bindings),
        mode,
    )
    emptied = replace(record, created=(), changed=(), bindings=())
    return done, emptied
