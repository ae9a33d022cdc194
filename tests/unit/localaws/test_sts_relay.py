"""The STS front on a chosen port, relaying other STS calls (AssumeRole) to moto.

This is what lets a client that cannot be pointed at moto (the reference aws-iam-authenticator,
inside a network namespace whose hosts file maps the STS names to 127.0.0.1) assume a role: its
AssumeRole goes to the STS host name, and the front passes it to moto unchanged.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kubeiam.localaws import LocalAWS
from kubeiam.localaws.certificates import issue_sts_certificates
from kubeiam.localaws.sts_front import StsFront


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def relaying_front(local_aws: LocalAWS, tmp_path: Path) -> Iterator[tuple[StsFront, Path]]:
    certs = issue_sts_certificates(tmp_path)
    front = StsFront(ssl_context=certs.server_context, relay_to=local_aws.moto_url)
    front.start()
    try:
        yield front, certs.ca_bundle
    finally:
        front.stop()


@pytest.fixture(scope="module")
def relay_user(local_aws: LocalAWS) -> tuple[tuple[str, str], str]:
    keys = local_aws.create_user("relay-carol")
    role = local_aws.create_role(
        "relay-dev", trusted=local_aws.user_arn("relay-carol"), grant_to_user="relay-carol"
    )
    return keys, role


def _sts(port: int, ca_bundle: Path, keys: tuple[str, str]) -> Any:
    """A botocore STS client that reaches a front at 127.0.0.1:port."""
    return boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=f"https://127.0.0.1:{port}",
        verify=str(ca_bundle),
        aws_access_key_id=keys[0],
        aws_secret_access_key=keys[1],
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_assume_role_is_relayed_to_moto(
    relaying_front: tuple[StsFront, Path], relay_user: tuple[tuple[str, str], str]
) -> None:
    front, ca_bundle = relaying_front
    keys, role = relay_user
    sts = _sts(front.port, ca_bundle, keys)
    answer = sts.assume_role(RoleArn=role, RoleSessionName="carol@example.com")
    assert answer["AssumedRoleUser"]["Arn"].endswith(":assumed-role/relay-dev/carol@example.com")
    assert answer["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert front.sts_requests == 1


def test_relayed_calls_keep_moto_s_checks(
    relaying_front: tuple[StsFront, Path], relay_user: tuple[tuple[str, str], str]
) -> None:
    """The relay passes the signed request as sent: moto still refuses a wrong secret."""
    front, ca_bundle = relaying_front
    (key_id, _), role = relay_user
    sts = _sts(front.port, ca_bundle, (key_id, "not-the-secret"))
    with pytest.raises(ClientError) as refused:
        sts.assume_role(RoleArn=role, RoleSessionName="carol")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_without_relay_other_calls_are_refused(
    local_aws: LocalAWS, relay_user: tuple[tuple[str, str], str]
) -> None:
    keys, role = relay_user
    sts = _sts(local_aws.sts_port, local_aws.ca_bundle, keys)
    with pytest.raises(ClientError) as refused:
        sts.assume_role(RoleArn=role, RoleSessionName="carol")
    assert refused.value.response["Error"]["Code"] == "InvalidAction"


def test_front_listens_on_the_port_asked_for(tmp_path: Path) -> None:
    certs = issue_sts_certificates(tmp_path)
    wanted = _free_port()
    front = StsFront(ssl_context=certs.server_context, port=wanted)
    front.start()
    try:
        assert front.port == wanted
        with socket.create_connection(("127.0.0.1", wanted), timeout=5):
            pass
    finally:
        front.stop()
