"""The server config file: the reference's keys, case-insensitive, defaults, flags override."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kubeiam.errors import ConfigError
from kubeiam.server.config import (
    DEFAULT_ADDRESS,
    DEFAULT_PORT,
    BackendMode,
    LogFormat,
    build_config,
    parse_backend_modes,
    read_config_file,
)

REFERENCE_STYLE = """\
# a config written for aws-iam-authenticator
clusterID: my-cluster
server:
  port: 21363
  stateDir: /var/aws-iam-authenticator
  backendMode: [MountedFile, EKSConfigMap]
  partition: aws
  ec2DescribeInstancesQps: 20
  ec2DescribeInstancesBurst: 7
  ec2DescribeInstancesRoleARN: arn:aws:iam::111122223333:role/Describe
  mapRoles:
  - roleARN: arn:aws:iam::111122223333:role/KubernetesAdmin
    username: admin:{{SessionName}}
    groups: [system:masters]
  - RoleArn: arn:aws:iam::111122223333:role/Nodes
    UserName: system:node:{{EC2PrivateDNSName}}
    Groups: [system:bootstrappers, system:nodes]
  - sso:
      PermissionSetName: Admin
      AccountId: "111122223333"
    username: sso-admin
  mapUsers:
  - userARN: arn:aws:iam::111122223333:user/alice
    username: alice
    groups: [devs]
  mapAccounts:
  - "111122223333"
  reservedPrefixConfig:
  - backendMode: MountedFile
    usernamePrefixReserveList: ["system:", "eks:"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_reference_config_loads_with_keys_in_any_case(tmp_path: Path) -> None:
    config = build_config(read_config_file(write(tmp_path, REFERENCE_STYLE)), {})
    assert config.cluster_id == "my-cluster"
    assert config.address == DEFAULT_ADDRESS
    assert config.port == 21363
    assert config.state_dir == Path("/var/aws-iam-authenticator")
    assert config.backend_mode == (BackendMode.MOUNTED_FILE, BackendMode.EKS_CONFIG_MAP)
    assert (config.ec2_qps, config.ec2_burst) == (20, 7)
    assert config.ec2_role_arn == "arn:aws:iam::111122223333:role/Describe"
    assert [dict(r) for r in config.map_roles] == [
        {
            "rolearn": "arn:aws:iam::111122223333:role/KubernetesAdmin",
            "username": "admin:{{SessionName}}",
            "groups": ["system:masters"],
        },
        {
            "rolearn": "arn:aws:iam::111122223333:role/Nodes",
            "username": "system:node:{{EC2PrivateDNSName}}",
            "groups": ["system:bootstrappers", "system:nodes"],
        },
        {
            "sso": {"permissionSetName": "Admin", "accountID": "111122223333"},
            "username": "sso-admin",
        },
    ]
    assert config.map_users[0]["userarn"] == "arn:aws:iam::111122223333:user/alice"
    assert config.map_accounts == ("111122223333",)
    assert config.reserved_prefixes == {"MountedFile": ("system:", "eks:")}


def test_defaults(tmp_path: Path) -> None:
    config = build_config(read_config_file(write(tmp_path, "clusterID: c\n")), {})
    assert (config.address, config.port) == ("127.0.0.1", DEFAULT_PORT)
    assert config.backend_mode == (BackendMode.MOUNTED_FILE,)
    assert config.partition == "aws"
    assert (config.ec2_qps, config.ec2_burst) == (15, 5)
    assert config.log_format is LogFormat.TEXT


def test_flags_override_the_file(tmp_path: Path) -> None:
    values = read_config_file(write(tmp_path, REFERENCE_STYLE))
    config = build_config(
        values, {"port": 9443, "cluster_id": "other", "address": None, "sts_resolve": ("a=b",)}
    )
    assert (config.port, config.cluster_id, config.address) == (9443, "other", "127.0.0.1")
    assert config.sts_resolve == ("a=b",)


def test_unknown_keys_warn_with_their_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = "clusterID: c\nbogusTop: 1\nserver:\n  portt: 1\n  healthPort: 21363\n"
    with caplog.at_level(logging.WARNING, logger="kubeiam.server.config"):
        build_config(read_config_file(write(tmp_path, text)), {})
    keys = [getattr(r, "key", None) for r in caplog.records]
    assert "bogustop" in keys
    assert "server.portt" in keys
    assert "server.healthport" in keys


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("server:\n  port: 1\n", "cluster id is not set"),
        ("clusterID: c\nserver:\n  port: http\n", "server.port must be an integer"),
        ("clusterID: c\nserver:\n  port: 70000\n", "server.port must be between"),
        ("clusterID: c\nserver:\n  backendMode: [Nope]\n", "unknown backend 'Nope'"),
        ("clusterID: c\nserver:\n  backendMode: [CRD, crd]\n", "listed twice"),
        ("clusterID: c\nserver:\n  partition: aws-moon\n", "unknown partition"),
        ("clusterID: c\nserver:\n  mapAccounts: [12345]\n", "not a 12-digit"),
        ("clusterID: c\nserver:\n  mapRoles: {a: b}\n", "server.maproles must be a list"),
        ("clusterID: c\nserver:\n  mapRoles: [x]\n", "server.maproles[0] must be a mapping"),
        ("clusterID: c\nserver:\n  address: example.com\n", "is not an IP address"),
        (
            "clusterID: c\nserver:\n  backendMode: [DynamicFile]\n",
            "dynamicfilepath is not set",
        ),
        ("clusterID: c\nserver:\n  dynamicfilepath: /x.json\n", "does not list DynamicFile"),
        ("clusterID: c\nserver:\n  port: 1\n  PORT: 2\n", "appears twice"),
        ("clusterID: c\nserver: [1]\n", "server must be a mapping"),
        ("- a\n", "mapping at the top level"),
        ("clusterID: c\nserver:\n  logFormat: xml\n", "text or json"),
        ("clusterID: c\nserver:\n  dynamicfileUserIDStrict: maybe\n", "true or false"),
        ("clusterID: [c\n", "line 2, column 1: is not valid YAML"),
    ],
    ids=[
        "no-cluster-id",
        "port-not-int",
        "port-range",
        "unknown-backend",
        "duplicate-backend",
        "partition",
        "account-id",
        "maproles-not-list",
        "maproles-entry",
        "address-not-ip",
        "dynamicfile-without-path",
        "path-without-dynamicfile",
        "duplicate-key-case",
        "server-not-mapping",
        "top-not-mapping",
        "log-format",
        "bool",
        "yaml-syntax",
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(read_config_file(write(tmp_path, text)), {})
    assert needle in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        read_config_file(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("MountedFile,EKSConfigMap", (BackendMode.MOUNTED_FILE, BackendMode.EKS_CONFIG_MAP)),
        (["File", "ConfigMap"], (BackendMode.MOUNTED_FILE, BackendMode.EKS_CONFIG_MAP)),
        (["crd", "dynamicfile"], (BackendMode.CRD, BackendMode.DYNAMIC_FILE)),
    ],
    ids=["comma-string", "deprecated-aliases", "lower-case"],
)
def test_backend_modes(value: object, expected: tuple[BackendMode, ...]) -> None:
    assert parse_backend_modes("backendMode", value) == expected


