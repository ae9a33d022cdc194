"""One expiring, bounded, single-flight cache: the identity, EC2, IAM-group and DNS caches.

:class:`ExpiringCache` maps keys to values that each carry their own deadline:

* **expiring**: every entry has a deadline (``ttl`` seconds after it was stored, as the caller
  computes it for that value); an entry at or past its deadline is never returned;
* **bounded**: at most ``max_entries`` entries, least recently used evicted first (0 caches
  nothing, which turns the cache off without changing its callers);
* **single flight**: :meth:`get_or_load` runs at most one load per key at a time; concurrent
  callers for that key share it. The load runs in its own task, so a caller that goes away does
  not cancel what the others wait on;
* **errors are not cached**: a load that raises hands the error to every caller waiting on it and
  is then forgotten; the next caller loads again. (A caller that wants a *negative* cache, like
  the DNS resolver, loads a value that describes the failure and gives it a short ``ttl``.)
* ``max_age``: a caller may refuse entries stored longer ago than this, without shortening them
  for other callers (the instance-role check reads the EC2 cache this way).

Values are never ``None`` (``None`` means "not cached"). The clock is injected
(``time.monotonic`` by default; the identity cache uses ``time.time``
because tokens expire at wall-clock times). Nothing here reads the network or the clock itself.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Outcome(enum.Enum):
    """How :meth:`ExpiringCache.get_or_load` got its value."""

    HIT = "hit"  #: from the cache
    SHARED = "shared"  #: waited on another caller's load of the same key
    MISS = "miss"  #: ran the load itself


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    stored_at: float
    deadline: float


class ExpiringCache(Generic[K, V]):
    """LRU of ``key -> value`` with per-entry deadlines and single-flight loads."""

    def __init__(self, *, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._inflight: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """Entries held, expired ones included until a lookup drops them."""
        return len(self._entries)

    # --- plain access -----------------------------------------------------------------------

    def get(self, key: K, *, max_age: float | None = None) -> V | None:
        """The live value of ``key`` (and mark it recently used), else None. Counts nothing."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if now >= entry.deadline:
            del self._entries[key]
            return None
        if max_age is not None and now - entry.stored_at >= max_age:
            return None  # too old for this caller; still good for callers without max_age
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: K, value: V, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (nothing is stored when ``ttl <= 0``)."""
        if self.max_entries == 0 or not ttl > 0:
            return
        now = self._clock()
        self._entries[key] = _Entry(value, now, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    # --- single flight ----------------------------------------------------------------------

    async def get_or_load(
        self,
        key: K,
        load: Callable[[], Awaitable[V]],
        *,
        ttl: float | Callable[[V], float],
        max_age: float | None = None,
    ) -> tuple[V, Outcome]:
        """The value of ``key``: cached, shared with a load in flight, or loaded now.

        ``ttl`` is the seconds a loaded value stays (a number, or a function of the value, e.g.
        "never past the token's own expiry"); a ttl of 0 or less is not stored.
        """
        value = self.get(key, max_age=max_age)
        if value is not None:
            return value, Outcome.HIT
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), Outcome.SHARED
        return await asyncio.shield(self.start_load(key, load, ttl=ttl)), Outcome.MISS

    def start_load(
        self, key: K, load: Callable[[], Awaitable[V]], *, ttl: float | Callable[[V], float]
    ) -> asyncio.Future[V]:
        """Start loading ``key`` in its own task (or return the load in flight); no waiting.

        The background refresh of a stale answer uses this directly.
        """
        pending = self._inflight.get(key)
        if pending is not None:
            return pending
        task: asyncio.Future[V] = asyncio.ensure_future(load())
        self._inflight[key] = task

        def done(fut: asyncio.Future[V]) -> None:
            if self._inflight.get(key) is fut:
                del self._inflight[key]
            if fut.cancelled() or fut.exception() is not None:
                return  # errors are handed to the waiters, never stored
            result = fut.result()
            self.put(key, result, ttl(result) if callable(ttl) else ttl)

        task.add_done_callback(done)
        return task

    async def wait_loads(self) -> None:
        """Wait for every load in flight (for a clean shutdown); their errors are dropped."""
        pending = list(self._inflight.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
