"""The identity cache: a verified token's identity, so repeated reviews cost no STS call.

kube-apiserver reviews the same bearer token on every request a client makes; without a cache
each review is a GetCallerIdentity call (STS throttling and CloudTrail floods, reference issues
#375 and #382). Rules:

* the key is the SHA-256 of the token, never the token itself;
* an entry lives ``ttl`` seconds (``identityCacheTTL``, default 60: no longer than
  kube-apiserver's own default webhook cache TTL of 2 minutes, so a deactivated access key stops
  working through kubeiam within that bound) and never past the token's own expiry
  (``Identity.expires_at``); an identity with no expiry is not cached;
* the cache is an LRU bounded by ``max_entries`` (``identityCacheSize``);
* only STS's answer is cached: mapping runs on every review, so mapping changes apply at once;
* concurrent reviews of one token share one STS call (single flight); a failure is handed to
  every waiter of that call and then forgotten (never cached).

The expiring, bounded, single-flight machinery is :class:`kubeiam.expiring_cache.ExpiringCache`,
the one such type (the EC2 and IAM-group caches use it too); this module only adds the key and
the lifetime rule.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable

from kubeiam.expiring_cache import ExpiringCache
from kubeiam.expiring_cache import Outcome as CacheOutcome
from kubeiam.identity import Identity

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_TTL", "CacheOutcome", "IdentityCache"]

#: Enough for every token of a large cluster's active users within their 15-minute life.
DEFAULT_MAX_ENTRIES = 10_000
#: Seconds an identity is reused without asking STS again. kube-apiserver caches webhook answers
#: for 2 minutes by default (--authentication-token-webhook-cache-ttl); staying under it keeps
#: the time a revoked key keeps working at most the sum of the two, not the token's 15 minutes.
DEFAULT_TTL = 60.0
#: Longest accepted ttl: a token is never valid longer than this anyway.
MAX_TTL = 900.0


def token_key(token: str) -> bytes:
    """The cache key of a token: its SHA-256 digest."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class IdentityCache:
    """``sha256(token) -> Identity`` for ``ttl`` seconds (never past the token's expiry)."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        if not 0 < ttl <= MAX_TTL:
            raise ValueError(f"ttl must be > 0 and <= {MAX_TTL:g} seconds")
        self.ttl = ttl
        self._clock = clock
        self._cache: ExpiringCache[bytes, Identity] = ExpiringCache(
            max_entries=max_entries, clock=clock
        )

    def __len__(self) -> int:
        return len(self._cache)

    def lifetime(self, identity: Identity) -> float:
        """Seconds ``identity`` may stay: ``ttl``, cut at the token's own expiry."""
        return min(self.ttl, identity.expires_at - self._clock())

    async def get_or_verify(
        self, token: str, verify: Callable[[str], Awaitable[Identity]]
    ) -> tuple[Identity, CacheOutcome]:
        """The identity for ``token`` and how it was obtained.

        ``verify`` runs at most once at a time per token. It runs in its own task, so a review
        whose client goes away does not cancel the call other reviews are waiting on.
        """
        return await self._cache.get_or_load(
            token_key(token), lambda: verify(token), ttl=self.lifetime
        )
