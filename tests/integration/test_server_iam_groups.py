"""``mapGroups`` through the real HTTPS server: IAM group membership (moto's IAM) decides a review.

Tokens are minted with the real presigner for IAM users held by moto and verified by the STS
front; the server lists the users' groups with iam:ListGroupsForUser against moto.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubeiam.localaws.environment import LocalAWS
from kubeiam.server.config import ServerConfig
from kubeiam.server.run import RunningServer, start_server
from support.metrics import sample_sum
from support.review import ReviewClient
from support.tokens import Creds, minter

CLUSTER = "groups-cluster"
mint = minter(CLUSTER)
# Long enough that one review, one IAM call to moto and a second review fit inside it on a loaded
# CI machine (0.3 s did not: CI once took longer between the two reviews), short enough to wait out.
TTL = 1.5


async def start(local_aws: LocalAWS, state_dir: Path) -> tuple[RunningServer, dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    iam = local_aws.boto3_client("iam")
    group = iam.create_group(GroupName=f"devs-{suffix}", Path="/eng/")["Group"]
    member, outsider = f"member-{suffix}", f"outsider-{suffix}"
    member_key = local_aws.create_user(member)
    outsider_key = local_aws.create_user(outsider)
    iam.add_user_to_group(GroupName=group["GroupName"], UserName=member)
    config = ServerConfig(
        cluster_id=CLUSTER,
        port=0,
        state_dir=state_dir,
        map_groups=(
            {"grouparn": group["Arn"], "username": "dev:{{AccessKeyID}}", "groups": ["devs"]},
        ),
        iam_group_mapping=True,
        iam_group_ttl=TTL,
        sts_resolve=(local_aws.sts_resolve(),),
        sts_ca_bundle=local_aws.ca_bundle,
        sts_timeout=2.0,
        shutdown_timeout=5.0,
    )
    server = await start_server(config)
    info = {
        "group": group["GroupName"],
        "member": member,
        "member_token": mint(Creds(*member_key), region=local_aws.region),
        "member_key": member_key[0],
        "outsider_token": mint(Creds(*outsider_key), region=local_aws.region),
    }
    return server, info


@pytest.fixture
async def served(
    local_aws: LocalAWS, tmp_path: Path, server_aws_env: None
) -> AsyncIterator[tuple[ReviewClient, dict[str, str]]]:
    server, info = await start(local_aws, tmp_path)
    client = ReviewClient(server)
    yield client, info
    await client.session.close()
    await server.stop()


async def test_member_gets_the_groups_and_loses_them_after_the_ttl(
    served: tuple[ReviewClient, dict[str, str]], local_aws: LocalAWS
) -> None:
    client, info = served
    # Made before the first review: creating a boto3 client is the slow part, and it must not eat
    # into the TTL window below.
    iam = local_aws.boto3_client("iam")
    cached_at = time.monotonic()
    status, body = await client.review(info["member_token"])
    assert status == 200
    user = body["status"]["user"]
    assert user["username"] == f"dev:{info['member_key']}"
    assert user["groups"] == ["devs"]

    iam.remove_user_from_group(GroupName=info["group"], UserName=info["member"])
    # Within the TTL the cached membership still applies; after it, the review is denied.
    status, _ = await client.review(info["member_token"])
    elapsed = time.monotonic() - cached_at
    assert status == 200, f"denied {elapsed:.2f} s after the membership was cached (TTL {TTL} s)"
    await asyncio.sleep(TTL + 0.1)  # kept: waiting out the membership TTL is what is tested
    status, body = await client.review(info["member_token"])
    assert status == 403
    assert "not mapped" in body["status"]["error"]
    text = await client.metrics()
    assert sample_sum(text, "kubeiam_iam_list_groups_for_user_calls_total") == 2
    assert sample_sum(text, "kubeiam_iam_group_lookup_failures_total") == 0


async def test_non_member_is_denied(served: tuple[ReviewClient, dict[str, str]]) -> None:
    client, info = served
    status, body = await client.review(info["outsider_token"])
    assert status == 403
    assert body["status"]["authenticated"] is False


async def test_iam_unreachable_fails_closed(
    local_aws: LocalAWS, tmp_path: Path, server_aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, info = await start(local_aws, tmp_path)
    # The server's IAM endpoint: a loopback port nothing listens on (connection refused).
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    client = ReviewClient(server)
    try:
        status, body = await client.review(info["member_token"])
        assert status == 403
        assert "not mapped" in body["status"]["error"]
        text = await client.metrics()
        assert sample_sum(text, "kubeiam_iam_group_lookup_failures_total") == 1
        assert sample_sum(text, "kubeiam_iam_list_groups_for_user_calls_total") == 1
    finally:
        await client.session.close()
        await server.stop()
