"""The Kubernetes mapping stores: the aws-auth ConfigMap and IAMIdentityMapping objects."""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kubeiam.admin.editing.aws_auth_document import AwsAuthMappings
from kubeiam.admin.editing.backups import (
    AWS_AUTH_BACKUP_NAME,
    BACKUP_NAMESPACE,
    CRD_BACKUP_NAME,
    BackupRecord,
    encode_record,
    next_revision,
    read_backup_data,
    records_from_data,
    trim_backups,
)
from kubeiam.admin.editing.crd_document import CrdMappings
from kubeiam.admin.editing.document import (
    MappingDocument,
)
from kubeiam.admin.editing.store import Snapshot, StoreKind
from kubeiam.errors import ConfigError, ConflictError, KubeAPIError
from kubeiam.kube.objects import NOT_FOUND, api_errors
from kubeiam.mapping.aws_auth import AWS_AUTH_NAME, AWS_AUTH_NAMESPACE
from kubeiam.mapping.backends import CRD, EKS_CONFIG_MAP

#: Attempts at updating the backup ConfigMap when concurrent writers race on it.
_BACKUP_ATTEMPTS = 8


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
        self.backup_notes: list[str] = []

    async def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            await close()

    async def count_nodes(self) -> int | None:
        from lightkube.resources.core_v1 import Node

        def refused(code: int | None, exc: Exception) -> KubeAPIError:
            return KubeAPIError(
                f"cannot list nodes ({code}): {str(exc).splitlines()[0]}",
                hint="lint lists nodes to check the node-role entry: use a kubeconfig that may "
                "list nodes, or pass --no-nodes",
            )

        nodes: list[Any] = []
        with api_errors(refused):
            nodes = [n async for n in self.client.list(Node)]
        return len(nodes)

    async def _backup_map(self) -> Mapping[str, Any] | None:
        from kubeiam.kube.objects import get_object
        from kubeiam.kube.resources import config_map

        return await get_object(
            self.client, config_map(), self.backup_name, namespace=BACKUP_NAMESPACE
        )

    async def backups(self) -> list[BackupRecord]:
        obj = await self._backup_map()
        records, self.backup_notes = records_from_data(self._backup_data(obj))
        return records

    def _backup_data(self, obj: Mapping[str, Any] | None) -> dict[str, Any]:
        data = (obj or {}).get("data") or {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"the backup ConfigMap {BACKUP_NAMESPACE}/{self.backup_name} has a malformed "
                "data field",
                hint=f"inspect it with kubectl, then move it away (kubectl -n {BACKUP_NAMESPACE} "
                f"get configmap {self.backup_name} -o yaml > saved.yaml; kubectl delete ...)",
            )
        return dict(data)

    async def save_backup(self, record: BackupRecord) -> list[str]:
        """Add ``record`` to the backup ConfigMap (read, change, write; retried on conflict).
        Keys that do not hold a readable record are left as they are (never overwritten or
        dropped) and named in the returned notes."""
        from kubeiam.kube.objects import create_object, replace_object
        from kubeiam.kube.resources import config_map

        for attempt in range(_BACKUP_ATTEMPTS):
            obj = await self._backup_map()
            data = self._backup_data(obj)
            records, notes, keys = read_backup_data(data)
            if records and records[-1].state == record.state:
                return notes  # the same state is already the newest backup
            revision = next_revision(records, data)
            stored = BackupRecord(
                revision, record.time, record.by, record.command, record.store, record.state
            )
            key, value = encode_record(stored)
            data[key] = value
            trim_backups(data, [keys[r.revision] for r in records], self.backup_name)
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
                return notes
            except ConflictError:
                await self._sleep(0.05 * (attempt + 1) * (0.5 + self._random()))
        raise ConflictError(
            f"could not save a backup in {BACKUP_NAMESPACE}/{self.backup_name}: it kept "
            "changing under concurrent writers",
            hint="retry the command",
        )


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

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
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

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        from kubeiam.kube.resources import iam_identity_mapping

        def refused(code: int | None, exc: Exception) -> KubeAPIError:
            if code == NOT_FOUND:
                return KubeAPIError(
                    "the IAMIdentityMapping CRD is not installed in this cluster",
                    hint="kubectl apply -f deploy/crd.yaml",
                )
            return KubeAPIError(f"cannot list IAMIdentityMapping objects: {exc}")

        items: list[dict[str, Any]] = []
        with api_errors(refused):
            items = [o.to_dict() async for o in self.client.list(iam_identity_mapping())]
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
        from kubeiam.kube.resources import iam_identity_mapping

        def refused(code: int | None, exc: Exception) -> KubeAPIError | None:
            if code == NOT_FOUND:
                return None  # already gone
            return KubeAPIError(f"delete IAMIdentityMapping {name} failed: {exc}")

        with api_errors(refused):
            await self.client.delete(iam_identity_mapping(), name)
