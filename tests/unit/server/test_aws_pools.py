"""EC2, IAM and STS name lookups never run on the event loop's default executor.

The loop's default executor is replaced by one that refuses work; the EC2 resolver, the
instance-role check, the IAM group resolver (against moto) and the STS client's resolver still
work, each on threads of its own.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from kubeiam.identity import identity_from_caller
from kubeiam.localaws.environment import LocalAWS
from kubeiam.server.ec2 import EC2PrivateDNSResolver, InstanceRoleChecker
from kubeiam.server.iam_groups import IAMGroupResolver
from kubeiam.token.resolver import BoundedResolver
from kubeiam.token.sts import STSClient
from support.aws_calls import watch


class RefusingExecutor(ThreadPoolExecutor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise AssertionError(f"the default executor was used for {fn!r}")


def _refuse_default_executor() -> None:
    asyncio.get_running_loop().set_default_executor(RefusingExecutor(1))


async def test_ec2_and_iam_calls_use_pools_of_their_own(local_aws: LocalAWS) -> None:
    _refuse_default_executor()
    iam = local_aws.boto3_client("iam")
    ec2 = local_aws.boto3_client("ec2")
    name = f"pool-{uuid.uuid4().hex[:8]}"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
    profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    (instance,) = ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, IamInstanceProfile={"Arn": profile}
    )["Instances"]
    ec2_calls = watch(ec2, "DescribeInstances")
    iam_calls = watch(iam, "GetInstanceProfile")
    resolver = EC2PrivateDNSResolver(lambda: ec2)
    checker = InstanceRoleChecker(resolver, lambda: iam)
    assert await resolver(instance["InstanceId"]) == instance["PrivateDnsName"]
    role_arn = f"arn:aws:iam::{local_aws.account_id}:role/{name}"
    assert await checker(instance["InstanceId"], role_arn) is True

    user = iam.create_user(UserName=name)["User"]
    groups_calls = watch(iam, "ListGroupsForUser")
    groups = IAMGroupResolver(lambda: iam)
    identity = identity_from_caller(
        arn=user["Arn"],
        account=local_aws.account_id,
        user_id=user["UserId"],
        access_key_id="AKIAEXAMPLEKEY000009",
        partition="aws",
    )
    assert await groups.lookup(identity) == frozenset()
    await resolver.close()
    await groups.close()
    assert len(ec2_calls) == len(iam_calls) == len(groups_calls) == 1
    assert {t.split("_")[0] for t in ec2_calls.threads + iam_calls.threads} == {"kubeiam-ec2"}
    assert {t.split("_")[0] for t in groups_calls.threads} == {"kubeiam-iam"}


async def test_sts_names_are_looked_up_on_the_resolvers_own_pool() -> None:
    _refuse_default_executor()
    threads: list[str] = []

    def getaddrinfo(host: str, port: int, family: int = 0, type: int = 0) -> list[Any]:
        threads.append(threading.current_thread().name)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    resolver = BoundedResolver(getaddrinfo=getaddrinfo)
    with pytest.raises(socket.gaierror):
        await resolver.resolve("sts.zz-north-1.amazonaws.com", 443)
    await resolver.close()
    assert [t.split("_")[0] for t in threads] == ["kubeiam-dns"]


async def test_the_sts_client_uses_the_bounded_resolver_by_default() -> None:
    client = STSClient()
    assert isinstance(client.resolver, BoundedResolver)
    await client.close()
