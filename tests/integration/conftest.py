"""Fixtures of the integration tests: real processes and servers on loopback, the local AWS.

``local_aws`` itself (moto and the STS front, one per session) comes from
``kubeiam.localaws.pytest_plugin``, loaded by the top-level conftest.
"""

from __future__ import annotations

import os

import pytest

from kubeiam.localaws.environment import LocalAWS


@pytest.fixture
def aws_cli_env(local_aws: LocalAWS) -> dict[str, str]:
    """The environment of a ``kubeiam`` process whose AWS calls go to the local AWS: this test's
    scrubbed environment plus the local AWS's endpoints and CA. No keys: the test adds whose."""
    return {**os.environ, **local_aws.client_env()}


@pytest.fixture
def server_aws_env(local_aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server started in this process makes its own AWS calls (ec2:DescribeInstances,
    iam:ListGroupsForUser) to moto, as the local AWS's administrator."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", local_aws.moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", local_aws.moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", local_aws.admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", local_aws.admin.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", local_aws.region)


@pytest.fixture
def admin_cli_env(aws_cli_env: dict[str, str], local_aws: LocalAWS) -> dict[str, str]:
    """:func:`aws_cli_env` with the keys of the local AWS's allow-everything administrator."""
    return {
        **aws_cli_env,
        "AWS_ACCESS_KEY_ID": local_aws.admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": local_aws.admin.secret_access_key,
    }
