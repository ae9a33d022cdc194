"""Config keys and flags of the connection limits and the deny list file: defaults, overrides, and
every class of bad value refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kubeiam.cli.app import cli
from kubeiam.cli.server import config_from_options
from kubeiam.errors import ConfigError
from kubeiam.server.config import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    ServerConfig,
)


def write(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("clusterID: c\nserver:\n" + server)
    return path


def test_defaults_are_bounded_as_issue_9_asks() -> None:
    config = ServerConfig(cluster_id="c")
    assert config.header_timeout == DEFAULT_HEADER_TIMEOUT <= 30
    assert config.body_timeout == DEFAULT_BODY_TIMEOUT <= 30
    assert 90 < config.idle_timeout == DEFAULT_IDLE_TIMEOUT  # longer than Go's idle pool
    assert config.max_connections == DEFAULT_MAX_CONNECTIONS > 256  # above a storm's concurrency
    assert config.deny_list_file is None
    assert len(config.deny_list) == 0


def test_file_keys_in_any_case_and_flags_override(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  HeaderTimeout: 3\n  bodytimeout: 4.5\n  idleTimeout: 95\n  maxConnections: 50\n"
        "  denyListFile: /etc/kubeiam/deny.yaml\n",
    )
    config = config_from_options(path, {})
    assert (config.header_timeout, config.body_timeout, config.idle_timeout) == (3, 4.5, 95)
    assert config.max_connections == 50
    assert config.deny_list_file == Path("/etc/kubeiam/deny.yaml")
    config = config_from_options(
        path, {"header_timeout": 1.0, "max_connections": 7, "deny_list_file": Path("/d")}
    )
    assert config.header_timeout == 1.0
    assert config.max_connections == 7
    assert config.deny_list_file == Path("/d")


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("headerTimeout: 0", "server.headertimeout must be more than 0 and at most 3600 seconds"),
        ("bodyTimeout: -2", "server.bodytimeout must be more than 0 and at most 3600 seconds"),
        ("bodyTimeout: true", "server.bodytimeout must be a number of seconds, not True"),
        ("idleTimeout: forever", "server.idletimeout must be a number of seconds"),
        (
            "headerTimeout: 7200",
            "server.headertimeout must be more than 0 and at most 3600 seconds",
        ),
        ("maxConnections: 0", "server.maxconnections must be between 1 and 1000000"),
        ("maxConnections: many", "server.maxconnections must be an integer"),
        ("maxConnections: true", "server.maxconnections must be an integer"),
        ("denyList: [a, b]", "server.denylist must be a mapping"),
        ("denyList: {roleARNs: [nope]}", "server.denylist.roleARNs[0]: 'nope' is not an ARN"),
        ("denyListFile: [a]", "server.denylistfile must be a string"),
    ],
    ids=[
        "header-zero",
        "body-negative",
        "body-boolean",
        "idle-words",
        "header-too-long",
        "connections-zero",
        "connections-words",
        "connections-bool",
        "deny-list-a-list",
        "deny-list-bad-arn",
        "deny-file-a-list",
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, line: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_options(write(tmp_path, f"  {line}\n"), {})
    assert needle in str(err.value)


@pytest.mark.parametrize(
    "flags",
    [
        ["--header-timeout", "0"],
        ["--body-timeout", "-1"],
        ["--idle-timeout", "x"],
        ["--max-connections", "0"],
    ],
    ids=["header-zero", "body-negative", "idle-words", "connections-zero"],
)
def test_bad_flags_are_refused_before_anything_starts(flags: list[str]) -> None:
    result = CliRunner().invoke(cli, ["server", "-i", "c", *flags])
    assert result.exit_code == 2
    assert flags[0] in result.output
    assert "Traceback" not in result.output


def test_bad_deny_list_file_stops_the_server_with_the_reason(tmp_path: Path) -> None:
    deny = tmp_path / "deny.yaml"
    deny.write_text("accessKeyIDs: [lower-case]\n")
    result = CliRunner().invoke(
        cli,
        [
            "server",
            "-i",
            "c",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
            "--deny-list-file",
            str(deny),
        ],
    )
    assert result.exit_code != 0
    assert "kubeiam: error: " in result.output
    assert "'lower-case' is not an access key id" in result.output
    assert "fix: " in result.output
