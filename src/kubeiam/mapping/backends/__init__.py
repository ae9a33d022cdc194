"""Mapping backends, with the reference's names: MountedFile, DynamicFile, EKSConfigMap, CRD.

Each holds the last good :class:`~kubeiam.mapping.model.MappingSet` of its source
(:class:`StoredMappings`): a new version with errors (conflicting duplicates, unreadable YAML or
JSON) is refused as a whole and the previous one keeps serving; invalid entries inside an
otherwise good version are skipped, each with a log line and a count for the skipped-entries
metric. Metrics reach the server through two optional hooks every backend accepts:
``on_failure()`` (a load, reload or watch failure: the server maps it to
``configmap_watch_failures_total`` / ``dynamicfile_failures_total``) and ``on_skipped(n)``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random as _random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from kubeiam.identity import Identity
from kubeiam.kube.watch import Backoff, Reflector, WatchEvent, WatchSource
from kubeiam.mapping.model import (
    EMPTY_MAPPING_SET,
    LoadResult,
    MappingSet,
    MatchResult,
    Severity,
)

MOUNTED_FILE = "MountedFile"
DYNAMIC_FILE = "DynamicFile"
EKS_CONFIG_MAP = "EKSConfigMap"
CRD = "CRD"

#: Issues logged one by one per load; the rest are summarised in one line.
_MAX_LOGGED_ISSUES = 20

log = logging.getLogger("kubeiam.mapping")

FailureHook = Callable[[], None]
SkippedHook = Callable[[int], None]


class StoredMappings:
    """The mappings a backend serves now, replaced only by a version without errors."""

    def __init__(
        self,
        backend: str,
        *,
        on_failure: FailureHook | None = None,
        on_skipped: SkippedHook | None = None,
    ) -> None:
        self.backend = backend
        self.mappings: MappingSet = EMPTY_MAPPING_SET
        self.ready = False
        #: Why the last version was refused (None after a good one).
        self.last_error: str | None = None
        self.loads = 0
        self.failures = 0
        self._on_failure = on_failure
        self._on_skipped = on_skipped

    def failed(self, reason: str) -> None:
        """Count and log a failure; the current mappings stay."""
        self.failures += 1
        self.last_error = reason
        log.error("%s: %s; keeping the previous mappings", self.backend, reason)
        if self._on_failure is not None:
            self._on_failure()

    def install(self, result: LoadResult, *, source: str) -> bool:
        """Serve ``result`` unless it has errors; log its issues either way."""
        shown = 0
        for issue in result.issues:
            if issue.severity is Severity.ERROR:
                continue
            if shown < _MAX_LOGGED_ISSUES:
                log.warning("%s %s: %s", self.backend, source, issue)
            shown += 1
        if shown > _MAX_LOGGED_ISSUES:
            log.warning(
                "%s %s: %d more issues not shown", self.backend, source, shown - _MAX_LOGGED_ISSUES
            )
        skipped = len(result.skipped)
        if skipped and self._on_skipped is not None:
            self._on_skipped(skipped)
        errors = result.errors
        if errors:
            for issue in errors[:_MAX_LOGGED_ISSUES]:
                log.error("%s %s: %s", self.backend, source, issue)
            self.failed(f"{source} refused: {len(errors)} error(s), first: {errors[0]}")
            return False
        self.mappings = result.mappings
        self.ready = True
        self.last_error = None
        self.loads += 1
        log.info(
            "%s: loaded %d entries from %s (%d skipped)",
            self.backend,
            len(result.mappings),
            source,
            skipped,
        )
        return True

    def clear(self, reason: str) -> None:
        """Serve nothing (fail closed), e.g. when the source was deleted."""
        self.mappings = EMPTY_MAPPING_SET
        self.ready = True
        self.last_error = None
        log.warning("%s: %s; serving no mappings", self.backend, reason)

    def match(
        self, identity: Identity, iam_groups: frozenset[str] = frozenset()
    ) -> MatchResult | None:
        return self.mappings.lookup(identity, iam_groups)


class StoredBackend:
    """What every backend shares: the :class:`StoredMappings` it serves, and the ``ready``,
    ``mappings``, ``store`` and ``match`` the chain and the server read off it."""

    name = ""
    _store: StoredMappings

    @property
    def ready(self) -> bool:
        return self._store.ready

    @property
    def mappings(self) -> MappingSet:
        return self._store.mappings

    @property
    def store(self) -> StoredMappings:
        return self._store

    @property
    def not_ready_reason(self) -> str | None:
        """Why the backend is not ready (None when it is), for ``/readyz``."""
        if self.ready:
            return None
        return self._store.last_error or "loading"

    @property
    def has_group_entries(self) -> bool:
        return self._store.mappings.has_group_entries

    def match(
        self, identity: Identity, iam_groups: frozenset[str] = frozenset()
    ) -> MatchResult | None:
        return self._store.match(identity, iam_groups)


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a backend's background task (if any) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class WatchedBackend(StoredBackend, abc.ABC):
    """Shared life cycle of the backends fed by a Kubernetes watch (EKSConfigMap, CRD).

    Subclasses implement ``replace_all`` and ``apply`` (the reflector's handler) and
    ``_make_source`` (the lightkube source used when no source was injected).
    """

    def __init__(
        self,
        source: WatchSource | None = None,
        *,
        kubeconfig: str | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] | None = None,
        on_failure: FailureHook | None = None,
        on_skipped: SkippedHook | None = None,
    ) -> None:
        self._source = source
        self._kubeconfig = kubeconfig
        self._client: Any = None
        self._store = StoredMappings(self.name, on_failure=on_failure, on_skipped=on_skipped)
        self._backoff = backoff
        self._sleep = sleep
        self._random = random
        self._on_failure = on_failure
        self.reflector: Reflector | None = None
        self._task: asyncio.Task[None] | None = None

    @abc.abstractmethod
    def _make_source(self, client: Any) -> WatchSource:
        """The lightkube source for this backend's objects."""

    @abc.abstractmethod
    def replace_all(self, items: Sequence[Mapping[str, Any]]) -> None:
        """The reflector listed every object: rebuild the mappings from ``items``."""

    @abc.abstractmethod
    def apply(self, event: WatchEvent) -> None:
        """The reflector saw one change."""

    async def replace_all_async(self, items: Sequence[Mapping[str, Any]]) -> None:
        """:meth:`replace_all` for the reflector; subclasses parse in a thread."""
        self.replace_all(items)

    async def apply_async(self, event: WatchEvent) -> None:
        """:meth:`apply` for the reflector; subclasses parse in a thread."""
        self.apply(event)

    async def start(self) -> None:
        """Start the watch in the background (ready once the first list has loaded)."""
        if self._task is not None:
            return
        source = self._source
        if source is None:
            from kubeiam.kube.client import make_async_client
            from kubeiam.kube.sources import DeferredSource

            kubeconfig = self._kubeconfig
            # Built at the first list: a bad kubeconfig is a failure retried with backoff.
            self._client = source = DeferredSource(
                lambda: make_async_client(kubeconfig), self._make_source
            )
        self.reflector = Reflector(
            source,
            _ThreadedHandler(self),
            name=self.name,
            backoff=self._backoff,
            sleep=self._sleep,
            random=self._random or _random.random,
            on_failure=self._on_failure,
        )
        self._task = asyncio.create_task(self.reflector.run(), name=f"kubeiam-{self.name}")

    @property
    def not_ready_reason(self) -> str | None:
        """Why the backend is not ready: the last failed list or watch, else the load error."""
        if self.ready:
            return None
        reflector = self.reflector
        failure = reflector.last_error if reflector is not None else None
        return failure or self._store.last_error or "loading (no answer from the API yet)"

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None
        if self._client is not None:
            close = getattr(self._client, "close", None)
            if close is not None:
                await close()
            self._client = None


class _ThreadedHandler:
    """The reflector's view of a watched backend: its ``*_async`` methods."""

    def __init__(self, backend: WatchedBackend) -> None:
        self._backend = backend

    def replace_all(self, items: Sequence[Mapping[str, Any]]) -> Awaitable[None]:
        return self._backend.replace_all_async(items)

    def apply(self, event: WatchEvent) -> Awaitable[None]:
        return self._backend.apply_async(event)
