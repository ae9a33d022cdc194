"""A role trusted by its account (``arn:aws:iam::<account>:root``) is assumable as in AWS.

AWS delegates such a trust to the caller's identity policies; moto compared the principal
literally, so `kubeiam iam create-access-role` roles could never be assumed in the local AWS.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from kubeiam.localaws import LocalAWS
from kubeiam.localaws.moto_server import _names_the_account


def _allow_assume(resource: str) -> str:
    statement = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": resource}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.mark.parametrize(
    ("expected", "caller", "matches"),
    [
        ("arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:user/a", True),
        ("123456789012", "arn:aws:sts::123456789012:assumed-role/R/s", True),
        ("arn:aws:iam::123456789012:root", "arn:aws:iam::210987654321:user/a", False),
        ("arn:aws-cn:iam::123456789012:root", "arn:aws:iam::123456789012:user/a", False),
        ("arn:aws:iam::123456789012:user/b", "arn:aws:iam::123456789012:user/a", False),
        ("arn:aws:iam::123456789012:root", "not-an-arn", False),
    ],
    ids=["root-arn", "bare-account", "other-account", "other-partition", "other-user", "junk"],
)
def test_which_principals_an_account_names(expected: str, caller: str, matches: bool) -> None:
    assert _names_the_account(expected, caller) is matches


def test_account_trusted_role_is_assumable_only_through_group_policy(local_aws: LocalAWS) -> None:
    keys = local_aws.create_user("acct-trust-user")
    iam = local_aws.boto3_client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{local_aws.account_id}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="acct-trust-role", AssumeRolePolicyDocument=json.dumps(trust))
    arn = role["Role"]["Arn"]
    iam.create_group(GroupName="acct-trust-group")
    iam.put_group_policy(
        GroupName="acct-trust-group", PolicyName="assume", PolicyDocument=_allow_assume(arn)
    )
    sts = local_aws.boto3_client("sts", credentials=keys)

    def assume(session: str) -> str:
        try:
            sts.assume_role(RoleArn=arn, RoleSessionName=session)
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        return "ok"

    assert assume("before-grant") == "AccessDenied"  # the account's trust alone is not enough
    iam.add_user_to_group(GroupName="acct-trust-group", UserName="acct-trust-user")
    assert assume("granted") == "ok"
    iam.remove_user_from_group(GroupName="acct-trust-group", UserName="acct-trust-user")
    assert assume("revoked") == "AccessDenied"
