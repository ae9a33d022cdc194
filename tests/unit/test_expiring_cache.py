"""ExpiringCache: deadlines, LRU bound, max_age, single flight, errors never stored."""

from __future__ import annotations

import asyncio

import pytest

from kubeiam.expiring_cache import ExpiringCache, Outcome


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Loader:
    """A load that counts its calls. A ``gated`` one sets :attr:`started`, then waits for
    :attr:`release`: the test decides when it ends, instead of a delay that must be long enough."""

    def __init__(self, result: str | Exception = "v", *, gated: bool = False) -> None:
        self.result = result
        self.gated = gated
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> str:
        self.calls += 1
        self.started.set()
        if self.gated:
            await self.release.wait()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_entry_lives_exactly_its_ttl() -> None:
    clock = Clock()
    cache: ExpiringCache[str, str] = ExpiringCache(max_entries=10, clock=clock)
    cache.put("k", "v", 5)
    clock.now += 4.999
    assert cache.get("k") == "v"
    clock.now += 0.001
    assert cache.get("k") is None
    assert len(cache) == 0


@pytest.mark.parametrize("ttl", [0, -3], ids=["zero", "negative"])
def test_non_positive_ttl_is_not_stored(ttl: float) -> None:
    cache: ExpiringCache[str, str] = ExpiringCache(max_entries=10, clock=Clock())
    cache.put("k", "v", ttl)
    assert cache.get("k") is None
    assert len(cache) == 0


def test_lru_bound_evicts_least_recently_used_and_zero_caches_nothing() -> None:
    cache: ExpiringCache[str, str] = ExpiringCache(max_entries=2, clock=Clock())
    cache.put("a", "1", 10)
    cache.put("b", "2", 10)
    assert cache.get("a") == "1"  # a is now the most recent
    cache.put("c", "3", 10)
    assert len(cache) == 2
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("1", None, "3")
    off: ExpiringCache[str, str] = ExpiringCache(max_entries=0, clock=Clock())
    off.put("a", "1", 10)
    assert len(off) == 0
    with pytest.raises(ValueError, match="max_entries"):
        ExpiringCache(max_entries=-1)


def test_max_age_refuses_old_entries_for_that_caller_only() -> None:
    clock = Clock()
    cache: ExpiringCache[str, str] = ExpiringCache(max_entries=10, clock=clock)
    cache.put("k", "v", 3600)
    clock.now += 301
    assert cache.get("k", max_age=300) is None
    assert cache.get("k") == "v"


async def test_max_age_reloads_and_the_new_value_is_fresh() -> None:
    clock = Clock()
    cache: ExpiringCache[str, str] = ExpiringCache(max_entries=10, clock=clock)
    await cache.get_or_load("k", Loader("old"), ttl=3600)
    clock.now += 301
    value, outcome = await cache.get_or_load("k", Loader("new"), ttl=3600, max_age=300)
    assert (value, outcome) == ("new", Outcome.MISS)
    assert cache.get("k", max_age=300) == "new"


async def test_concurrent_loads_of_one_key_share_one_call() -> None:
    cache: ExpiringCache[str, str] = ExpiringCache(max_entries=10, clock=Clock())
    load = Loader(gated=True)
    callers = [asyncio.ensure_future(cache.get_or_load("k", load, ttl=10)) for _ in range(40)]
    await load.started.wait()  # the load task runs after every caller's first step
    load.release.set()
    results = await asyncio.gather(*callers)
    assert load.calls == 1
    outcomes = [r[1] for r in results]
    assert outcomes.count(Outcome.MISS) == 1
    assert outcomes.count(Outcome.SHARED) == 39
    assert (await cache.get_or_load("k", load, ttl=10))[1] is Outcome.HIT
    assert load.calls == 1


async def test_error_reaches_every_waiter_and_is_not_stored() -> None:
    cache: ExpiringCache[str, str] = ExpiringCache(max_entries=10, clock=Clock())
    failing = Loader(RuntimeError("down"), gated=True)
    callers = [asyncio.ensure_future(cache.get_or_load("k", failing, ttl=10)) for _ in range(5)]
    await failing.started.wait()
    failing.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert failing.calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(cache) == 0
    # The failed load is forgotten: the next caller loads again instead of sharing it.
    assert (await cache.get_or_load("k", Loader("ok"), ttl=10)) == ("ok", Outcome.MISS)


async def test_ttl_may_depend_on_the_value() -> None:
    clock = Clock()
    cache: ExpiringCache[str, str] = ExpiringCache(max_entries=10, clock=clock)
    await cache.get_or_load("short", Loader("s"), ttl=lambda v: 1 if v == "s" else 100)
    await cache.get_or_load("never", Loader("n"), ttl=lambda v: 0)
    assert cache.get("never") is None
    assert len(cache) == 1
    clock.now += 1
    assert cache.get("short") is None


async def test_cancelled_caller_does_not_cancel_the_shared_load() -> None:
    cache: ExpiringCache[str, str] = ExpiringCache(max_entries=10, clock=Clock())
    load = Loader(gated=True)
    first = asyncio.ensure_future(cache.get_or_load("k", load, ttl=10))
    await load.started.wait()  # the first caller's load is in flight
    second = asyncio.ensure_future(cache.get_or_load("k", load, ttl=10))
    await asyncio.sleep(0)  # one turn of the loop: the second caller joins the load in flight
    first.cancel()
    load.release.set()
    assert await second == ("v", Outcome.SHARED)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert load.calls == 1
    assert cache.get("k") == "v"
    await cache.wait_loads()
