"""``mapGroups``: an IAM user -> the ARNs of its IAM groups (iam:ListGroupsForUser).

The resolver the mapping chain asks when a ``mapGroups`` entry could decide a review
(:mod:`kubeiam.mapping.chain`). Like the ``{{EC2PrivateDNSName}}`` resolver (:mod:`.ec2`), with
the same AWS call helpers (:mod:`kubeiam.aws.calls`), it:

* answers only for IAM users (roles, federated users and the root have no IAM groups);
* caches each user's groups for ``ttl`` seconds (``iamGroupCacheTTL``, default 60), in the one
  :class:`~kubeiam.expiring_cache.ExpiringCache` type (bounded LRU, single flight): a user
  removed from a group keeps its groups until the entry expires, then loses them
  (kube-apiserver's own webhook cache may add its ``--authentication-token-webhook-cache-ttl``);
* shares one call between concurrent reviews of the same user (single-flight);
* rate-limits calls with a token bucket (``iamGroupQPS`` / ``iamGroupBurst``);
* runs boto3 in a small thread pool of its own (not the event loop's default executor),
  optionally through an assumed role (``iamGroupRoleARN``).

Failures fail closed: the caller gets no groups (so no ``mapGroups`` entry matches), the failure
is counted, and each distinct reason is logged once. Failures are not cached; the next review
asks again (rate-limited).

The call names the user by its name in the **server's** account; group ARNs name their account, and
the model matches an entry only for callers of the entry's account, so a same-named user in
another account never inherits those groups.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

from kubeiam.arn import PrincipalKind, arn_key
from kubeiam.aws.calls import AWSCallPool, TokenBucket, call_failed
from kubeiam.errors import KubeIAMError
from kubeiam.expiring_cache import ExpiringCache
from kubeiam.identity import Identity
from kubeiam.server.ec2 import IAMClient

log = logging.getLogger(__name__)

DEFAULT_TTL = 60.0
DEFAULT_CACHE_ENTRIES = 10_000
#: Distinct failure reasons remembered for "log once" (bounded).
_MAX_LOGGED_REASONS = 100
#: ListGroupsForUser pages (100 groups each by default; IAM allows at most 10 per user).
_MAX_PAGES = 20


class IAMGroupResolver:
    """``await resolver(identity) -> frozenset of lower-cased group ARNs``; cached, shared,
    rate-limited, failing closed (an empty set)."""

    def __init__(
        self,
        client: Callable[[], IAMClient],
        *,
        ttl: float = DEFAULT_TTL,
        qps: float = 10,
        burst: int = 5,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        on_call: Callable[[], None] | None = None,
        on_failure: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        pool: AWSCallPool | None = None,
    ) -> None:
        #: Called in the worker thread: a factory, so boto3 loads on the first lookup.
        self._client = client
        self._ttl = ttl
        self._bucket = TokenBucket(qps, burst, clock=clock)
        self._cache: ExpiringCache[str, frozenset[str]] = ExpiringCache(
            max_entries=cache_entries, clock=clock
        )
        self._pool = pool if pool is not None else AWSCallPool(name="kubeiam-iam")
        self._on_call = on_call
        self._on_failure = on_failure
        self._logged: set[str] = set()

    async def __call__(self, identity: Identity) -> frozenset[str]:
        """The caller's group ARNs; empty for non-users and on any failure (fail closed)."""
        try:
            return await self.lookup(identity)
        except KubeIAMError as exc:
            self._failed(exc.message)
            return frozenset()

    async def lookup(self, identity: Identity) -> frozenset[str]:
        """Like calling the resolver, but raises :class:`KubeIAMError` when IAM fails."""
        if identity.kind is not PrincipalKind.USER:
            return frozenset()
        user_name = identity.canonical_arn.rsplit("/", 1)[-1]
        groups, _ = await self._cache.get_or_load(
            arn_key(identity.canonical_arn), lambda: self._fetch(user_name), ttl=self._ttl
        )
        return groups

    async def _fetch(self, user_name: str) -> frozenset[str]:
        await self._bucket.acquire()
        if self._on_call is not None:
            self._on_call()
        try:
            return await self._pool.run(self._call, user_name)
        except KubeIAMError:
            raise
        except Exception as exc:
            raise KubeIAMError(f"iam:ListGroupsForUser failed: {type(exc).__name__}") from None

    def _call(self, user_name: str) -> frozenset[str]:
        """Runs in a worker thread: every page of ListGroupsForUser, as lower-cased ARNs."""
        pages = self._client().get_paginator("list_groups_for_user").paginate(UserName=user_name)
        arns: set[str] = set()
        try:
            for page in itertools.islice(pages, _MAX_PAGES):
                for group in page.get("Groups", []):
                    arn = group.get("Arn")
                    if isinstance(arn, str):
                        arns.add(arn_key(arn))
        except Exception as exc:
            raise call_failed(
                "iam:ListGroupsForUser",
                exc,
                hint="grant the server iam:ListGroupsForUser (or set iamGroupRoleARN to a "
                "role that has it)",
            ) from None
        return frozenset(arns)

    def _failed(self, reason: str) -> None:
        if self._on_failure is not None:
            self._on_failure()
        if reason not in self._logged and len(self._logged) < _MAX_LOGGED_REASONS:
            self._logged.add(reason)
            log.warning(
                "IAM group lookup failed; mapGroups entries do not match until it succeeds",
                extra={"error": reason},
            )

    async def close(self) -> None:
        """Wait for calls in flight, then stop the thread pool."""
        await self._cache.wait_loads()
        self._pool.shutdown()
