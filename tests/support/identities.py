"""Verified identities, as the verifier returns them after STS, for tests that start there.

The values are made up but well-formed (an ``AIDA``/``AROA`` principal id, an ``AKIA``/``ASIA``
key); ``expires_at`` defaults to a time far in the future (2096), so an identity never expires
during a test unless the test gives a time.
"""

from __future__ import annotations

from kubeiam.arn import PrincipalKind
from kubeiam.identity import Identity

ACCOUNT = "111122223333"
#: Unix time in 2096: long after any test run.
FAR_FUTURE = 4_000_000_000.0


def user_identity(
    name: str = "alice",
    *,
    path: str = "/",
    user_id: str = "AIDAEXAMPLE",
    access_key_id: str = "AKIAEXAMPLEEXAMPLE12",
    expires_at: float = FAR_FUTURE,
) -> Identity:
    """IAM user ``name`` (under ``path``) of :data:`ACCOUNT`."""
    arn = f"arn:aws:iam::{ACCOUNT}:user{path}{name}"
    return Identity(
        arn=arn,
        canonical_arn=arn,
        account_id=ACCOUNT,
        user_id=user_id,
        session_name="",
        access_key_id=access_key_id,
        kind=PrincipalKind.USER,
        partition="aws",
        principal_id=user_id,
        expires_at=expires_at,
    )


def role_session_identity(
    role: str = "Admin",
    session: str = "jane@example.com",
    *,
    role_id: str = "AROAEXAMPLE",
    access_key_id: str = "ASIAEXAMPLE",
    expires_at: float = FAR_FUTURE,
) -> Identity:
    """Session ``session`` of role ``role`` (no path) of :data:`ACCOUNT`."""
    return Identity(
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        canonical_arn=f"arn:aws:iam::{ACCOUNT}:role/{role}",
        account_id=ACCOUNT,
        user_id=role_id,
        session_name=session,
        access_key_id=access_key_id,
        kind=PrincipalKind.ASSUMED_ROLE,
        partition="aws",
        principal_id=f"{role_id}:{session}",
        expires_at=expires_at,
    )
