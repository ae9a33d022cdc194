"""Which credentials ``kubeiam token`` signs with, and the settings that pick its endpoint.

Files live in the scrubbed HOME of tests/conftest.py; botocore reads them for real.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import botocore.configloader
import pytest

from kubeiam.errors import ConfigError, CredentialsError
from kubeiam.token.cache import FileCache
from kubeiam.token.credentials import (
    Credentials,
    TokenRequest,
    check_request,
    endpoint_settings,
    env_credentials,
    parse_duration,
    profile_from,
    read_profile_settings,
    signing_credentials,
)

NOW = 1_800_000_000.0
ENV_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAENVEXAMPLE", "AWS_SECRET_ACCESS_KEY": "env-secret"}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def aws_files(scrubbed_env: Path) -> tuple[Path, Path]:
    """The config and credentials file paths conftest points botocore at (not yet written)."""
    return scrubbed_env / ".aws" / "config", scrubbed_env / ".aws" / "credentials"


def _environ(**extra: str) -> dict[str, str]:
    return dict(os.environ) | extra


# -- environment keys ----------------------------------------------------------------------------


def test_env_keys_static() -> None:
    creds = env_credentials(ENV_KEYS)
    assert creds == Credentials("AKIAENVEXAMPLE", "env-secret", None, None, "environment")


def test_env_keys_with_session_token_and_expiry() -> None:
    creds = env_credentials(
        {
            **ENV_KEYS,
            "AWS_SESSION_TOKEN": "tok",
            "AWS_CREDENTIAL_EXPIRATION": "2027-01-15T08:00:00Z",
        }
    )
    assert creds is not None
    assert creds.session_token == "tok"
    assert creds.expires_at == datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()


def test_env_keys_legacy_security_token_variable() -> None:
    creds = env_credentials({**ENV_KEYS, "AWS_SECURITY_TOKEN": "legacy"})
    assert creds is not None
    assert creds.session_token == "legacy"


@pytest.mark.parametrize(
    "environ",
    [{"AWS_ACCESS_KEY_ID": "AKIA"}, {"AWS_SECRET_ACCESS_KEY": "s"}],
    ids=["no-secret", "no-key-id"],
)
def test_partial_env_keys_are_an_error(environ: dict[str, str]) -> None:
    with pytest.raises(CredentialsError, match="partial credentials") as info:
        env_credentials(environ)
    assert "s" not in info.value.message.split()  # the secret value is never echoed


def test_bad_expiration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="AWS_CREDENTIAL_EXPIRATION"):
        env_credentials({**ENV_KEYS, "AWS_CREDENTIAL_EXPIRATION": "tomorrow"})


def test_no_env_keys() -> None:
    assert env_credentials({}) is None


def test_repr_hides_secrets() -> None:
    text = repr(Credentials("AKIAX", "very-secret", "session-secret", None))
    assert "very-secret" not in text
    assert "session-secret" not in text
    assert "AKIAX" in text


def test_credentials_are_immutable() -> None:
    creds = Credentials("AKIAX", "s")
    with pytest.raises(AttributeError):
        creds.access_key_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        ("flag", {"AWS_PROFILE": "env"}, "flag"),
        (None, {"AWS_PROFILE": "env"}, "env"),
        (None, {"AWS_DEFAULT_PROFILE": "default-env", "AWS_PROFILE": "env"}, "default-env"),
        (None, {}, None),
    ],
    ids=["flag", "aws-profile", "botocore-order", "none"],
)
def test_profile_from(flag: str | None, environ: dict[str, str], expected: str | None) -> None:
    assert profile_from(flag, environ) == expected


# -- config file reading, against botocore's reader ----------------------------------------------

CONFIGS = {
    "plain": "[default]\nregion = eu-west-1\n[profile dev]\nregion=us-west-2\n",
    "colon-and-case": "[profile dev]\nRegion: ap-south-1\nUSE_FIPS_ENDPOINT = true\n",
    "comments": "# top\n[profile dev]\n; note\n  # indented comment\nregion = ca-central-1\n",
    "nested": (
        "[profile dev]\ns3 =\n  region = wrong-1\nregion = us-east-2\n"
        "sts_regional_endpoints = legacy\n"
    ),
    "later-wins": "[profile dev]\nregion = us-east-1\n[profile dev2]\nregion = x-1\n",
    "other-sections": (
        "[sso-session corp]\nregion = us-east-1\n[profile dev]\nuse_dualstack_endpoint = TRUE\n"
    ),
    "profile-default": "[profile default]\nregion = sa-east-1\n",
}


@pytest.mark.parametrize("name", sorted(CONFIGS), ids=sorted(CONFIGS))
@pytest.mark.parametrize("profile", ["dev", "default"])
def test_profile_settings_match_botocore(tmp_path: Path, name: str, profile: str) -> None:
    path = _write(tmp_path / "config", CONFIGS[name])
    theirs = botocore.configloader.load_config(str(path))["profiles"].get(profile, {})
    wanted = ("region", "sts_regional_endpoints", "use_fips_endpoint", "use_dualstack_endpoint")
    expected = {k: v for k, v in theirs.items() if k in wanted and isinstance(v, str)}
    assert read_profile_settings(str(path), profile) == expected


def test_missing_config_file_has_no_settings(tmp_path: Path) -> None:
    assert read_profile_settings(str(tmp_path / "nope"), "default") == {}


@pytest.mark.parametrize(
    ("flag", "environ", "config", "expected"),
    [
        ("eu-west-3", {"AWS_REGION": "us-east-1"}, "", ("eu-west-3", False, False, False)),
        (
            None,
            {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-2"},
            "",
            ("us-east-1", False, False, False),
        ),
        (
            None,
            {"AWS_DEFAULT_REGION": "us-east-2"},
            "[default]\nregion = x-1\n",
            ("us-east-2", False, False, False),
        ),
        (
            None,
            {},
            "[default]\nregion = ap-east-1\nuse_fips_endpoint = true\n",
            ("ap-east-1", False, True, False),
        ),
        (
            None,
            {"AWS_STS_REGIONAL_ENDPOINTS": "legacy", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
            "",
            (None, True, False, True),
        ),
        (
            None,
            {"AWS_USE_FIPS_ENDPOINT": "false"},
            "[default]\nuse_fips_endpoint = true\n",
            (None, False, False, False),
        ),
        (None, {}, "", (None, False, False, False)),
    ],
    ids=[
        "flag",
        "aws-region",
        "default-region",
        "config",
        "env-switches",
        "env-beats-config",
        "nothing",
    ],
)
def test_endpoint_settings_precedence(
    aws_files: tuple[Path, Path],
    flag: str | None,
    environ: dict[str, str],
    config: str,
    expected: tuple[str | None, bool, bool, bool],
) -> None:
    config_path, _ = aws_files
    if config:
        _write(config_path, config)
    env = {"AWS_CONFIG_FILE": str(config_path), **environ}
    assert endpoint_settings(flag, None, env) == expected


def test_invalid_sts_regional_endpoints_is_refused() -> None:
    with pytest.raises(ConfigError, match="regional"):
        endpoint_settings("us-east-1", None, {"AWS_STS_REGIONAL_ENDPOINTS": "sometimes"})


# -- request validation --------------------------------------------------------------------------

BAD_REQUESTS = [
    (TokenRequest(""), "cluster id"),
    (TokenRequest("has space"), "cluster id"),
    (TokenRequest("ünicode"), "cluster id"),
    (TokenRequest("c", role="admin"), "role ARN"),
    (
        TokenRequest("c", role="arn:aws:iam::111122223333:role/x", session_name="a b"),
        "session name",
    ),
    (
        TokenRequest("c", role="arn:aws:iam::111122223333:role/x", session_name="a" * 65),
        "session name",
    ),
    (TokenRequest("c", role="arn:aws:iam::111122223333:role/x", external_id="x"), "external id"),
    (TokenRequest("c", role="arn:aws:iam::111122223333:role/x", duration=899), "duration"),
    (TokenRequest("c", role="arn:aws:iam::111122223333:role/x", duration=43201), "duration"),
    (TokenRequest("c", session_name="alice"), "need -r"),
]


@pytest.mark.parametrize(
    ("request_", "message"),
    BAD_REQUESTS,
    ids=[
        "empty-id",
        "space-in-id",
        "non-ascii-id",
        "role-not-arn",
        "session-space",
        "session-long",
        "external-short",
        "duration-short",
        "duration-long",
        "session-without-role",
    ],
)
def test_bad_requests_are_config_errors(request_: TokenRequest, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        check_request(request_)
    assert info.value.hint
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("900", 900), ("900s", 900), ("15m", 900), ("1h", 3600), ("1h30m", 5400)],
    ids=["bare", "s", "m", "h", "hm"],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "-5", "1.5h", "m15"], ids=repr)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


# -- choosing the credentials --------------------------------------------------------------------

STATIC_PROFILE = (
    "[dev]\naws_access_key_id = AKIAPROFILEDEV\naws_secret_access_key = dev-secret\n"
    "[default]\naws_access_key_id = AKIAPROFILEDEFAULT\naws_secret_access_key = default-secret\n"
)


def test_env_keys_are_used_without_a_profile(aws_files: tuple[Path, Path]) -> None:
    _write(aws_files[1], STATIC_PROFILE)
    creds = signing_credentials(
        TokenRequest("c"), region=None, environ=_environ(**ENV_KEYS), cache=None, now=NOW
    )
    assert creds.access_key_id == "AKIAENVEXAMPLE"


def test_profile_file_with_static_keys(aws_files: tuple[Path, Path]) -> None:
    _write(aws_files[1], STATIC_PROFILE)
    creds = signing_credentials(
        TokenRequest("c", profile="dev"), region=None, environ=_environ(), cache=None, now=NOW
    )
    assert (creds.access_key_id, creds.secret_access_key) == ("AKIAPROFILEDEV", "dev-secret")
    assert creds.expires_at is None


@pytest.mark.parametrize("how", ["flag", "AWS_PROFILE"])
def test_profile_beats_env_keys(aws_files: tuple[Path, Path], how: str) -> None:
    _write(aws_files[1], STATIC_PROFILE)
    environ = _environ(**ENV_KEYS) | ({"AWS_PROFILE": "dev"} if how == "AWS_PROFILE" else {})
    request = TokenRequest("c", profile="dev" if how == "flag" else None)
    creds = signing_credentials(request, region=None, environ=environ, cache=None, now=NOW)
    assert creds.access_key_id == "AKIAPROFILEDEV"


def test_default_profile_from_the_chain(aws_files: tuple[Path, Path]) -> None:
    _write(aws_files[1], STATIC_PROFILE)
    creds = signing_credentials(
        TokenRequest("c"), region=None, environ=_environ(), cache=None, now=NOW
    )
    assert creds.access_key_id == "AKIAPROFILEDEFAULT"


def _credential_process(tmp_path: Path, expiration: str, marker: Path) -> Path:
    script = tmp_path / "creds.py"
    script.write_text(
        "import json, pathlib\n"
        f"pathlib.Path({str(marker)!r}).open('a').write('run\\n')\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': 'ASIAPROCESS', "
        "'SecretAccessKey': 'process-secret', 'SessionToken': 'process-token', "
        f"'Expiration': {expiration!r}}}))\n"
    )
    script.chmod(stat.S_IRWXU)
    return script


def test_credential_process_profile_is_cached(aws_files: tuple[Path, Path], tmp_path: Path) -> None:
    marker = tmp_path / "runs.log"
    script = _credential_process(tmp_path, "2099-01-01T00:00:00Z", marker)
    _write(aws_files[0], f"[profile proc]\ncredential_process = {sys.executable} {script}\n")
    cache = FileCache(str(tmp_path / "cache"))
    request = TokenRequest("c", profile="proc")
    first = signing_credentials(request, region=None, environ=_environ(), cache=cache, now=NOW)
    assert (first.access_key_id, first.session_token) == ("ASIAPROCESS", "process-token")
    assert first.expires_at == pytest.approx(4_070_908_800)
    second = signing_credentials(request, region=None, environ=_environ(), cache=cache, now=NOW)
    assert second.access_key_id == "ASIAPROCESS"
    assert second.source == "cache"
    assert marker.read_text().count("run") == 1  # the process ran once; the cache served the rest


def test_credential_process_without_expiry_is_not_cached(
    aws_files: tuple[Path, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "runs.log"
    script = tmp_path / "static.py"
    script.write_text(
        "import json, pathlib\n"
        f"pathlib.Path({str(marker)!r}).open('a').write('run\\n')\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': 'AKIASTATIC', 'SecretAccessKey': 's'}))\n"
    )
    _write(aws_files[0], f"[profile proc]\ncredential_process = {sys.executable} {script}\n")
    cache = FileCache(str(tmp_path / "cache"))
    for _ in range(2):
        creds = signing_credentials(
            TokenRequest("c", profile="proc"), region=None, environ=_environ(), cache=cache, now=NOW
        )
        assert creds.access_key_id == "AKIASTATIC"
    assert marker.read_text().count("run") == 2
    assert not any(p.name.endswith(".json") for p in Path(cache.directory).iterdir())


def test_unknown_profile_is_a_config_error(aws_files: tuple[Path, Path]) -> None:
    _write(aws_files[1], STATIC_PROFILE)
    with pytest.raises(ConfigError, match="'nope'"):
        signing_credentials(
            TokenRequest("c", profile="nope"), region=None, environ=_environ(), cache=None, now=NOW
        )


def test_no_credentials_anywhere_is_a_credentials_error() -> None:
    # conftest: empty HOME, no files, AWS_EC2_METADATA_DISABLED=true: nothing touches the network.
    with pytest.raises(CredentialsError, match="no AWS credentials") as info:
        signing_credentials(TokenRequest("c"), region=None, environ=_environ(), cache=None, now=NOW)
    assert info.value.exit_code == 3
    assert "aws configure" in (info.value.hint or "")


def test_cached_credential_file_holds_no_more_than_it_must(
    aws_files: tuple[Path, Path], tmp_path: Path
) -> None:
    script = _credential_process(tmp_path, "2099-01-01T00:00:00Z", tmp_path / "m")
    _write(aws_files[0], f"[profile proc]\ncredential_process = {sys.executable} {script}\n")
    cache = FileCache(str(tmp_path / "cache"))
    signing_credentials(
        TokenRequest("c", profile="proc"), region=None, environ=_environ(), cache=cache, now=NOW
    )
    (entry,) = [p for p in Path(cache.directory).iterdir() if p.name.endswith(".json")]
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert set(json.loads(entry.read_text())) == {
        "accessKeyId",
        "secretAccessKey",
        "sessionToken",
        "expiresAt",
        "version",
    }
