"""boto3 clients for the admin commands, and the one place botocore errors are translated.

:class:`AWSClients` builds each client once per command from one boto3 session (``--profile``,
``--region``). botocore reads ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` itself, which
is how tests and ``make demo`` reach the local AWS environment.

:func:`translate_errors` wraps every call: botocore exceptions become :class:`AWSAdminError`
(with the AWS error code and a hint naming the permission that was missing),
:class:`CredentialsError` or :class:`ConfigError`. It also keeps botocore's DEBUG logging quiet
during the call, because botocore logs request headers (the SigV4 signature) and response bodies
(CreateAccessKey's secret key) at DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kubeiam.errors import AWSAdminError, ConfigError, CredentialsError

if TYPE_CHECKING:
    from mypy_boto3_eks import EKSClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

#: Loggers that may print signatures or secrets at DEBUG.
_NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")

#: Error codes meaning the *caller's* credentials are unusable (not a missing permission).
_BAD_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "InvalidAccessKeyId",
    }
)
_ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
)


@contextlib.contextmanager
def quiet_botocore() -> Iterator[None]:
    """Raise botocore/urllib3 loggers to INFO for the duration (restored afterwards)."""
    manager = logging.Logger.manager
    names = [
        n
        for n in list(manager.loggerDict)
        if any(n == p or n.startswith(p + ".") for p in _NOISY_LOGGERS)
    ]
    saved: list[tuple[logging.Logger, int]] = []
    for name in [*_NOISY_LOGGERS, *names]:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            saved.append((logger, logger.level))
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in reversed(saved):
            logger.setLevel(level)


def _hint_for(code: str, action: str, resource: str | None) -> str | None:
    target = f" on {resource}" if resource else ""
    if code in _ACCESS_DENIED_CODES:
        return f"the AWS identity running kubeiam needs permission {action}{target}"
    if code in ("NoSuchEntity", "NoSuchEntityException"):
        return (
            "check the name; `aws iam list-users` / `list-roles` / `list-groups` show what exists"
        )
    if code == "ResourceNotFoundException":
        return "check the cluster name and --region (`aws eks list-clusters --region R`)"
    if code == "LimitExceeded":
        return (
            "an IAM limit was reached (a user has at most 2 access keys); delete an old one first"
        )
    if code == "DeleteConflict":
        return "something is still attached; rerun the command, it removes attachments first"
    if code in ("Throttling", "ThrottlingException", "RequestLimitExceeded"):
        return "AWS throttled the request; wait a moment and rerun (the command is idempotent)"
    return None


@contextlib.contextmanager
def translate_errors(action: str, *, resource: str | None = None) -> Iterator[None]:
    """Turn botocore exceptions raised by ``action`` (e.g. ``iam:CreateUser``) into ours."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )
    from botocore.parsers import ResponseParserError

    try:
        with quiet_botocore():
            yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "Unknown")
        aws_message = str(err.get("Message") or "").strip()
        where = f" ({resource})" if resource else ""
        message = f"{action}{where} failed: {code}" + (f": {aws_message}" if aws_message else "")
        if code in _BAD_CREDENTIAL_CODES:
            raise CredentialsError(
                message,
                hint="refresh the credentials kubeiam runs with (aws sso login, aws configure, "
                "or --profile)",
            ) from None
        raise AWSAdminError(message, hint=_hint_for(code, action, resource), code=code) from None
    except (NoCredentialsError, PartialCredentialsError):
        raise CredentialsError(
            f"{action}: no AWS credentials found",
            hint="configure credentials (aws configure / aws sso login) or pass --profile",
        ) from None
    except ProfileNotFound as exc:
        raise ConfigError(str(exc), hint="check --profile and ~/.aws/config") from None
    except NoRegionError:
        raise ConfigError(
            f"{action}: no AWS region configured", hint="pass --region or set AWS_REGION"
        ) from None
    except EndpointConnectionError as exc:
        raise AWSAdminError(
            f"{action}: cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}",
            hint="check the network, --region and any AWS_ENDPOINT_URL* variable",
            code="EndpointConnectionError",
        ) from None
    except ResponseParserError:
        raise AWSAdminError(
            f"{action}: the AWS endpoint answered something that is not an AWS response",
            hint="check any AWS_ENDPOINT_URL* variable; retry (the command is idempotent)",
            code="ResponseParserError",
        ) from None
    except BotoCoreError as exc:
        raise AWSAdminError(f"{action} failed: {exc}", code=type(exc).__name__) from None


class AWSClients:
    """The boto3 clients one admin command uses, each built on first use from one session."""

    def __init__(
        self, *, profile: str | None = None, region: str | None = None, session: Any = None
    ) -> None:
        """``session``: an existing ``boto3.session.Session`` to build clients from (tests
        share one, since loading botocore's service models costs ~0.1 s per session)."""
        self._profile = profile
        self._region = region
        self._session: Any = session
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            import boto3

            with translate_errors(f"create {service} client"):
                if self._session is None:
                    self._session = boto3.session.Session(
                        profile_name=self._profile, region_name=self._region
                    )
                client = self._session.client(service)
            self._clients[service] = client
        return client

    @property
    def region(self) -> str | None:
        """The region the session resolved (--region, AWS_REGION, the profile's region)."""
        self._client("sts")
        region = self._session.region_name
        return str(region) if region else None

    @property
    def iam(self) -> IAMClient:
        client: IAMClient = self._client("iam")
        return client

    @property
    def sts(self) -> STSClient:
        client: STSClient = self._client("sts")
        return client

    @property
    def eks(self) -> EKSClient:
        client: EKSClient = self._client("eks")
        return client
