"""Where `kubeiam mapping` reads and writes: aws-auth, IAMIdentityMapping objects, a local file,
EKS access entries.

Each store reads a :class:`Snapshot` (a fresh document plus the version it was read at) and writes
a changed document back **only if nothing changed since that read**: the ConfigMap is replaced
with its ``resourceVersion``; IAMIdentityMapping objects are created, replaced with their
``resourceVersion`` or deleted one by one; the file is compared under its lock before the atomic
rename. Otherwise :class:`~kubeiam.errors.ConflictError`, and the editor reads again.

Every store also keeps a bounded history of previous states (:class:`BackupRecord`):

* aws-auth: ConfigMap ``kube-system/aws-auth-kubeiam-backup``;
* CRD: ConfigMap ``kube-system/iamidentitymapping-kubeiam-backup``;
* file: a sibling file ``<file>.kubeiam-backup.json`` (0600);
* access-entries: a local file per cluster (see :mod:`.access_entries_store` for where and why).

The server's RBAC (deploy/rbac.yaml) grants nothing on these objects: only admins read them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kubeiam.admin.editing.document import MappingDocument

if TYPE_CHECKING:
    # A type only: the backups module names the store kinds defined here.
    from kubeiam.admin.editing.backups import BackupRecord


class StoreKind(enum.Enum):
    """The stores `kubeiam mapping --store` names."""

    AWS_AUTH = "aws-auth"
    CRD = "crd"
    FILE = "file"
    ACCESS_ENTRIES = "access-entries"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A store's content as read, and the version it was read at (for the conditional write)."""

    document: MappingDocument
    #: aws-auth: the ConfigMap or None; CRD: name -> object; file: the text or None.
    version: Any
    exists: bool


class MappingStore(Protocol):
    """One place mappings live."""

    kind: StoreKind
    #: The server backend that reads this store (for `explain`).
    backend: str

    @property
    def target(self) -> str: ...

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        """The store's content. ``missing_ok``: an absent file is an empty document (the edits
        that may create one); otherwise a missing file is :class:`ConfigError` ("no such file").
        An absent aws-auth or CRD set is empty either way (the cluster has none yet)."""
        ...

    def open(self, state: Any) -> MappingDocument:
        """A document holding a backed-up ``state``."""
        ...

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None: ...

    async def backups(self) -> list[BackupRecord]: ...

    async def save_backup(self, record: BackupRecord) -> list[str]:
        """Add ``record`` to the history; returns notes to show (a corrupt history kept aside)."""
        ...

    #: What reading the history found wrong (unreadable records kept, not used).
    backup_notes: list[str]

    async def count_nodes(self) -> int | None:
        """Node objects in the cluster, or None when the store has no cluster."""
        ...

    async def close(self) -> None: ...
