"""BoundedResolver: its own pool, per-host single flight, positive/stale/negative caches, and a
bounded lane for never-resolved hosts, so slow or failing names cannot delay anyone else.

``getaddrinfo`` is injected: these tests never send a DNS query (a slow or dead DNS server is a
fault that cannot be produced on loopback without a network namespace; bench/ does that part).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest

from kubeiam.token.resolver import BoundedResolver, ResolverOverloaded
from support.waiting import until

GOOD = "sts.us-east-1.amazonaws.com"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class FakeDNS:
    """``getaddrinfo`` with per-host behaviour: an address, NXDOMAIN, or blocking on a gate."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.slow: set[str] = set()
        self.missing: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int, family: int = 0, type: int = 0) -> list[Any]:
        host.encode("idna")  # what socket.getaddrinfo does first (UnicodeError past 63 chars)
        with self._lock:
            self.calls.append(host)
        if host in self.slow or host.startswith("slow"):
            self.gate.wait(10)
        if host in self.missing or host.startswith("missing"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.10", port))]


@pytest.fixture
def dns() -> Any:
    fake = FakeDNS()
    yield fake
    fake.gate.set()


def make(dns: FakeDNS, clock: Clock | None = None, **kwargs: Any) -> BoundedResolver:
    return BoundedResolver(getaddrinfo=dns, clock=clock or Clock(), **kwargs)


async def test_answers_are_cached_then_served_stale_while_refreshed(dns: FakeDNS) -> None:
    clock = Clock()
    resolver = make(dns, clock, positive_ttl=30)
    first = await resolver.resolve(GOOD, 443)
    assert first[0]["host"] == "192.0.2.10"
    assert await resolver.resolve(GOOD, 443) == first
    assert dns.calls == [GOOD]
    clock.now += 30
    dns.slow.add(GOOD)  # the refresh hangs: the stale answer is served at once anyway
    assert await asyncio.wait_for(resolver.resolve(GOOD, 443), 1) == first
    assert await asyncio.wait_for(resolver.resolve(GOOD, 443), 1) == first
    await until(lambda: len(dns.calls) >= 2, what="the background refresh")
    assert dns.calls == [GOOD, GOOD]  # one background refresh, shared
    dns.gate.set()
    await resolver.close()


async def test_failures_are_cached_briefly(dns: FakeDNS) -> None:
    clock = Clock()
    resolver = make(dns, clock, negative_ttl=5)
    for _ in range(3):
        with pytest.raises(socket.gaierror) as info:
            await resolver.resolve("missing.example", 443)
        assert info.value.errno == socket.EAI_NONAME
    assert dns.calls == ["missing.example"]
    clock.now += 5
    with pytest.raises(socket.gaierror):
        await resolver.resolve("missing.example", 443)
    assert len(dns.calls) == 2
    await resolver.close()


async def test_concurrent_lookups_of_one_host_share_one_call(dns: FakeDNS) -> None:
    resolver = make(dns)
    dns.slow.add(GOOD)
    waiters = [asyncio.ensure_future(resolver.resolve(GOOD, 443)) for _ in range(40)]
    # The lookup runs only after every waiter's first step: all 40 have asked by then.
    await until(lambda: len(dns.calls) >= 1, what="the lookup")
    dns.gate.set()
    results = await asyncio.gather(*waiters)
    assert dns.calls == [GOOD]
    assert all(r == results[0] for r in results)
    await resolver.close()


async def test_slow_unknown_hosts_fail_fast_past_the_bound_and_never_block_known_hosts(
    dns: FakeDNS,
) -> None:
    clock = Clock()
    resolver = make(dns, clock, pool_size=4, max_pending=8, timeout=5, positive_ttl=30)
    await resolver.resolve(GOOD, 443)  # known from now on
    flood = [asyncio.ensure_future(resolver.resolve(f"slow{i}.example", 443)) for i in range(50)]
    await until(
        lambda: (
            sum(f.done() for f in flood) >= 42
            and sum(1 for h in dns.calls if h.startswith("slow")) >= 3
        ),
        what="the flood's refusals and running lookups",
    )
    # 3 threads (pool_size - 1) run slow lookups, 5 more wait, the other 42 failed at once.
    done = [f for f in flood if f.done()]
    assert len(done) == 42
    assert all(isinstance(f.exception(), ResolverOverloaded) for f in done)
    assert resolver.overloaded == 42
    assert sum(1 for h in dns.calls if h.startswith("slow")) == 3

    # The known host: cached, and after its ttl served stale and refreshed on the free thread.
    clock.now += 31
    started = time.perf_counter()
    assert (await asyncio.wait_for(resolver.resolve(GOOD, 443), 1))[0]["host"] == "192.0.2.10"
    await until(lambda: dns.calls.count(GOOD) >= 2, what="the refresh of the known host")
    assert dns.calls.count(GOOD) == 2
    assert time.perf_counter() - started < 1

    dns.gate.set()
    await asyncio.gather(*flood, return_exceptions=True)
    await resolver.close()


async def test_a_lookup_that_takes_too_long_fails_and_is_cached_as_a_failure(
    dns: FakeDNS,
) -> None:
    resolver = make(dns, timeout=0.1, negative_ttl=5)
    with pytest.raises(socket.gaierror) as info:
        await resolver.resolve("slow.example", 443)
    assert info.value.errno == socket.EAI_AGAIN
    with pytest.raises(socket.gaierror):
        await resolver.resolve("slow.example", 443)
    assert dns.calls == ["slow.example"]
    dns.gate.set()
    await resolver.close()


@pytest.mark.parametrize(
    "host",
    ["sts." + "a" * 64 + ".amazonaws.com", "a" * 300],
    ids=["label-64", "name-300"],
)
async def test_names_the_idna_codec_refuses_fail_as_lookups_not_exceptions(
    dns: FakeDNS, host: str
) -> None:
    resolver = make(dns)
    with pytest.raises(socket.gaierror):
        await resolver.resolve(host, 443)
    await resolver.close()


async def test_static_entries_are_answered_without_a_lookup(dns: FakeDNS) -> None:
    resolver = make(dns, static={GOOD: ("127.0.0.1", 8443), "sts.x.example": ("::1", 9)})
    (v4,) = await resolver.resolve(GOOD, 443)
    (v6,) = await resolver.resolve("sts.x.example", 443)
    assert (v4["host"], v4["port"], v4["family"]) == ("127.0.0.1", 8443, socket.AF_INET)
    assert (v6["host"], v6["family"]) == ("::1", socket.AF_INET6)
    assert dns.calls == []


@pytest.mark.parametrize(
    "kwargs",
    [{"pool_size": 1}, {"max_pending": 0}, {"timeout": 0}, {"negative_ttl": -1}],
    ids=["pool-1", "pending-0", "timeout-0", "negative-ttl"],
)
def test_bad_bounds_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=">="):
        BoundedResolver(**kwargs)


