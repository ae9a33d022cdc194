"""One profile of ~/.aws/credentials: written, restored and removed without touching the rest."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kubeiam.admin.onboarding import credentials_file as cf
from kubeiam.errors import ConfigError

KEY = cf.AccessKey("AKIANEWKEY0000000000", "new/secret+value0000000000000000000000000")
EXISTING = """\
# my credentials, hand edited
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret  ; keep

[kubedemy]
region = eu-west-2
aws_access_key_id = AKIAOLDKEY
aws_secret_access_key = old-secret
aws_session_token = stale-token

[later]
aws_access_key_id = AKIALATER
"""


def test_a_new_profile_is_appended_and_the_rest_kept_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(EXISTING)
    previous = cf.write_profile(path, "fresh", KEY)
    assert previous.body is None
    text = path.read_text()
    assert text.startswith(EXISTING)
    assert text[len(EXISTING) :] == (
        f"\n[fresh]\naws_access_key_id = {KEY.access_key_id}\n"
        f"aws_secret_access_key = {KEY.secret_access_key}\n"
    )
    assert cf.read_profile_key_id(path, "fresh") == KEY.access_key_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_profile_gets_the_new_key_and_keeps_its_other_settings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "credentials"
    path.write_text(EXISTING)
    previous = cf.write_profile(path, "kubedemy", KEY)
    text = path.read_text()
    assert "region = eu-west-2" in text
    assert "stale-token" not in text  # a stale session token would break the new key
    assert "old-secret" not in text
    assert "default-secret  ; keep" in text
    assert cf.read_profile_key_id(path, "later") == "AKIALATER"
    cf.restore_profile(path, "kubedemy", previous)
    assert path.read_text() == EXISTING


def test_restore_of_a_new_profile_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(EXISTING)
    previous = cf.write_profile(path, "fresh", KEY)
    cf.restore_profile(path, "fresh", previous)
    assert path.read_text() == EXISTING


def test_missing_file_and_directory_are_created_private(tmp_path: Path) -> None:
    path = tmp_path / ".aws" / "credentials"
    cf.write_profile(path, "p", KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_remove_only_when_the_key_matches(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(EXISTING)
    assert not cf.remove_profile_if_key(path, "kubedemy", frozenset({"AKIAOTHER"}))
    assert path.read_text() == EXISTING
    assert cf.remove_profile_if_key(path, "kubedemy", frozenset({"AKIAOLDKEY"}))
    assert "[kubedemy]" not in path.read_text()
    assert cf.read_profile_key_id(path, "later") == "AKIALATER"


def test_a_broken_file_is_refused_without_echoing_secrets(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    broken = "aws_secret_access_key = leaked-if-echoed\n[p]\n"
    path.write_text(broken)
    with pytest.raises(ConfigError) as err:
        cf.write_profile(path, "p", KEY)
    assert "leaked-if-echoed" not in str(err.value)
    assert path.read_text() == broken


@pytest.mark.parametrize("name", ["with space", "a]b", ""], ids=["space", "bracket", "empty"])
def test_bad_profile_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="profile name"):
        cf.write_profile(tmp_path / "c", name, KEY)


def test_the_secret_is_not_in_the_repr() -> None:
    assert KEY.secret_access_key not in repr(KEY)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"AWS_SHARED_CREDENTIALS_FILE": "/x/creds"}, "/x/creds"), ({}, "/h/.aws/credentials")],
    ids=["env", "default"],
)
def test_default_credentials_file(env: dict[str, str], expected: str) -> None:
    assert cf.default_credentials_file(env, Path("/h")) == Path(expected)


# --- property: write then restore gives back the exact file ------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)
_values = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+", min_size=1, max_size=12)
_section = st.tuples(
    _names,
    st.lists(
        st.tuples(st.sampled_from(["aws_access_key_id", "region", "output", "x"]), _values),
        max_size=3,
        unique_by=lambda kv: kv[0],
    ),
    st.sampled_from(["", "# note\n", "\n"]),
)


def _render(sections: list[tuple[str, list[tuple[str, str]], str]]) -> str:
    out = []
    for name, items, trailer in sections:
        out.append(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in items) + trailer)
    return "".join(out)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sections=st.lists(_section, max_size=4, unique_by=lambda s: s[0]),
    profile=_names,
    final_newline=st.booleans(),
)
def test_write_then_restore_is_byte_exact(
    tmp_path: Path,
    sections: list[tuple[str, list[tuple[str, str]], str]],
    profile: str,
    final_newline: bool,
) -> None:
    path = tmp_path / "credentials"
    original = _render(sections)
    if not final_newline:
        original = original.rstrip("\n")
    path.write_text(original)
    previous = cf.write_profile(path, profile, KEY)
    assert cf.read_profile_key_id(path, profile) == KEY.access_key_id
    for name, items, _ in sections:
        if name != profile:
            assert (cf.read_profile_key_id(path, name) or None) == dict(items).get(
                "aws_access_key_id"
            )
    cf.restore_profile(path, profile, previous)
    assert path.read_text() == original


@pytest.mark.parametrize("kind", ["fifo", "directory", "not-utf8"])
def test_reading_a_key_id_refuses_what_is_not_a_text_file_without_blocking(
    tmp_path: Path, kind: str
) -> None:
    import os

    path = tmp_path / "credentials"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading the usual way would wait for a writer
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"[p]\naws_access_key_id = \xff\xfe\n")
    with pytest.raises(ConfigError) as err:
        cf.read_profile_key_id(path, "p")
    assert str(path) in str(err.value)
    assert "fix:" in str(err.value)
