"""Mapping entries (any store) as the report's rows (pure).

Every store (aws-auth, the IAMIdentityMapping CRD, kubeiam's server file) loads into the same
:mod:`kubeiam.mapping.model` entries; :func:`rows_from_entries` turns them into
:class:`~kubeiam.access.report.MappingRow` values, keeping username templates as written.
EKS access entries are not mapping-model entries; their reader builds rows directly (with the
principal id and the associated access policies).
"""

from __future__ import annotations

from collections.abc import Iterable

from kubeiam.access.report import MappingRow, RowKind
from kubeiam.mapping.model import (
    AccountMapping,
    GroupMapping,
    MappingEntry,
    RoleMapping,
    SSOMapping,
    UserMapping,
)


def rows_from_entries(entries: Iterable[MappingEntry], source: str) -> list[MappingRow]:
    """One row per entry of the store named ``source``, in the store's order."""
    return [_row(entry, source) for entry in entries]


def _row(entry: MappingEntry, source: str) -> MappingRow:
    if isinstance(entry, RoleMapping):
        arn = entry.canonical_arn or entry.rolearn
        return MappingRow(source, RowKind.ROLE, arn, entry.username, entry.groups, entry.userid)
    if isinstance(entry, UserMapping):
        arn = entry.canonical_arn or entry.userarn
        return MappingRow(source, RowKind.USER, arn, entry.username, entry.groups, entry.userid)
    if isinstance(entry, SSOMapping):
        return MappingRow(
            source,
            RowKind.SSO,
            entry.permission_set_name,
            entry.username,
            entry.groups,
            account=entry.account_id,
        )
    if isinstance(entry, GroupMapping):
        return MappingRow(source, RowKind.GROUP, entry.grouparn, entry.username, entry.groups)
    if isinstance(entry, AccountMapping):
        # mapAccounts: each caller is named by its own canonical ARN and gets no groups.
        return MappingRow(source, RowKind.ACCOUNT, entry.account_id, "")
    raise TypeError(f"not a mapping entry: {type(entry).__name__}")  # pragma: no cover
