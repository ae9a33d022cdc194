"""Fixtures for the admin tests: the local AWS environment as the admin's AWS account."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubeiam.admin.onboarding.iam_admin import IAMAdmin
from kubeiam.aws.clients import AWSClients
from kubeiam.localaws.environment import LocalAWS


@dataclass
class AdminEnv:
    aws: LocalAWS
    iam: Any  # a boto3 IAM client with the admin keys, to check what the commands did
    tmp: Path
    progress: list[str] = field(default_factory=list)

    session: Any = None

    def admin(self, step_hook: Callable[[str], None] | None = None) -> IAMAdmin:
        clients = AWSClients(session=self.session)
        return IAMAdmin(clients, progress=self.progress.append, step_hook=step_hook)

    def name(self, prefix: str = "u") -> str:
        """A unique IAM name: moto's state is shared by the whole test session."""
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    @property
    def credentials_file(self) -> Path:
        return self.tmp / "aws" / "credentials"


@pytest.fixture(scope="session")
def admin_boto3_session(local_aws: LocalAWS) -> Any:
    """One boto3 session with the admin's keys for the whole run (model loading is slow)."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=local_aws.admin.access_key_id,
        aws_secret_access_key=local_aws.admin.secret_access_key,
        region_name=local_aws.region,
    )


@pytest.fixture
def admin_env(
    local_aws: LocalAWS, admin_boto3_session: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AdminEnv:
    """Process environment pointing boto3 at moto with the admin's keys."""
    for key, value in local_aws.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", local_aws.admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", local_aws.admin.secret_access_key)
    env = AdminEnv(local_aws, local_aws.boto3_client("iam"), tmp_path)
    env.session = admin_boto3_session
    return env
