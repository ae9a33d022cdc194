"""The rules every username and group follows: one place (model.check_name), used by the server's
loader and by the editor alike (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from mapping_helpers import ACCOUNT

from kubeiam.errors import MappingError
from kubeiam.mapping.model import (
    MAX_GROUPS_PER_ENTRY,
    MAX_NAME_LENGTH,
    Severity,
    load_sections,
    parse_group_entry,
    parse_new_entry,
    parse_role_entry,
    parse_user_entry,
)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
GROUP = f"arn:aws:iam::{ACCOUNT}:group/devs"

PARSERS = {
    "role": (parse_role_entry, {"rolearn": ROLE}),
    "user": (parse_user_entry, {"userarn": USER}),
    "group": (parse_group_entry, {"grouparn": GROUP}),
}

#: (id, username, groups, message): input no entry kind may hold.
BAD_NAMES = [
    ("newline-username", "alice\nadmin", [], "U\\+000A"),
    ("tab-username", "alice\tx", [], "U\\+0009"),
    ("nul-username", "alice\x00", [], "U\\+0000"),
    ("esc-username", "\x1b[31malice", [], "U\\+001B"),
    ("del-username", "alice\x7f", [], "U\\+007F"),
    ("c1-username", "ali\x85ce", [], "U\\+0085"),
    ("line-separator", "alice\u2028x", [], "U\\+2028"),
    ("bidi-override", "alice\u202egnp", [], "U\\+202E"),
    ("zero-width", "ad\u200bmin", [], "U\\+200B"),
    ("lone-surrogate", "alice\udc80", [], "U\\+DC80"),
    ("blank-username", "   ", [], "username is missing"),
    ("long-username", "a" * (MAX_NAME_LENGTH + 1), [], "at most 2048"),
    ("newline-group", "alice", ["system:masters\nx"], "U\\+000A"),
    ("empty-group", "alice", [""], "not a group name"),
    ("blank-group", "alice", ["  "], "not a group name"),
    ("null-group", "alice", [None], "not a group name"),
    ("number-group", "alice", [5], "not a group name"),
    ("long-group", "alice", ["g" * (MAX_NAME_LENGTH + 1)], "at most 2048"),
    ("too-many-groups", "alice", [f"g{i}" for i in range(MAX_GROUPS_PER_ENTRY + 1)], "at most"),
    ("bad-template-group", "alice", ["{{sessionname}}"], "unknown template"),
]


@pytest.mark.parametrize("kind", sorted(PARSERS))
@pytest.mark.parametrize(
    ("username", "groups", "message"),
    [case[1:] for case in BAD_NAMES],
    ids=[case[0] for case in BAD_NAMES],
)
def test_bad_names_are_refused_for_every_kind(
    kind: str, username: str, groups: list[Any], message: str
) -> None:
    parse, base = PARSERS[kind]
    with pytest.raises(MappingError, match=message):
        parse({**base, "username": username, "groups": groups})


def test_limits_are_inclusive() -> None:
    entry, warnings = parse_role_entry(
        {
            "rolearn": ROLE,
            "username": "a" * MAX_NAME_LENGTH,
            "groups": [f"g{i}" for i in range(MAX_GROUPS_PER_ENTRY)],
        }
    )
    assert len(entry.username) == MAX_NAME_LENGTH
    assert warnings == []


def test_the_server_skips_such_entries_with_the_reason() -> None:
    result = load_sections(
        {
            "mapRoles": [
                {"rolearn": ROLE, "username": "ok"},
                {"rolearn": ROLE.replace("Admin", "Other"), "username": "x\ny"},
            ]
        }
    )
    assert [e.username for e in result.mappings.entries] == ["ok"]  # type: ignore[union-attr]
    (issue,) = result.issues
    assert issue.severity is Severity.SKIPPED
    assert "U+000A" in issue.message
    assert "\n" not in issue.message  # the name is shown escaped


@pytest.mark.parametrize(
    ("kind", "username", "groups", "warned"),
    [
        ("user", "{{SessionName}}", [], True),
        ("user", "alice", ["team-{{SessionNameRaw}}"], True),
        ("user", "node:{{EC2PrivateDNSName}}", [], True),
        ("group", "dev-{{SessionName}}", [], True),
        ("group", "{{AccountID}}:dev", ["team-{{AccessKeyID}}"], False),
        ("user", "{{AccountID}}:alice", [], False),
        ("role", "{{SessionName}}", ["team-{{SessionNameRaw}}"], False),
        ("role", "system:node:{{EC2PrivateDNSName}}", [], False),
    ],
    ids=[
        "user-session",
        "user-session-raw-group",
        "user-ec2",
        "group-session",
        "group-account-key",
        "user-account",
        "role-session",
        "role-ec2",
    ],
)
def test_session_templates_only_fit_role_entries(
    kind: str, username: str, groups: list[str], warned: bool
) -> None:
    parse, base = PARSERS[kind]
    _, warnings = parse({**base, "username": username, "groups": groups})
    assert any("only role sessions do" in w.message for w in warnings) is warned


@pytest.mark.parametrize(
    ("groups", "warned"),
    [
        (["system:{{SessionName}}"], True),
        (["system:serviceaccounts:{{AccountID}}"], True),
        (["eks:{{AccessKeyID}}"], True),
        (["system:masters"], False),
        (["team:{{SessionName}}"], False),
        (["{{SessionName}}:masters"], False),
    ],
    ids=["system-session", "system-account", "eks-key", "literal", "team", "leading"],
)
def test_a_placeholder_inside_a_reserved_group_prefix_can_never_apply(
    groups: list[str], warned: bool
) -> None:
    _, warnings = parse_role_entry({"rolearn": ROLE, "username": "a", "groups": groups})
    assert any("puts a placeholder in the reserved prefix" in w.message for w in warnings) is warned
    if warned:
        with pytest.raises(MappingError, match="reserved prefix"):
            parse_new_entry("mapRoles", {"rolearn": ROLE, "username": "a", "groups": groups})
    else:
        parse_new_entry("mapRoles", {"rolearn": ROLE, "username": "a", "groups": groups})
