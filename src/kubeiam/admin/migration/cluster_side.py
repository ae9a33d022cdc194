"""The Kubernetes side of a migration: aws-auth's backup and the RBAC bindings apply creates.

One short-lived lightkube client per call (apply makes few of them), so the synchronous steps of
apply and rollback can use it between their EKS calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kubeiam.admin.migration.record import BindingRef
from kubeiam.eks.migration import NewBinding
from kubeiam.errors import KubeAPIError

T = TypeVar("T")
#: The label on every binding apply creates (a person sees where it came from).
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubeiam-migrate"}
RBAC_GROUP = "rbac.authorization.k8s.io"


class ClusterSide:
    """aws-auth's backup and RBAC bindings through ``make_client()`` (an async lightkube client)."""

    def __init__(self, make_client: Callable[[], Any]) -> None:
        self._make_client = make_client

    def _run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        async def go() -> T:
            client = self._make_client()
            try:
                return await work(client)
            finally:
                await client.close()

        return asyncio.run(go())

    def backup_aws_auth(self, data: dict[str, str], *, by: str, command: str, now: str) -> str:
        """Save ``data`` with the aws-auth store's own backup mechanism; where it went."""
        from kubeiam.admin.editing.backups import (
            AWS_AUTH_BACKUP_NAME,
            BACKUP_NAMESPACE,
            BackupRecord,
        )
        from kubeiam.admin.editing.kube_stores import AwsAuthStore
        from kubeiam.admin.editing.store import StoreKind

        async def work(client: Any) -> str:
            store = AwsAuthStore(client)
            await store.save_backup(
                BackupRecord(0, now, by, command, StoreKind.AWS_AUTH.value, data)
            )
            newest = (await store.backups())[-1].revision
            return f"ConfigMap {BACKUP_NAMESPACE}/{AWS_AUTH_BACKUP_NAME} revision {newest}"

        return self._run(work)

    def create_binding(self, binding: NewBinding) -> bool:
        """Create ``binding``; False when one of that name already exists (left as it is)."""
        from kubeiam.kube.objects import api_errors

        async def work(client: Any) -> bool:
            from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding

            kind = ClusterRoleBinding if binding.kind == "ClusterRoleBinding" else RoleBinding
            meta: dict[str, Any] = {"name": binding.name, "labels": MANAGED_BY}
            if binding.namespace:
                meta["namespace"] = binding.namespace
            obj = kind.from_dict(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": binding.kind,
                    "metadata": meta,
                    "roleRef": {
                        "apiGroup": RBAC_GROUP,
                        "kind": binding.role_kind,
                        "name": binding.role_name,
                    },
                    "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": binding.group}],
                }
            )
            with api_errors(_refused("create", binding.kind, binding.name, fine=409)):
                await client.create(obj)
                return True
            return False  # 409: one of that name exists

        return self._run(work)

    def delete_binding(self, ref: BindingRef) -> None:
        """Delete the binding; one already gone is what was wanted."""
        from kubeiam.kube.objects import api_errors

        async def work(client: Any) -> None:
            from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding

            with api_errors(_refused("delete", ref.kind, ref.name, fine=404)):
                if ref.kind == "ClusterRoleBinding":
                    await client.delete(ClusterRoleBinding, ref.name)
                else:
                    await client.delete(RoleBinding, ref.name, namespace=ref.namespace)

        self._run(work)


def _refused(
    verb: str, kind: str, name: str, *, fine: int
) -> Callable[[int | None, Exception], KubeAPIError | None]:
    def refused(code: int | None, exc: Exception) -> KubeAPIError | None:
        if code == fine:
            return None
        return KubeAPIError(
            f"cannot {verb} {kind} {name} ({code}): {str(exc).splitlines()[0]}",
            hint="use a kubeconfig whose user may manage RBAC bindings",
        )

    return refused
