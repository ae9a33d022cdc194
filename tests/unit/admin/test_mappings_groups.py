"""mapGroups in the admin engine: the three documents, explain with and without known groups."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kubeiam.admin.editing.aws_auth_document import AwsAuthMappings
from kubeiam.admin.editing.crd_document import CrdMappings
from kubeiam.admin.editing.document import MappingDocument
from kubeiam.admin.editing.explain import explain
from kubeiam.admin.editing.file_document import FileMappings
from kubeiam.errors import ConfigError
from kubeiam.mapping.aws_auth import Change
from kubeiam.mapping.model import GroupMapping, load_sections

ACCOUNT = "111122223333"
DEVS = f"arn:aws:iam::{ACCOUNT}:group/eng/Developers"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"


@pytest.mark.parametrize(
    "document",
    [
        lambda: AwsAuthMappings({}),
        lambda: FileMappings(None, json_format=True),
        lambda: FileMappings("server:\n  mapUsers: []\n", json_format=False),
    ],
    ids=["aws-auth", "json", "server-yaml"],
)
def test_upsert_and_remove_group(document: Callable[[], MappingDocument]) -> None:
    doc = document()
    assert doc.upsert_group(DEVS, "dev", ["devs"], replace=False) is Change.ADDED
    assert doc.upsert_group(DEVS.lower(), "dev", ["devs"], replace=False) is Change.UNCHANGED
    assert doc.upsert_group(DEVS, "d2", [], replace=True) is Change.REPLACED
    (entry,) = doc.load().mappings.entries
    assert isinstance(entry, GroupMapping)
    assert (entry.username, entry.groups) == ("d2", ())
    assert doc.remove(DEVS) is Change.REMOVED
    assert doc.load().mappings.entries == ()


def test_crd_refuses_groups() -> None:
    with pytest.raises(ConfigError, match="no form for IAM groups"):
        CrdMappings({}).upsert_group(DEVS, "dev", [], replace=False)


def test_entry_key_and_name() -> None:
    entry = load_sections({"mapGroups": [{"grouparn": DEVS, "username": "d"}]}).mappings.entries[0]
    assert entry.entry_key == ("group", DEVS.lower())
    assert entry.display_name == f"IAM group {DEVS}"


def test_explain_with_known_groups_matches_and_without_says_would() -> None:
    mappings = load_sections(
        {
            "mapAccounts": [ACCOUNT],
            "mapGroups": [{"grouparn": DEVS, "username": "dev", "groups": ["devs"]}],
        }
    ).mappings
    unknown = explain(mappings, ALICE, backend="DynamicFile", target="f")
    assert unknown.username == ALICE  # the account entry, until membership is known
    assert any(f"member of IAM group {DEVS}" in n for n in unknown.notes)
    member = explain(
        mappings, ALICE, backend="DynamicFile", target="f", iam_groups=frozenset({DEVS})
    )
    assert (member.username, member.groups) == ("dev", ("devs",))
    assert member.entry == f"mapGroups[0]: grouparn {DEVS}"
    role = explain(mappings, f"arn:aws:iam::{ACCOUNT}:role/R", backend="DynamicFile", target="f")
    assert not any("IAM group" in n for n in role.notes)
