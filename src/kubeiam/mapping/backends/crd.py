"""CRD: ``IAMIdentityMapping`` objects (``iamauthenticator.k8s.aws/v1alpha1``), watched.

Each cluster-scoped object maps one ARN: ``spec: {arn, username, groups}`` (deploy/crd.yaml).
A role ARN (with or without a path) becomes a role entry, anything else a user entry, with the
same validation, precedence and duplicate rules as aws-auth; locations read
``IAMIdentityMapping <name>``. The set is rebuilt from every object after each event (objects are
few); a rebuild with conflicting objects is refused and the previous set keeps serving until the
conflict is removed. The reference's controller also wrote ``status.canonicalARN``; kubeiam
computes the canonical ARN itself and writes nothing, so it needs only get/list/watch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from kubeiam.kube.watch import EventType, WatchEvent, WatchSource
from kubeiam.mapping.backends import CRD as CRD_NAME
from kubeiam.mapping.backends import WatchedBackend
from kubeiam.mapping.model import LoadResult, Location, RawEntry, load_entries

KIND = "IAMIdentityMapping"


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, Mapping) else ""


def _is_role_arn(arn: object) -> bool:
    if not isinstance(arn, str):
        return False
    parts = arn.split(":", 5)
    return len(parts) == 6 and parts[5].startswith("role/")


def entries_from_objects(
    objects: Mapping[str, Mapping[str, Any]],
) -> tuple[list[RawEntry], list[RawEntry]]:
    """(role entries, user entries) for IAMIdentityMapping objects, ordered by name."""
    roles: list[RawEntry] = []
    users: list[RawEntry] = []
    for name in sorted(objects):
        spec = objects[name].get("spec")
        location = Location(f"{KIND} {name}")
        if not isinstance(spec, Mapping):
            users.append(({"userarn": None, "username": None}, location))
            continue
        fields = {"username": spec.get("username"), "groups": spec.get("groups")}
        arn = spec.get("arn")
        if _is_role_arn(arn):
            roles.append(({"rolearn": arn, **fields}, location))
        else:
            users.append(({"userarn": arn, **fields}, location))
    return roles, users


class CRD(WatchedBackend):
    """Mappings from IAMIdentityMapping objects."""

    name = CRD_NAME

    def __init__(self, source: WatchSource | None = None, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self.objects: dict[str, Mapping[str, Any]] = {}

    def _make_source(self, client: Any) -> WatchSource:
        from kubeiam.kube.resources import iam_identity_mapping
        from kubeiam.kube.sources import LightkubeSource

        return LightkubeSource(client, iam_identity_mapping())

    def _rebuild(self, why: str) -> None:
        self._store.install(_build(dict(self.objects)), source=why)

    async def _rebuild_async(self, why: str) -> None:
        # Built from a snapshot in a thread; events are applied in order, one at a time.
        self._store.install(await asyncio.to_thread(_build, dict(self.objects)), source=why)

    def _replace(self, items: Sequence[Mapping[str, Any]]) -> str:
        self.objects = {_name(o): o for o in items if _name(o)}
        return f"{len(self.objects)} {KIND} objects"

    def _change(self, event: WatchEvent) -> str | None:
        """Update ``objects`` for ``event``; what changed, or None when nothing did."""
        name = _name(event.object)
        if not name:
            return None
        if event.type is EventType.DELETED:
            self.objects.pop(name, None)
        elif event.type in (EventType.ADDED, EventType.MODIFIED):
            self.objects[name] = event.object
        else:
            return None
        return f"{KIND} {name} {event.type.value.lower()}"

    def replace_all(self, items: Sequence[Mapping[str, Any]]) -> None:
        self._rebuild(self._replace(items))

    def apply(self, event: WatchEvent) -> None:
        why = self._change(event)
        if why is not None:
            self._rebuild(why)

    async def replace_all_async(self, items: Sequence[Mapping[str, Any]]) -> None:
        await self._rebuild_async(self._replace(items))

    async def apply_async(self, event: WatchEvent) -> None:
        why = self._change(event)
        if why is not None:
            await self._rebuild_async(why)


def _build(objects: Mapping[str, Mapping[str, Any]]) -> LoadResult:
    roles, users = entries_from_objects(objects)
    return load_entries(roles, users)
