"""A WatchSource that replays a recorded sequence of API answers (tests only).

The real API server arrives with issue 4 (tests/e2e); until then the watch loops are driven
through the same seam the lightkube source plugs into. Sequence files hold ``lists`` (list
answers, or ``{"error": ...}`` for a failed list) and ``watches`` (one event list per watch
request). Two pseudo-events steer the replay: ``DROP`` (the connection breaks: an OSError, the
one fault the recording cannot carry as data) and ``PAUSE`` (the test inspects the backend, then
calls :meth:`ReplaySource.resume`). When the recording is used up, calls block until cancelled.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kubeiam.errors import KubeAPIError
from kubeiam.kube.watch import ListResult, WatchEvent


class ReplaySource:
    def __init__(self, path: Path) -> None:
        script: dict[str, Any] = json.loads(path.read_text())
        self._lists: deque[dict[str, Any]] = deque(script["lists"])
        self._watches: deque[list[dict[str, Any]]] = deque(script["watches"])
        self.list_calls = 0
        self.watch_calls: list[str] = []
        self.exhausted = asyncio.Event()
        self._paused: dict[str, asyncio.Event] = {}
        self._resume = asyncio.Event()

    async def _idle(self) -> None:
        self.exhausted.set()
        await asyncio.Event().wait()

    async def list(self) -> ListResult:
        self.list_calls += 1
        if not self._lists:
            await self._idle()
        answer = self._lists.popleft()
        if "error" in answer:
            raise KubeAPIError(answer["error"])
        return ListResult(tuple(answer["items"]), answer["resourceVersion"])

    async def watch(self, resource_version: str) -> AsyncIterator[WatchEvent]:
        self.watch_calls.append(resource_version)
        if not self._watches:
            await self._idle()
        for raw in self._watches.popleft():
            if raw["type"] == "DROP":
                raise ConnectionResetError("connection reset by peer (recorded drop)")
            if raw["type"] == "PAUSE":
                self._resume.clear()
                self._paused.setdefault(raw["name"], asyncio.Event()).set()
                await self._resume.wait()
                continue
            yield WatchEvent.from_wire(raw)

    async def reached(self, name: str, timeout: float = 5.0) -> None:
        """Wait until the replay stops at PAUSE ``name``."""
        await asyncio.wait_for(self._paused.setdefault(name, asyncio.Event()).wait(), timeout)

    def resume(self) -> None:
        self._resume.set()

    async def finished(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.exhausted.wait(), timeout)
