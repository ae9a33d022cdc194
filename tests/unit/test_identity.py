"""GetCallerIdentity answer -> Identity, with the stricter consistency checks of protocol.md 2."""

from __future__ import annotations

import pytest

from kubeiam.arn import PrincipalKind
from kubeiam.errors import STSError
from kubeiam.identity import Identity, identity_from_caller

A = "111122223333"
AKID = "ASIAEXAMPLEKEY000001"

ACCEPTED = [
    pytest.param(
        f"arn:aws:iam::{A}:root", A,
        (PrincipalKind.ROOT, f"arn:aws:iam::{A}:root", A, ""),
        id="root",
    ),
    pytest.param(
        f"arn:aws:iam::{A}:user/alice", "AIDAEXAMPLEALICE",
        (PrincipalKind.USER, f"arn:aws:iam::{A}:user/alice", "AIDAEXAMPLEALICE", ""),
        id="user",
    ),
    pytest.param(
        f"arn:aws:sts::{A}:assumed-role/Admin/alice", "AROAEXAMPLEADMIN:alice",
        (PrincipalKind.ASSUMED_ROLE, f"arn:aws:iam::{A}:role/Admin", "AROAEXAMPLEADMIN", "alice"),
        id="assumed-role-splits-userid",
    ),
    pytest.param(
        f"arn:aws:sts::{A}:federated-user/carol", f"{A}:carol",
        (PrincipalKind.FEDERATED_USER, f"arn:aws:sts::{A}:federated-user/carol", f"{A}:carol", ""),
        id="federated-user-keeps-account-and-name",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("arn", "user_id", "expected"), ACCEPTED)
def test_identity_table(
    arn: str, user_id: str, expected: tuple[PrincipalKind, str, str, str]
) -> None:
    kind, canonical, uid, session = expected
    identity = identity_from_caller(
        arn=arn, account=A, user_id=user_id, access_key_id=AKID, partition="aws", expires_at=42.0
    )
    assert identity == Identity(
        arn=arn,
        canonical_arn=canonical,
        account_id=A,
        user_id=uid,
        session_name=session,
        access_key_id=AKID,
        kind=kind,
        partition="aws",
        principal_id=user_id,
        expires_at=42.0,
    )
    assert identity.uid == f"aws-iam-authenticator:{A}:{uid}"


REFUSED = [
    (f"arn:aws:sts::{A}:assumed-role/Admin/a:b", "AROAEXAMPLEADMIN:a:b", "aws", "does not accept",
     "session-with-colon"),
    (f"arn:aws:sts::{A}:federated-user/carol", A, "aws", "Account:Name",
     "federated-userid-collapsed-to-account"),
    (f"arn:aws:sts::{A}:federated-user/carol", f"{A}:mallory", "aws", "Account:Name",
     "federated-other-name"),
    (f"arn:aws:sts::{A}:assumed-role/Admin/alice", "AROAEXAMPLE", "aws", "ROLEID:SessionName",
     "assumed-role-no-session"),
    (f"arn:aws:sts::{A}:assumed-role/Admin/alice", ":alice", "aws", "ROLEID:SessionName",
     "assumed-role-empty-role-id"),
    (f"arn:aws:sts::{A}:assumed-role/Admin/alice", "AROAEXAMPLE:bob", "aws", "ROLEID:SessionName",
     "assumed-role-session-differs"),
    (f"arn:aws:iam::{A}:root", "AIDAEXAMPLE", "aws", "root's UserId", "root-with-other-userid"),
    (f"arn:aws:iam::{A}:user/alice", A, "aws", "equals the account id", "user-with-root-userid"),
    (f"arn:aws:iam::{A}:user/alice", "", "aws", "empty UserId", "empty-userid"),
    ("arn:aws:iam::999988887777:user/alice", "AIDAEXAMPLE", "aws", "differs from Account",
     "account-mismatch"),
    (f"arn:aws-cn:iam::{A}:user/alice", "AIDAEXAMPLE", "aws", "partition aws-cn",
     "other-partition"),
    (f"arn:aws:iam::{A}:user/alice", "AIDAEXAMPLE", "aws-us-gov", "partition aws",
     "aws-caller-on-gov-server"),
    (f"arn:aws:sts::{A}:assumed-role/aws:ec2-instance/i-0123456789abcdef0",
     "AROAEXAMPLE:i-0123456789abcdef0", "aws", "does not accept", "ec2-instance-session"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("arn", "user_id", "partition", "fragment"),
    [pytest.param(a, u, p, f, id=i) for a, u, p, f, i in REFUSED],
)
def test_inconsistent_answers_are_refused(
    arn: str, user_id: str, partition: str, fragment: str
) -> None:
    with pytest.raises(STSError, match=fragment):
        identity_from_caller(
            arn=arn, account=A, user_id=user_id, access_key_id=AKID, partition=partition
        )
