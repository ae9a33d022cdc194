"""{{EC2PrivateDNSName}}: batching, caching, rate limiting, against moto's EC2."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import boto3
import pytest
from botocore.config import Config

from kubeiam.aws.calls import TokenBucket
from kubeiam.aws.sessions import client_factory, session_factory
from kubeiam.errors import KubeIAMError, MappingDeniedError
from kubeiam.localaws.environment import LocalAWS
from kubeiam.server.ec2 import EC2PrivateDNSResolver
from support.aws_calls import watch


@pytest.fixture(scope="module")
def instances(local_aws: LocalAWS) -> dict[str, str]:
    """Instance id -> private DNS name of 25 instances started in moto."""
    ec2 = local_aws.boto3_client("ec2")
    # One of the AMIs moto ships; asking describe_images for one costs seconds.
    reservation = ec2.run_instances(ImageId="ami-12c6146b", MinCount=25, MaxCount=25)
    return {i["InstanceId"]: i["PrivateDnsName"] for i in reservation["Instances"]}


class Batches:
    """The instance ids of each DescribeInstances call a real (moto) client sent."""

    def __init__(self, client: Any) -> None:
        self._calls = watch(client, "DescribeInstances")

    @property
    def batches(self) -> list[list[str]]:
        return [list(p["Filters"][0]["Values"]) for p in self._calls.params]


def resolver_for(local_aws: LocalAWS, **kwargs: Any) -> tuple[EC2PrivateDNSResolver, Batches]:
    client = local_aws.boto3_client("ec2")
    return EC2PrivateDNSResolver(lambda: client, **kwargs), Batches(client)


async def test_resolves_private_dns_and_caches(
    local_aws: LocalAWS, instances: dict[str, str]
) -> None:
    calls: list[int] = []
    resolver, client = resolver_for(local_aws, on_call=lambda: calls.append(1))
    iid, dns = next(iter(instances.items()))
    assert await resolver(iid) == dns
    assert await resolver(iid) == dns
    assert client.batches == [[iid]]
    assert len(calls) == 1


async def test_concurrent_lookups_share_batched_calls(
    local_aws: LocalAWS, instances: dict[str, str]
) -> None:
    calls: list[int] = []
    resolver, client = resolver_for(
        local_aws, qps=1000, burst=10, on_call=lambda: calls.append(1), max_batch=10
    )
    ids = list(instances)
    names = await asyncio.gather(*(resolver(i) for i in ids), *(resolver(i) for i in ids[:10]))
    assert names[: len(ids)] == [instances[i] for i in ids]
    assert names[len(ids) :] == [instances[i] for i in ids[:10]]
    assert sorted(len(b) for b in client.batches) == [5, 10, 10]
    assert len(calls) == 3


async def test_a_batch_holds_at_most_100_ids(local_aws: LocalAWS) -> None:
    resolver, client = resolver_for(local_aws, qps=1000, burst=10, max_batch=500)
    ids = [f"i-{n:017x}" for n in range(105)]
    results = await asyncio.gather(*(resolver(i) for i in ids), return_exceptions=True)
    assert all(isinstance(r, MappingDeniedError) for r in results)
    assert sorted(len(b) for b in client.batches) == [5, 100]


async def test_unknown_instance_is_denied_without_poisoning_the_batch(
    local_aws: LocalAWS, instances: dict[str, str]
) -> None:
    resolver, client = resolver_for(local_aws)
    known = next(iter(instances))
    missing = "i-0123456789abcdef0"
    results = await asyncio.gather(resolver(known), resolver(missing), return_exceptions=True)
    assert results[0] == instances[known]
    assert isinstance(results[1], MappingDeniedError)
    assert len(client.batches) == 1


@pytest.mark.parametrize(
    "session",
    ["jane", "i-123", "i-0123456789ABCDEF0", "i-0123456789abcdef0x"],
    ids=["name", "short", "upper", "long"],
)
async def test_only_instance_ids_are_looked_up(local_aws: LocalAWS, session: str) -> None:
    resolver, client = resolver_for(local_aws)
    with pytest.raises(MappingDeniedError, match="not an EC2 instance id"):
        await resolver(session)
    assert client.batches == []


async def test_ec2_failure_is_an_error_for_every_waiter() -> None:
    # A real client whose endpoint is a loopback port nothing listens on: connection refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="AKIAEXAMPLEKEY000001",
        aws_secret_access_key="not-a-secret",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    resolver = EC2PrivateDNSResolver(lambda: client)
    results = await asyncio.gather(
        resolver("i-0123456789abcdef0"), resolver("i-00000001"), return_exceptions=True
    )
    assert all(
        isinstance(r, KubeIAMError) and "DescribeInstances failed" in str(r) for r in results
    )
    assert not any(isinstance(r, MappingDeniedError) for r in results)


def test_token_bucket_burst_then_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=3, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    now[0] = 10.0  # long idle: refills only up to the burst
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() > 0


async def test_rate_limit_spaces_calls(local_aws: LocalAWS, instances: dict[str, str]) -> None:
    resolver, client = resolver_for(local_aws, qps=20, burst=1, max_batch=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(resolver(i) for i in list(instances)[:4]))
    assert len(client.batches) == 4
    assert loop.time() - started >= 3 / 20 - 0.01


async def test_calls_ec2_through_an_assumed_role(
    local_aws: LocalAWS, instances: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = "localaws-admin"
    role_arn = local_aws.create_role(
        "Ec2DescribeForServer", trusted=local_aws.user_arn(admin), grant_to_user=admin
    )
    allow = {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}
    local_aws.boto3_client("iam").put_role_policy(
        RoleName="Ec2DescribeForServer",
        PolicyName="describe",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow]}),
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", local_aws.moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", local_aws.admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", local_aws.admin.secret_access_key)
    session = session_factory(
        region=local_aws.region,
        role_arn=role_arn,
        source_arn=f"arn:aws:eks:us-east-1:{local_aws.account_id}:cluster/demo",
    )
    factory = client_factory(session, "ec2", endpoint_url=local_aws.moto_url)
    client = factory()
    assert factory() is client  # built once, credentials refreshed by botocore
    creds = session().get_credentials()  # the session the client was built from
    assert creds.access_key != local_aws.admin.access_key_id  # temporary role credentials
    resolver = EC2PrivateDNSResolver(factory)
    iid, dns = next(iter(instances.items()))
    assert await resolver(iid) == dns
