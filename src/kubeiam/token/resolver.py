"""The STS client's name resolver: bounded, cached, and unable to be starved by token floods.

kube-apiserver forwards any bearer token to the webhook, so the STS host names the server looks
up are chosen by whoever sends tokens (within the host check's bounds: well-formed regions that
need not exist). aiohttp's default resolver runs ``getaddrinfo`` on the event loop's shared
default executor, a handful of threads: a stream of tokens naming hosts that resolve slowly (or
never) held every thread, and valid users' reviews waited behind them until STS "did not answer
within 10 s". :class:`BoundedResolver` replaces it:

* **its own small pool** (``pool_size`` threads), shared with nothing else (the EC2 and IAM calls
  have pools of their own, see :mod:`kubeiam.aws.calls`);
* **per-host single flight**: one lookup per host at a time, however many reviews wait on it,
  and never a second thread for a host whose earlier lookup is still stuck in ``getaddrinfo``;
* **positive cache** for ``positive_ttl`` seconds (``getaddrinfo`` reports no DNS TTL; 30 s is
  shorter than the 60 s AWS publishes for STS names), and after that the last good answer is
  served for up to ``max_stale`` seconds while a refresh runs in the background, so a host that
  has answered once never waits behind anything again;
* **negative cache**: a failed lookup (NXDOMAIN, no answer within ``timeout``) is remembered for
  ``negative_ttl`` seconds, so a repeated bad host costs nothing;
* **a lane for known hosts**: hosts that never resolved may hold at most ``pool_size - 1`` threads,
  and at most ``max_pending`` of them may wait or run at once; beyond that a lookup fails at once
  (``EAI_AGAIN``) and only that token's review fails (as "STS unavailable"), nobody else's. At
  least one thread is always free for known hosts: those that resolved before, and the STS hosts
  of the regions AWS has published (:func:`kubeiam.partitions.published_sts_host`, a few hundred
  names at most), so a user from a real region is never queued behind a flood of made-up ones,
  even on first use;
* ``--sts-resolve`` entries (``static``) are answered from the table, with no lookup at all.

Failures are raised as :class:`socket.gaierror` (an ``OSError``), which aiohttp turns into a
connection error that the STS client reports per token. Nothing here logs a URL or a token.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from kubeiam.expiring_cache import ExpiringCache
from kubeiam.partitions import published_sts_host

#: Threads doing ``getaddrinfo``. STS names resolve in milliseconds and are cached, so a few are
#: plenty; the bound is what keeps a flood of slow names from taking more.
DEFAULT_POOL_SIZE = 4
#: Lookups of never-resolved hosts that may wait or run at once; beyond, they fail at once.
DEFAULT_MAX_PENDING = 32
#: Seconds one lookup may take before it counts as failed (the thread may go on; the caller
#: does not wait). Well under the STS call's 10 s, so a dead name fails its review early.
DEFAULT_TIMEOUT = 3.0
#: Seconds a good answer is reused before it is refreshed.
DEFAULT_POSITIVE_TTL = 30.0
#: Seconds a failed lookup (NXDOMAIN, timeout) is remembered: "briefly", so a name that starts
#: to exist is found soon, but a flood repeating one bad name costs one lookup per period.
DEFAULT_NEGATIVE_TTL = 5.0
#: Seconds the last good answer may still be served while a refresh is under way or failing.
DEFAULT_MAX_STALE = 600.0
#: Hosts remembered (answers and last good answers each).
DEFAULT_MAX_ENTRIES = 1024

_NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
#: ``getaddrinfo``'s signature, injectable so that tests never send a DNS query.
GetAddrInfo = Callable[..., list[tuple[Any, ...]]]
_Key = tuple[str, int, int]


class ResolverOverloaded(socket.gaierror):
    """Too many lookups of unknown hosts are pending: this one fails at once."""


@dataclass(frozen=True, slots=True)
class _Answer:
    """One lookup's outcome: addresses, or the failure to raise again (a negative entry)."""

    results: tuple[ResolveResult, ...] = ()
    error_code: int = 0
    error_text: str = ""

    def unwrap(self) -> list[ResolveResult]:
        if self.error_code or not self.results:
            raise socket.gaierror(self.error_code or socket.EAI_NONAME, self.error_text)
        return list(self.results)


