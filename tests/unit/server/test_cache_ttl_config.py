"""identityCacheTTL and ec2InstanceProfileTTL: config keys, flags, ranges, and the built parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubeiam.cli.server import config_from_options
from kubeiam.errors import ConfigError
from kubeiam.server.components import build_ec2_resolver
from kubeiam.server.config import (
    DEFAULT_EC2_INSTANCE_PROFILE_TTL,
    DEFAULT_IDENTITY_CACHE_TTL,
    ServerConfig,
    build_config,
    read_config_file,
)
from kubeiam.server.metrics import ServerMetrics


def _config(tmp_path: Path, server: str, **flags: Any) -> ServerConfig:
    path = tmp_path / "config.yaml"
    path.write_text(f"clusterID: c\nserver:\n{server}")
    if flags:
        return config_from_options(path, flags)
    return build_config(read_config_file(path), {})


def test_defaults_are_under_kube_apiservers_cache_and_a_few_minutes(tmp_path: Path) -> None:
    config = _config(tmp_path, "  port: 1\n")
    assert config.identity_cache_ttl == DEFAULT_IDENTITY_CACHE_TTL <= 120
    assert config.ec2_instance_profile_ttl == DEFAULT_EC2_INSTANCE_PROFILE_TTL
    assert 60 <= DEFAULT_EC2_INSTANCE_PROFILE_TTL <= 600


def test_keys_in_any_case_and_flags_win(tmp_path: Path) -> None:
    text = "  IdentityCacheTTL: 30\n  ec2instanceprofilettl: 90\n"
    config = _config(tmp_path, text)
    assert (config.identity_cache_ttl, config.ec2_instance_profile_ttl) == (30.0, 90.0)
    flagged = _config(tmp_path, text, identity_cache_ttl=5.0, ec2_instance_profile_ttl=7.0)
    assert (flagged.identity_cache_ttl, flagged.ec2_instance_profile_ttl) == (5.0, 7.0)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("  identityCacheTTL: 0\n", "identitycachettl must be more than 0 and at most 900"),
        ("  identityCacheTTL: 901\n", "identitycachettl must be more than 0 and at most 900"),
        ("  identityCacheTTL: soon\n", "identitycachettl must be a number of seconds"),
        ("  identityCacheTTL: true\n", "identitycachettl must be a number of seconds"),
        ("  ec2InstanceProfileTTL: -1\n", "ec2instanceprofilettl must be more than 0"),
        ("  ec2InstanceProfileTTL: 3601\n", "at most 3600 seconds"),
    ],
    ids=["ttl-zero", "ttl-over-token-life", "ttl-word", "ttl-bool", "profile-neg", "profile-big"],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        _config(tmp_path, text)


async def test_the_ttls_reach_the_identity_cache_and_the_role_check(tmp_path: Path) -> None:
    from kubeiam.server.components import build_components

    config = _config(
        tmp_path,
        "  identityCacheTTL: 45\n  ec2InstanceRoleCheck: true\n  ec2InstanceProfileTTL: 75\n",
    )
    components = await build_components(config)
    try:
        assert components.cache.ttl == 45
    finally:
        await components.close()
    resolver, checker = build_ec2_resolver(config, ServerMetrics())
    assert checker is not None
    assert checker.ttl == 75
    await resolver.close()


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--identity-cache-ttl", "12", "identity_cache_ttl"),
        ("--ec2-instance-profile-ttl", "34", "ec2_instance_profile_ttl"),
    ],
    ids=["identity", "profile"],
)
def test_server_flags_parse_into_the_config(
    monkeypatch: pytest.MonkeyPatch, flag: str, value: str, field: str
) -> None:
    from click.testing import CliRunner

    import kubeiam.server.logwriter as logwriter_module
    import kubeiam.server.run as run_module
    from kubeiam.cli.app import cli

    seen: list[ServerConfig] = []
    monkeypatch.setattr(run_module, "run", lambda config, **_: seen.append(config))
    # The command installs its log handler on the root logger: keep pytest's.
    monkeypatch.setattr(logwriter_module, "configure_logging", lambda *a, **k: None)
    result = CliRunner().invoke(cli, ["server", "-i", "c", flag, value])
    assert result.exit_code == 0, result.output
    assert getattr(seen[0], field) == float(value)
    bad = CliRunner().invoke(cli, ["server", "-i", "c", flag, "0"])
    assert bad.exit_code == 2
