"""Lazily built boto3 sessions and clients for the webhook's AWS lookups (EC2, IAM groups).

The server's resolvers call AWS from worker threads and must not load boto3 until their first
lookup, so they hold *factories*: :func:`session_factory` builds one boto3 Session on first use,
optionally with credentials from an auto-refreshed AssumeRole (``ec2DescribeInstancesRoleARN``,
``iamGroupRoleARN``) that carries the reference's ``sourceARN`` confused-deputy headers;
:func:`client_factory` builds one client of a service from such a session.

The admin commands' :class:`kubeiam.aws.clients.AWSClients` is the other way to build clients:
one session per command from ``--profile``/``--region``, built eagerly on the calling thread, with
errors translated for a terminal (:func:`kubeiam.aws.clients.translate_errors` quotes AWS's
message). The server's factories stay separate on purpose: they run in worker threads, assume a
role, and their failures are named by error code only (:func:`kubeiam.aws.calls.call_failed`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any


def session_factory(
    *,
    region: str,
    role_arn: str | None = None,
    source_arn: str | None = None,
    session_name: str = "kubeiam-ec2",
) -> Callable[[], Any]:
    """A factory of one boto3 Session, built on first use (in a worker thread); with
    ``role_arn``, its credentials come from an auto-refreshed AssumeRole.

    boto3 is imported here, not at module import, so a server that never resolves a node name
    never loads it.
    """
    state: dict[str, Any] = {}

    def factory() -> Any:
        if "session" in state:
            return state["session"]
        import boto3
        from botocore.credentials import RefreshableCredentials
        from botocore.session import get_session

        if role_arn is None:
            session = boto3.Session(region_name=region)
        else:
            sts = boto3.client("sts", region_name=region)
            if source_arn:
                account = source_arn.split(":")[4] if source_arn.count(":") >= 5 else ""

                def add_headers(request: Any, **_: Any) -> None:
                    request.headers["x-amz-source-arn"] = source_arn
                    if account:
                        request.headers["x-amz-source-account"] = account

                sts.meta.events.register("before-sign.sts.AssumeRole", add_headers)

            def refresh() -> dict[str, str]:
                creds = sts.assume_role(
                    RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=3600
                )["Credentials"]
                expiry = creds["Expiration"]
                if isinstance(expiry, dt.datetime):
                    expiry_text = expiry.astimezone(dt.UTC).isoformat()
                else:
                    expiry_text = str(expiry)
                return {
                    "access_key": creds["AccessKeyId"],
                    "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"],
                    "expiry_time": expiry_text,
                }

            credentials = RefreshableCredentials.create_from_metadata(
                metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
            )
            botocore_session = get_session()
            # botocore has no public setter for refreshable credentials; this is the usual seam.
            botocore_session._credentials = credentials  # type: ignore[attr-defined]
            session = boto3.Session(botocore_session=botocore_session, region_name=region)
        state["session"] = session
        return session

    return factory


def client_factory(
    session: Callable[[], Any], service: str, *, endpoint_url: str | None = None
) -> Callable[[], Any]:
    """A factory of one boto3 client of ``service`` from ``session`` (see
    :func:`session_factory`), built on its first call (in a worker thread)."""
    state: dict[str, Any] = {}

    def factory() -> Any:
        if "client" not in state:
            state["client"] = session().client(service, endpoint_url=endpoint_url)
        return state["client"]

    return factory
