"""The deny list in force: the config file's ``denyList`` plus a watched ``denyListFile``.

The file is how an incident responder adds a principal without restarting the webhook: it is
polled (mtime, size, inode) every ``poll_interval`` seconds, as the DynamicFile backend polls its
mapping file, and a change takes effect on the next poll. The file holds the same lists as
``denyList`` (YAML or JSON) at its top level. A file that does not exist is an empty list (so the
path can be configured ahead of an incident); a file that cannot be read or parsed keeps the last
good list in force, is logged and counted (``kubeiam_deny_list_reload_failures_total``): a typo in
an incident must not lift the entries already there.

Every refusal is counted in ``kubeiam_deny_list_refusals_total{list}`` and named in the review's
log line (``deny_rule``).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from kubeiam.errors import ConfigError
from kubeiam.fileio import FileSignature, file_signature
from kubeiam.identity import Identity
from kubeiam.mapping.backends import cancel_task
from kubeiam.server.denylist import DenyKind, DenyList, parse_deny_list

log = logging.getLogger(__name__)

#: How often the file is polled: an added entry applies within this long (plus kube-apiserver's
#: own webhook cache of earlier answers).
DEFAULT_POLL_INTERVAL = 2.0


class DenyListMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refusals = Counter(
            "deny_list_refusals",
            "Reviews refused because the caller is on the deny list",
            ["list"],
            namespace="kubeiam",
            registry=registry,
        )
        for kind in DenyKind:
            self.refusals.labels(kind.value)
        self.entries = Gauge(
            "deny_list_entries",
            "Entries of the deny list in force (config file plus denyListFile)",
            namespace="kubeiam",
            registry=registry,
        )
        self.reload_failures = Counter(
            "deny_list_reload_failures",
            "denyListFile reads that failed (the last good list stays in force)",
            namespace="kubeiam",
            registry=registry,
        )


def read_deny_list_file(path: Path) -> DenyList:
    """Parse ``path`` (missing: empty), or raise :class:`ConfigError`.

    Read like every other document (:mod:`kubeiam.documents`): a regular file only, bounded
    size, depth and alias expansion, duplicate keys refused with both lines."""
    from kubeiam.documents import parse_yaml
    from kubeiam.fileio import read_document_text

    text = read_document_text(path, missing_ok=True)
    if text is None:
        return DenyList()
    doc = parse_yaml(text, source=str(path))
    return parse_deny_list(doc, where=str(path))


class DenyListGuard:
    """The app's deny policy (``kubeiam.server.app.DenyPolicy``)."""

    def __init__(
        self,
        static: DenyList,
        *,
        registry: CollectorRegistry,
        path: Path | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self.static = static
        self.path = path
        self.poll_interval = poll_interval
        self.metrics = DenyListMetrics(registry)
        self._from_file = DenyList()
        self._signature: FileSignature | None = None
        self.current = static
        self.metrics.entries.set(len(static))
        self._task: asyncio.Task[None] | None = None

    def refusal(self, identity: Identity) -> str | None:
        rule = self.current.match(identity)
        if rule is None:
            return None
        self.metrics.refusals.labels(rule.kind.value).inc()
        return rule.describe()

    def load(self) -> None:
        """Read the file now (start-up: a bad file stops the server, with the reason)."""
        if self.path is None:
            return
        self._signature = file_signature(self.path)
        self._install(read_deny_list_file(self.path))

    def _install(self, from_file: DenyList) -> None:
        self._from_file = from_file
        self.current = self.static + from_file
        self.metrics.entries.set(len(self.current))

    def poll(self) -> bool:
        """Reload when the file changed; True when a new list was installed."""
        if self.path is None:
            return False
        signature = file_signature(self.path)
        if signature == self._signature:
            return False
        try:
            from_file = read_deny_list_file(self.path)
        except ConfigError as exc:
            self.metrics.reload_failures.inc()
            log.error(
                "deny list file not reloaded; the last good list stays in force",
                extra={"path": str(self.path), "error": exc.message},
            )
            self._signature = signature
            return False
        self._signature = signature
        self._install(from_file)
        log.warning(
            "deny list reloaded",
            extra={"path": str(self.path), "entries": len(self.current)},
        )
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self.poll()
            except Exception as exc:  # the watcher must outlive any one bad read
                self.metrics.reload_failures.inc()
                log.error("deny list poll failed", extra={"error": type(exc).__name__})

    def start(self) -> None:
        if self.path is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        await cancel_task(self._task)
        self._task = None
