"""The identity cache: expiry, LRU bound, single flight, errors never cached."""

from __future__ import annotations

import asyncio
import gc
import types

import pytest

from kubeiam.errors import STSError, STSUnavailableError
from kubeiam.identity import Identity
from kubeiam.server.identity_cache import DEFAULT_TTL, CacheOutcome, IdentityCache, token_key
from support.identities import user_identity


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingVerifier:
    """Counts its calls. A ``gated`` one sets :attr:`started`, then waits for :attr:`release`:
    the test decides when the call ends, instead of a delay that must be long enough."""

    def __init__(self, result: Identity | Exception, *, gated: bool = False) -> None:
        self.result = result
        self.gated = gated
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, token: str) -> Identity:
        self.calls += 1
        self.started.set()
        if self.gated:
            await self.release.wait()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_second_review_is_a_hit_until_the_token_expires() -> None:
    clock = Clock()
    cache = IdentityCache(clock=clock, ttl=900)
    verify = CountingVerifier(user_identity(expires_at=clock.now + 900))
    first = await cache.get_or_verify("tok", verify)
    second = await cache.get_or_verify("tok", verify)
    assert (first[1], second[1]) == (CacheOutcome.MISS, CacheOutcome.HIT)
    assert verify.calls == 1
    clock.now += 899.9
    assert (await cache.get_or_verify("tok", verify))[1] is CacheOutcome.HIT
    clock.now += 0.1  # exactly the token's expiry: never longer
    assert (await cache.get_or_verify("tok", verify))[1] is CacheOutcome.MISS
    assert verify.calls == 2


async def test_identity_already_expired_or_without_expiry_is_not_cached() -> None:
    clock = Clock()
    cache = IdentityCache(clock=clock)
    for expires in (0.0, clock.now - 1):
        verify = CountingVerifier(user_identity(expires_at=expires))
        await cache.get_or_verify(f"t{expires}", verify)
        await cache.get_or_verify(f"t{expires}", verify)
        assert verify.calls == 2
    assert len(cache) == 0


async def test_bounded_lru_evicts_least_recently_used() -> None:
    clock = Clock()
    cache = IdentityCache(max_entries=2, clock=clock)
    verify = CountingVerifier(user_identity(expires_at=clock.now + 900))
    await cache.get_or_verify("a", verify)
    await cache.get_or_verify("b", verify)
    await cache.get_or_verify("a", verify)  # a is now the most recent
    await cache.get_or_verify("c", verify)  # evicts b
    assert len(cache) == 2
    assert (await cache.get_or_verify("c", verify))[1] is CacheOutcome.HIT
    assert (await cache.get_or_verify("a", verify))[1] is CacheOutcome.HIT
    assert (await cache.get_or_verify("b", verify))[1] is CacheOutcome.MISS


def _held_by(root: object) -> list[object]:
    """Every object reachable from ``root`` through references (classes, modules and functions,
    which lead to the whole program, excluded): what the cache keeps in memory."""
    seen: set[int] = set()
    found: list[object] = []
    stack = [root]
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        found.append(obj)
        stack.extend(gc.get_referents(obj))
    return found


async def test_keys_are_sha256_digests_never_the_token() -> None:
    cache = IdentityCache(clock=Clock())
    token = "k8s-aws-v1.secret-material"
    await cache.get_or_verify(token, CountingVerifier(user_identity(expires_at=10_000)))
    assert (await cache.get_or_verify(token, CountingVerifier(STSError("unused"))))[
        1
    ] is CacheOutcome.HIT
    held = _held_by(cache)
    assert token_key(token) in held
    assert len(token_key(token)) == 32
    assert not [o for o in held if isinstance(o, str | bytes) and "secret-material" in str(o)]


async def test_concurrent_reviews_of_one_token_share_one_call() -> None:
    cache = IdentityCache(clock=Clock())
    verify = CountingVerifier(user_identity(expires_at=10_000), gated=True)
    callers = [asyncio.ensure_future(cache.get_or_verify("tok", verify)) for _ in range(50)]
    await verify.started.wait()  # the call runs after every caller's first step
    verify.release.set()
    results = await asyncio.gather(*callers)
    assert verify.calls == 1
    outcomes = [r[1] for r in results]
    assert outcomes.count(CacheOutcome.MISS) == 1
    assert outcomes.count(CacheOutcome.SHARED) == 49


