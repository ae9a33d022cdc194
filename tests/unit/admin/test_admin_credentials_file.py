"""One profile of ~/.aws/credentials: written, restored and removed without touching the rest."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kubeiam.admin import credentials_file as cf
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
    assert previous is None
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
