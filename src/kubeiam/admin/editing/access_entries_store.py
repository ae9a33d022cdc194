"""A cluster's EKS access entries as a mapping store (``--store access-entries``).

Reads every entry with its access policies through
:class:`~kubeiam.eks.entries_client.EntriesClient` and writes a changed document back as the
few API calls that make EKS hold it: delete, create (then associate), update username and groups,
associate / disassociate policies.

EKS has no resourceVersion, so "write only if nothing changed since the read" is checked per
entry: each entry about to be changed or deleted is read again first and must still be what the
snapshot held, and a create that finds the principal taken (ResourceInUseException) is a
conflict too. Either way :class:`~kubeiam.errors.ConflictError`, and the editor reads again. A
new entry whose policies cannot all be associated is deleted again, so a failed add leaves
nothing behind.

Backups: a local file, ``$KUBEIAM_STATE_DIR`` (default ``$XDG_STATE_HOME/kubeiam``, else
``~/.local/state/kubeiam``) ``/access-entries/<account>-<region>-<cluster>.kubeiam-backup.json``,
0600, the same bounded history as the file store. Not a ConfigMap beside aws-auth: on an API-mode
cluster these entries are what lets the admin reach the Kubernetes API at all, so a history kept
inside the cluster would be out of reach exactly after the bad edit it is meant to undo; the
history must be readable with AWS credentials alone. EKS itself has nowhere to keep it (tags hold
256 characters). `kubeiam mapping backup --output-file` makes a copy to share.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from kubeiam.admin.editing.access_entries_document import (
    ACCESS_ENTRIES_BACKEND,
    AccessEntriesMappings,
    entries_from_state,
)
from kubeiam.admin.editing.backups import BackupRecord
from kubeiam.admin.editing.document import MappingDocument
from kubeiam.admin.editing.file_store import FileStore
from kubeiam.admin.editing.store import MappingStore, Snapshot, StoreKind
from kubeiam.admin.editing.store_writer import StoreMappingWriter
from kubeiam.admin.editing.writer import MappingChange
from kubeiam.arn import arn_key, canonicalize_mapping_arn
from kubeiam.eks.access_entries import (
    AccessEntry,
    default_username,
    merge_policies,
    parse_policy_option,
)
from kubeiam.eks.entries_client import ClusterInfo, EntriesClient
from kubeiam.errors import ConflictError, KubeIAMError, MappingError
from kubeiam.mapping.aws_auth import Change

#: Overrides where kubeiam keeps local state (the access-entries store's backups).
STATE_DIR_ENV = "KUBEIAM_STATE_DIR"


def state_dir(environ: Mapping[str, str]) -> Path:
    """``$KUBEIAM_STATE_DIR``, else ``$XDG_STATE_HOME/kubeiam``, else ``~/.local/state/kubeiam``
    (the XDG base directory spec's home of "state data that should persist")."""
    if environ.get(STATE_DIR_ENV):
        return Path(environ[STATE_DIR_ENV])
    if environ.get("XDG_STATE_HOME"):
        return Path(environ["XDG_STATE_HOME"]) / "kubeiam"
    return Path(os.path.expanduser("~")) / ".local" / "state" / "kubeiam"


def backup_path(base: Path, info: ClusterInfo) -> Path:
    """The history file of one cluster (account, region and name identify it)."""
    return base / "access-entries" / f"{info.account}-{info.region}-{info.name}.kubeiam-backup.json"


class AccessEntriesStore:
    """The access entries of one EKS cluster."""

    kind = StoreKind.ACCESS_ENTRIES
    backend = ACCESS_ENTRIES_BACKEND

    def __init__(self, client: EntriesClient, *, state: Path | None = None) -> None:
        self.client = client
        self._state = state if state is not None else state_dir(os.environ)
        self._info: ClusterInfo | None = None
        self._history: FileStore | None = None
        self.backup_notes: list[str] = []

    @property
    def target(self) -> str:
        region = f" ({self._info.region})" if self._info is not None else ""
        return f"access entries of EKS cluster {self.client.cluster}{region}"

    def info(self) -> ClusterInfo:
        """The cluster (read once per command)."""
        if self._info is None:
            self._info = self.client.describe_cluster()
        return self._info

    @property
    def backup_file(self) -> Path:
        return backup_path(self._state, self.info())

    def _file_history(self) -> FileStore:
        # The file store's history (lock, bounded, compressed, corrupt one kept aside) kept
        # beside no mapping file: only its backups/save_backup are used.
        if self._history is None:
            path = self.backup_file
            self._history = FileStore(
                path.with_name(path.name.removesuffix(".kubeiam-backup.json"))
            )
        return self._history

    def open(self, state: Any) -> MappingDocument:
        return AccessEntriesMappings(entries_from_state(state), partition=self.info().partition)

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        info = self.info()
        self.client.require_entry_api(info)
        entries = self.client.read_entries()
        version = {arn_key(e.principal_arn): e for e in entries}
        return Snapshot(AccessEntriesMappings(entries, partition=info.partition), version, True)

    async def check_principal(self, arn: str) -> None:
        """NotFoundError when IAM has no such principal (before a dry run shows its diff); an
        ARN that is no IAM user or role ARN is left to the document to refuse."""
        try:
            canonicalize_mapping_arn(arn)
        except MappingError:
            return
        self.client.check_principal(arn)

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None:
        assert isinstance(document, AccessEntriesMappings)
        old: Mapping[str, AccessEntry] = snapshot.version
        new = document.entries
        changed = [k for k in old if k not in new or new[k] != old[k]]
        for key in changed:  # still as read? (EKS has no resourceVersion to send)
            if self.client.read_entry(old[key].principal_arn) != old[key]:
                raise ConflictError(f"the access entry of {old[key].principal_arn} changed")
        for key in sorted(changed):
            before, after = old[key], new.get(key)
            if after is None or after.entry_type != before.entry_type:
                self.client.delete(before.principal_arn)
                if after is not None:
                    self._create(after)
            else:
                self._change(before, after)
        for key in sorted(set(new) - set(old)):
            self._create(new[key])

    def _create(self, entry: AccessEntry) -> None:
        self.client.check_principal(entry.principal_arn)
        given = entry.username != default_username(entry.principal_arn, entry.entry_type)
        try:
            self.client.create(entry, username_given=given)
        except ConflictError:
            raise
        except KubeIAMError:
            # Policies that could not be associated: take the new entry away again, so a
            # failed add leaves nothing half-made.
            if self.client.read_entry(entry.principal_arn) is not None:
                self.client.delete(entry.principal_arn)
            raise

    def _change(self, before: AccessEntry, after: AccessEntry) -> None:
        if (before.username, before.groups) != (after.username, after.groups):
            self.client.update(after)
        old_policies = {p.policy_arn: p for p in before.policies}
        new_policies = {p.policy_arn: p for p in after.policies}
        for arn, grant in sorted(new_policies.items()):
            if old_policies.get(arn) != grant:
                self.client.associate(after.principal_arn, grant)
        for arn in sorted(set(old_policies) - set(new_policies)):
            self.client.disassociate(after.principal_arn, arn)

    async def backups(self) -> list[BackupRecord]:
        history = self._file_history()
        records = await history.backups()
        self.backup_notes = history.backup_notes
        return records

    async def save_backup(self, record: BackupRecord) -> list[str]:
        return await self._file_history().save_backup(record)

    async def count_nodes(self) -> int | None:
        return None

    async def close(self) -> None:
        return None


class AccessEntriesWriter(StoreMappingWriter):
    """The IAM workflows' :class:`~kubeiam.admin.editing.writer.MappingWriter` over a cluster's
    access entries: every entry it adds carries ``policies`` (``--access-policy`` values), and
    the principal is checked to exist first (a new role may take a moment to be seen)."""

    def __init__(
        self,
        open_store: Callable[[], MappingStore],
        *,
        policies: Sequence[str] = (),
        now: Callable[[], datetime],
        by: str = "",
        target: str = "",
        dry_run: bool = False,
    ) -> None:
        super().__init__(open_store, now=now, by=by, target=target, dry_run=dry_run)
        self._policies = tuple(policies)

    def _upsert(self, kind: str, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        partition = arn.split(":")[1] if arn.count(":") >= 5 else "aws"
        grants = merge_policies(parse_policy_option(p, partition) for p in self._policies)

        def upsert(document: MappingDocument) -> Change:
            assert isinstance(document, AccessEntriesMappings)
            return document.upsert_entry(kind, arn, username, groups, grants, replace=False)

        change = self._edit(upsert, f"iam add-{kind} {arn}", creates=True)
        return MappingChange.UNCHANGED if change is Change.UNCHANGED else MappingChange.ADDED

    def add_user(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        return self._upsert("user", arn, username, groups)

    def add_role(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        return self._upsert("role", arn, username, groups)
