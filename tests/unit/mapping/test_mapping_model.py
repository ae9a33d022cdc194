"""Entry parsing, precedence, strict UserId matching and the index (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from mapping_helpers import ACCOUNT, role_identity, user_identity

from kubeiam.errors import MappingError
from kubeiam.identity import identity_from_caller
from kubeiam.mapping.model import (
    AccountMapping,
    EntryKind,
    Location,
    RoleMapping,
    Severity,
    SSOMapping,
    UserMapping,
    load_entries,
    load_sections,
    parse_account_entry,
    parse_role_entry,
    parse_user_entry,
)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin"


@pytest.mark.parametrize(
    "raw",
    [
        {"rolearn": ROLE, "username": "a"},
        {"roleARN": ROLE, "username": "a"},
        {"RoleArn": ROLE, "UserName": "a", "GROUPS": []},
    ],
    ids=["lower", "roleARN", "mixed"],
)
def test_role_keys_any_case(raw: dict[str, Any]) -> None:
    entry, warnings = parse_role_entry(raw)
    assert isinstance(entry, RoleMapping)
    assert entry.canonical_arn == ROLE
    assert warnings == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"username": "a"}, "rolearn \\(or sso\\) is missing"),
        ({"rolearn": ROLE}, "username is missing"),
        ({"rolearn": ROLE, "username": 5}, "username must be a string"),
        ({"rolearn": ROLE, "username": "a", "groups": "system:masters"}, "groups must be a list"),
        ({"rolearn": ROLE, "username": "a", "groups": [None]}, "not a group name"),
        ({"rolearn": ROLE, "username": "a", "groups": ["{{Nope}}"]}, "unknown template"),
        ({"rolearn": ROLE, "RoleArn": ROLE, "username": "a"}, "given twice"),
        ({"rolearn": f"arn:aws:iam::{ACCOUNT}:user/u", "username": "a"}, "move it to mapUsers"),
        ({"rolearn": "arn:aws:s3:::bucket", "username": "a"}, "not an IAM ARN"),
        ({"rolearn": ROLE, "username": "a", "sso": {}}, "not both"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
    ids=[
        "no-arn",
        "no-username",
        "username-type",
        "groups-string",
        "group-null",
        "group-template",
        "duplicate-key",
        "user-arn",
        "not-iam",
        "arn-and-sso",
        "not-mapping",
    ],
)
def test_invalid_role_entries(raw: Any, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_role_entry(raw)


def test_role_path_is_stripped_with_a_warning() -> None:
    entry, warnings = parse_role_entry(
        {"rolearn": f"arn:aws:iam::{ACCOUNT}:role/a/b/Admin", "username": "x"}
    )
    assert isinstance(entry, RoleMapping)
    assert entry.canonical_arn == ROLE
    assert entry.had_path
    assert len(warnings) == 1
    assert "IAM path" in warnings[0].message


@pytest.mark.parametrize(
    ("sso", "ok"),
    [
        ({"permissionSetName": "Admin", "accountID": ACCOUNT}, True),
        ({"PermissionSetName": "Admin", "AccountId": ACCOUNT, "Partition": "aws-cn"}, True),
        ({"permissionSetName": "Admin", "accountID": "1234"}, False),
        ({"permissionSetName": "x" * 33, "accountID": ACCOUNT}, False),
        ({"permissionSetName": "Admin", "accountID": ACCOUNT, "partition": "aws-moon"}, False),
        ({"permissionSetName": "Admin", "accountID": ACCOUNT, "extra": 1}, False),
    ],
    ids=["plain", "partition-any-case", "short-account", "long-name", "bad-partition", "extra"],
)
def test_sso_entries(sso: dict[str, Any], ok: bool) -> None:
    raw = {"sso": sso, "username": "s"}
    if ok:
        entry, _ = parse_role_entry(raw)
        assert isinstance(entry, SSOMapping)
        assert entry.kind is EntryKind.SSO
    else:
        with pytest.raises(MappingError):
            parse_role_entry(raw)


@pytest.mark.parametrize(
    ("arn", "canonical"),
    [
        (f"arn:aws:iam::{ACCOUNT}:user/kubedemy", f"arn:aws:iam::{ACCOUNT}:user/kubedemy"),
        (f"arn:aws:iam::{ACCOUNT}:user/eng/bob", f"arn:aws:iam::{ACCOUNT}:user/eng/bob"),
        (f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:root"),
        (
            f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
            f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
        ),
    ],
    ids=["user", "user-path-kept", "root", "federated"],
)
def test_user_entries(arn: str, canonical: str) -> None:
    entry, _ = parse_user_entry({"userARN": arn, "username": "u"})
    assert entry.canonical_arn == canonical


def test_root_and_federated_users_match() -> None:
    result = load_entries(
        users=[
            ({"userarn": f"arn:aws:iam::{ACCOUNT}:root", "username": "root"}, Location("u", 0)),
            (
                {"userarn": f"arn:aws:sts::{ACCOUNT}:federated-user/carol", "username": "carol"},
                Location("u", 1),
            ),
        ]
    )
    root = identity_from_caller(
        arn=f"arn:aws:iam::{ACCOUNT}:root",
        account=ACCOUNT,
        user_id=ACCOUNT,
        access_key_id="AKIA",
        partition="aws",
    )
    carol = identity_from_caller(
        arn=f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
        account=ACCOUNT,
        user_id=f"{ACCOUNT}:carol",
        access_key_id="ASIA",
        partition="aws",
    )
    assert [result.mappings.lookup(i).username for i in (root, carol)] == ["root", "carol"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ("111122223333", True),
        (111122223333, True),
        (" 111122223333 ", True),
        (12345678901, False),
        (True, False),
        ("1111-2222-3333", False),
    ],
    ids=["string", "json-number", "spaces", "lost-leading-zero", "bool", "dashes"],
)
def test_account_entries(raw: Any, ok: bool) -> None:
    if ok:
        assert parse_account_entry(raw) == AccountMapping("111122223333")
    else:
        with pytest.raises(MappingError, match="12-digit"):
            parse_account_entry(raw)


def test_account_mapping_username_is_the_canonical_arn() -> None:
    result = load_sections({"mapAccounts": [ACCOUNT]})
    match = result.mappings.lookup(role_identity("Some", "session-x"))
    assert match is not None
    assert match.username == f"arn:aws:iam::{ACCOUNT}:role/Some"
    assert match.groups == ()
    assert not match.templated


def test_section_names_any_case_and_locations_by_index() -> None:
    result = load_sections({"MAPUSERS": [{"userarn": "bad", "username": "x"}]}, prefix="server.")
    assert next(str(i) for i in result.skipped).startswith("server.mapUsers[0]: entry skipped")


def test_a_section_that_is_not_a_list_is_an_error() -> None:
    result = load_sections({"mapRoles": {"rolearn": ROLE}})
    assert not result.ok
    with pytest.raises(MappingError, match="must be a list"):
        result.raise_for_issues(strict=False)


def test_strict_user_id_matching() -> None:
    roles = [
        (
            {"rolearn": ROLE, "username": "admin", "userid": "AROAEXAMPLEROLE00001"},
            Location("r", 0),
        ),
        ({"username": "only-id", "userid": "AROAOTHER"}, Location("r", 1)),
        ({"rolearn": f"arn:aws:iam::{ACCOUNT}:role/NoId", "username": "x"}, Location("r", 2)),
    ]
    result = load_entries(roles, match_by_user_id=True)
    assert [str(i) for i in result.skipped] == ["r[2]: entry skipped: userid is missing"]
    assert result.mappings.lookup(role_identity()).username == "admin"  # type: ignore[union-attr]
    # Same role id, other role ARN (a recreated or renamed principal): not matched.
    impostor = role_identity("Renamed")
    assert result.mappings.lookup(impostor) is None
    assert result.mappings.user_id_mismatch(impostor) is not None
    # An entry with only a userid matches whatever ARN carries that id.
    other = role_identity("Anything", role_id="AROAOTHER")
    assert result.mappings.lookup(other).username == "only-id"  # type: ignore[union-attr]
    # Non-strict lookups ignore userid completely.
    loose = load_entries(roles[:1])
    assert loose.mappings.lookup(role_identity(role_id="AROADIFFERENT")) is not None


def test_identical_user_entries_warn_and_keep_the_first() -> None:
    users = [
        ({"userarn": f"arn:aws:iam::{ACCOUNT}:user/kubedemy", "username": "k"}, Location("u", 0)),
        ({"userarn": f"arn:aws:iam::{ACCOUNT}:user/KUBEDEMY", "username": "k"}, Location("u", 1)),
    ]
    result = load_entries(users=users)
    assert result.ok
    assert [i.severity for i in result.issues] == [Severity.WARNING]
    assert str(result.issues[0]) == (
        f"u[1]: userarn arn:aws:iam::{ACCOUNT}:user/KUBEDEMY duplicates u[0]"
    )
    assert len(result.mappings) == 1
    assert isinstance(result.mappings.entries[0], UserMapping)
    assert result.mappings.lookup(user_identity()) is not None


def test_exact_role_shadowing_sso_is_reported() -> None:
    suffix = "0123456789abcdef"
    roles = [
        (
            {"sso": {"permissionSetName": "Admin", "accountID": ACCOUNT}, "username": "s"},
            Location("r", 0),
        ),
        (
            {
                "rolearn": f"arn:aws:iam::{ACCOUNT}:role/AWSReservedSSO_Admin_{suffix}",
                "username": "e",
            },
            Location("r", 1),
        ),
    ]
    result = load_entries(roles)
    assert result.ok
    assert any(
        "takes precedence over r[0]: sso permission set Admin" in str(i) for i in result.warnings
    )


def test_sso_role_with_reserved_path_matches() -> None:
    role = "AWSReservedSSO_PowerUser_fedcba9876543210"
    result = load_entries(
        [
            (
                {"sso": {"permissionSetName": "poweruser", "accountID": ACCOUNT}, "username": "p"},
                Location("r", 0),
            )
        ]
    )
    # STS reports the role without its aws-reserved/sso.amazonaws.com/<region>/ path.
    assert result.mappings.lookup(role_identity(role)) is not None
    assert result.mappings.lookup(role_identity(role, account="444455556666")) is None


def test_raise_for_issues_lists_every_problem_cut_short() -> None:
    users = [({"userarn": "bad", "username": "x"}, Location("u", i)) for i in range(25)]
    result = load_entries(users=users)
    result.raise_for_issues(strict=False)  # skipped entries are fine for watchers
    with pytest.raises(MappingError) as exc:
        result.raise_for_issues(strict=True)
    assert "u[19]" in str(exc.value)
    assert "... and 5 more" in str(exc.value)
