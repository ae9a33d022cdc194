"""The mapping file editor splices the config's text: exact output for each layout, the kept
document equals a fresh parse after any edits, and what the splicer cannot read falls back to the
round trip (pure)."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.admin.editing.file_document import FileMappings, load_server_config_text
from kubeiam.errors import ConfigError
from kubeiam.mapping.aws_auth import Change

ACCOUNT = "111122223333"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin"

ADDED_USER = "userARN: " + USER


def entries(result: Any) -> set[tuple[str, str, str, tuple[str, ...]]]:
    out = set()
    for e in result.mappings.entries:
        key = getattr(e, "canonical_arn", "") or getattr(e, "account_id", "")
        out.add((e.kind.value, key.lower(), getattr(e, "username", ""), getattr(e, "groups", ())))
    return out


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            "# mine\nserver:\n  port: 1  # p\n",
            "# mine\nserver:\n  port: 1  # p\n  mapUsers:\n"
            f"    - {ADDED_USER}\n      username: alice\n      groups:\n        - g\n",
        ),
        (
            "server:\n  mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/bob\n"
            "    username: bob  # keep\n  port: 1\n",
            "server:\n  mapUsers:\n  - userarn: arn:aws:iam::111122223333:user/bob\n"
            "    username: bob  # keep\n"
            f"  - userarn: {USER}\n    username: alice\n    groups:\n    - g\n  port: 1\n",
        ),
        (
            "server:\n  mapUsers: []  # none yet\n",
            "server:\n  mapUsers: # none yet\n"
            f"    - {ADDED_USER}\n      username: alice\n      groups:\n        - g\n",
        ),
        (
            "server:\n  mapUsers:\n  port: 1\n",
            "server:\n  mapUsers:\n"
            f"    - {ADDED_USER}\n      username: alice\n      groups:\n        - g\n  port: 1\n",
        ),
        (
            "clusterID: x\n",
            "clusterID: x\nserver:\n  mapUsers:\n"
            f"    - {ADDED_USER}\n      username: alice\n      groups:\n        - g\n",
        ),
        (
            "",
            f"server:\n  mapUsers:\n    - {ADDED_USER}\n      username: alice\n      groups:\n"
            "        - g\n",
        ),
        (
            "server:\r\n  port: 1\r\n",
            "server:\r\n  port: 1\r\n  mapUsers:\r\n"
            f"    - {ADDED_USER}\r\n      username: alice\r\n      groups:\r\n        - g\r\n",
        ),
        (
            "server: # settings\nclusterID: x\n",
            "server: # settings\n  mapUsers:\n"
            f"    - {ADDED_USER}\n      username: alice\n      groups:\n        - g\n"
            "clusterID: x\n",
        ),
    ],
    ids=[
        "new-section",
        "kubectl-style-list",
        "empty-flow-list",
        "null-section",
        "no-server",
        "empty-file",
        "crlf",
        "server-null",
    ],
)
def test_add_then_remove_restores_the_text(before: str, after: str) -> None:
    doc = FileMappings(before, json_format=False)
    assert doc.upsert_user(USER, "alice", ["g"], replace=False) is Change.ADDED
    assert doc.spliced  # the fast path, not the round trip
    assert doc.text() == after
    assert entries(doc.load()) == entries(load_server_config_text(after, name="f"))
    assert doc.remove(USER) is Change.REMOVED
    again = FileMappings(after, json_format=False)
    assert again.remove(USER) is Change.REMOVED
    if "mapUsers:" not in before:  # the section it created goes, and an emptied server: too
        assert again.text() == before.replace("server: # settings\n", "")


def test_remove_keeps_comments_of_the_other_entries() -> None:
    text = (
        "server:\n"
        "  mapRoles:\n"
        "    # the admins\n"
        f"    - rolearn: {ROLE}\n"
        "      username: admin  # who\n"
        "    # the users\n"
        f"    - rolearn: {ROLE}2\n"
        "      username: user\n"
        "  port: 1\n"
    )
    doc = FileMappings(text, json_format=False)
    assert doc.remove(ROLE) is Change.REMOVED
    assert doc.text() == (
        f"server:\n  mapRoles:\n    # the admins\n    # the users\n    - rolearn: {ROLE}2\n"
        "      username: user\n  port: 1\n"
    )


def test_replace_keeps_the_entrys_own_comments_and_keys() -> None:
    text = (
        f"server:\n  mapRoles:\n    - rolearn: {ROLE}  # admin role\n      username: a\n"
        "      note: x\n"
    )
    doc = FileMappings(text, json_format=False)
    assert doc.upsert_role(ROLE, "b", ["ops"], replace=True) is Change.REPLACED
    assert doc.text() == (
        f"server:\n  mapRoles:\n    - rolearn: {ROLE}  # admin role\n      username: b\n"
        "      note: x\n      groups:\n        - ops\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        f"server:\n  mapRoles: [{{rolearn: {ROLE}, username: a}}]\n",
        f"base: &b {{username: a}}\nserver:\n  mapRoles:\n  - <<: *b\n    rolearn: {ROLE}\n",
        f'server: {{mapRoles: [{{rolearn: "{ROLE}", username: a}}]}}\n',
        f"server:\n  mapRoles:\n  - rolearn: {ROLE}\n    username: a\n  note: |+\n    kept\n\n",
        f"\ufeffserver:\n  mapRoles:\n  - rolearn: {ROLE}\n    username: a\nclusterID: x\n",
        f'"ser\\x76er":\n  mapRoles:\n  - rolearn: {ROLE}\n    username: a\nclusterID: x\n',
    ],
    ids=["flow-list", "anchors", "flow-server", "kept-block-scalar", "bom", "escaped-key"],
)
def test_layouts_the_splicer_does_not_read_fall_back_to_the_round_trip(text: str) -> None:
    doc = FileMappings(text, json_format=False)
    assert doc.upsert_user(USER, "alice", ["g"], replace=False) is Change.ADDED
    assert not doc.spliced
    fresh = load_server_config_text(doc.text(), name="f")
    assert fresh.ok
    assert ("user", USER.lower(), "alice", ("g",)) in entries(fresh)
    assert ("role", ROLE.lower(), "a", ()) in entries(fresh)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server:\n  mapUsers: oops\n", "`server.mapUsers` is a str, not a list"),
        ("server:\n  mapUsers: {a: 1}\n", "`server.mapUsers` is a dict, not a list"),
        ("server: oops\n", "`server` is a str, not a mapping"),
        ("server: [1]\n", "`server` is a list, not a mapping"),
        ("mapUsers: []\n", "at the top level"),
        ("server:\n  mapUsers: []\n  mapUsers: []\n", "appears twice"),
        ("- a\n", "the top level is not a mapping"),
    ],
    ids=["section-string", "section-dict", "server-string", "server-list", "flat", "dup", "list"],
)
def test_wrong_shapes_are_refused_never_replaced(text: str, message: str) -> None:
    doc = FileMappings(text, json_format=False)
    with pytest.raises(ConfigError, match=message) as caught:
        doc.upsert_user(USER, "alice", ["g"], replace=False)
    assert "nothing was written" in str(caught.value)
    assert doc.text() == text


# -- the kept document is what a fresh parse reads ----------------------------------------------

_STARTS = [
    "server:\n  port: 1\n",
    "# c\nserver:\n  mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/r0\n"
    "    username: r0\n  # between\n  mapUsers: []\n  port: 2\nclusterID: x\n",
    "server:\n    mapAccounts:\n        - '222233334444'\n    mapUsers:\n"
    "        -   userarn: arn:aws:iam::111122223333:user/u0\n            username: u0\n",
    "",
]
_NAMES = st.sampled_from(["r0", "u0", "a", "b", "team/c"])
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["user", "role", "group", "account", "remove-user", "remove-role"]),
        _NAMES,
        st.sampled_from(["x", "y"]),
        st.lists(st.sampled_from(["g1", "g2"]), max_size=2, unique=True),
    ),
    max_size=10,
)


def _apply(doc: FileMappings, op: str, name: str, username: str, groups: list[str]) -> None:
    kind = "role" if op.endswith("role") else "user"
    arn = f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"
    if op == "user":
        doc.upsert_user(arn, username, groups, replace=True)
    elif op == "role":
        doc.upsert_role(arn, username, groups, replace=True)
    elif op == "group":
        doc.upsert_group(f"arn:aws:iam::{ACCOUNT}:group/{name}", username, groups, replace=True)
    elif op == "account":
        doc.add_account("222233334444" if name == "a" else "333344445555")
    else:
        doc.remove(arn)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(_STARTS), _OPS)
def test_spliced_edits_read_back_as_a_fresh_parse_and_as_the_round_trip(
    start: str, ops: list[tuple[str, str, str, list[str]]]
) -> None:
    doc = FileMappings(start, json_format=False)
    # The same edits, validated through the document kept in step with the text (as big files
    # are) instead of a fresh parse.
    kept_doc = FileMappings(start, json_format=False, full_parse_below=0)
    for op in ops:
        _apply(doc, *op)
        _apply(kept_doc, *op)
        text = doc.text()
        fresh = load_server_config_text(text, name="f")
        assert fresh.ok, (text, fresh.issues)
        kept = kept_doc.load()
        assert entries(kept) == entries(fresh), text
    if ops:
        assert doc.spliced
    # The ruamel round trip, forced, ends with the same mappings.
    slow = FileMappings(start, json_format=False, splice=False)
    for op in ops:
        _apply(slow, *op)
    assert entries(load_server_config_text(slow.text(), name="f")) == entries(doc.load())


_AWS_AUTH_STARTS = [
    {},
    {"mapRoles": "# nodes\n- rolearn: arn:aws:iam::111122223333:role/r0\n  username: r0\n"},
    {
        "mapUsers": "  - userarn: arn:aws:iam::111122223333:user/u0\n    username: u0\n"
        "    groups:\n        - a\n",
        "mapAccounts": "- '222233334444'\n",
        "other": "kept\n",
    },
]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(_AWS_AUTH_STARTS), _OPS)
def test_spliced_aws_auth_entries_read_back_as_a_fresh_parse(
    start: dict[str, str], ops: list[tuple[str, str, str, list[str]]]
) -> None:
    from kubeiam.admin.editing.aws_auth_document import AwsAuthMappings
    from kubeiam.mapping import aws_auth
    from kubeiam.mapping.aws_auth import read_aws_auth

    doc = AwsAuthMappings(start)
    for op in ops:
        _apply(doc, *op)  # type: ignore[arg-type]
        fresh = read_aws_auth(doc.data)
        assert fresh.ok, (doc.data, fresh.issues)
        with patch.object(aws_auth, "FULL_PARSE_BELOW_LINES", 0):
            kept = doc.load()
        assert entries(kept) == entries(fresh), doc.data
        assert [str(i) for i in kept.issues] == [str(i) for i in fresh.issues]
    assert doc.data.get("other") == start.get("other")
