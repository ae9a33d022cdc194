"""EKSConfigMap and CRD watch loops, replaying recorded API event sequences.

The sequences (tests/fixtures/mapping/watch-*.json) carry ADDED / MODIFIED / DELETED / BOOKMARK
events, a 410 Gone, another ERROR event, failed lists and a dropped connection. They reach the
backends through :class:`ReplaySource`, injected where the lightkube source plugs in; the real
API server arrives with issue 4 and its e2e tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mapping_helpers import ACCOUNT, ec2_names, role_identity, user_identity
from replay_source import ReplaySource

from kubeiam.kube.watch import Backoff, EventType, ListResult, Reflector, WatchEvent
from kubeiam.mapping.backends.configmap import EKSConfigMap
from kubeiam.mapping.backends.crd import CRD
from kubeiam.mapping.chain import MappingChain

FIXTURES = Path(__file__).parents[2] / "fixtures" / "mapping"


class Recorder:
    """The backends' metric hooks and the reflector's sleeps, recorded instead of performed."""

    def __init__(self) -> None:
        self.failures = 0
        self.skipped = 0
        self.sleeps: list[float] = []

    def on_failure(self) -> None:
        self.failures += 1

    def on_skipped(self, n: int) -> None:
        self.skipped += n

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


async def _username(chain: MappingChain, identity: object) -> str | None:
    user = await chain.map(identity)  # type: ignore[arg-type]
    return None if user is None else user.username


async def test_configmap_watch_sequence() -> None:
    source = ReplaySource(FIXTURES / "watch-configmap.json")
    rec = Recorder()
    backend = EKSConfigMap(
        source,
        backoff=Backoff(initial=0.5, maximum=30.0, factor=2.0, jitter=0.2),
        sleep=rec.sleep,
        random=lambda: 0.5,
        on_failure=rec.on_failure,
        on_skipped=rec.on_skipped,
    )
    chain = MappingChain([backend], reserved_prefixes={}, ec2_resolver=ec2_names)
    admin, dev = user_identity("admin"), role_identity("Dev", "sam@example.com")
    node = role_identity("NodeRole", "i-0123456789abcdef0")
    assert not chain.ready
    await backend.start()
    try:
        await source.reached("modified")
        assert chain.ready
        assert backend.served_version == "101"
        assert await _username(chain, admin) == "admin"
        assert await _username(chain, dev) == "dev:sam-example.com"

        source.resume()
        await source.reached("conflict")
        # The conflicting version is refused; version 101 keeps serving.
        assert backend.served_version == "101"
        assert rec.failures == 1
        assert "conflicts with mapUsers line 1" in (backend.store.last_error or "")
        assert await _username(chain, admin) == "admin"

        source.resume()
        await source.reached("skipped")
        assert backend.served_version == "103"
        assert rec.skipped == 1
        assert await _username(chain, dev) == "dev2"

        source.resume()
        await source.reached("relisted")
        # 410 Gone: listed again (no failure counted), then watched from the new version.
        assert backend.reflector is not None
        assert backend.reflector.relists == 1
        assert source.watch_calls == ["100", "200"]
        assert backend.served_version == "200"
        assert await _username(chain, node) == "system:node:ip-10-0-0-1.ec2.internal"
        assert rec.failures == 1

        source.resume()  # DROP: reconnect from the bookmark's version after a backoff
        await source.reached("deleted")
        assert source.watch_calls == ["100", "200", "250"]
        assert rec.sleeps == [0.5]
        assert chain.ready
        assert await _username(chain, admin) is None  # deleted aws-auth fails closed

        source.resume()
        await source.reached("recreated")
        assert await _username(chain, admin) == "admin"

        source.resume()  # ERROR 500, then two failed lists, then a good list
        await source.finished()
        assert rec.sleeps == [0.5, 0.5, 1.0, 2.0]
        assert rec.failures == 1 + 4
        assert backend.reflector.failures == 4
        assert source.list_calls == 5
        assert source.watch_calls == ["100", "200", "250", "300"]
        assert backend.served_version == "300"
        assert await _username(chain, admin) is None
        assert await _username(chain, dev) == "dev:sam-example.com"
    finally:
        await backend.stop()


async def test_crd_watch_sequence() -> None:
    source = ReplaySource(FIXTURES / "watch-crd.json")
    rec = Recorder()
    backend = CRD(
        source,
        sleep=rec.sleep,
        random=lambda: 0.5,
        on_failure=rec.on_failure,
        on_skipped=rec.on_skipped,
    )
    chain = MappingChain([backend], reserved_prefixes={})
    admin = user_identity("KubernetesAdmin")
    ops, viewer = role_identity("Ops", "kim"), role_identity("Viewer", "v")
    await backend.start()
    try:
        await source.reached("edited")
        assert chain.ready
        assert await _username(chain, admin) == "kubernetes-admin"
        assert await _username(chain, ops) == "ops:kim"  # role/teams/Ops matches the STS ARN
        user = await chain.map(viewer)
        assert user is not None
        assert user.groups == ("view", "audit")
        assert (
            user.entry == f"IAMIdentityMapping viewer: rolearn arn:aws:iam::{ACCOUNT}:role/Viewer"
        )

        source.resume()
        await source.reached("conflict")
        assert rec.failures == 1
        assert "IAMIdentityMapping zz-shadow" in (backend.store.last_error or "")
        assert await _username(chain, ops) == "ops:kim"

        source.resume()
        await source.reached("deleted")
        assert await _username(chain, admin) is None
        assert await _username(chain, ops) == "ops:kim"

        source.resume()
        await source.reached("after-drop")
        assert backend.reflector is not None
        assert backend.reflector.relists == 1
        assert source.watch_calls == ["500", "700", "700"]
        assert rec.sleeps == [pytest.approx(0.5)]
        assert await _username(chain, ops) == "ops-v2"
        assert await _username(chain, viewer) is None  # gone from the re-list
        assert rec.skipped == 1  # the object with a 4-digit account
        assert rec.failures == 2
    finally:
        source.resume()
        await backend.stop()


async def test_stop_cancels_a_blocked_watch() -> None:
    source = ReplaySource(FIXTURES / "watch-configmap.json")
    backend = EKSConfigMap(source)
    await backend.start()
    await source.reached("modified")
    await backend.stop()
    assert backend.reflector is not None
    assert backend.ready


class _BrokenHandler:
    """A handler that fails on every call: the loop must keep running and count failures."""

    def __init__(self) -> None:
        self.calls = 0

    def replace_all(self, items: object) -> None:
        self.calls += 1
        raise RuntimeError("handler bug")

    def apply(self, event: object) -> None:
        self.calls += 1
        raise RuntimeError("handler bug")


async def test_a_failing_handler_does_not_end_the_watch() -> None:
    source = ReplaySource(FIXTURES / "watch-crd.json")
    rec = Recorder()
    handler = _BrokenHandler()
    reflector = Reflector(
        source, handler, name="test", sleep=rec.sleep, random=lambda: 0.5, on_failure=rec.on_failure
    )
    task = asyncio.create_task(reflector.run())
    try:
        await source.reached("edited")
        assert handler.calls == 3  # one list, two events
        assert rec.failures == 3
        assert reflector.resource_version == "502"
    finally:
        task.cancel()
        source.resume()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _OneList:
    """A source whose only list holds one (large) aws-auth; watching then waits forever."""

    def __init__(self, obj: dict[str, object]) -> None:
        self._obj = obj

    async def list(self) -> ListResult:
        return ListResult((self._obj,), "1")

    async def watch(self, resource_version: str) -> AsyncIterator[WatchEvent]:
        await asyncio.Event().wait()
        yield WatchEvent(EventType.BOOKMARK, {})  # never reached


async def test_a_large_aws_auth_is_read_off_the_event_loop() -> None:
    roles = "".join(
        f"- rolearn: arn:aws:iam::{ACCOUNT}:role/R{i}\n  username: r{i}\n  groups: [g]\n"
        for i in range(5000)
    )
    cm = {"metadata": {"name": "aws-auth", "resourceVersion": "1"}, "data": {"mapRoles": roles}}
    backend = EKSConfigMap(_OneList(cm))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    await backend.start()
    try:
        for _ in range(2000):
            if backend.ready:
                break
            await asyncio.sleep(0.005)
        assert backend.ready
        assert len(backend.mappings) == 5000
        # The loop kept running while the thread parsed: many ticks, not a single stall.
        assert ticks > 20
    finally:
        tick_task.cancel()
        await backend.stop()
