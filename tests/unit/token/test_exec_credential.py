"""The ExecCredential document and its apiVersion negotiation (protocol.md section 1)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.token.exec_credential import (
    API_V1,
    API_V1BETA1,
    KUBECTL_EXEC_INFO,
    api_version_from_exec_info,
    build_exec_credential,
    dumps,
    format_timestamp,
    is_plain,
    loads,
    quote,
    render_exec_credential,
)

V1_INFO = json.dumps(
    {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "spec": {"interactive": False},
    }
)

CASES = [
    # (KUBERNETES_EXEC_INFO, apiVersion answered, warning expected containing)
    (None, API_V1BETA1, None),
    ("", API_V1BETA1, None),
    (V1_INFO, API_V1, None),
    (json.dumps({"apiVersion": API_V1BETA1, "kind": "ExecCredential"}), API_V1BETA1, None),
    (
        json.dumps({"apiVersion": "client.authentication.k8s.io/v1alpha1"}),
        API_V1BETA1,
        "kubectl 1.24 removed",
    ),
    (json.dumps({"apiVersion": "client.authentication.k8s.io/v2"}), API_V1BETA1, "does not know"),
    (json.dumps({"kind": "ExecCredential"}), API_V1BETA1, "does not know"),
    ("{not json", API_V1BETA1, "not JSON"),
    (json.dumps(["apiVersion", API_V1]), API_V1BETA1, "does not know"),
    ("[" * 50_000, API_V1BETA1, "nested more than 100 levels deep"),
    ('{"apiVersion": ' + "9" * 5000 + "}", API_V1BETA1, "an integer has too many digits"),
    ('{"apiVersion": "' + "x" * (1 << 20) + '"}', API_V1BETA1, "larger than 1024 KiB"),
    ('{"apiVersion": "' + "x" * 100_000 + '"}', API_V1BETA1, "xxx..., which kubeiam"),
]


@pytest.mark.parametrize(
    ("exec_info", "expected", "warning"),
    CASES,
    ids=[
        "unset", "empty", "v1", "v1beta1", "v1alpha1", "unknown", "no-version", "garbage", "list",
        "deep", "huge-int", "over-1-MiB", "long-value-cut",
    ],
)  # fmt: skip
def test_api_version_from_exec_info(
    exec_info: str | None, expected: str, warning: str | None
) -> None:
    version, message = api_version_from_exec_info(exec_info)
    assert version == expected
    if warning is None:
        assert message is None
    else:
        assert message is not None
        assert warning in message
        assert len(message) < 400  # the value itself is never echoed whole


def test_document_shape_and_timestamp() -> None:
    doc = build_exec_credential("k8s-aws-v1.abc", 1_795_000_000.9, API_V1)
    parsed = json.loads(render_exec_credential(doc))
    assert parsed == {
        "kind": "ExecCredential",
        "apiVersion": API_V1,
        "spec": {},
        "status": {"expirationTimestamp": "2026-11-18T11:06:40Z", "token": "k8s-aws-v1.abc"},
    }


@pytest.mark.parametrize(
    ("epoch", "text"),
    [(0, "1970-01-01T00:00:00Z"), (1_700_000_000.999, "2023-11-14T22:13:20Z")],
    ids=["epoch", "fraction-truncated"],
)
def test_format_timestamp(epoch: float, text: str) -> None:
    assert format_timestamp(epoch) == text


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_JSON_VALUES)
def test_dumps_and_loads_agree_with_the_json_package(value: object) -> None:
    text = dumps(value, sort_keys=True)
    assert text == json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert loads(text) == json.loads(text)
    assert loads(f" \n{text}\t") == json.loads(text)


@pytest.mark.parametrize(
    "text",
    ["", "{", '{"a": 1} x', "NaN", '{"a": Infinity}', "[1,]", "\xff"],
    ids=["empty", "open", "trailing", "nan", "infinity", "trailing-comma", "junk"],
)
def test_loads_refuses_what_is_not_one_json_document(text: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        loads(text)


def test_loads_refuses_invalid_utf8_bytes() -> None:
    with pytest.raises(ValueError, match="utf-8"):
        loads(b'{"a": "\xff"}')


def test_malformed_json_in_a_fresh_interpreter_is_a_value_error() -> None:
    # The C scanner's error path depends on json.decoder being imported already; a fresh
    # process (the plugin's situation) must still get a ValueError, not a SystemError.
    code = (
        "from kubeiam.token.exec_credential import loads\n"
        "try:\n    loads('{garbage')\nexcept ValueError:\n    print('ValueError')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ValueError", done.stderr


# -- the fast paths a cache hit takes without the JSON scanner -----------------------------------


@pytest.mark.parametrize("exec_info", list(KUBECTL_EXEC_INFO), ids=list(KUBECTL_EXEC_INFO.values()))
def test_kubectl_exec_info_is_known_as_its_parse_would_say(exec_info: str) -> None:
    """Each text kubectl writes (tests/e2e/test_kubectl_exec_info.py holds the table to the real
    kubectl) answers what parsing it answers."""
    parsed = json.loads(exec_info)
    assert api_version_from_exec_info(exec_info) == (parsed["apiVersion"], None)
    # The same document spelled otherwise goes through the parser to the same answer.
    assert api_version_from_exec_info(json.dumps(parsed, indent=1)) == (parsed["apiVersion"], None)


@settings(max_examples=500)
@given(st.text(max_size=40))
def test_quote_is_jsons_ascii_quote(text: str) -> None:
    assert quote(text) == json.dumps(text, ensure_ascii=True)


@pytest.mark.parametrize(
    "text", ["plain-token_1.~", "", " space", 'dq"', "back\\slash", "tab\t", "del\x7f", "caf\u00e9"]
)
def test_quote_table(text: str) -> None:
    assert quote(text) == json.dumps(text, ensure_ascii=True)
    assert is_plain(text) is (quote(text) == f'"{text}"')
