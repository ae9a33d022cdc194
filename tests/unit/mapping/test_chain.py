"""The chain: backend order, readiness, no caching, explain, reserved-prefix defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from mapping_helpers import ACCOUNT, config_map, role_identity, user_identity

from kubeiam.errors import MappingDeniedError
from kubeiam.kube.watch import EventType, WatchEvent
from kubeiam.mapping.backends.configmap import EKSConfigMap
from kubeiam.mapping.backends.dynamic_file import DynamicFile
from kubeiam.mapping.backends.mounted_file import MountedFile
from kubeiam.mapping.chain import DEFAULT_RESERVED_PREFIX_CONFIG, MappingChain

ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin"


def _mounted(username: str) -> MountedFile:
    return MountedFile(map_users=[{"userARN": ADMIN, "username": username}])


def _configmap(username: str) -> EKSConfigMap:
    backend = EKSConfigMap()
    backend.apply(
        WatchEvent(
            EventType.ADDED, config_map({"mapUsers": [{"userarn": ADMIN, "username": username}]})
        )
    )
    return backend


async def test_first_backend_with_a_match_wins() -> None:
    chain = MappingChain([_mounted("from-file"), _configmap("from-cm")], reserved_prefixes={})
    user = await chain.map(user_identity("admin"))
    assert user is not None
    assert user.username == "from-file"
    assert user.matched_by == f"MountedFile server.mapUsers[0]: userarn {ADMIN}"
    reversed_chain = MappingChain(
        [_configmap("from-cm"), _mounted("from-file")], reserved_prefixes={}
    )
    user = await reversed_chain.map(user_identity("admin"))
    assert user is not None
    assert (user.username, user.backend) == ("from-cm", "EKSConfigMap")
    assert user.entry == f"mapUsers line 1: userarn {ADMIN}"


async def test_later_backend_used_when_earlier_has_no_entry() -> None:
    chain = MappingChain([MountedFile(), _configmap("from-cm")], reserved_prefixes={})
    user = await chain.map(user_identity("admin"))
    assert user is not None
    assert user.backend == "EKSConfigMap"
    assert await chain.map(user_identity("nobody")) is None


async def test_a_matched_entry_that_cannot_apply_denies_without_falling_through() -> None:
    bad = MountedFile(map_users=[{"userarn": ADMIN, "username": "system:admin"}])
    chain = MappingChain(
        [bad, _configmap("fallback")], reserved_prefixes={"MountedFile": ("system:",)}
    )
    with pytest.raises(MappingDeniedError, match="reserved prefix"):
        await chain.map(user_identity("admin"))


async def test_ready_once_every_backend_loaded(tmp_path: Path) -> None:
    dynamic = DynamicFile(tmp_path / "later.json")
    chain = MappingChain([_mounted("a"), dynamic], reserved_prefixes={})
    dynamic.check()
    assert not chain.ready
    (tmp_path / "later.json").write_text('{"mapUsers": []}')
    dynamic.check()
    assert chain.ready


async def test_mapping_changes_apply_to_the_next_call() -> None:
    backend = _configmap("before")
    chain = MappingChain([backend], reserved_prefixes={})
    identity = user_identity("admin")
    assert (await chain.map(identity)).username == "before"  # type: ignore[union-attr]
    backend.apply(
        WatchEvent(
            EventType.MODIFIED,
            config_map({"mapUsers": [{"userarn": ADMIN, "username": "after"}]}, rv="101"),
        )
    )
    assert (await chain.map(identity)).username == "after"  # type: ignore[union-attr]


async def test_explain_lists_every_backend() -> None:
    chain = MappingChain([MountedFile(), _configmap("cm")], reserved_prefixes={})
    verdicts = chain.explain(user_identity("admin"))
    assert [(v.backend, v.ready, v.match is not None) for v in verdicts] == [
        ("MountedFile", True, False),
        ("EKSConfigMap", True, True),
    ]


def test_reserved_prefix_defaults_and_overrides() -> None:
    chain = MappingChain([MountedFile()], reserved_prefixes={"CRD": (), "MountedFile": ("x:",)})
    assert chain.reserved_prefixes("CRD") == ()
    assert chain.reserved_prefixes("MountedFile") == ("x:",)
    assert chain.reserved_prefixes("DynamicFile") == DEFAULT_RESERVED_PREFIX_CONFIG["DynamicFile"]
    assert "system:" in chain.reserved_prefixes("DynamicFile")
    assert chain.reserved_prefixes("EKSConfigMap") == ()


def test_a_backend_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        MappingChain([MountedFile(), MountedFile()], reserved_prefixes={})


async def test_account_mapping_is_not_template_rendered() -> None:
    chain = MappingChain([MountedFile(map_accounts=[ACCOUNT])], reserved_prefixes={})
    user = await chain.map(role_identity("R", "s"))
    assert user is not None
    assert user.username == f"arn:aws:iam::{ACCOUNT}:role/R"
    assert user.groups == ()
