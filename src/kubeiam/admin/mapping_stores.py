"""Where `kubeiam mapping` reads and writes: aws-auth, IAMIdentityMapping objects, a local file.

Each store reads a :class:`Snapshot` (a fresh document plus the version it was read at) and writes
a changed document back **only if nothing changed since that read**: the ConfigMap is replaced
with its ``resourceVersion``; IAMIdentityMapping objects are created, replaced with their
``resourceVersion`` or deleted one by one; the file is compared under its lock before the atomic
rename. Otherwise :class:`~kubeiam.errors.ConflictError`, and the editor reads again.

Every store also keeps a bounded history of previous states (:class:`BackupRecord`):

* aws-auth: ConfigMap ``kube-system/aws-auth-kubeiam-backup``;
* CRD: ConfigMap ``kube-system/iamidentitymapping-kubeiam-backup``;
* file: a sibling file ``<file>.kubeiam-backup.json`` (0600).

The server's RBAC (deploy/rbac.yaml) grants nothing on these objects: only admins read them.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import random as _random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict

from kubeiam.admin.files import locked_update
from kubeiam.admin.mapping_documents import (
    AwsAuthMappings,
    CrdMappings,
    FileMappings,
    MappingDocument,
)
from kubeiam.errors import ConfigError, ConflictError, KubeAPIError
from kubeiam.kube.objects import NOT_FOUND, status_code
from kubeiam.mapping.aws_auth import AWS_AUTH_NAME, AWS_AUTH_NAMESPACE
from kubeiam.mapping.backends import CRD, DYNAMIC_FILE, EKS_CONFIG_MAP, MOUNTED_FILE

#: How many previous states a store keeps.
BACKUP_HISTORY = 10
BACKUP_NAMESPACE = AWS_AUTH_NAMESPACE
AWS_AUTH_BACKUP_NAME = "aws-auth-kubeiam-backup"
CRD_BACKUP_NAME = "iamidentitymapping-kubeiam-backup"
FILE_BACKUP_SUFFIX = ".kubeiam-backup.json"
#: Attempts at updating the backup ConfigMap when concurrent writers race on it.
_BACKUP_ATTEMPTS = 8


class StoreKind(enum.Enum):
    """The stores `kubeiam mapping --store` names."""

    AWS_AUTH = "aws-auth"
    CRD = "crd"
    FILE = "file"


class BackupWire(TypedDict):
    """One backup as stored (JSON)."""

    revision: int
    time: str
    by: str
    command: str
    store: str
    state: Any


@dataclass(frozen=True, slots=True)
class BackupRecord:
    """A previous state of a store, and who replaced it with what command."""

    revision: int
    time: str
    by: str
    command: str
    store: str
    state: Any

    def to_wire(self) -> BackupWire:
        return BackupWire(
            revision=self.revision,
            time=self.time,
            by=self.by,
            command=self.command,
            store=self.store,
            state=self.state,
        )

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> BackupRecord:
        try:
            return cls(
                int(raw["revision"]),
                str(raw["time"]),
                str(raw.get("by", "")),
                str(raw.get("command", "")),
                str(raw["store"]),
                raw["state"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"not a kubeiam mapping backup (missing or bad {exc})",
                hint="pass a file written by `kubeiam mapping backup -o FILE`",
            ) from None


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

    async def read(self) -> Snapshot: ...

    def open(self, state: Any) -> MappingDocument:
        """A document holding a backed-up ``state``."""
        ...

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None: ...

    async def backups(self) -> list[BackupRecord]: ...

    async def save_backup(self, record: BackupRecord) -> None: ...

    async def count_nodes(self) -> int | None:
        """Node objects in the cluster, or None when the store has no cluster."""
        ...

    async def close(self) -> None: ...


def next_revision(records: list[BackupRecord]) -> int:
    return max((r.revision for r in records), default=0) + 1


# --------------------------------------------------------------------------------------------
# Kubernetes


class _KubeStore:
    """What the aws-auth and CRD stores share: the client, nodes, the backup ConfigMap."""

    backup_name = AWS_AUTH_BACKUP_NAME

    def __init__(
        self,
        client: Any,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.client = client
        self._sleep = sleep
        self._random = random

    async def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            await close()

    async def count_nodes(self) -> int | None:
        from httpx2 import HTTPError
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Node

        try:
            return len([n async for n in self.client.list(Node)])
        except (ApiError, HTTPError) as exc:
            raise KubeAPIError(
                f"cannot list nodes ({status_code(exc)}): {str(exc).splitlines()[0]}",
                hint="lint lists nodes to check the node-role entry: use a kubeconfig that may "
                "list nodes, or pass --no-nodes",
            ) from None

    async def _backup_map(self) -> Mapping[str, Any] | None:
        from kubeiam.kube.objects import get_object
        from kubeiam.kube.resources import config_map

        return await get_object(
            self.client, config_map(), self.backup_name, namespace=BACKUP_NAMESPACE
        )

    async def backups(self) -> list[BackupRecord]:
        obj = await self._backup_map()
        return _records_from_data((obj or {}).get("data") or {})

    async def save_backup(self, record: BackupRecord) -> None:
        """Add ``record`` to the backup ConfigMap (read, change, write; retried on conflict)."""
        from kubeiam.kube.objects import create_object, replace_object
        from kubeiam.kube.resources import config_map

        for attempt in range(_BACKUP_ATTEMPTS):
            obj = await self._backup_map()
            data = dict((obj or {}).get("data") or {})
            records = _records_from_data(data)
            if records and records[-1].state == record.state:
                return  # the same state is already the newest backup
            revision = next_revision(records)
            stored = BackupRecord(
                revision, record.time, record.by, record.command, record.store, record.state
            )
            data[_backup_key(revision)] = json.dumps(stored.to_wire(), sort_keys=True)
            for old in records[: max(0, len(records) + 1 - BACKUP_HISTORY)]:
                data.pop(_backup_key(old.revision), None)
            try:
                if obj is None:
                    await create_object(
                        self.client,
                        config_map(),
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {
                                "name": self.backup_name,
                                "namespace": BACKUP_NAMESPACE,
                                "labels": {"app.kubernetes.io/managed-by": "kubeiam"},
                            },
                            "data": data,
                        },
                    )
                else:
                    await replace_object(self.client, config_map(), {**obj, "data": data})
                return
            except ConflictError:
                await self._sleep(0.05 * (attempt + 1) * (0.5 + self._random()))
        raise ConflictError(
            f"could not save a backup in {BACKUP_NAMESPACE}/{self.backup_name}: it kept "
            "changing under concurrent writers",
            hint="retry the command",
        )


def _backup_key(revision: int) -> str:
    return f"r{revision:06d}.json"


def _records_from_data(data: Mapping[str, Any]) -> list[BackupRecord]:
    records = []
    for key in sorted(data):
        try:
            records.append(BackupRecord.from_wire(json.loads(data[key])))
        except (ConfigError, ValueError, TypeError):
            continue  # not ours; left alone
    return sorted(records, key=lambda r: r.revision)


class AwsAuthStore(_KubeStore):
    """The aws-auth ConfigMap in kube-system."""

    kind = StoreKind.AWS_AUTH
    backend = EKS_CONFIG_MAP
    backup_name = AWS_AUTH_BACKUP_NAME

    @property
    def target(self) -> str:
        return f"ConfigMap {AWS_AUTH_NAMESPACE}/{AWS_AUTH_NAME}"

    def open(self, state: Any) -> MappingDocument:
        if not isinstance(state, dict):
            raise ConfigError("this backup does not hold aws-auth data")
        return AwsAuthMappings({str(k): str(v) for k, v in state.items()})

    async def read(self) -> Snapshot:
        from kubeiam.kube.objects import get_object
        from kubeiam.kube.resources import config_map

        obj = await get_object(
            self.client, config_map(), AWS_AUTH_NAME, namespace=AWS_AUTH_NAMESPACE
        )
        data = (obj or {}).get("data") or {}
        return Snapshot(AwsAuthMappings(data), obj, obj is not None)

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None:
        from kubeiam.kube.objects import create_object, replace_object
        from kubeiam.kube.resources import config_map

        assert isinstance(document, AwsAuthMappings)
        data = document.data
        if snapshot.version is None:
            await create_object(
                self.client,
                config_map(),
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": AWS_AUTH_NAME, "namespace": AWS_AUTH_NAMESPACE},
                    "data": data,
                },
            )
            return
        # Everything but data (labels, annotations, other keys' owners) is sent back as read.
        await replace_object(self.client, config_map(), {**snapshot.version, "data": data})


class CrdStore(_KubeStore):
    """IAMIdentityMapping objects (cluster-scoped)."""

    kind = StoreKind.CRD
    backend = CRD
    backup_name = CRD_BACKUP_NAME

    @property
    def target(self) -> str:
        return "IAMIdentityMapping objects"

    def open(self, state: Any) -> MappingDocument:
        if not isinstance(state, dict):
            raise ConfigError("this backup does not hold IAMIdentityMapping objects")
        return CrdMappings(
            {
                str(name): {
                    "apiVersion": "iamauthenticator.k8s.aws/v1alpha1",
                    "kind": "IAMIdentityMapping",
                    "metadata": {"name": str(name)},
                    "spec": spec,
                }
                for name, spec in state.items()
            }
        )

    async def read(self) -> Snapshot:
        from httpx2 import HTTPError
        from lightkube import ApiError

        from kubeiam.kube.resources import iam_identity_mapping

        try:
            items = [o.to_dict() async for o in self.client.list(iam_identity_mapping())]
        except (ApiError, HTTPError) as exc:
            if status_code(exc) == NOT_FOUND:
                raise KubeAPIError(
                    "the IAMIdentityMapping CRD is not installed in this cluster",
                    hint="kubectl apply -f deploy/crd.yaml",
                ) from None
            raise KubeAPIError(f"cannot list IAMIdentityMapping objects: {exc}") from None
        objects = {o["metadata"]["name"]: o for o in items}
        return Snapshot(CrdMappings(objects), objects, True)

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None:
        from kubeiam.kube.objects import create_object, replace_object
        from kubeiam.kube.resources import iam_identity_mapping

        assert isinstance(document, CrdMappings)
        resource = iam_identity_mapping()
        old: Mapping[str, Any] = snapshot.version
        new = document.objects
        for name in sorted(set(old) - set(new)):
            await self._delete(name, old[name])
        for name in sorted(new):
            if name not in old:
                obj = dict(new[name])
                obj["metadata"] = {
                    k: v
                    for k, v in (obj.get("metadata") or {}).items()
                    if k in ("name", "labels", "annotations")
                }
                await create_object(self.client, resource, obj)
            elif new[name].get("spec") != old[name].get("spec"):
                await replace_object(
                    self.client, resource, {**old[name], "spec": new[name].get("spec")}
                )

    async def _delete(self, name: str, obj: Mapping[str, Any]) -> None:
        """Delete ``name``. Each object maps one ARN and only the removed ARN's objects are
        deleted, so another writer's objects are never touched; already gone is fine."""
        from httpx2 import HTTPError
        from lightkube import ApiError

        from kubeiam.kube.resources import iam_identity_mapping

        try:
            await self.client.delete(iam_identity_mapping(), name)
        except (ApiError, HTTPError) as exc:
            if status_code(exc) != NOT_FOUND:
                raise KubeAPIError(f"delete IAMIdentityMapping {name} failed: {exc}") from None


