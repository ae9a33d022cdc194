"""The mapGroups resolver against moto's IAM: listing, paths, TTL, single-flight, failing closed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest

from kubeiam.identity import Identity, identity_from_caller
from kubeiam.localaws.environment import LocalAWS
from kubeiam.server.iam_groups import IAMGroupResolver
from support.aws_calls import watch


def cut_pages(client: Any, size: int) -> None:
    """Make ``client``'s ListGroupsForUser answers pages of ``size`` groups.

    moto ignores MaxItems and never pages this call, so its real answer is cut here, through
    botocore's events (the Marker sent is the offset of the page, kept out of moto's request):
    the only way to see the resolver follow IsTruncated/Marker.
    """
    events = client.meta.events

    def take_marker(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["page_start"] = int(params.pop("Marker", "0"))

    def cut(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        groups, start = parsed["Groups"], context["page_start"]
        end = start + size
        parsed["Groups"] = groups[start:end]
        parsed["IsTruncated"] = end < len(groups)
        if end < len(groups):
            parsed["Marker"] = str(end)

    events.register("before-parameter-build.iam.ListGroupsForUser", take_marker)
    events.register("after-call.iam.ListGroupsForUser", cut)


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
    client = watch(iam, "ListGroupsForUser")
    clock = Clock()
    calls: list[int] = []
    resolver = IAMGroupResolver(lambda: iam, ttl=5, clock=clock, on_call=lambda: calls.append(1))
    expected = frozenset(a.lower() for a in arns.values())
    assert await resolver(identity) == expected
    # Removed from a group: still cached until the TTL has passed, then gone.
    iam.remove_user_from_group(GroupName=arns["dev"].rsplit("/", 1)[1], UserName=_name(identity))
    clock.now += 4.9
    assert await resolver(identity) == expected
    assert len(client.params) == 1
    clock.now += 0.2
    assert await resolver(identity) == frozenset({arns["ops"].lower()})
    assert len(client.params) == 2
    assert len(calls) == 2


def _name(identity: Identity) -> str:
    return identity.canonical_arn.rsplit("/", 1)[1]


async def test_every_page_is_read(iam: Any) -> None:
    identity, arns = _user(iam, ("a", "/"), ("b", "/"), ("c", "/x/"))
    client = watch(iam, "ListGroupsForUser")
    cut_pages(iam, 1)
    resolver = IAMGroupResolver(lambda: iam)
    assert await resolver(identity) == frozenset(a.lower() for a in arns.values())
    assert len(client.params) == 3
    assert [c.get("Marker") for c in client.params] == [None, "1", "2"]


async def test_concurrent_reviews_of_one_user_share_one_call(iam: Any) -> None:
    identity, arns = _user(iam, ("dev", "/"))
    client = watch(iam, "ListGroupsForUser")
    resolver = IAMGroupResolver(lambda: iam)
    answers = await asyncio.gather(*(resolver(identity) for _ in range(8)))
    assert set(answers) == {frozenset({arns["dev"].lower()})}
    assert len(client.params) == 1


async def test_only_iam_users_are_looked_up(iam: Any) -> None:
    client = watch(iam, "ListGroupsForUser")
    resolver = IAMGroupResolver(lambda: iam)
    role = identity_from_caller(
        arn="arn:aws:sts::123456789012:assumed-role/Dev/alice",
        account="123456789012",
        user_id="AROAEXAMPLEROLE00001:alice",
        access_key_id="ASIAEXAMPLEKEY000002",
        partition="aws",
    )
    assert await resolver(role) == frozenset()
    assert client.params == []


async def test_failure_fails_closed_is_counted_and_logged_once(
    iam: Any, caplog: pytest.LogCaptureFixture
) -> None:
    identity, _ = _user(iam)
    iam.delete_user(UserName=_name(identity))
    client = watch(iam, "ListGroupsForUser")
    failures: list[int] = []
    resolver = IAMGroupResolver(lambda: iam, on_failure=lambda: failures.append(1))
    with caplog.at_level(logging.WARNING, logger="kubeiam.server.iam_groups"):
        assert await resolver(identity) == frozenset()
        assert await resolver(identity) == frozenset()
    assert len(client.params) == 2  # failures are not cached
    assert len(failures) == 2
    logged = [r for r in caplog.records if r.name == "kubeiam.server.iam_groups"]
    assert len(logged) == 1
    assert getattr(logged[0], "error", "") == "iam:ListGroupsForUser failed: NoSuchEntity"


async def test_cache_is_bounded(iam: Any) -> None:
    first, _ = _user(iam, ("g", "/"))
    second, _ = _user(iam, ("g", "/"))
    client = watch(iam, "ListGroupsForUser")
    resolver = IAMGroupResolver(lambda: iam, cache_entries=1)
    await resolver(first)
    await resolver(second)
    await resolver(first)  # evicted by second: asked again
    assert len(client.params) == 3
