"""Builders of GetAccountAuthorizationDetails pages for the access tests (shared by modules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubeiam.access.iam_graph import AccountIAM, account_from_details

ACCOUNT = "111122223333"
OTHER = "444455556666"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
SAML = f"arn:aws:iam::{ACCOUNT}:saml-provider/AWSSSO_1234_DO_NOT_DELETE"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def arn(kind: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{ACCOUNT}:{kind}{path}{name}"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def assume(resource: str = "*", effect: str = "Allow", **extra: Any) -> dict[str, Any]:
    return {"Effect": effect, "Action": "sts:AssumeRole", "Resource": resource, **extra}


def trust(principal: Any, action: str = "sts:AssumeRole", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": action, **extra}


def user(
    name: str,
    *groups: str,
    policies: Sequence[dict[str, Any]] = (),
    managed: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "UserName": name,
        "UserId": f"AIDA{name.upper()}",
        "Arn": arn("user", name),
        "GroupList": list(groups),
        "UserPolicyList": [
            {"PolicyName": f"p{i}", "PolicyDocument": doc(s)} for i, s in enumerate(policies)
        ],
        "AttachedManagedPolicies": [{"PolicyName": m, "PolicyArn": m} for m in managed],
        **extra,
    }


def group(name: str, *statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "GroupName": name,
        "Arn": arn("group", name),
        "GroupPolicyList": [{"PolicyName": "assume", "PolicyDocument": doc(*statements)}]
        if statements
        else [],
        "AttachedManagedPolicies": [],
    }


def role(
    name: str,
    *trusts: dict[str, Any],
    path: str = "/",
    policies: Sequence[dict[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "RoleName": name,
        "RoleId": f"AROA{name.upper()}",
        "Arn": arn("role", name, path),
        "AssumeRolePolicyDocument": doc(*trusts),
        "RolePolicyList": [
            {"PolicyName": f"p{i}", "PolicyDocument": doc(s)} for i, s in enumerate(policies)
        ],
        "AttachedManagedPolicies": [],
        **extra,
    }


def managed(policy_arn: str, *statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "Arn": policy_arn,
        "PolicyVersionList": [
            {"Document": doc(assume(effect="Deny")), "VersionId": "v1", "IsDefaultVersion": False},
            {"Document": doc(*statements), "VersionId": "v2", "IsDefaultVersion": True},
        ],
    }


def account(*records: dict[str, Any], policies: Sequence[dict[str, Any]] = ()) -> AccountIAM:
    page: dict[str, Any] = {
        "UserDetailList": [],
        "GroupDetailList": [],
        "RoleDetailList": [],
        "Policies": list(policies),
    }
    for record in records:
        key = (
            "UserDetailList"
            if "UserName" in record
            else "GroupDetailList"
            if "GroupName" in record
            else "RoleDetailList"
        )
        page[key].append(record)
    return account_from_details([page])
