"""mapGroups and the IAM group keys of the server config file, through to the built chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeiam.errors import ConfigError
from kubeiam.mapping.backends.mounted_file import MountedFile
from kubeiam.server.chain_builder import build_backends
from kubeiam.server.components import build_group_resolver
from kubeiam.server.config import DEFAULT_IAM_GROUP_TTL, build_config, read_config_file
from kubeiam.server.iam_groups import IAMGroupResolver
from kubeiam.server.metrics import ServerMetrics

CONFIG = """\
clusterID: c
server:
  IAMGroupMapping: true
  iamGroupCacheTTL: 2.5
  iamGroupRoleARN: arn:aws:iam::111122223333:role/ListGroups
  iamGroupQPS: 3
  iamGroupBurst: 2
  MapGroups:
  - GroupARN: arn:aws:iam::111122223333:group/team/Developers
    UserName: dev
    Groups: [devs]
"""


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return build_config(read_config_file(path), {})


def test_keys_are_read_case_insensitively_and_reach_the_backend(tmp_path: Path) -> None:
    from kubeiam.server.config import ServerConfig

    config = _load(tmp_path, CONFIG)
    assert isinstance(config, ServerConfig)
    assert config.iam_group_mapping is True
    assert config.iam_group_ttl == 2.5
    assert config.iam_group_role_arn == "arn:aws:iam::111122223333:role/ListGroups"
    assert (config.iam_group_qps, config.iam_group_burst) == (3, 2)
    assert config.map_groups == (
        {
            "grouparn": "arn:aws:iam::111122223333:group/team/Developers",
            "username": "dev",
            "groups": ["devs"],
        },
    )
    (backend,) = build_backends(config, ServerMetrics())
    assert isinstance(backend, MountedFile)
    assert backend.has_group_entries
    resolver = build_group_resolver(config, ServerMetrics())
    assert isinstance(resolver, IAMGroupResolver)


def test_off_by_default(tmp_path: Path) -> None:
    from kubeiam.server.config import ServerConfig

    config = _load(tmp_path, "clusterID: c\n")
    assert isinstance(config, ServerConfig)
    assert config.iam_group_mapping is False
    assert config.iam_group_ttl == DEFAULT_IAM_GROUP_TTL
    assert build_group_resolver(config, ServerMetrics()) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "iamGroupCacheTTL: 0",
            "(?i)iamGroupCacheTTL must be more than 0 and at most 3600 seconds",
        ),
        ("iamGroupCacheTTL: true", "(?i)iamGroupCacheTTL must be a number of seconds, not True"),
        ("iamGroupQPS: 0", "(?i)iamGroupQPS"),
        ("iamGroupMapping: maybe", "(?i)iamGroupMapping must be true or false"),
    ],
    ids=["ttl", "ttl-boolean", "qps", "bool"],
)
def test_bad_values_are_refused(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, f"clusterID: c\nserver:\n  {line}\n")


def test_an_invalid_group_entry_stops_the_server(tmp_path: Path) -> None:
    from kubeiam.errors import MappingError
    from kubeiam.server.config import ServerConfig

    config = _load(
        tmp_path,
        "clusterID: c\nserver:\n  mapGroups:\n  - grouparn: arn:aws:iam::111122223333:role/R\n"
        "    username: x\n",
    )
    assert isinstance(config, ServerConfig)
    with pytest.raises(MappingError, match=r"server.mapGroups\[0\]: entry skipped: grouparn"):
        build_backends(config, ServerMetrics())
