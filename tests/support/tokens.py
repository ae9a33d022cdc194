"""Tokens minted as ``kubeiam token`` mints them: the real presigner, real keys held by moto.

The STS front of the local AWS verifies the signature, so a token minted here is valid or
invalid for the same reasons a user's would be.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from kubeiam.partitions import sts_host_for_region
from kubeiam.token.encoding import encode_token
from kubeiam.token.presign import presign_get_caller_identity

if TYPE_CHECKING:
    from kubeiam.localaws.environment import LocalAWS

#: The region tokens are signed for unless a test says otherwise (the reference's default).
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Creds:
    """An access key of a principal (an IAM user's keys or an assumed role's session)."""

    key_id: str
    secret: str = field(repr=False)  # never printed in an assertion message
    session_token: str | None = field(default=None, repr=False)


def mint(
    creds: Creds,
    *,
    cluster: str,
    region: str = DEFAULT_REGION,
    host: str | None = None,
    now: datetime | None = None,
) -> str:
    """A ``k8s-aws-v1.`` token for ``cluster``, signed at ``now`` (default: the current time)
    for ``host`` (default: the regional STS host of ``region``)."""
    url = presign_get_caller_identity(
        access_key_id=creds.key_id,
        secret_access_key=creds.secret,
        session_token=creds.session_token,
        region=region,
        host=host or sts_host_for_region(region),
        cluster_id=cluster,
        now=now or datetime.now(UTC),
    )
    return encode_token(url)


class Mint(Protocol):
    def __call__(
        self,
        creds: Creds,
        *,
        cluster: str = ...,
        region: str = ...,
        host: str | None = ...,
        now: datetime | None = ...,
    ) -> str: ...


def minter(cluster: str, **defaults: Any) -> Mint:
    """:func:`mint` for one test module's cluster (``mint = minter(CLUSTER)``); a call may still
    name another cluster, region, host or signing time."""
    return functools.partial(mint, cluster=cluster, **defaults)


def wait_for_next_signing_second() -> None:
    """Return once the wall clock is in a later second than at the call: a token signed after
    this carries another ``X-Amz-Date`` (one-second resolution) than any signed before it."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(max(0.001, start + 1 - time.time()))


def assume(aws: LocalAWS, creds: Creds, role_arn: str, session: str) -> Creds:
    """The session credentials of ``role_arn`` assumed by ``creds`` through moto's STS."""
    sts = aws.boto3_client("sts", credentials=(creds.key_id, creds.secret))
    c = sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
    return Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
