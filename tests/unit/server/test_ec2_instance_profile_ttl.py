"""ec2InstanceRoleCheck: the instance-profile link expires after its ttl; the DNS name may stay.

Against moto's EC2 and IAM: a real instance profile is detached or swapped while the checker
holds an answer, and the checker's (injected) clock is moved past the ttl.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from kubeiam.localaws.environment import LocalAWS
from kubeiam.server.ec2 import DEFAULT_PROFILE_TTL, EC2PrivateDNSResolver, InstanceRoleChecker
from support.aws_calls import watch

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:*"}
        ],
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _profile_with_role(iam: Any, name: str) -> tuple[str, str]:
    """A new instance profile holding a new role: (profile ARN, role ARN)."""
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return profile, role


@pytest.fixture
def node(local_aws: LocalAWS) -> dict[str, Any]:
    iam = local_aws.boto3_client("iam")
    ec2 = local_aws.boto3_client("ec2")
    suffix = uuid.uuid4().hex[:8]
    profile, role = _profile_with_role(iam, f"node-{suffix}")
    other_profile, other_role = _profile_with_role(iam, f"other-{suffix}")
    (instance,) = ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, IamInstanceProfile={"Arn": profile}
    )["Instances"]
    return {
        "ec2": ec2,
        "iam": iam,
        "id": instance["InstanceId"],
        "dns": instance["PrivateDnsName"],
        "role": role,
        "other_profile": other_profile,
        "other_role": other_role,
    }


def _checker(local_aws: LocalAWS, node: dict[str, Any], ttl: float) -> tuple[Any, ...]:
    clock = Clock()
    ec2 = local_aws.boto3_client("ec2")
    resolver = EC2PrivateDNSResolver(lambda: ec2, clock=clock)
    checker = InstanceRoleChecker(resolver, lambda: node["iam"], ttl=ttl, clock=clock)
    return clock, watch(ec2, "DescribeInstances"), resolver, checker


def _association(ec2: Any, instance_id: str) -> str:
    (assoc,) = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    return str(assoc["AssociationId"])


@pytest.mark.parametrize("change", ["detached", "replaced"])
async def test_a_changed_instance_profile_applies_after_the_ttl(
    local_aws: LocalAWS, node: dict[str, Any], change: str
) -> None:
    clock, ec2, resolver, checker = _checker(local_aws, node, ttl=120)
    assert await resolver(node["id"]) == node["dns"]
    assert await checker(node["id"], node["role"]) is True
    assert len(ec2) == 1  # the DNS lookup's answer served the check too

    association = _association(node["ec2"], node["id"])
    node["ec2"].disassociate_iam_instance_profile(AssociationId=association)
    if change == "replaced":
        # (moto's describe_instances does not reflect replace_iam_instance_profile_association,
        # so the swap is a detach and an attach.)
        node["ec2"].associate_iam_instance_profile(
            InstanceId=node["id"], IamInstanceProfile={"Arn": node["other_profile"]}
        )

    clock.now += 119  # within the ttl the answer stands (the reference never expires it)
    assert await checker(node["id"], node["role"]) is True
    clock.now += 1
    assert await checker(node["id"], node["role"]) is False
    assert len(ec2) == 2
    if change == "replaced":
        assert await checker(node["id"], node["other_role"]) is True


async def test_the_private_dns_name_is_kept_longer_than_the_profile_link(
    local_aws: LocalAWS, node: dict[str, Any]
) -> None:
    clock, ec2, resolver, checker = _checker(local_aws, node, ttl=60)
    assert await resolver(node["id"]) == node["dns"]
    clock.now += 3600
    assert await resolver(node["id"]) == node["dns"]
    assert len(ec2) == 1
    assert await checker(node["id"], node["role"]) is True
    assert len(ec2) == 2  # the check asked EC2 again; the name did not need to


async def test_roles_removed_from_the_profile_apply_after_the_ttl(
    local_aws: LocalAWS, node: dict[str, Any]
) -> None:
    clock, _, _, checker = _checker(local_aws, node, ttl=30)
    assert await checker(node["id"], node["role"]) is True
    name = node["role"].rsplit("/", 1)[-1]
    node["iam"].remove_role_from_instance_profile(InstanceProfileName=name, RoleName=name)
    clock.now += 29
    assert await checker(node["id"], node["role"]) is True
    clock.now += 1
    assert await checker(node["id"], node["role"]) is False


def test_default_ttl_is_a_few_minutes() -> None:
    assert 60 <= DEFAULT_PROFILE_TTL <= 600
