"""Properties of the aws-auth reader and editor (hypothesis).

The reader builds values from PyYAML's C event stream itself, so it is checked against PyYAML's
own loader on generated documents; the editor is checked to round-trip what it writes.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.mapping.aws_auth import AwsAuthDocument, _parse_yaml, read_aws_auth

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
_scalars = st.one_of(st.none(), _text)
_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(value=st.lists(_values, max_size=5), flow=st.booleans())
def test_reader_agrees_with_pyyaml(value: list[Any], flow: bool) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True)
    assert _parse_yaml(text) == yaml.safe_load(text)


#: Lower-case only: IAM names differing only in case are one principal (the editor refuses those).
_names = st.from_regex(r"[a-z0-9+=,.@_-]{1,20}", fullmatch=True)
_groups = st.lists(st.from_regex(r"[a-z][a-z0-9:-]{0,15}", fullmatch=True), max_size=3)


@settings(max_examples=25, deadline=None)
@given(
    roles=st.dictionaries(_names, st.tuples(_names, _groups), max_size=4),
    users=st.dictionaries(_names, st.tuples(_names, _groups), max_size=4),
)
def test_editor_writes_what_the_reader_reads(
    roles: dict[str, tuple[str, list[str]]], users: dict[str, tuple[str, list[str]]]
) -> None:
    doc = AwsAuthDocument(
        {"mapRoles": "# roles\n- rolearn: arn:aws:iam::111122223333:role/Seed\n  username: seed\n"}
    )
    for name, (username, groups) in roles.items():
        doc.upsert_role(f"arn:aws:iam::111122223333:role/r-{name}", username, groups)
    for name, (username, groups) in users.items():
        doc.upsert_user(f"arn:aws:iam::111122223333:user/u-{name}", username, groups)
    result = read_aws_auth(doc.to_data(), strict=True)
    roles_seen = {
        m.rolearn.rsplit("/r-", 1)[1]: (m.username, list(m.groups))
        for m in result.mappings.roles.values()
        if "/r-" in m.rolearn
    }
    users_seen = {
        m.userarn.rsplit("/u-", 1)[1]: (m.username, list(m.groups))
        for m in result.mappings.users.values()
    }
    assert roles_seen == {k: (u, list(g)) for k, (u, g) in roles.items()}
    assert users_seen == {k: (u, list(g)) for k, (u, g) in users.items()}
    assert doc.to_data()["mapRoles"].startswith(
        "# roles\n- rolearn: arn:aws:iam::111122223333:role/Seed\n"
    )