# --------------------------------------------------------------------------------------------
# Local file


class FileStore:
    """A local mapping file (server config YAML, or DynamicFile JSON when it ends in .json)."""

    kind = StoreKind.FILE

    def __init__(self, path: Path) -> None:
        self.path = Path(os.path.abspath(path))
        self._json = self.path.suffix.lower() == ".json"
        self.backend = DYNAMIC_FILE if self._json else MOUNTED_FILE
        self.backup_path = self.path.with_name(self.path.name + FILE_BACKUP_SUFFIX)

    @property
    def target(self) -> str:
        return f"file {self.path}"

    def open(self, state: Any) -> MappingDocument:
        if not isinstance(state, str):
            raise ConfigError("this backup does not hold a mapping file")
        return FileMappings(state, json_format=self._json, name=str(self.path))

    async def read(self) -> Snapshot:
        try:
            text: str | None = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}") from None
        doc = FileMappings(text, json_format=self._json, name=str(self.path))
        return Snapshot(doc, text, text is not None)

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None:
        new_text = document.text()

        def change(old: str | None) -> str:
            if old != snapshot.version:
                raise ConflictError(f"{self.path} changed since it was read")
            return new_text

        locked_update(self.path, change, preserve_mode=True)

    async def backups(self) -> list[BackupRecord]:
        try:
            raw = json.loads(self.backup_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the backup file {self.backup_path}: {exc}") from None
        if not isinstance(raw, list):
            raise ConfigError(f"{self.backup_path} is not a kubeiam backup history")
        return sorted((BackupRecord.from_wire(r) for r in raw), key=lambda r: r.revision)

    async def save_backup(self, record: BackupRecord) -> None:
        def change(old: str | None) -> str:
            records = [BackupRecord.from_wire(r) for r in json.loads(old)] if old else []
            if records and records[-1].state == record.state:
                return old or ""
            stored = BackupRecord(
                next_revision(records),
                record.time,
                record.by,
                record.command,
                record.store,
                record.state,
            )
            keep = [*records, stored][-BACKUP_HISTORY:]
            return json.dumps([r.to_wire() for r in keep], indent=2) + "\n"

        locked_update(self.backup_path, change)

    async def count_nodes(self) -> int | None:
        return None

    async def close(self) -> None:
        return None
