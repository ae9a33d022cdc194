"""How the webhook calls AWS from asyncio: a thread pool of its own, a rate limit, and failures
named without echoing the request.

boto3 blocks, so the server's resolvers (:mod:`kubeiam.server.ec2`,
:mod:`kubeiam.server.iam_groups`) run its calls in an :class:`AWSCallPool`; each rate-limits its
calls with a :class:`TokenBucket` (the reference's ``...Qps`` / ``...Burst`` settings); a failed
call becomes a :class:`~kubeiam.errors.KubeIAMError` through :func:`call_failed`, which names the
AWS error code and never AWS's message (it may echo request details into the server's log).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from kubeiam.errors import KubeIAMError

_T = TypeVar("_T")

#: Threads for boto3 calls. DescribeInstances is batched and rate-limited (15/s by default), so a
#: few threads keep up; a bound keeps a stuck AWS endpoint from taking more than these.
DEFAULT_AWS_WORKERS = 4


class AWSCallPool:
    """A small thread pool of its own for blocking boto3 calls, created on first use.

    Not the event loop's default executor: that one runs other blocking work (and, in aiohttp,
    DNS lookups), so one stuck caller there would delay every other.
    """

    def __init__(self, *, workers: int = DEFAULT_AWS_WORKERS, name: str = "kubeiam-aws") -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._workers = workers
        self._name = name
        self._executor: Executor | None = None

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        """Let running calls finish in the background; no new ones start."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up. Clock injected."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def reserve(self) -> float:
        """Take one token; the seconds the caller must wait before using it (0 if available)."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


def call_failed(action: str, exc: Exception, *, hint: str) -> KubeIAMError:
    """An AWS call's failure, named by its error code (never its message, which may echo
    request details) or, without one, by the exception's type."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return KubeIAMError(f"{action} failed: {code or type(exc).__name__}", hint=hint)