def test_pool_size_and_negative_ttl_are_constructor_parameters() -> None:
    resolver = BoundedResolver(pool_size=6, negative_ttl=2.5)
    assert (resolver.pool_size, resolver.negative_ttl) == (6, 2.5)


async def test_a_host_stuck_in_getaddrinfo_never_gets_a_second_thread(dns: FakeDNS) -> None:
    clock = Clock()
    resolver = make(dns, clock, timeout=0.1, negative_ttl=1)
    for _ in range(3):
        with pytest.raises(socket.gaierror) as info:
            await resolver.resolve("slow.example", 443)
        assert info.value.errno == socket.EAI_AGAIN
        clock.now += 1  # the negative entry expires; the first thread is still stuck
    assert dns.calls == ["slow.example"]
    with pytest.raises(socket.gaierror) as missing:  # other hosts are not held up meanwhile
        await asyncio.wait_for(resolver.resolve("missing.example", 443), 1)
    assert missing.value.errno == socket.EAI_NONAME
    dns.gate.set()
    # Kept: nothing public tells when the released thread's end has reached the event loop
    # (the resolver forgets a late answer); until then the host still counts as in a thread.
    await asyncio.sleep(0.05)
    clock.now += 1
    assert (await resolver.resolve("slow.example", 443))[0]["host"] == "192.0.2.10"
    assert dns.calls == ["slow.example", "missing.example", "slow.example"]
    await resolver.close()


async def test_lookups_and_refusals_are_reported(dns: FakeDNS) -> None:
    events: list[str] = []
    resolver = make(dns, pool_size=2, max_pending=1, on_event=events.append)
    blocked = asyncio.ensure_future(resolver.resolve("slow.example", 443))
    await until(lambda: events == ["lookup"], what="the first lookup")
    with pytest.raises(ResolverOverloaded):
        await resolver.resolve("slow2.example", 443)
    dns.gate.set()
    await blocked
    assert events == ["lookup", "overloaded"]
    await resolver.close()


async def test_published_regions_skip_the_queue_of_made_up_ones_even_on_first_use(
    dns: FakeDNS,
) -> None:
    resolver = make(dns, pool_size=3, max_pending=4, timeout=5)
    flood = [asyncio.ensure_future(resolver.resolve(f"slow{i}.example", 443)) for i in range(10)]
    await until(lambda: resolver.overloaded >= 6, what="the refusals")
    assert resolver.overloaded == 6  # 2 running, 2 waiting, the rest refused
    first_use = "sts-fips.eu-west-3.amazonaws.com"
    (answer,) = await asyncio.wait_for(resolver.resolve(first_use, 443), 1)
    assert answer["hostname"] == first_use
    with pytest.raises(ResolverOverloaded):  # a made-up region still waits its turn
        await resolver.resolve("sts.zz-north-9.amazonaws.com", 443)
    dns.gate.set()
    await asyncio.gather(*flood, return_exceptions=True)
    await resolver.close()


@pytest.mark.parametrize(
    ("host", "published"),
    [
        ("sts.amazonaws.com", True),
        ("sts.us-east-1.amazonaws.com", True),
        ("sts-fips.us-gov-west-1.amazonaws.com", True),
        ("sts.eu-west-1.api.aws", True),
        ("sts.zz-north-9.amazonaws.com", False),
        ("ec2.us-east-1.amazonaws.com", False),
        ("vpce-1.sts.us-east-1.vpce.amazonaws.com", False),
    ],
    ids=["global", "regional", "fips-gov", "dual-stack", "made-up", "not-sts", "vpce"],
)
def test_published_sts_hosts(host: str, published: bool) -> None:
    from kubeiam.partitions import published_sts_host

    assert published_sts_host(host) is published
