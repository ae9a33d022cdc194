"""Waiting for a condition instead of sleeping for a guess: a test goes on as soon as what it
waits for has happened, and fails with a message saying what did not happen in time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

#: How often a condition is checked: short, since most conditions hold within milliseconds.
INTERVAL = 0.005


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 5.0,
    what: str = "the condition",
    interval: float = INTERVAL,
) -> None:
    """Return as soon as ``condition()`` (sync or async) is true; fail after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await asyncio.sleep(interval)


def wait_for(
    condition: Callable[[], bool],
    *,
    timeout: float = 5.0,
    what: str = "the condition",
    interval: float = INTERVAL,
) -> None:
    """:func:`until` for code outside an event loop (threads, processes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        time.sleep(interval)
