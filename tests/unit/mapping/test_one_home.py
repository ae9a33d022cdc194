"""The ARN and template helpers the model, lint and explain share (one home each)."""

from __future__ import annotations

import pytest

from kubeiam.arn import PrincipalKind, parse_group_arn, sso_permission_set
from kubeiam.identity import Identity
from kubeiam.mapping.templates import render_partially


def identity(session: str = "", access_key_id: str = "") -> Identity:
    return Identity(
        arn="arn:aws:sts::111122223333:assumed-role/Dev/" + session,
        canonical_arn="arn:aws:iam::111122223333:role/Dev",
        account_id="111122223333",
        user_id="",
        session_name=session,
        access_key_id=access_key_id,
        kind=PrincipalKind.ASSUMED_ROLE,
        partition="aws",
        principal_id="",
    )


@pytest.mark.parametrize(
    ("template", "caller", "shown"),
    [
        ("{{AccountID}}:dev", identity(), "111122223333:dev"),
        ("dev-{{SessionName}}", identity("a@b"), "dev-a-b"),
        ("dev-{{SessionNameRaw}}", identity("a@b"), "dev-a@b"),
        ("dev-{{SessionName}}", identity(), "dev-{{SessionName}}"),
        ("{{AccessKeyID}}", identity(access_key_id="AKIAEXAMPLE"), "AKIAEXAMPLE"),
        ("{{AccessKeyID}}", identity(), "{{AccessKeyID}}"),
        ("system:node:{{EC2PrivateDNSName}}", identity("i-0123456789abcdef0"), None),
    ],
    ids=["account", "session", "session-raw", "no-session", "key", "no-key", "ec2-never-asked"],
)
def test_render_partially_leaves_what_it_cannot_know(
    template: str, caller: Identity, shown: str | None
) -> None:
    assert render_partially(template, caller) == (template if shown is None else shown)


@pytest.mark.parametrize(
    ("role_name", "permission_set"),
    [
        ("AWSReservedSSO_Admin_0123456789abcdef", "Admin"),
        ("awsreservedsso_admin_0123456789ABCDEF", "admin"),
        ("AWSReservedSSO_Admin_ReadOnly_0123456789abcdef", "Admin_ReadOnly"),
        ("AWSReservedSSO_Admin_0123456789abcde", None),
        ("Admin", None),
    ],
    ids=["set", "any-case", "underscore-in-set", "short-suffix", "plain-role"],
)
def test_sso_permission_set(role_name: str, permission_set: str | None) -> None:
    assert sso_permission_set(role_name) == permission_set


def test_parse_group_arn() -> None:
    assert parse_group_arn("arn:aws:iam::111122223333:group/team/devs") == ("aws", "111122223333")
    assert parse_group_arn("arn:aws:iam::111122223333:role/devs") is None
