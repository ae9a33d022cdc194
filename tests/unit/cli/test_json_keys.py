"""JSON output keys are camelCase everywhere (docs/cli.md): every document a command prints
with ``-o json`` is built here from real values and walked key by key.

Keys of user data (IAM tags, mapping usernames) are values, not keys, so they never appear as
keys in these documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from kubeiam.admin.editing.explain import explain
from kubeiam.admin.editing.lint import lint
from kubeiam.admin.onboarding.access_roles import (
    AccessRoleResult,
    DeleteRoleResult,
    MembershipResult,
)
from kubeiam.admin.onboarding.users import OffboardResult, OnboardResult
from kubeiam.arn import parse_caller_arn
from kubeiam.cli.mapping import _entry_row
from kubeiam.cli.verify import identity_document
from kubeiam.cli.whoami import identity_summary
from kubeiam.identity import identity_from_caller
from kubeiam.mapping.aws_auth import read_aws_auth

ACCOUNT = "111122223333"
CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*")

AWS_AUTH = {
    "mapRoles": yaml.safe_dump(
        [
            {
                "rolearn": f"arn:aws:iam::{ACCOUNT}:role/Admin",
                "username": "admin:{{SessionName}}",
                "groups": ["system:masters"],
            },
            {
                "sso": {"permissionSetName": "Dev", "accountID": ACCOUNT},
                "username": "sso:{{SessionName}}",
                "groups": ["developers"],
            },
        ]
    ),
    "mapUsers": yaml.safe_dump(
        [{"userarn": f"arn:aws:iam::{ACCOUNT}:user/alice", "username": "alice", "groups": []}]
    ),
    "mapGroups": yaml.safe_dump(
        [
            {
                "groupArn": f"arn:aws:iam::{ACCOUNT}:group/devs",
                "username": "dev:{{SessionName}}",
                "groups": ["developers"],
            }
        ]
    ),
    "mapAccounts": yaml.safe_dump(["444455556666"]),
}


def keys(document: Any, where: str = "$") -> Iterator[tuple[str, str]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield where, key
            yield from keys(value, f"{where}.{key}")
    elif isinstance(document, list):
        for index, item in enumerate(document):
            yield from keys(item, f"{where}[{index}]")


def documents() -> dict[str, Any]:
    loaded = read_aws_auth(AWS_AUTH)
    assert {e.kind.value for e in loaded.mappings.entries} >= {"role", "user", "account"}
    role_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice"
    found = explain(loaded.mappings, f"arn:aws:iam::{ACCOUNT}:role/Admin", backend="b", target="t")
    caller = {"Arn": role_arn, "Account": ACCOUNT, "UserId": "AROAEXAMPLE:alice"}
    identity = identity_from_caller(
        arn=role_arn,
        account=ACCOUNT,
        user_id="AROAEXAMPLE:alice",
        access_key_id="ASIAEXAMPLE",
        partition="aws",
        expires_at=1_900_000_000.0,
    )
    return {
        "mapping list": [_entry_row(e) for e in loaded.mappings.entries],
        "mapping explain": found.to_json(),
        "mapping lint": [f.to_json() for f in lint(loaded, backend="b")],
        "whoami": identity_summary(
            caller,
            parse_caller_arn(role_arn).canonical_arn,
            "alice",
            frozenset({f"arn:aws:iam::{ACCOUNT}:group/devs"}),
            [found],
        ),
        "verify": identity_document(identity),
        "iam onboard-user": OnboardResult(
            "alice",
            "arn:u",
            "arn:c",
            "p",
            "alice",
            ("g",),
            "file f",
            None,
            ("AKIA",),
            "alice",
            None,
            "cmd",
            ("x",),
            ("y",),
        ).summary(),
        "iam offboard-user": OffboardResult("alice", ("x",), ()).summary(),
        "iam create-access-role": AccessRoleResult(
            "R", "arn:r", "G", "p", "alice", ("g",), "file f", "cmd", ("x",), ("y",)
        ).summary(),
        "iam grant": MembershipResult("alice", "R", "G", True, ()).summary(),
        "iam delete-access-role": DeleteRoleResult("R", ("x",), ()).summary(),
    }


DOCUMENTS = documents()


@pytest.mark.parametrize("command", list(DOCUMENTS), ids=list(DOCUMENTS))
def test_json_keys_are_camel_case(command: str) -> None:
    found = list(keys(DOCUMENTS[command]))
    assert found, command
    bad = [f"{where}.{key}" for where, key in found if not CAMEL.fullmatch(key)]
    assert not bad, f"{command} -o json has keys that are not camelCase: {bad}"


def test_the_check_would_catch_snake_case() -> None:
    assert not CAMEL.fullmatch("canonical_arn")
    assert not CAMEL.fullmatch("CanonicalArn")
    assert CAMEL.fullmatch("canonicalArn")
