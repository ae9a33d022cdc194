"""Who can become a role, read from the local AWS (moto, IAM auth enforced) in bulk.

The onboarding shape of issue 13: an IAM group whose members may assume a role that trusts the
account, a user trusted by ARN, a role chain; a member removed from the group no longer appears.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from kubeiam.access.iam_graph import EntryKind, who_can_become
from kubeiam.access.iam_reader import read_access_key_ages, read_account
from kubeiam.access.policy import Decision
from kubeiam.errors import AWSAdminError
from kubeiam.localaws.environment import LocalAWS


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
def names() -> dict[str, str]:
    sfx = uuid.uuid4().hex[:8]
    return {
        k: f"{k}-{sfx}"
        for k in ("devs", "member", "outsider", "viewer", "direct", "hop", "chained")
    }


def test_group_members_direct_users_and_chains(local_aws: LocalAWS, names: dict[str, str]) -> None:
    iam = local_aws.boto3_client("iam")
    account = local_aws.account_id
    root = f"arn:aws:iam::{account}:root"
    viewer = iam.create_role(
        RoleName=names["viewer"],
        AssumeRolePolicyDocument=_doc(
            {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "sts:AssumeRole"}
        ),
    )["Role"]["Arn"]
    iam.create_group(GroupName=names["devs"])
    iam.put_group_policy(
        GroupName=names["devs"],
        PolicyName="assume-viewer",
        PolicyDocument=_doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": viewer}),
    )
    for user in ("member", "outsider", "direct"):
        iam.create_user(UserName=names[user])
    iam.add_user_to_group(GroupName=names["devs"], UserName=names["member"])
    direct_arn = local_aws.user_arn(names["direct"])
    hop = iam.create_role(
        RoleName=names["hop"],
        AssumeRolePolicyDocument=_doc(
            {"Effect": "Allow", "Principal": {"AWS": direct_arn}, "Action": "sts:AssumeRole"}
        ),
    )["Role"]["Arn"]
    managed = iam.create_policy(
        PolicyName=f"assume-{names['chained']}",
        PolicyDocument=_doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": viewer}),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=names["hop"], PolicyArn=managed)

    paths = who_can_become(read_account(iam), viewer)
    by_start = {(p.start, p.via): p for p in paths}
    member = by_start[(local_aws.user_arn(names["member"]), (viewer,))]
    assert member.decision is Decision.ALLOWED
    assert member.groups == (f"arn:aws:iam::{account}:group/{names['devs']}",)
    assert (local_aws.user_arn(names["outsider"]), (viewer,)) not in by_start
    # hop may assume viewer through its attached managed policy; direct reaches viewer via hop.
    assert by_start[(hop, (viewer,))].decision is Decision.ALLOWED
    assert by_start[(direct_arn, (hop, viewer))].decision is Decision.ALLOWED
    assert by_start[(account, (viewer,))].kind is EntryKind.ACCOUNT

    iam.remove_user_from_group(GroupName=names["devs"], UserName=names["member"])
    after = {p.start for p in who_can_become(read_account(iam), viewer)}
    assert local_aws.user_arn(names["member"]) not in after


def test_a_caller_without_read_access_gets_a_fix_line(local_aws: LocalAWS) -> None:
    name = f"noread-{uuid.uuid4().hex[:8]}"
    keys = local_aws.create_user(name)
    iam = local_aws.boto3_client("iam", credentials=keys)
    with pytest.raises(AWSAdminError) as caught:
        read_account(iam)
    assert caught.value.code == "AccessDenied"
    assert "iam:GetAccountAuthorizationDetails" in str(caught.value)


def test_access_key_ages_from_the_credential_report(local_aws: LocalAWS) -> None:
    name = f"keys-{uuid.uuid4().hex[:8]}"
    local_aws.create_user(name)
    ages = read_access_key_ages(local_aws.boto3_client("iam"), sleep=lambda _: None)
    (created,) = ages[local_aws.user_arn(name)]
    assert abs((datetime.now(UTC) - created).total_seconds()) < 600
