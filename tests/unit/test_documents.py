"""The one bounded loader: every class of bad document is refused with where and why."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.documents import (
    MAX_DEPTH,
    DocumentError,
    MappingDocumentError,
    decode_text,
    load_json,
    parse_yaml,
)
from kubeiam.errors import ConfigError, MappingError


def _billion_laughs(levels: int = 9) -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        name, prev = chr(97 + i), chr(96 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\n"


BAD_YAML = [
    (
        "a: 1\ngroups: [x]\nb: 2\ngroups: [y]\n",
        "`groups` appears twice in the same mapping: lines 2 and 4",
        4,
    ),
    ('a: "\\x07"\n', "control character U+0007", 1),
    ("a: b\x01\n", "control character U+0001", 1),
    ('a: "\\ud800"\n', "not valid YAML", 1),
    ("a: b\udc80\n", "lone surrogate U+DC80", 1),
    ("[" * 100_000, "nest", 1),
    (
        "a:\n" + "".join("  " * i + "- \n" for i in range(1, 150)),
        f"more than {MAX_DEPTH} levels",
        None,
    ),
    ("a: " + "1" * 5000 + "\n", "more than 4300 digits", 1),
    ("a: &a [*a]\n", "a cycle", 1),
    (_billion_laughs(), "expand to far more nodes", None),
    ("- a\n---\n- b\n", "found several", 2),
    ("- *nowhere\n", "unknown alias", 1),
    ("? [a]\n: b\n", "plain value", 1),
    ("a: [unclosed\n", "not valid YAML", None),
    ("a: !!python/object:os.system x\n", "unknown tag", 1),
]


@pytest.mark.parametrize(
    ("text", "expected", "line"),
    BAD_YAML,
    ids=[
        "duplicate-key", "escaped-control", "raw-control", "escaped-surrogate", "raw-surrogate",
        "flow-depth-100k", "block-depth", "huge-int", "recursive-alias", "billion-laughs",
        "two-documents", "unknown-alias", "unhashable-key", "syntax", "unsafe-tag",
    ],
)  # fmt: skip
def test_bad_yaml_is_a_config_error_naming_the_line(
    text: str, expected: str, line: int | None
) -> None:
    with pytest.raises(DocumentError) as err:
        parse_yaml(text, source="f.yaml")
    assert isinstance(err.value, ConfigError)
    assert expected in str(err.value)
    assert str(err.value).startswith("f.yaml")
    assert "fix:" in str(err.value)
    if line is not None:
        assert err.value.line == line


def test_billion_laughs_is_refused_in_milliseconds() -> None:
    start = time.process_time()
    with pytest.raises(DocumentError):
        parse_yaml(_billion_laughs(levels=30))
    assert time.process_time() - start < 1.0  # 10^31 nodes if expanded


def test_aliases_that_stay_small_are_fine() -> None:
    text = "base: &b {user: u, groups: [g]}\nx: *b\ny:\n  <<: *b\n  user: v\n"
    assert parse_yaml(text) == {
        "base": {"user": "u", "groups": ["g"]},
        "x": {"user": "u", "groups": ["g"]},
        "y": {"user": "v", "groups": ["g"]},
    }


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: [x, 2, yes, null, 1.5]\nc: 2024-01-01\nd: '012'\ne: ~\n",
        "clusters:\n- name: x\n  cluster: {server: 'https://h', insecure-skip-tls-verify: true}\n",
        "",
        "# only a comment\n",
    ],
    ids=["scalars", "kubeconfig-like", "empty", "comment"],
)
def test_typed_values_agree_with_pyyaml(text: str) -> None:
    assert parse_yaml(text) == yaml.safe_load(text)


def test_untyped_values_keep_lines_and_written_strings() -> None:
    doc: Any = parse_yaml("- a: 012\n  b: null\n- c\n", typed=False)
    assert doc == [{"a": "012", "b": None}, "c"]
    assert doc.lines == [1, 3]
    assert doc[0].line == 1


def test_mapping_readers_get_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        parse_yaml("a: 1\na: 2\n", error=MappingDocumentError)


BAD_JSON = [
    ('{"a": "\\ud800"}', "lone surrogate U+D800", 1),
    ('{"a":\n "\\ude00"}', "lone surrogate U+DE00", 2),
    ('{"a": "\\u0001"}', "control character U+0001", 1),
    ("[" * 100_000 + "]" * 100_000, f"more than {MAX_DEPTH} levels", 1),
    ('{"a": ' + "1" * 5000 + "}", "more than 4300 digits", 1),
    (
        '{"a": 1,\n "b": {"x": 1,\n "x": 2}}',
        "`x` appears twice in the same mapping: lines 2 and 3",
        3,
    ),
    ('{"a": 1', "not valid JSON", 1),
    ('{"a": NaN}', "NaN is not JSON", None),
    ("", "not valid JSON", 1),
]


@pytest.mark.parametrize(
    ("text", "expected", "line"),
    BAD_JSON,
    ids=[
        "high-surrogate", "low-surrogate", "control", "depth-100k", "huge-int", "duplicate",
        "truncated", "nan", "empty",
    ],
)  # fmt: skip
def test_bad_json_is_refused_with_where(text: str, expected: str, line: int | None) -> None:
    with pytest.raises(DocumentError) as err:
        load_json(text, source="f.json")
    assert expected in str(err.value)
    if line is not None:
        assert err.value.line == line


def test_good_json_escapes_pass() -> None:
    assert load_json('{"a": "\\ud83d\\ude00 \\\\u0001 \\n"}') == {"a": "\U0001f600 \\u0001 \n"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a: \xff\n", "byte 0xff at byte offset 3"),
        (b"a: \xed\xa0\x80\n", "byte offset 3"),  # a surrogate encoded as UTF-8 is not UTF-8
        (b"x" * (33 * 1024 * 1024), "larger than 32 MiB"),
    ],
    ids=["latin1", "encoded-surrogate", "too-large"],
)
def test_bytes_that_are_not_utf8_name_the_offset(data: bytes, expected: str) -> None:
    with pytest.raises(DocumentError) as err:
        decode_text(data, source="f")
    assert expected in str(err.value)


def test_a_byte_order_mark_is_tolerated() -> None:
    assert parse_yaml(decode_text(b"\xef\xbb\xbfa: 1\r\nb: 2\r\n", source="f")) == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "clusterID: demo\nserver:\n  mapRoles:\n  - rolearn: arn:aws:iam::111122223333:role/A\n"
            "    username: a\n    groups: [x]\n    groups: [system:masters]\n",
            "`groups` appears twice in the same mapping: lines 6 and 7",
        ),
        (
            "clusterID: demo\nserver:\n  mapUsers: []\n  port: 1\n  mapUsers: []\n",
            "`mapUsers` appears twice in the same mapping: lines 3 and 5",
        ),
    ],
    ids=["groups-in-an-entry", "mapUsers-section"],
)
def test_the_server_config_refuses_duplicate_keys_with_both_lines(
    tmp_path: Any, text: str, expected: str
) -> None:
    """Issue 9: the reference keeps the last `groups:` silently; kubeiam refuses to start."""
    from kubeiam.server.config import read_config_file

    path = tmp_path / "server.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_config_file(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "- rolearn: arn:aws:iam::111122223333:role/A\n  groups: [a]\n  groups: [b]\n",
            "mapRoles line 3: `groups` appears twice in the same mapping: lines 2 and 3",
        ),
        (
            "".join(
                "- " + line.split(": ", 1)[1] + "\n" for line in _billion_laughs().splitlines()
            ),
            "expand to far more nodes",
        ),
        ("- " + "[" * 5000 + "]" * 5000 + "\n", "mapRoles line 1: invalid YAML"),
        ("- x\n- &l [*l]\n", "a cycle"),
    ],
    ids=["duplicate-groups", "billion-laughs", "deep", "cycle"],
)
def test_aws_auth_sections_follow_the_same_rules(section: str, expected: str) -> None:
    from kubeiam.mapping.aws_auth import read_aws_auth

    result = read_aws_auth({"mapRoles": section})
    assert not result.ok
    assert expected in str(result.errors[0])


_keys = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
_typed_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    _keys,
)
_typed_values: st.SearchStrategy[Any] = st.recursive(
    _typed_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(value=_typed_values, flow=st.booleans())
def test_typed_reader_agrees_with_pyyaml(value: Any, flow: bool) -> None:
    """The server config's reader builds what yaml.safe_load built before it."""
    text = yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True)
    assert parse_yaml(text) == yaml.safe_load(text)
