"""The mapGroups resolver against moto's IAM: listing, paths, TTL, single-flight, failing closed."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from kubeiam.identity import Identity, identity_from_caller
from kubeiam.localaws.environment import LocalAWS
from kubeiam.server.iam_groups import IAMGroupResolver


class CountingIAM:
    """Wraps a real boto3 IAM client (moto); records ListGroupsForUser calls, and can force
    small pages so pagination is exercised."""

    def __init__(self, client: Any, *, page_size: int | None = None) -> None:
        self._client = client
        self._page_size = page_size
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def list_groups_for_user(self, **kwargs: Any) -> Mapping[str, Any]:
        with self._lock:
            self.calls.append(dict(kwargs))
        if self._page_size is None:
            return self._client.list_groups_for_user(**kwargs)  # type: ignore[no-any-return]
        # moto ignores MaxItems and never paginates this call, so the pages of its real answer
        # are cut here: the only way to see the resolver follow IsTruncated/Marker.
        start = int(kwargs.pop("Marker", "0"))
        groups = self._client.list_groups_for_user(**kwargs)["Groups"]
        end = start + self._page_size
        page: dict[str, Any] = {"Groups": groups[start:end], "IsTruncated": end < len(groups)}
        if end < len(groups):
            page["Marker"] = str(end)
        return page

    def get_instance_profile(self, **kwargs: Any) -> Mapping[str, Any]:
        raise AssertionError("not used by the group resolver")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _user(iam: Any, *groups: tuple[str, str]) -> tuple[Identity, dict[str, str]]:
    """A fresh IAM user in fresh groups ((name, path) pairs); its identity and group ARNs."""
    suffix = uuid.uuid4().hex[:8]
    user = iam.create_user(UserName=f"u-{suffix}")["User"]
    arns: dict[str, str] = {}
    for name, path in groups:
        group = iam.create_group(GroupName=f"{name}-{suffix}", Path=path)["Group"]
        iam.add_user_to_group(GroupName=group["GroupName"], UserName=user["UserName"])
        arns[name] = group["Arn"]
    account = user["Arn"].split(":")[4]
    identity = identity_from_caller(
        arn=user["Arn"],
        account=account,
        user_id=user["UserId"],
        access_key_id="AKIAEXAMPLEKEY000009",
        partition="aws",
    )
    return identity, arns


@pytest.fixture
def iam(local_aws: LocalAWS) -> Any:
    return local_aws.boto3_client("iam")


async def test_lists_groups_with_paths_and_caches_until_the_ttl(iam: Any) -> None:
    identity, arns = _user(iam, ("dev", "/"), ("ops", "/team/ops/"))
    assert ":group/team/ops/ops-" in arns["ops"]
    client = CountingIAM(iam)
    clock = Clock()
    calls: list[int] = []
    resolver = IAMGroupResolver(lambda: client, ttl=5, clock=clock, on_call=lambda: calls.append(1))
    expected = frozenset(a.lower() for a in arns.values())
    assert await resolver(identity) == expected
    # Removed from a group: still cached until the TTL has passed, then gone.
    iam.remove_user_from_group(GroupName=arns["dev"].rsplit("/", 1)[1], UserName=_name(identity))
    clock.now += 4.9
    assert await resolver(identity) == expected
    assert len(client.calls) == 1
    clock.now += 0.2
    assert await resolver(identity) == frozenset({arns["ops"].lower()})
    assert len(client.calls) == 2
    assert len(calls) == 2


def _name(identity: Identity) -> str:
    return identity.canonical_arn.rsplit("/", 1)[1]


async def test_every_page_is_read(iam: Any) -> None:
    identity, arns = _user(iam, ("a", "/"), ("b", "/"), ("c", "/x/"))
    client = CountingIAM(iam, page_size=1)
    resolver = IAMGroupResolver(lambda: client)
    assert await resolver(identity) == frozenset(a.lower() for a in arns.values())
    assert len(client.calls) == 3
    assert "Marker" in client.calls[-1]


async def test_concurrent_reviews_of_one_user_share_one_call(iam: Any) -> None:
    identity, arns = _user(iam, ("dev", "/"))
    client = CountingIAM(iam)
    resolver = IAMGroupResolver(lambda: client)
    answers = await asyncio.gather(*(resolver(identity) for _ in range(8)))
    assert set(answers) == {frozenset({arns["dev"].lower()})}
    assert len(client.calls) == 1


async def test_only_iam_users_are_looked_up(iam: Any) -> None:
    client = CountingIAM(iam)
    resolver = IAMGroupResolver(lambda: client)
    role = identity_from_caller(
        arn="arn:aws:sts::123456789012:assumed-role/Dev/alice",
        account="123456789012",
        user_id="AROAEXAMPLEROLE00001:alice",
        access_key_id="ASIAEXAMPLEKEY000002",
        partition="aws",
    )
    assert await resolver(role) == frozenset()
    assert client.calls == []


async def test_failure_fails_closed_is_counted_and_logged_once(
    iam: Any, caplog: pytest.LogCaptureFixture
) -> None:
    identity, _ = _user(iam)
    iam.delete_user(UserName=_name(identity))
    client = CountingIAM(iam)
    failures: list[int] = []
    resolver = IAMGroupResolver(lambda: client, on_failure=lambda: failures.append(1))
    with caplog.at_level(logging.WARNING, logger="kubeiam.server.iam_groups"):
        assert await resolver(identity) == frozenset()
        assert await resolver(identity) == frozenset()
    assert len(client.calls) == 2  # failures are not cached
    assert len(failures) == 2
    logged = [r for r in caplog.records if r.name == "kubeiam.server.iam_groups"]
    assert len(logged) == 1
    assert getattr(logged[0], "error", "") == "iam:ListGroupsForUser failed: NoSuchEntity"


async def test_cache_is_bounded(iam: Any) -> None:
    first, _ = _user(iam, ("g", "/"))
    second, _ = _user(iam, ("g", "/"))
    client = CountingIAM(iam)
    resolver = IAMGroupResolver(lambda: client, cache_entries=1)
    await resolver(first)
    await resolver(second)
    await resolver(first)  # evicted by second: asked again
    assert len(client.calls) == 3