def test_server_help_shows_the_configs_defaults() -> None:
    """The defaults ``kubeiam server --help`` names are the config's, whatever they become."""
    from click.testing import CliRunner

    from kubeiam.cli.app import cli
    from kubeiam.server import config

    result = CliRunner().invoke(cli, ["server", "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    shown = {
        "--address": config.DEFAULT_ADDRESS,
        "--port": config.DEFAULT_PORT,
        "--ec2-describeInstances-qps": config.DEFAULT_EC2_QPS,
        "--ec2-describeInstances-burst": config.DEFAULT_EC2_BURST,
        "--ec2-instance-profile-ttl": f"{config.DEFAULT_EC2_INSTANCE_PROFILE_TTL:g}",
        "--identity-cache-ttl": f"{config.DEFAULT_IDENTITY_CACHE_TTL:g}",
        "--header-timeout": f"{config.DEFAULT_HEADER_TIMEOUT:g}",
        "--body-timeout": f"{config.DEFAULT_BODY_TIMEOUT:g}",
        "--idle-timeout": f"{config.DEFAULT_IDLE_TIMEOUT:g}",
        "--max-connections": config.DEFAULT_MAX_CONNECTIONS,
    }
    for flag, default in shown.items():
        after = text.split(f" {flag} ", 1)[1].split(" --", 1)[0]
        assert f"[default: {default}]" in after, (flag, after)
