"""The verified AWS identity behind a token (pure).

Built from STS's GetCallerIdentity answer by :func:`identity_from_caller`, which applies the
table of protocol.md section 2 ("From STS answer to identity") and its stricter checks: the ARN's
account equals ``Account``, its partition equals the server's, an assumed role's UserId is
``ROLEID:Session``, and a federated user's UserID is ``Account:Name`` (never the bare account id,
which is root's).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeiam.arn import Principal, PrincipalKind, parse_caller_arn
from kubeiam.errors import STSError


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token belongs to. Contains no secret: safe to log and cache."""

    arn: str
    canonical_arn: str
    account_id: str
    #: The UserID kubeiam uses for ``uid``: the role id for assumed roles, ``Account:Name`` for
    #: federated users, the user id for users, the account id for root.
    user_id: str
    session_name: str
    access_key_id: str
    kind: PrincipalKind
    partition: str
    #: The STS UserId exactly as returned (``AROA...:session`` for assumed roles).
    principal_id: str
    #: Unix time after which the token that proved this identity is no longer accepted.
    expires_at: float = 0.0

    @property
    def uid(self) -> str:
        """The TokenReview uid, kept identical to the reference for audit-log continuity."""
        return f"aws-iam-authenticator:{self.account_id}:{self.user_id}"


def identity_from_caller(
    *,
    arn: str,
    account: str,
    user_id: str,
    access_key_id: str,
    partition: str,
    expires_at: float = 0.0,
) -> Identity:
    """Turn a GetCallerIdentity answer into an :class:`Identity`, or raise :class:`STSError`."""
    principal: Principal = parse_caller_arn(arn)
    if principal.account_id != account:
        raise STSError(
            f"STS answer is inconsistent: ARN account {principal.account_id} differs from "
            f"Account {account}"
        )
    if principal.partition != partition:
        raise STSError(
            f"caller {arn!r} is in partition {principal.partition}, but this server serves "
            f"partition {partition}",
            hint="set the server's partition to match the cluster's AWS partition",
        )
    if not user_id:
        raise STSError("STS answer has an empty UserId")
    session = ""
    uid = user_id
    if principal.kind is PrincipalKind.ASSUMED_ROLE:
        role_id, sep, session = user_id.partition(":")
        if not sep or not role_id or session != principal.session_name:
            raise STSError(
                "STS answer is inconsistent: an assumed role's UserId must be ROLEID:SessionName"
            )
        uid = role_id
    elif principal.kind is PrincipalKind.FEDERATED_USER:
        expected = f"{account}:{principal.name}"
        if user_id != expected:
            raise STSError(
                "STS answer is inconsistent: a federated user's UserId must be Account:Name"
            )
        uid = expected
    elif principal.kind is PrincipalKind.ROOT:
        if user_id != account:
            raise STSError("STS answer is inconsistent: root's UserId must be the account id")
    elif user_id == account:
        raise STSError("STS answer is inconsistent: an IAM user's UserId equals the account id")
    return Identity(
        arn=arn,
        canonical_arn=principal.canonical_arn,
        account_id=account,
        user_id=uid,
        session_name=session,
        access_key_id=access_key_id,
        kind=principal.kind,
        partition=principal.partition,
        principal_id=user_id,
        expires_at=expires_at,
    )
