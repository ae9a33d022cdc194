"""aws-auth data <-> mappings: the fast reader's tables and the round-trip editor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mapping_helpers import role_identity, user_identity

from kubeiam.errors import MappingError
from kubeiam.mapping.aws_auth import AwsAuthDocument, Change, parse_section, read_aws_auth
from kubeiam.mapping.model import Severity

FIXTURES = Path(__file__).parents[2] / "fixtures" / "mapping"


def _data(name: str) -> dict[str, str]:
    doc: dict[str, Any] = yaml.safe_load((FIXTURES / name).read_text())
    data: dict[str, str] = doc["data"]
    return data


def _messages(result: Any, severity: Severity) -> list[str]:
    return [str(i) for i in result.issues if i.severity is severity]


def test_eks_sample_loads_with_line_level_warnings() -> None:
    result = read_aws_auth(_data("aws-auth-eks.yaml"))
    assert result.ok
    assert len(result.mappings.roles) == 2
    assert len(result.mappings.users) == 1
    assert set(result.mappings.accounts) == {"444455556666", "012345678901"}
    warnings = _messages(result, Severity.WARNING)
    assert "mapRoles line 7: unknown key 'note' ignored" in warnings
    assert any(
        w.startswith("mapRoles line 7: rolearn arn:aws:iam::111122223333:role/platform/")
        and "has an IAM path" in w
        for w in warnings
    )
    match = result.mappings.lookup(role_identity("KubernetesAdmin", "bob"))
    assert match is not None
    assert match.username == "admin:{{SessionName}}"
    assert match.describe().startswith("mapRoles line 7: rolearn")


def test_entry_keys_are_case_insensitive() -> None:
    result = read_aws_auth(_data("aws-auth-crazy-case-keys.yaml"))
    assert result.ok
    assert not result.skipped
    assert len(result.mappings) == 3
    user = result.mappings.lookup(user_identity("admin", account="555555555555"))
    assert user is not None
    assert user.groups == ("system:masters",)


def test_top_level_keys_are_case_sensitive() -> None:
    result = read_aws_auth({"MaPrOlEs": "- rolearn: arn:aws:iam::111122223333:role/A\n"})
    assert len(result.mappings) == 0


def test_duplicates_report_both_lines() -> None:
    result = read_aws_auth(_data("aws-auth-duplicates.yaml"))
    assert not result.ok
    warnings = _messages(result, Severity.WARNING)
    assert warnings[0] == (
        "mapRoles line 7: rolearn arn:aws:iam::111122223333:role/Viewer duplicates mapRoles line 4"
    )
    assert warnings[1].startswith("mapRoles line 10: rolearn arn:aws:iam::111122223333:role/ops/")
    [error] = _messages(result, Severity.ERROR)
    assert error.startswith(
        "mapRoles line 10: rolearn arn:aws:iam::111122223333:role/ops/Admin conflicts with "
        "mapRoles line 1 (username 'admin' vs 'intern')"
    )
    with pytest.raises(MappingError, match="mapRoles line 10"):
        read_aws_auth(_data("aws-auth-duplicates.yaml"), strict=True)


def test_bad_entries_are_skipped_with_reasons_or_raise_in_strict_mode() -> None:
    data = _data("aws-auth-bad-entries.yaml")
    result = read_aws_auth(data)
    assert result.ok
    assert [m.describe() for m in result.mappings.entries] == [
        "mapRoles line 1: rolearn arn:aws:iam::111122223333:role/Good"
    ]
    skipped = _messages(result, Severity.SKIPPED)
    assert [s.split(":")[0] for s in skipped] == [
        "mapRoles line 3",
        "mapRoles line 5",
        "mapRoles line 7",
        "mapRoles line 9",
        "mapAccounts line 1",
    ]
    assert "not an ARN" in skipped[0]
    assert "move it to mapUsers" in skipped[1]
    assert "unknown template {{sessionname}}" in skipped[2]
    assert "rolearn (or sso) is missing" in skipped[3]
    with pytest.raises(MappingError) as exc:
        read_aws_auth(data, strict=True)
    assert str(exc.value).count("entry skipped") == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- rolearn: a\n  username: [unclosed\n", "mapRoles line"),
        ("rolearn: arn:aws:iam::111122223333:role/A\n", "mapRoles line 1: must be a YAML list"),
        ("- a\n---\n- b\n", "several"),
        ("- *nowhere\n", "invalid YAML"),
    ],
    ids=["syntax", "not-a-list", "two-documents", "unknown-alias"],
)
def test_unreadable_section_is_an_error(text: str, message: str) -> None:
    result = read_aws_auth({"mapRoles": text})
    assert not result.ok
    assert message in str(result.errors[0])


@pytest.mark.parametrize("text", ["", "  \n", "''", '""', "``"], ids=str)
def test_empty_section_spellings(text: str) -> None:
    result = read_aws_auth({"mapRoles": text, "mapUsers": text, "mapAccounts": text})
    assert result.ok
    assert len(result.mappings) == 0
    assert not result.issues


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- 012345678901\n", ["012345678901"]),
        ("- '012345678901'\n", ["012345678901"]),
        ("- 111122223333 # prod\n", ["111122223333"]),
        ("[111122223333, 444455556666]\n", ["111122223333", "444455556666"]),
    ],
    ids=["leading-zero-plain", "quoted", "comment", "flow"],
)
def test_account_ids_keep_their_written_form(text: str, expected: list[str]) -> None:
    result = read_aws_auth({"mapAccounts": text})
    assert result.ok
    assert list(result.mappings.accounts) == expected


def test_anchors_nulls_and_flow_groups() -> None:
    text = (
        "- rolearn: arn:aws:iam::111122223333:role/A\n"
        "  username: a\n"
        "  groups: &g [x, y]\n"
        "- rolearn: arn:aws:iam::111122223333:role/B\n"
        "  username: b\n"
        "  groups: *g\n"
        "- rolearn: arn:aws:iam::111122223333:role/C\n"
        "  username: c\n"
        "  groups:\n"
        "- rolearn: arn:aws:iam::111122223333:role/D\n"
        "  username: 'null'\n"
        "- rolearn: arn:aws:iam::111122223333:role/E\n"
        "  username: e\n"
        "  groups: null\n"
        "- rolearn: arn:aws:iam::111122223333:role/F\n"
        "  username: null\n"
    )
    result = read_aws_auth({"mapRoles": text})
    # A plain null is no username (skipped); a quoted 'null' is the string.
    assert [str(i) for i in result.skipped] == [
        "mapRoles line 15: entry skipped: username is missing"
    ]
    groups = {m.describe().split("/")[-1]: m.groups for m in result.mappings.roles.values()}
    assert groups == {"A": ("x", "y"), "B": ("x", "y"), "C": (), "D": (), "E": ()}
    assert result.mappings.roles["arn:aws:iam::111122223333:role/d"].username == "null"


def test_parse_section_gives_each_entry_its_line() -> None:
    entries, issues = parse_section(
        "mapUsers", "# c\n- userarn: a\n  username: b\n\n- userarn: c\n"
    )
    assert not issues
    assert [(loc.index, loc.line) for _, loc in entries] == [(0, 2), (1, 5)]


# --------------------------------------------------------------------------------------------
# Round trip


def test_untouched_document_round_trips_exactly() -> None:
    data = {**_data("aws-auth-eks.yaml"), "other": "kept: as is\n"}
    assert AwsAuthDocument(data).to_data() == data


def test_append_keeps_every_existing_line_and_the_section_style() -> None:
    data = _data("aws-auth-eks.yaml")
    doc = AwsAuthDocument(data)
    assert doc.upsert_role("arn:aws:iam::111122223333:role/New", "new", ["a", "b"]) is Change.ADDED
    out = doc.to_data()
    assert out["mapRoles"].startswith(data["mapRoles"])
    assert out["mapRoles"][len(data["mapRoles"]) :] == (
        "- rolearn: arn:aws:iam::111122223333:role/New\n"
        "  username: new\n"
        "  groups:\n"
        "    - a\n"
        "    - b\n"
    )
    assert out["mapUsers"] == data["mapUsers"]
    assert out["mapAccounts"] == data["mapAccounts"]
    assert doc.load().ok


def test_upsert_is_idempotent_and_refuses_a_different_mapping() -> None:
    doc = AwsAuthDocument(_data("aws-auth-eks.yaml"))
    arn = "arn:aws:iam::111122223333:user/kubedemy"
    before = doc.to_data()
    assert doc.upsert_user(arn, "kubedemy", ["system:masters"]) is Change.UNCHANGED
    assert doc.to_data() == before
    with pytest.raises(MappingError, match="--replace"):
        doc.upsert_user(arn, "someone", ["view"])
    assert doc.to_data() == before


def test_replace_keeps_unknown_keys_comments_and_other_entries() -> None:
    data = _data("aws-auth-eks.yaml")
    doc = AwsAuthDocument(data)
    # Written without the path: it is the same role, so this replaces the entry with the path.
    arn = "arn:aws:iam::111122223333:role/KubernetesAdmin"
    assert doc.upsert_role(arn, "boss", ["ops"], replace=True) is Change.REPLACED
    out = doc.to_data()["mapRoles"]
    assert "# admins assume this role through SSO-less federation\n" in out
    assert (
        "- rolearn: arn:aws:iam::111122223333:role/platform/KubernetesAdmin\n"
        "  username: boss\n"
        "  groups:\n"
        "    - ops\n"
        "  note: kept by editors, ignored by the server\n"
    ) in out
    node_entry = data["mapRoles"].split("# admins")[0]
    assert out.startswith(node_entry)


def test_remove_and_accounts() -> None:
    data = _data("aws-auth-eks.yaml")
    doc = AwsAuthDocument(data)
    assert doc.remove("arn:aws:iam::111122223333:user/kubedemy") is Change.REMOVED
    assert "mapUsers" not in doc.to_data()
    assert doc.remove("arn:aws:iam::111122223333:user/kubedemy") is Change.UNCHANGED
    assert doc.add_account("000011112222") is Change.ADDED
    assert doc.add_account("000011112222") is Change.UNCHANGED
    assert doc.remove("444455556666") is Change.REMOVED
    assert doc.to_data()["mapAccounts"] == '- 012345678901\n- "000011112222"\n'
    assert doc.to_data()["mapRoles"] == data["mapRoles"]
    assert set(doc.load().mappings.accounts) == {"012345678901", "000011112222"}


def test_editor_refuses_what_the_watcher_would_skip() -> None:
    with pytest.raises(MappingError, match="mapRoles line 3"):
        AwsAuthDocument(_data("aws-auth-bad-entries.yaml"))
    doc = AwsAuthDocument({})
    with pytest.raises(MappingError, match="not an ARN"):
        doc.upsert_role("nope", "x", [])
    with pytest.raises(MappingError, match="unknown template"):
        doc.upsert_user("arn:aws:iam::111122223333:user/a", "{{Session}}", [])
    assert doc.upsert_user("arn:aws:iam::111122223333:user/a", "a", []) is Change.ADDED
    assert doc.to_data() == {
        "mapUsers": "- userarn: arn:aws:iam::111122223333:user/a\n  username: a\n  groups: []\n"
    }


def test_a_section_that_is_not_a_string_is_an_error() -> None:
    # The reference's "missing bar" case: mapRoles written as a list instead of a block string.
    result = read_aws_auth({"mapRoles": [{"rolearn": "x"}]})  # type: ignore[dict-item]
    assert not result.ok
    assert "mapRoles: must be a YAML string" in str(result.errors[0])
