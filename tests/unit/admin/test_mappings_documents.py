"""The three stores' documents follow one set of rules (one parametrized suite, not copies)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.admin.editing.aws_auth_document import AwsAuthMappings
from kubeiam.admin.editing.crd_document import CrdMappings, crd_object_name
from kubeiam.admin.editing.document import MappingDocument
from kubeiam.admin.editing.file_document import FileMappings
from kubeiam.errors import ConfigError, MappingError
from kubeiam.mapping.aws_auth import Change

ACCOUNT = "111122223333"
USER = f"arn:aws:iam::{ACCOUNT}:user/kubedemy"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin"
ROLE_WITH_PATH = f"arn:aws:iam::{ACCOUNT}:role/team/Admin"

FACTORIES: dict[str, Callable[[], MappingDocument]] = {
    "aws-auth": lambda: AwsAuthMappings({}),
    "file-yaml": lambda: FileMappings("# mine\nserver:\n  clusterID: x\n", json_format=False),
    "file-json": lambda: FileMappings(None, json_format=True),
    "crd": lambda: CrdMappings({}),
}
ALL = pytest.mark.parametrize("make", list(FACTORIES.values()), ids=list(FACTORIES))
_SSO_STORES = ("aws-auth", "file-yaml", "file-json")
WITH_SSO = pytest.mark.parametrize("make", [FACTORIES[k] for k in _SSO_STORES], ids=_SSO_STORES)


@ALL
def test_add_then_identical_is_unchanged(make: Callable[[], MappingDocument]) -> None:
    doc = make()
    assert doc.upsert_user(USER, "kubedemy", ["system:masters"], replace=False) is Change.ADDED
    text = doc.text()
    assert doc.upsert_user(USER, "kubedemy", ["system:masters"], replace=False) is Change.UNCHANGED
    assert doc.text() == text
    entries = doc.load().mappings.entries
    assert [(e.username, e.groups) for e in entries] == [("kubedemy", ("system:masters",))]  # type: ignore[union-attr]


@ALL
def test_different_mapping_needs_replace(make: Callable[[], MappingDocument]) -> None:
    doc = make()
    doc.upsert_role(ROLE_WITH_PATH, "admin", ["a"], replace=False)
    with pytest.raises(MappingError, match="--replace"):
        doc.upsert_role(ROLE, "other", ["b"], replace=False)  # same role without its path
    assert doc.upsert_role(ROLE, "other", ["b"], replace=True) is Change.REPLACED
    (entry,) = doc.load().mappings.entries
    assert (entry.username, entry.groups) == ("other", ("b",))  # type: ignore[union-attr]


@ALL
def test_remove_is_by_canonical_arn(make: Callable[[], MappingDocument]) -> None:
    doc = make()
    doc.upsert_role(ROLE_WITH_PATH, "admin", [], replace=False)
    assert doc.remove(ROLE.replace("Admin", "ADMIN")) is Change.REMOVED
    assert doc.load().mappings.entries == ()
    assert doc.remove(ROLE) is Change.UNCHANGED


@ALL
@pytest.mark.parametrize(
    ("method", "arn", "message"),
    [
        ("upsert_user", ROLE, "not an IAM user ARN"),
        ("upsert_role", USER, "not an IAM role ARN"),
        ("upsert_role", "arn:aws:iam::123:role/x", "not 12 digits"),
        ("upsert_user", "kubedemy", "is not an ARN"),
    ],
    ids=["role-as-user", "user-as-role", "short-account", "not-arn"],
)
def test_invalid_arns_are_refused(
    make: Callable[[], MappingDocument], method: str, arn: str, message: str
) -> None:
    doc = make()
    with pytest.raises(MappingError, match=message):
        getattr(doc, method)(arn, "x", [], replace=False)


@ALL
def test_unknown_template_is_refused(make: Callable[[], MappingDocument]) -> None:
    with pytest.raises(MappingError, match="unknown template"):
        make().upsert_role(ROLE, "{{sessionname}}", [], replace=False)


@WITH_SSO
def test_sso_and_accounts(make: Callable[[], MappingDocument]) -> None:
    doc = make()
    add = doc.upsert_sso(
        "Dev", ACCOUNT, "dev:{{SessionName}}", ["dev"], partition="aws", replace=False
    )
    assert add is Change.ADDED
    again = doc.upsert_sso(
        "dev", ACCOUNT, "dev:{{SessionName}}", ["dev"], partition="aws", replace=False
    )
    assert again is Change.UNCHANGED  # permission set names match case-insensitively
    assert doc.add_account(ACCOUNT) is Change.ADDED
    assert doc.add_account(ACCOUNT) is Change.UNCHANGED
    loaded = doc.load().mappings
    assert list(loaded.sso) == [("aws", ACCOUNT, "dev")]
    assert list(loaded.accounts) == [ACCOUNT]
    assert doc.remove_sso("Dev", ACCOUNT, partition="aws") is Change.REMOVED
    assert doc.remove(ACCOUNT) is Change.REMOVED
    assert doc.load().mappings.entries == ()


def test_crd_has_no_form_for_sso_or_accounts() -> None:
    doc = CrdMappings({})
    with pytest.raises(ConfigError, match="--store aws-auth"):
        doc.add_account(ACCOUNT)
    with pytest.raises(ConfigError, match="permission sets"):
        doc.upsert_sso("Dev", ACCOUNT, "d", [], partition="aws", replace=False)


def test_crd_object_names_are_stable_and_valid() -> None:
    name = crd_object_name(ROLE_WITH_PATH)
    assert name == crd_object_name(ROLE.replace("Admin", "ADMIN"))
    assert name.startswith(f"role-admin-{ACCOUNT}-")
    assert len(name) <= 253
    assert all(c.isalnum() or c == "-" for c in name)
    assert name == name.lower()


def test_file_yaml_keeps_comments_and_unknown_keys() -> None:
    doc = FileMappings("# mine\nserver:\n  clusterID: x  # id\n  other: 1\n", json_format=False)
    doc.upsert_user(USER, "k", ["g"], replace=False)
    assert doc.text() == (
        "# mine\nserver:\n  clusterID: x  # id\n  other: 1\n  mapUsers:\n"
        f"    - userARN: {USER}\n      username: k\n      groups:\n        - g\n"
    )
    doc.remove(USER)
    assert doc.text() == "# mine\nserver:\n  clusterID: x  # id\n  other: 1\n"


def test_file_json_is_a_dynamic_file() -> None:
    doc = FileMappings('{"Version": "7", "mapRoles": []}', json_format=True)
    doc.upsert_role(ROLE, "admin", ["g"], replace=False)
    assert json.loads(doc.text()) == {
        "Version": "7",
        "mapRoles": [{"rolearn": ROLE, "username": "admin", "groups": ["g"]}],
    }


@pytest.mark.parametrize(
    ("text", "json_format", "message"),
    [
        ("server: [", False, "not valid YAML"),
        ("{", True, "not valid JSON"),
        ("[]", True, "top level"),
    ],
    ids=["yaml", "json", "json-list"],
)
def test_unreadable_files_are_refused(text: str, json_format: bool, message: str) -> None:
    """Reading reports the server's refusal (lint and list show it); an edit writes nothing."""
    doc = FileMappings(text, json_format=json_format)
    assert not doc.load().ok
    assert message in str(doc.load().errors[0])
    with pytest.raises(ConfigError, match=message):
        doc.add_account("111122223333")
    assert doc.text() == text


