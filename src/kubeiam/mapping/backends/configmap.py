"""EKSConfigMap: the ``kube-system/aws-auth`` ConfigMap, watched.

Each version of aws-auth is read with :func:`~kubeiam.mapping.aws_auth.read_aws_auth`: invalid
entries are skipped (a log line each and ``on_skipped``), a version with errors (unreadable YAML
in a section, conflicting duplicates) is refused and the previous one keeps serving
(``on_failure``). A deleted aws-auth, or none at all, serves nothing (fail closed, as the reference
does). Watch failures reconnect with backoff (:mod:`kubeiam.kube.watch`) and count as failures
(``configmap_watch_failures_total``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from kubeiam.kube.watch import EventType, WatchEvent, WatchSource
from kubeiam.mapping.aws_auth import AWS_AUTH_NAME, AWS_AUTH_NAMESPACE, read_aws_auth
from kubeiam.mapping.backends import EKS_CONFIG_MAP, WatchedBackend
from kubeiam.mapping.model import LoadResult


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, Mapping) else ""


class EKSConfigMap(WatchedBackend):
    """Mappings from the aws-auth ConfigMap."""

    name = EKS_CONFIG_MAP

    def __init__(
        self,
        source: WatchSource | None = None,
        *,
        namespace: str = AWS_AUTH_NAMESPACE,
        configmap: str = AWS_AUTH_NAME,
        **kwargs: Any,
    ) -> None:
        super().__init__(source, **kwargs)
        self.namespace = namespace
        self.configmap = configmap
        #: resourceVersion of the version being served (None when absent or never loaded).
        self.served_version: str | None = None

    def _make_source(self, client: Any) -> WatchSource:
        from kubeiam.kube.resources import config_map
        from kubeiam.kube.sources import LightkubeSource

        return LightkubeSource(client, config_map(), namespace=self.namespace, name=self.configmap)

    def _data(self, obj: Mapping[str, Any]) -> tuple[bool, Mapping[str, str] | None]:
        """(usable, data); a malformed data field is counted as a failure and not usable."""
        data = obj.get("data")
        if data is not None and not isinstance(data, Mapping):
            self._store.failed(f"{self.namespace}/{self.configmap} has a malformed data field")
            return False, None
        return True, data

    def _commit(self, obj: Mapping[str, Any], result: LoadResult) -> None:
        meta = obj.get("metadata")
        rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
        source = f"{self.namespace}/{self.configmap}" + (f" (resourceVersion {rv})" if rv else "")
        if self._store.install(result, source=source):
            self.served_version = rv

    def _load(self, obj: Mapping[str, Any]) -> None:
        usable, data = self._data(obj)
        if usable:
            self._commit(obj, read_aws_auth(data))

    async def _load_async(self, obj: Mapping[str, Any]) -> None:
        usable, data = self._data(obj)
        if usable:
            # A 10,000-entry aws-auth takes a few hundred ms to read: off the event loop.
            self._commit(obj, await asyncio.to_thread(read_aws_auth, data))

    def _find(self, items: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
        for obj in items:
            if _name(obj) == self.configmap:
                return obj
        self.served_version = None
        self._store.clear(f"{self.namespace}/{self.configmap} does not exist")
        return None

    def _load_event(self, event: WatchEvent) -> Mapping[str, Any] | None:
        """The object to load for ``event``, handling deletions and foreign objects here."""
        if _name(event.object) != self.configmap:
            return None
        if event.type is EventType.DELETED:
            self.served_version = None
            self._store.clear(f"{self.namespace}/{self.configmap} was deleted")
            return None
        if event.type in (EventType.ADDED, EventType.MODIFIED):
            return event.object
        return None

    def replace_all(self, items: Sequence[Mapping[str, Any]]) -> None:
        obj = self._find(items)
        if obj is not None:
            self._load(obj)

    def apply(self, event: WatchEvent) -> None:
        obj = self._load_event(event)
        if obj is not None:
            self._load(obj)

    async def replace_all_async(self, items: Sequence[Mapping[str, Any]]) -> None:
        obj = self._find(items)
        if obj is not None:
            await self._load_async(obj)

    async def apply_async(self, event: WatchEvent) -> None:
        obj = self._load_event(event)
        if obj is not None:
            await self._load_async(obj)
