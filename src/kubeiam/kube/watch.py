"""Keep a local copy of Kubernetes objects current: list, then watch, reconnecting with backoff.

The loop (:class:`Reflector`) talks to the API only through a :class:`WatchSource`, the seam
tests use to replay recorded event sequences (:mod:`kubeiam.kube.sources` holds the lightkube
one). Its contract, the same as client-go's reflector:

1. ``list()`` gives every object and the collection's resourceVersion; the handler replaces its
   whole state (``replace_all``).
2. ``watch(rv)`` streams ADDED / MODIFIED / DELETED / BOOKMARK events after ``rv``; each is given
   to the handler (``apply``) and advances ``rv``.
3. A stream the server closes normally is re-opened from the last ``rv`` (after a short pause
   when it delivered nothing, so a server closing streams at once cannot make a busy loop).
4. An ``ERROR`` event with code 410 (Gone: ``rv`` is too old) means "list again": no failure.
   Any other ``ERROR`` event, a failed list, or a dropped connection is a failure: it is counted
   (``on_failure``, wired to ``configmap_watch_failures_total``), logged, and followed by an
   exponential backoff with jitter before the next attempt, which re-watches from the last ``rv``
   (or re-lists when there is none yet). A success resets the backoff.

Nothing here reads the clock or sleeps directly: ``sleep`` and ``random`` are injected.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random as _random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kubeiam.errors import KubeIAMError

log = logging.getLogger("kubeiam.kube.watch")

#: HTTP status the API server uses (inside an ERROR event) when a resourceVersion is too old.
GONE = 410


class EventType(enum.Enum):
    """Watch event types, as the API server spells them."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One event; ``object`` is the object as JSON (a ``Status`` for ERROR events)."""

    type: EventType
    object: Mapping[str, Any]

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> WatchEvent:
        """From the API's JSON line form ``{"type": ..., "object": ...}``."""
        return cls(EventType(raw["type"]), raw.get("object") or {})


@dataclass(frozen=True, slots=True)
class ListResult:
    """A list response: the objects and the collection's resourceVersion."""

    items: tuple[Mapping[str, Any], ...]
    resource_version: str


class WatchSource(Protocol):
    """Where a reflector gets objects; raises a :class:`KubeIAMError` (the API refused or could not
    be reached, the kubeconfig or its credentials cannot be used) or ``OSError`` on failure."""

    async def list(self) -> ListResult: ...

    def watch(self, resource_version: str) -> AsyncIterator[WatchEvent]: ...


class WatchHandler(Protocol):
    """What a reflector feeds: the backend's state.

    Either method may be a coroutine function (a backend parsing a large object in a thread, so
    the event loop keeps serving): the reflector awaits it before the next event, which keeps
    events in order.
    """

    def replace_all(self, items: Sequence[Mapping[str, Any]]) -> Awaitable[None] | None: ...

    def apply(self, event: WatchEvent) -> Awaitable[None] | None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``initial * factor**attempt`` capped at ``maximum``, +/- ``jitter``."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait before attempt ``attempt + 1``; ``rand`` in [0, 1)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 32))
        return max(0.0, base * (1.0 + self.jitter * (2.0 * rand - 1.0)))


def _describe(exc: BaseException | str) -> str:
    """One log line for a failure: a kubeiam error's message and fix, else the exception."""
    if isinstance(exc, str):
        return exc
    if isinstance(exc, KubeIAMError):
        return exc.message + (f" (fix: {exc.hint})" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"


def resource_version(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return rv if isinstance(rv, str) and rv else None


class Reflector:
    """Runs the list/watch loop of the module docstring until cancelled."""

    def __init__(
        self,
        source: WatchSource,
        handler: WatchHandler,
        *,
        name: str,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self._source = source
        self._handler = handler
        self.name = name
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._random = random
        self._on_failure = on_failure
        self._attempt = 0
        #: Totals, for tests and status: failures, re-lists after 410, lists done.
        self.failures = 0
        self.relists = 0
        self.lists = 0
        self.resource_version: str | None = None
        #: Why the last list or watch failed (None once a list succeeds), for ``/readyz``.
        self.last_error: str | None = None

    async def _fail(self, what: str, exc: BaseException | str) -> None:
        self.failures += 1
        if self._on_failure is not None:
            self._on_failure()
        delay = self._backoff.delay(self._attempt, self._random())
        self._attempt += 1
        reason = _describe(exc)
        self.last_error = f"{what} failed: {reason}"
        log.warning("%s: %s failed (%s); retrying in %.1fs", self.name, what, reason, delay)
        await self._sleep(delay)

    async def _list(self) -> bool:
        try:
            listing = await self._source.list()
        except (KubeIAMError, OSError) as exc:
            await self._fail("list", exc)
            return False
        self.lists += 1
        self.last_error = None
        try:
            pending = self._handler.replace_all(listing.items)
            if pending is not None:
                await pending
        except Exception:  # a handler bug must not end the watch that keeps mappings current
            log.exception("%s: could not apply a list of %d objects", self.name, len(listing.items))
            self.failures += 1
            if self._on_failure is not None:
                self._on_failure()
        self.resource_version = listing.resource_version
        self._attempt = 0
        return True

    async def _watch(self, rv: str) -> None:
        """One watch stream; leaves ``resource_version`` None when a re-list is needed."""
        delivered = False
        try:
            async for event in self._source.watch(rv):
                delivered = True
                if event.type is EventType.ERROR:
                    code = event.object.get("code")
                    message = str(event.object.get("message", ""))
                    self.resource_version = None
                    if code == GONE:
                        self.relists += 1
                        log.info("%s: resourceVersion %s expired; listing again", self.name, rv)
                        return
                    await self._fail("watch", f"ERROR event {code}: {message}")
                    return
                new_rv = resource_version(event.object)
                if event.type is not EventType.BOOKMARK:
                    await self._apply(event)
                if new_rv is not None:
                    self.resource_version = new_rv
                self._attempt = 0
        except (KubeIAMError, OSError) as exc:
            await self._fail("watch", exc)
            return
        if not delivered:
            # A server closing streams at once must not turn this loop into a busy loop.
            await self._sleep(self._backoff.initial)

    async def _apply(self, event: WatchEvent) -> None:
        try:
            pending = self._handler.apply(event)
            if pending is not None:
                await pending
        except Exception:  # a handler bug must not end the watch that keeps mappings current
            log.exception("%s: could not apply a %s event", self.name, event.type.value)
            self.failures += 1
            if self._on_failure is not None:
                self._on_failure()

    async def run(self) -> None:
        """List and watch until cancelled."""
        while True:
            if self.resource_version is None and not await self._list():
                continue
            rv = self.resource_version
            assert rv is not None
            await self._watch(rv)
