"""A real boto3 client's API calls, seen through botocore's own event system (no wrapper).

The code under test keeps calling the client as it likes (methods, paginators); the test
registers on ``client.meta.events`` and reads what was asked, in which thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Calls:
    """Each call of one operation: its parameters and the name of the thread that made it."""

    params: list[dict[str, Any]] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.params)

    def record(self, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.params.append(dict(params))
            self.threads.append(threading.current_thread().name)


def watch(client: Any, operation: str) -> Calls:
    """Record every ``operation`` (``"DescribeInstances"``) that ``client`` sends from now on."""
    calls = Calls()
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-parameter-build.{service}.{operation}", calls.record)
    return calls
