"""botocore errors become kubeiam errors once, with the AWS code and a hint; quiet DEBUG logs."""

from __future__ import annotations

import logging

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from kubeiam.aws.clients import AWSClients, quiet_botocore, translate_errors
from kubeiam.errors import AWSAdminError, ConfigError, CredentialsError, KubeIAMError


def client_error(code: str, message: str = "AWS said no") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "CreateUser")


@pytest.mark.parametrize(
    ("exc", "kind", "code", "hint_part"),
    [
        (
            client_error("AccessDenied"),
            AWSAdminError,
            "AccessDenied",
            "needs permission iam:CreateUser on bob",
        ),
        (client_error("NoSuchEntity"), AWSAdminError, "NoSuchEntity", "list-users"),
        (client_error("LimitExceeded"), AWSAdminError, "LimitExceeded", "2 access keys"),
        (client_error("Throttling"), AWSAdminError, "Throttling", "idempotent"),
        (client_error("InvalidClientTokenId"), CredentialsError, None, "aws sso login"),
        (client_error("ExpiredToken"), CredentialsError, None, "refresh"),
        (NoCredentialsError(), CredentialsError, None, "--profile"),
        (NoRegionError(), ConfigError, None, "--region"),
        (ProfileNotFound(profile="nope"), ConfigError, None, "--profile"),
        (
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            AWSAdminError,
            "EndpointConnectionError",
            "AWS_ENDPOINT_URL",
        ),
    ],
    ids=[
        "denied",
        "no-such-entity",
        "limit",
        "throttled",
        "bad-key",
        "expired",
        "no-credentials",
        "no-region",
        "no-profile",
        "unreachable",
    ],
)
def test_translation(
    exc: Exception, kind: type[KubeIAMError], code: str | None, hint_part: str
) -> None:
    with pytest.raises(kind) as err, translate_errors("iam:CreateUser", resource="bob"):
        raise exc
    assert type(err.value) is kind
    assert hint_part in str(err.value)
    if code is not None:
        assert isinstance(err.value, AWSAdminError)
        assert err.value.code == code
    assert err.value.__cause__ is None or not isinstance(err.value.__cause__, ClientError)


def test_the_aws_message_is_kept() -> None:
    with pytest.raises(AWSAdminError) as err, translate_errors("iam:CreateUser"):
        raise client_error("EntityAlreadyExists", "User with name bob already exists.")
    assert "EntityAlreadyExists: User with name bob already exists." in str(err.value)


def test_quiet_botocore_restores_levels() -> None:
    logger = logging.getLogger("botocore.parsers")
    logger.setLevel(logging.DEBUG)
    try:
        with quiet_botocore():
            assert not logger.isEnabledFor(logging.DEBUG)
            assert not logging.getLogger("botocore.endpoint").isEnabledFor(logging.DEBUG)
        assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(logging.NOTSET)


def test_an_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="could not be found"):
        AWSClients(profile="no-such-profile", region="us-east-1").iam  # noqa: B018
