"""Who signed a request: the secrets and identities moto holds, read in-process.

moto keeps IAM access keys in ``moto.iam.models.iam_backends[account][partition].access_keys``
(a dict keyed by access key id; ``user_name`` is set for a user's long-term ``AKIA`` key and
``None`` for the ``ASIA`` key of an assumed-role session). The session itself (secret, session
token, expiry, role ARN, session name) is an ``AssumedRole`` in
``moto.sts.models.sts_backends[account][partition].assumed_roles``. Keys are partition-wide like
in AWS: a key created through a ``us-east-1`` client is found for any region of ``aws``, never for
``cn-north-1``.

The STS front calls :func:`find_principal` from its own thread while moto's threads write; it
only does single dict lookups and iterates copies, which is safe under the GIL.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubeiam.localaws.sigv4 import ErrorCode, Refusal

_INVALID = Refusal(
    403, ErrorCode.INVALID_CLIENT_TOKEN_ID, "The security token included in the request is invalid."
)
_EXPIRED = Refusal(
    403, ErrorCode.EXPIRED_TOKEN, "The security token included in the request is expired"
)


@dataclass(frozen=True, slots=True)
class SigningPrincipal:
    """The identity behind an access key and the secret that must have signed for it."""

    arn: str
    user_id: str
    account: str
    secret_access_key: str = field(repr=False)


def find_principal(
    access_key_id: str, session_token: str | None, *, region: str, now: datetime
) -> SigningPrincipal | Refusal:
    """The principal owning ``access_key_id`` in ``region``'s partition, or STS's refusal.

    Unknown, deleted and inactive keys are ``InvalidClientTokenId``, as is a long-term key sent
    with a session token and a session key sent without its own token; an expired session is
    ``ExpiredToken``.
    """
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    partition = get_partition(region)
    for account in list(iam_backends.keys()):
        try:
            iam = iam_backends[account][partition]
        except KeyError:  # a partition moto does not emulate
            continue
        key = iam.access_keys.get(access_key_id)
        if key is None:
            continue
        if key.user_name is None:
            return _session_principal(account, partition, access_key_id, session_token, now)
        return _user_principal(iam, key, session_token)
    return _INVALID


def _user_principal(iam: Any, key: Any, session_token: str | None) -> SigningPrincipal | Refusal:
    if key.status != "Active" or session_token is not None:
        return _INVALID
    user = iam.users.get(key.user_name)
    if user is None:
        return _INVALID
    return SigningPrincipal(
        arn=str(user.arn),
        user_id=str(user.id),
        account=str(user.account_id),
        secret_access_key=str(key.secret_access_key),
    )


def _session_principal(
    account: str, partition: str, access_key_id: str, session_token: str | None, now: datetime
) -> SigningPrincipal | Refusal:
    from moto.sts.models import sts_backends

    for session in list(sts_backends[account][partition].assumed_roles):
        if session.access_key_id != access_key_id:
            continue
        if session_token is None or not hmac.compare_digest(
            session_token.encode("utf-8"), str(session.session_token).encode("utf-8")
        ):
            return _INVALID
        # moto stores naive UTC datetimes.
        if now >= session.expiration.replace(tzinfo=UTC):
            return _EXPIRED
        return SigningPrincipal(
            arn=str(session.arn),
            user_id=str(session.user_id),
            account=str(session.account_id),
            secret_access_key=str(session.secret_access_key),
        )
    return _INVALID