class BoundedResolver(AbstractResolver):
    """An aiohttp resolver with its own bounded pool, caches and single-flight lookups."""

    def __init__(
        self,
        *,
        static: Mapping[str, tuple[str, int]] | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_pending: int = DEFAULT_MAX_PENDING,
        timeout: float = DEFAULT_TIMEOUT,
        positive_ttl: float = DEFAULT_POSITIVE_TTL,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        max_stale: float = DEFAULT_MAX_STALE,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        getaddrinfo: GetAddrInfo = socket.getaddrinfo,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str], None] | None = None,
        preferred: Callable[[str], bool] = published_sts_host,
    ) -> None:
        """``on_event(name)`` is told of each ``"lookup"`` (a ``getaddrinfo`` started) and each
        ``"overloaded"`` (a lookup refused by the bound); the server counts them."""
        if pool_size < 2:
            raise ValueError("pool_size must be >= 2 (one thread stays free for known hosts)")
        if max_pending < 1 or not timeout > 0 or not positive_ttl > 0 or negative_ttl < 0:
            raise ValueError("max_pending >= 1, timeout > 0, positive_ttl > 0, negative_ttl >= 0")
        self._static = dict(static or {})
        self.pool_size = pool_size
        self.max_pending = max_pending
        self.timeout = timeout
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self.max_stale = max_stale
        self._getaddrinfo = getaddrinfo
        self._on_event = on_event
        self._preferred = preferred
        self._answers: ExpiringCache[_Key, _Answer] = ExpiringCache(
            max_entries=max_entries, clock=clock
        )
        self._last_good: ExpiringCache[_Key, tuple[ResolveResult, ...]] = ExpiringCache(
            max_entries=max_entries, clock=clock
        )
        self._executor: ThreadPoolExecutor | None = None
        #: Hosts whose ``getaddrinfo`` is running in a thread (even if nobody waits any more).
        self._in_thread: set[_Key] = set()
        #: Threads held by lookups of never-resolved hosts (released when the thread returns).
        self._unknown_running = 0
        self._unknown_waiting = 0
        self._unknown_freed: asyncio.Event | None = None
        #: Counters for tests and benchmarks: lookups run, refused because of the bound.
        self.lookups = 0
        self.overloaded = 0

    # --- AbstractResolver -------------------------------------------------------------------

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        static = self._static.get(host)
        if static is not None:
            return [_static_result(host, *static)]
        key: _Key = (host, port, int(family))
        answer = self._answers.get(key)
        if answer is not None and not answer.error_code:
            return list(answer.results)
        stale = self._last_good.get(key)
        if stale is not None:
            # Serve the last good answer now (also while refreshes fail); refresh it in the
            # background, one refresh at a time.
            if answer is None:
                self._answers.start_load(key, lambda: self._lookup(key, known=True), ttl=self._ttl)
            return list(stale)
        if answer is not None:
            return answer.unwrap()  # a negative entry
        answer, _ = await self._answers.get_or_load(
            key, lambda: self._lookup(key, known=self._preferred(host)), ttl=self._ttl
        )
        return answer.unwrap()

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # --- the lookup -------------------------------------------------------------------------

    def _ttl(self, answer: _Answer) -> float:
        return self.negative_ttl if answer.error_code else self.positive_ttl

    async def _lookup(self, key: _Key, *, known: bool) -> _Answer:
        """One ``getaddrinfo`` on the pool. Unknown hosts go through the bounded lane."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        if key in self._in_thread:
            # The last lookup of this host timed out and its thread is still stuck: one thread
            # per host at most, so this one fails (and is cached as a failure) at once.
            return _Answer(error_code=socket.EAI_AGAIN, error_text="name lookup still pending")
        if not known:
            await self._enter_unknown_lane(deadline)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.pool_size, thread_name_prefix="kubeiam-dns")
        self.lookups += 1
        self._event("lookup")
        host, port, family = key
        try:
            thread = loop.run_in_executor(self._executor, self._blocking_lookup, host, port, family)
        except BaseException:
            if not known:
                self._leave_unknown_lane()
            raise
        self._in_thread.add(key)
        thread.add_done_callback(lambda _: self._in_thread.discard(key))
        if not known:
            thread.add_done_callback(lambda _: self._leave_unknown_lane())
        try:
            answer = await asyncio.wait_for(asyncio.shield(thread), deadline - loop.time())
        except TimeoutError:
            thread.add_done_callback(_retrieve)
            return _Answer(error_code=socket.EAI_AGAIN, error_text="name lookup timed out")
        if answer.results:
            self._last_good.put(key, answer.results, self.max_stale)
        return answer

    def _blocking_lookup(self, host: str, port: int, family: int) -> _Answer:
        """Runs in a pool thread; never raises."""
        try:
            infos = self._getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return _Answer(error_code=exc.errno or socket.EAI_FAIL, error_text=_text(exc))
        except (OSError, UnicodeError, ValueError) as exc:
            # UnicodeError: the IDNA codec refuses labels over 63 characters.
            return _Answer(error_code=socket.EAI_FAIL, error_text=type(exc).__name__)
        results: list[ResolveResult] = []
        for fam, _, proto, _, address in infos:
            if fam not in (socket.AF_INET, socket.AF_INET6) or len(address) < 2:
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=str(address[0]),
                    port=int(address[1]),
                    family=fam,
                    proto=proto,
                    flags=_NUMERIC_FLAGS,
                )
            )
        if not results:
            return _Answer(error_code=socket.EAI_NODATA, error_text="no addresses")
        return _Answer(results=tuple(results))

    # --- the lane for hosts that never resolved ---------------------------------------------

    async def _enter_unknown_lane(self, deadline: float) -> None:
        """Take one of the ``pool_size - 1`` threads unknown hosts may hold, or fail fast."""
        if self._unknown_running + self._unknown_waiting >= self.max_pending:
            self.overloaded += 1
            self._event("overloaded")
            raise ResolverOverloaded(socket.EAI_AGAIN, "too many name lookups pending")
        loop = asyncio.get_running_loop()
        self._unknown_waiting += 1
        try:
            while self._unknown_running >= self.pool_size - 1:
                if self._unknown_freed is None:
                    self._unknown_freed = asyncio.Event()
                freed = self._unknown_freed
                try:
                    await asyncio.wait_for(freed.wait(), deadline - loop.time())
                except TimeoutError:
                    self.overloaded += 1
                    self._event("overloaded")
                    raise ResolverOverloaded(
                        socket.EAI_AGAIN, "no name lookup thread became free in time"
                    ) from None
        finally:
            self._unknown_waiting -= 1
        self._unknown_running += 1

    def _event(self, name: str) -> None:
        if self._on_event is not None:
            self._on_event(name)

    def _leave_unknown_lane(self) -> None:
        self._unknown_running -= 1
        if self._unknown_freed is not None:
            # Wake every waiter; the loop in _enter_unknown_lane lets one through per thread.
            self._unknown_freed.set()
            self._unknown_freed = None


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _text(exc: socket.gaierror) -> str:
    return exc.strerror or type(exc).__name__


def _static_result(host: str, addr: str, port: int) -> ResolveResult:
    return ResolveResult(
        hostname=host,
        host=addr,
        port=port,
        family=socket.AF_INET6 if ":" in addr else socket.AF_INET,
        proto=0,
        flags=socket.AI_NUMERICHOST,
    )
