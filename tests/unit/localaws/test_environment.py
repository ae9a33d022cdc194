"""The environment as a whole: addresses, moto's IAM enforcement, one per process, clean exit."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kubeiam.errors import ConfigError
from kubeiam.localaws import LocalAWS, start_local_aws


def test_client_env_points_at_moto_without_credentials(local_aws: LocalAWS) -> None:
    env = local_aws.client_env()
    for service in ("STS", "IAM", "EKS", "EC2"):
        assert env[f"AWS_ENDPOINT_URL_{service}"] == local_aws.moto_url
    assert local_aws.moto_url.startswith("http://127.0.0.1:")
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert not any("KEY" in name or "TOKEN" in name or "PROFILE" in name for name in env)


def test_sts_resolve_and_flags(local_aws: LocalAWS) -> None:
    port = local_aws.sts_port
    assert local_aws.sts_resolve() == f"sts.us-east-1.amazonaws.com=127.0.0.1:{port}"
    assert local_aws.sts_resolve("sts.amazonaws.com") == f"sts.amazonaws.com=127.0.0.1:{port}"
    assert local_aws.verify_flags() == [
        "--sts-resolve",
        local_aws.sts_resolve(),
        "--sts-ca-bundle",
        str(local_aws.ca_bundle),
    ]
    assert local_aws.ca_bundle.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_admin_credentials_file_is_private(local_aws: LocalAWS) -> None:
    mode = stat.S_IMODE(os.stat(local_aws.credentials_file).st_mode)
    assert mode == 0o600
    assert "[localaws-admin]" in local_aws.credentials_file.read_text()
    assert local_aws.admin.secret_access_key not in repr(local_aws.admin)


def test_moto_refuses_unknown_credentials_when_enforcing(local_aws: LocalAWS) -> None:
    assert local_aws.enforce_iam_auth
    iam = local_aws.boto3_client("iam", credentials=("AKIAUNKNOWNUNKNOWN00", "x" * 40))
    with pytest.raises(ClientError) as info:
        iam.list_users()
    assert info.value.response["Error"]["Code"] == "InvalidClientTokenId"
    caller = local_aws.boto3_client("sts").get_caller_identity()
    assert caller["Arn"] == local_aws.admin.arn


def test_external_id_is_enforced(local_aws: LocalAWS) -> None:
    keys = local_aws.create_user("env-ext")
    role = local_aws.create_role(
        "env-ext-role",
        trusted=local_aws.user_arn("env-ext"),
        external_id="s3cret-ext",
        grant_to_user="env-ext",
    )
    sts = local_aws.boto3_client("sts", credentials=keys)
    ok = sts.assume_role(RoleArn=role, RoleSessionName="s1", ExternalId="s3cret-ext")
    assert ok["AssumedRoleUser"]["Arn"].endswith(":assumed-role/env-ext-role/s1")
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn=role, RoleSessionName="s1", ExternalId="wrong")
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_group_revocation_makes_assume_role_fail(local_aws: LocalAWS) -> None:
    keys = local_aws.create_user("env-grp")
    role = local_aws.create_role("env-grp-role", trusted=local_aws.user_arn("env-grp"))
    iam = local_aws.boto3_client("iam")
    iam.create_group(GroupName="env-assumers")
    iam.put_group_policy(
        GroupName="env-assumers",
        PolicyName="assume",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role}],
            }
        ),
    )
    iam.add_user_to_group(GroupName="env-assumers", UserName="env-grp")
    sts = local_aws.boto3_client("sts", credentials=keys)
    sts.assume_role(RoleArn=role, RoleSessionName="before")
    iam.remove_user_from_group(GroupName="env-assumers", UserName="env-grp")
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn=role, RoleSessionName="after")
    assert info.value.response["Error"]["Code"] == "AccessDenied"


def test_eks_and_ec2_are_served(local_aws: LocalAWS) -> None:
    ec2 = local_aws.boto3_client("ec2")
    assert "Reservations" in ec2.describe_instances()
    eks = local_aws.boto3_client("eks")
    # Bodiless REST GETs: moto's own signature check needs the fix in moto_server to pass them.
    eks.create_cluster(
        name="env-demo",
        roleArn=f"arn:aws:iam::{local_aws.account_id}:role/eks",
        resourcesVpcConfig={"subnetIds": []},
    )
    assert "env-demo" in eks.list_clusters()["clusters"]
    assert eks.describe_cluster(name="env-demo")["cluster"]["status"] == "ACTIVE"


def test_one_environment_per_process(local_aws: LocalAWS) -> None:
    with pytest.raises(ConfigError, match="already running"), start_local_aws():
        pass
    # The refused second start left the running one intact.
    assert local_aws.boto3_client("sts").get_caller_identity()["Account"] == local_aws.account_id


_LIFECYCLE = r"""
import json, socket, threading
from moto import settings
from kubeiam.localaws import start_local_aws

def reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False

reports = {}
before = settings.INITIAL_NO_AUTH_ACTION_COUNT
for enforce in (True, False):  # two environments one after the other in one process
    with start_local_aws(enforce_iam_auth=enforce) as aws:
        ports = [int(aws.moto_url.rsplit(":", 1)[1]), aws.sts_port]
        workdir = aws.ca_bundle.parent
        up = [reachable(p) for p in ports]
        during = settings.INITIAL_NO_AUTH_ACTION_COUNT
        anyone = aws.boto3_client("iam", credentials=("AKIAANYONE0000000000", "x" * 40))
        try:
            anyone.list_users()
            stranger_allowed = True
        except Exception:
            stranger_allowed = False
    reports[str(enforce)] = {
        "up": up,
        "down": [reachable(p) for p in ports],
        "workdir_exists": workdir.exists(),
        "auth_restored": settings.INITIAL_NO_AUTH_ACTION_COUNT == before,
        "during": during,
        "stranger_allowed": stranger_allowed,
        "threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("kubeiam-")),
    }
print(json.dumps(reports))
"""


def test_clean_shutdown_leaves_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LIFECYCLE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    reports: dict[str, Any] = json.loads(done.stdout)
    for enforce in (True, False):
        report = reports[str(enforce)]
        assert report["up"] == [True, True]
        assert report["down"] == [False, False]
        assert report["workdir_exists"] is False
        assert report["auth_restored"] is True
        assert report["threads"] == []
        assert report["stranger_allowed"] is (not enforce)
        assert report["during"] == (0 if enforce else float("inf"))
    assert done.stderr == ""