async def test_error_is_shared_by_waiters_but_not_cached() -> None:
    cache = IdentityCache(clock=Clock())
    failing = CountingVerifier(STSUnavailableError("STS down"), gated=True)
    callers = [asyncio.ensure_future(cache.get_or_verify("tok", failing)) for _ in range(10)]
    await failing.started.wait()
    failing.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert failing.calls == 1
    assert all(isinstance(r, STSUnavailableError) for r in results)
    assert len(cache) == 0
    ok = CountingVerifier(user_identity(expires_at=10_000))
    assert (await cache.get_or_verify("tok", ok))[1] is CacheOutcome.MISS
    assert ok.calls == 1


async def test_cancelled_first_waiter_does_not_cancel_the_shared_call() -> None:
    cache = IdentityCache(clock=Clock())
    verify = CountingVerifier(user_identity(expires_at=10_000), gated=True)
    first = asyncio.ensure_future(cache.get_or_verify("tok", verify))
    await verify.started.wait()  # the first caller's call is in flight
    second = asyncio.ensure_future(cache.get_or_verify("tok", verify))
    await asyncio.sleep(0)  # one turn of the loop: the second caller joins the call in flight
    first.cancel()
    verify.release.set()
    identity_, outcome = await second
    assert outcome is CacheOutcome.SHARED
    assert identity_.arn.endswith("alice")
    with pytest.raises(asyncio.CancelledError):
        await first
    assert verify.calls == 1
    assert len(cache) == 1


async def test_an_expired_entry_is_not_served_and_a_live_one_is() -> None:
    clock = Clock()
    cache = IdentityCache(clock=clock)
    await cache.get_or_verify("a", CountingVerifier(user_identity(expires_at=clock.now + 10)))
    await cache.get_or_verify("b", CountingVerifier(user_identity(expires_at=clock.now + 100)))
    clock.now += 50
    again = CountingVerifier(user_identity(expires_at=clock.now + 100))
    assert (await cache.get_or_verify("a", again))[1] is CacheOutcome.MISS
    assert (await cache.get_or_verify("b", again))[1] is CacheOutcome.HIT
    assert again.calls == 1


def test_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        IdentityCache(max_entries=-1)


async def test_sts_error_propagates_unchanged() -> None:
    cache = IdentityCache(clock=Clock())
    with pytest.raises(STSError, match="nope"):
        await cache.get_or_verify("x", CountingVerifier(STSError("nope")))


async def test_default_ttl_is_under_kube_apiservers_webhook_cache_ttl() -> None:
    clock = Clock()
    cache = IdentityCache(clock=clock)
    assert cache.ttl == DEFAULT_TTL <= 120
    verify = CountingVerifier(user_identity(expires_at=clock.now + 900))
    await cache.get_or_verify("tok", verify)
    clock.now += DEFAULT_TTL - 0.1
    assert (await cache.get_or_verify("tok", verify))[1] is CacheOutcome.HIT
    clock.now += 0.1  # the ttl is over although the token lives 14 more minutes
    assert (await cache.get_or_verify("tok", verify))[1] is CacheOutcome.MISS
    assert verify.calls == 2


async def test_token_expiring_before_the_ttl_ends_the_entry_at_its_expiry() -> None:
    clock = Clock()
    cache = IdentityCache(clock=clock, ttl=120)
    verify = CountingVerifier(user_identity(expires_at=clock.now + 30))
    await cache.get_or_verify("tok", verify)
    clock.now += 29.9
    assert (await cache.get_or_verify("tok", verify))[1] is CacheOutcome.HIT
    clock.now += 0.1
    assert (await cache.get_or_verify("tok", verify))[1] is CacheOutcome.MISS


@pytest.mark.parametrize("ttl", [0, -1, 900.1, 3600], ids=["zero", "negative", "over-900", "hour"])
def test_ttl_out_of_range_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        IdentityCache(ttl=ttl)
