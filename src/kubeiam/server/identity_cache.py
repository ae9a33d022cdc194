"""A bounded cache of verified identities, so a token costs one STS call in its lifetime.

kube-apiserver reviews the same bearer token on every request a client makes; without a cache
each review is a GetCallerIdentity call (STS throttling and CloudTrail floods, reference issues
#375 and #382). Rules:

* the key is the SHA-256 of the token, never the token itself;
* an entry lives until the token's own expiry (``Identity.expires_at``), never longer; an
  identity with no expiry is not cached;
* the cache is an LRU bounded by ``max_entries``;
* only STS's answer is cached: mapping runs on every review, so mapping changes apply at once;
* concurrent reviews of one token share one STS call (single flight); a failure is handed to
  every waiter of that call and then forgotten (never cached).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubeiam.identity import Identity

#: Enough for every token of a large cluster's active users within their 15-minute life.
DEFAULT_MAX_ENTRIES = 10_000


class CacheOutcome(enum.Enum):
    """How a review got its identity."""

    HIT = "hit"  #: from the cache, no STS call
    SHARED = "shared"  #: waited on another review's STS call for the same token
    MISS = "miss"  #: made the STS call


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    shared: int
    size: int


def token_key(token: str) -> bytes:
    """The cache key of a token: its SHA-256 digest."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class IdentityCache:
    """LRU of ``sha256(token) -> Identity`` with expiry and single-flight verification."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, Identity] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[Identity]] = {}
        self.hits = 0
        self.misses = 0
        #: Reviews that waited on another review's STS call instead of making their own.
        self.shared = 0

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.shared, len(self._entries))

    def get(self, token: str) -> Identity | None:
        """The cached identity for ``token`` if it has not expired (counts a hit or nothing)."""
        return self._lookup(token_key(token))

    def _lookup(self, key: bytes) -> Identity | None:
        identity = self._entries.get(key)
        if identity is None:
            return None
        if self._clock() >= identity.expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return identity

    def _store(self, key: bytes, identity: Identity) -> None:
        if self._max == 0 or identity.expires_at <= self._clock():
            return
        self._entries[key] = identity
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def purge_expired(self) -> int:
        """Drop expired entries; returns how many. Lookups do this lazily anyway."""
        now = self._clock()
        dead = [k for k, v in self._entries.items() if now >= v.expires_at]
        for k in dead:
            del self._entries[k]
        return len(dead)

    async def get_or_verify(
        self, token: str, verify: Callable[[str], Awaitable[Identity]]
    ) -> tuple[Identity, CacheOutcome]:
        """The identity for ``token`` and how it was obtained.

        ``verify`` runs at most once at a time per token. It runs in its own task, so a review
        whose client goes away does not cancel the call other reviews are waiting on.
        """
        key = token_key(token)
        identity = self._lookup(key)
        if identity is not None:
            self.hits += 1
            return identity, CacheOutcome.HIT
        pending = self._inflight.get(key)
        if pending is not None:
            self.shared += 1
            return await asyncio.shield(pending), CacheOutcome.SHARED
        self.misses += 1
        task = asyncio.ensure_future(verify(token))
        self._inflight[key] = task

        def _done(fut: asyncio.Future[Identity]) -> None:
            self._inflight.pop(key, None)
            if not fut.cancelled() and fut.exception() is None:
                self._store(key, fut.result())

        task.add_done_callback(_done)
        return await asyncio.shield(task), CacheOutcome.MISS
