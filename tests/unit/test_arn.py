"""Caller ARNs from STS and ARNs written in mappings (protocol.md section 2, the ARN table)."""

from __future__ import annotations

import pytest

from kubeiam.arn import (
    MappingArn,
    Principal,
    PrincipalKind,
    arn_key,
    canonicalize_mapping_arn,
    parse_caller_arn,
)
from kubeiam.errors import MappingError, STSError

A = "111122223333"

CALLERS = [
    pytest.param(
        f"arn:aws:iam::{A}:root",
        Principal(PrincipalKind.ROOT, "aws", A, f"arn:aws:iam::{A}:root",
                  f"arn:aws:iam::{A}:root", ""),
        id="root",
    ),
    pytest.param(
        f"arn:aws:iam::{A}:user/alice",
        Principal(PrincipalKind.USER, "aws", A, f"arn:aws:iam::{A}:user/alice",
                  f"arn:aws:iam::{A}:user/alice", "alice"),
        id="user",
    ),
    pytest.param(
        f"arn:aws:iam::{A}:user/eng/ops/bob",
        Principal(PrincipalKind.USER, "aws", A, f"arn:aws:iam::{A}:user/eng/ops/bob",
                  f"arn:aws:iam::{A}:user/eng/ops/bob", "eng/ops/bob"),
        id="user-with-path-keeps-it",
    ),
    pytest.param(
        f"arn:aws:sts::{A}:assumed-role/Admin/alice@example.com",
        Principal(PrincipalKind.ASSUMED_ROLE, "aws", A,
                  f"arn:aws:sts::{A}:assumed-role/Admin/alice@example.com",
                  f"arn:aws:iam::{A}:role/Admin", "Admin", "alice@example.com"),
        id="assumed-role-canonicalised-to-role",
    ),
    pytest.param(
        f"arn:aws:sts::{A}:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice",
        Principal(PrincipalKind.ASSUMED_ROLE, "aws", A,
                  f"arn:aws:sts::{A}:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/alice",
                  f"arn:aws:iam::{A}:role/AWSReservedSSO_Admin_0123456789abcdef",
                  "AWSReservedSSO_Admin_0123456789abcdef", "alice"),
        id="sso-role",
    ),
    pytest.param(
        f"arn:aws:sts::{A}:assumed-role/NodeRole/i-0123456789abcdef0",
        Principal(PrincipalKind.ASSUMED_ROLE, "aws", A,
                  f"arn:aws:sts::{A}:assumed-role/NodeRole/i-0123456789abcdef0",
                  f"arn:aws:iam::{A}:role/NodeRole", "NodeRole", "i-0123456789abcdef0"),
        id="node-role-instance-session",
    ),
    pytest.param(
        f"arn:aws:sts::{A}:federated-user/carol",
        Principal(PrincipalKind.FEDERATED_USER, "aws", A,
                  f"arn:aws:sts::{A}:federated-user/carol",
                  f"arn:aws:sts::{A}:federated-user/carol", "carol"),
        id="federated-user",
    ),
    pytest.param(
        f"arn:aws-cn:sts::{A}:assumed-role/Admin/s",
        Principal(PrincipalKind.ASSUMED_ROLE, "aws-cn", A,
                  f"arn:aws-cn:sts::{A}:assumed-role/Admin/s",
                  f"arn:aws-cn:iam::{A}:role/Admin", "Admin", "s"),
        id="china-assumed-role",
    ),
    pytest.param(
        f"arn:aws-us-gov:iam::{A}:user/dave",
        Principal(PrincipalKind.USER, "aws-us-gov", A, f"arn:aws-us-gov:iam::{A}:user/dave",
                  f"arn:aws-us-gov:iam::{A}:user/dave", "dave"),
        id="gov-user",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("arn", "principal"), CALLERS)
def test_caller_arn_table(arn: str, principal: Principal) -> None:
    assert parse_caller_arn(arn) == principal


REFUSED_CALLERS = [
    (f"arn:aws:sts::{A}:assumed-role/aws:ec2-instance/i-0123456789abcdef0", "ec2-instance"),
    (f"arn:aws:sts::{A}:assumed-role/aws:lambda/x", "aws-service-session"),
    (f"arn:aws:iam::{A}:role/Admin", "role-is-not-a-caller"),
    (f"arn:aws:iam::{A}:group/devs", "group"),
    (f"arn:aws:sts::{A}:assumed-role/Admin", "assumed-role-without-session"),
    (f"arn:aws:sts::{A}:assumed-role/Admin/", "assumed-role-empty-session"),
    (f"arn:aws:sts::{A}:assumed-role//alice", "assumed-role-empty-role"),
    (f"arn:aws:sts::{A}:federated-user/", "federated-empty"),
    (f"arn:aws:iam::{A}:user/", "user-empty"),
    (f"arn:aws:iam::{A}:user//alice", "user-empty-path-segment"),
    (f"arn:aws:iam::{A}:user/al ice", "space-in-name"),
    (f"arn:aws:iam::{A}:user/alicé", "non-ascii-name"),
    (f"arn:aws:iam::{A}:user/alice\n", "trailing-newline-name"),
    (f"arn:aws:iam::{A}\n:root", "newline-in-account"),
    ("arn:aws:iam::11112222333:root", "eleven-digit-account"),
    ("arn:aws:iam::1111222233334:root", "thirteen-digit-account"),
    ("arn:aws:iam::١١١١٢٢٢٢٣٣٣٣:root", "non-ascii-digits"),
    (f"arn:aws:iam:us-east-1:{A}:root", "region-set"),
    (f"arn:AWS:iam::{A}:root", "upper-case-partition"),
    (f"arn:aws:s3::{A}:root", "other-service"),
    (f"arn:aws:sts::{A}:root", "sts-root"),
    ("not-an-arn", "not-an-arn"),
    (f"urn:aws:iam::{A}:root", "urn"),
    ("", "empty"),
]


@pytest.mark.parametrize("arn", [pytest.param(a, id=i) for a, i in REFUSED_CALLERS])
def test_refused_caller_arns(arn: str) -> None:
    with pytest.raises(STSError, match="STS returned"):
        parse_caller_arn(arn)


MAPPINGS = [
    (f"arn:aws:iam::{A}:role/Admin", f"arn:aws:iam::{A}:role/Admin", False, "role", "role"),
    (f"arn:aws:iam::{A}:role/team/Admin", f"arn:aws:iam::{A}:role/Admin", True, "role",
     "role-path-stripped"),
    (f"arn:aws:iam::{A}:role/a/b/c/Admin", f"arn:aws:iam::{A}:role/Admin", True, "role",
     "role-deep-path-stripped"),
    (f"arn:aws:iam::{A}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_X_1",
     f"arn:aws:iam::{A}:role/AWSReservedSSO_X_1", True, "role", "sso-role-path"),
    (f"arn:aws:iam::{A}:user/alice", f"arn:aws:iam::{A}:user/alice", False, "user", "user"),
    (f"arn:aws:iam::{A}:user/eng/alice", f"arn:aws:iam::{A}:user/eng/alice", False, "user",
     "user-path-kept"),
    (f"  arn:aws-cn:iam::{A}:role/Admin ", f"arn:aws-cn:iam::{A}:role/Admin", False, "role",
     "china-surrounding-space"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("arn", "canonical", "had_path", "rtype"),
    [pytest.param(a, c, h, t, id=i) for a, c, h, t, i in MAPPINGS],
)
def test_mapping_arns(arn: str, canonical: str, had_path: bool, rtype: str) -> None:
    parsed = canonicalize_mapping_arn(arn)
    assert parsed == MappingArn(
        original=arn,
        canonical=canonical,
        had_path=had_path,
        resource_type=rtype,
        account_id=A,
        partition=canonical.split(":")[1],
    )


REFUSED_MAPPINGS = [
    ("Admin", "is not an ARN", "bare-name"),
    (f"arn:aws:sts::{A}:assumed-role/Admin/s", "not an IAM ARN", "sts-arn"),
    (f"arn:aws:iam:us-east-1:{A}:role/Admin", "not an IAM ARN", "region-set"),
    (f"arn:AWS:iam::{A}:role/Admin", "not an IAM ARN", "upper-case-partition"),
    ("arn:aws:iam::1234:role/Admin", "not 12 digits", "short-account"),
    (f"arn:aws:iam::{A}:group/devs", "does not name an IAM role or user", "group"),
    (f"arn:aws:iam::{A}:role/", "does not name an IAM role or user", "empty-role"),
    (f"arn:aws:iam::{A}:role//Admin", "does not name an IAM role or user", "empty-segment"),
    (f"arn:aws:iam::{A}:role/Adm*n", "characters IAM does not allow", "glob"),
    (f"arn:aws:iam::{A}:role/Ädmin", "characters IAM does not allow", "non-ascii"),
]


@pytest.mark.parametrize(
    ("arn", "fragment"), [pytest.param(a, f, id=i) for a, f, i in REFUSED_MAPPINGS]
)
def test_refused_mapping_arns(arn: str, fragment: str) -> None:
    with pytest.raises(MappingError, match=fragment):
        canonicalize_mapping_arn(arn)


def test_path_stripped_mapping_matches_the_sts_canonical_arn() -> None:
    """The users' most common complaint: a role written with its path must match."""
    mapping = canonicalize_mapping_arn(f"arn:aws:iam::{A}:role/team/KubeAdmin")
    caller = parse_caller_arn(f"arn:aws:sts::{A}:assumed-role/KubeAdmin/alice")
    assert arn_key(mapping.canonical) == arn_key(caller.canonical_arn)


def test_arn_key_is_case_insensitive() -> None:
    assert arn_key(f"arn:aws:iam::{A}:role/KubeAdmin") == arn_key(
        f"arn:aws:iam::{A}:role/kubeadmin"
    )