def test_aws_auth_text_shows_every_key() -> None:
    doc = AwsAuthMappings({"mapRoles": "- rolearn: x\n", "other": "a\n"})
    assert doc.text() == "mapRoles: |\n  - rolearn: x\nother: |\n  a\n"
    assert [i.message for i in doc.load().issues] == ["entry skipped: username is missing"]
    with pytest.raises(MappingError, match="mapRoles line 1"):
        doc.add_account(ACCOUNT)  # an aws-auth kubeiam cannot edit safely is left alone


def test_state_is_a_copy() -> None:
    doc = FACTORIES["crd"]()
    doc.upsert_user(USER, "a", ["g"], replace=False)
    state = doc.state()
    doc.upsert_user(USER, "b", ["g"], replace=True)
    assert next(iter(state.values()))["username"] == "a"


# -- the documents agree (property) -----------------------------------------------------------

_NAMES = st.sampled_from(["alice", "bob", "team/carol", "Dave"])
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["user", "role", "remove-user", "remove-role"]),
        _NAMES,
        st.sampled_from(["a", "b"]),
        st.lists(st.sampled_from(["g1", "g2", "system:masters"]), max_size=2, unique=True),
    ),
    max_size=12,
)


def _apply(doc: MappingDocument, ops: list[tuple[str, str, str, list[str]]]) -> list[str]:
    outcomes = []
    for op, name, username, groups in ops:
        kind = "user" if op.endswith("user") else "role"
        arn = f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"
        try:
            if op == "user":
                change = doc.upsert_user(arn, username, groups, replace=True)
            elif op == "role":
                change = doc.upsert_role(arn, username, groups, replace=True)
            else:
                change = doc.remove(arn)
        except MappingError as exc:
            outcomes.append(f"error {exc.message.split()[0]}")
            continue
        outcomes.append(change.value)
    return outcomes


def _entries(doc: MappingDocument) -> set[tuple[str, str, str, tuple[str, ...]]]:
    loaded = doc.load()
    assert loaded.ok, loaded.issues
    return {
        (e.kind.value, e.canonical_arn.lower(), e.username, e.groups)  # type: ignore[union-attr]
        for e in loaded.mappings.entries
    }


@settings(max_examples=50, deadline=None)
@given(_OPS)
def test_every_store_ends_with_the_same_mappings(
    ops: list[tuple[str, str, str, list[str]]],
) -> None:
    docs = {name: make() for name, make in FACTORIES.items()}
    outcomes = {name: _apply(doc, ops) for name, doc in docs.items()}
    assert len({tuple(o) for o in outcomes.values()}) == 1, outcomes
    results = {name: _entries(doc) for name, doc in docs.items()}
    assert len({frozenset(r) for r in results.values()}) == 1, results
    # What each document wrote reads back the same (the server would see the same mappings).
    aws_auth = docs["aws-auth"]
    assert isinstance(aws_auth, AwsAuthMappings)
    assert _entries(AwsAuthMappings(aws_auth.data)) == results["aws-auth"]
    yaml_doc = FileMappings(docs["file-yaml"].text(), json_format=False)
    assert _entries(yaml_doc) == results["file-yaml"]
