"""EKSConfigMap: the ``kube-system/aws-auth`` ConfigMap, watched.

Each version of aws-auth is read with :func:`~kubeiam.mapping.aws_auth.read_aws_auth`: invalid
entries are skipped (a log line each and ``on_skipped``), a version with errors (unreadable YAML
in a section, conflicting duplicates) is refused and the previous one keeps serving
(``on_failure``). A deleted aws-auth, or none at all, serves nothing (fail closed, as the reference
does). Watch failures reconnect with backoff (:mod:`kubeiam.kube.watch`) and count as failures
(``configmap_watch_failures_total``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubeiam.kube.watch import EventType, WatchEvent, WatchSource
from kubeiam.mapping.aws_auth import AWS_AUTH_NAME, AWS_AUTH_NAMESPACE, read_aws_auth
from kubeiam.mapping.backends import EKS_CONFIG_MAP, WatchedBackend


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

    def _load(self, obj: Mapping[str, Any]) -> None:
        data = obj.get("data")
        if data is not None and not isinstance(data, Mapping):
            self._store.failed(f"{self.namespace}/{self.configmap} has a malformed data field")
            return
        meta = obj.get("metadata")
        rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
        source = f"{self.namespace}/{self.configmap}" + (f" (resourceVersion {rv})" if rv else "")
        if self._store.install(read_aws_auth(data), source=source):
            self.served_version = rv

    def replace_all(self, items: Sequence[Mapping[str, Any]]) -> None:
        for obj in items:
            if _name(obj) == self.configmap:
                self._load(obj)
                return
        self.served_version = None
        self._store.clear(f"{self.namespace}/{self.configmap} does not exist")

    def apply(self, event: WatchEvent) -> None:
        if _name(event.object) != self.configmap:
            return
        if event.type is EventType.DELETED:
            self.served_version = None
            self._store.clear(f"{self.namespace}/{self.configmap} was deleted")
        elif event.type in (EventType.ADDED, EventType.MODIFIED):
            self._load(event.object)
