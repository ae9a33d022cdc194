"""Which stores the report reads, in which order, and how files and access entries become rows."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubeiam.access.collect import Where, plan
from kubeiam.access.report import AccessPolicyAssociation, MappingRow, RowKind
from kubeiam.access.sources import (
    NODE_GROUPS,
    SourceRows,
    Step,
    StoreStep,
    drop_shadowed,
    entry_rows,
    plan_existing,
    plan_for_mode,
    plan_from_server_config,
    read_file_rows,
    read_sources,
)
from kubeiam.eks.access_entries import AccessEntry, PolicyGrant
from kubeiam.eks.access_policies import AuthenticationMode, ScopeType
from kubeiam.eks.entries_client import ClusterInfo
from kubeiam.errors import ConfigError, NotFoundError

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/viewer"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"


def _config(tmp_path: Path, server: dict[str, Any]) -> Path:
    path = tmp_path / "server.yaml"
    path.write_text(json.dumps({"clusterID": "c1", "server": server}))
    return path


@pytest.mark.parametrize(
    ("modes", "stores"),
    [
        (None, [StoreStep.FILE]),
        (["EKSConfigMap", "CRD"], [StoreStep.AWS_AUTH, StoreStep.CRD]),
        (
            ["CRD", "MountedFile", "EKSConfigMap"],
            [StoreStep.CRD, StoreStep.FILE, StoreStep.AWS_AUTH],
        ),
    ],
    ids=["default-mounted-file", "configmap-then-crd", "server-order-kept"],
)
def test_server_config_order_is_backend_mode(
    tmp_path: Path, modes: list[str] | None, stores: list[StoreStep]
) -> None:
    server = {"backendMode": modes} if modes is not None else {}
    steps = plan_from_server_config(_config(tmp_path, server))
    assert [s.store for s in steps] == stores
    assert all(not s.optional for s in steps)


def test_dynamic_file_relative_to_the_config_and_strict(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {
            "backendMode": ["DynamicFile"],
            "dynamicfilepath": "maps/dynamic.json",
            "dynamicfileuseridstrict": True,
        },
    )
    (step,) = plan_from_server_config(config)
    assert step == Step(StoreStep.FILE, tmp_path / "maps/dynamic.json", dynamic=True, strict=True)


@pytest.mark.parametrize(
    ("server", "wanted"),
    [
        ({"backendMode": ["DynamicFile"]}, "dynamicfilepath is not set"),
        ({"backendMode": ["Nope"]}, "Nope"),
        ({"backendMode": "MountedFile", "mapUsers": "x"}, "mapusers"),
    ],
    ids=["dynamic-without-path", "unknown-backend", "bad-shape"],
)
def test_bad_server_config_is_a_config_error(
    tmp_path: Path, server: dict[str, Any], wanted: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_from_server_config(_config(tmp_path, server))
    assert wanted.lower() in str(caught.value).lower()


def test_missing_server_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as caught:
        plan_from_server_config(tmp_path / "absent.yaml")
    assert "--server-config" in str(caught.value)
    assert caught.value.hint is not None
    assert "kubeiam server runs with" in caught.value.hint


@pytest.mark.parametrize(
    ("mode", "stores"),
    [
        ("API", [StoreStep.ACCESS_ENTRIES]),
        ("API_AND_CONFIG_MAP", [StoreStep.ACCESS_ENTRIES, StoreStep.AWS_AUTH]),
        ("CONFIG_MAP", [StoreStep.AWS_AUTH]),
    ],
    ids=["api", "both-entries-first", "config-map"],
)
def test_eks_mode_decides_the_stores(mode: str, stores: list[StoreStep]) -> None:
    assert [s.store for s in plan_for_mode(AuthenticationMode(mode))] == stores


def test_existing_stores_file_first_then_optional_cluster_stores(tmp_path: Path) -> None:
    steps = plan_existing(tmp_path / "m.json")
    assert [s.store for s in steps] == [StoreStep.FILE, StoreStep.AWS_AUTH, StoreStep.CRD]
    assert steps[0].dynamic
    assert not steps[0].optional
    assert steps[1].optional
    assert steps[2].optional
    assert [s.store for s in plan_existing(None)] == [StoreStep.AWS_AUTH, StoreStep.CRD]


def test_server_config_rows_are_the_servers_reading(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {
            "mapRoles": [
                {"rolearn": ROLE, "username": "viewer:{{SessionName}}", "groups": ["viewers"]}
            ],
            "mapUsers": [{"userarn": USER, "username": "alice", "groups": ["system:masters"]}],
            "mapAccounts": [ACCOUNT],
        },
    )
    found = read_file_rows(config, dynamic=False)
    assert found.name == "file"
    kinds = [(r.kind, r.principal, r.username, r.groups) for r in found.rows]
    assert (RowKind.ROLE, ROLE, "viewer:{{SessionName}}", ("viewers",)) in kinds
    assert (RowKind.USER, USER, "alice", ("system:masters",)) in kinds
    assert any(r.kind is RowKind.ACCOUNT and r.principal == ACCOUNT for r in found.rows)


@pytest.mark.parametrize(
    ("strict", "kept"), [(True, "AROAEXAMPLE"), (False, "")], ids=["strict", "lax"]
)
def test_dynamic_file_principal_ids_count_only_when_strict(
    tmp_path: Path, strict: bool, kept: str
) -> None:
    path = tmp_path / "dynamic.json"
    path.write_text(
        json.dumps(
            {
                "mapRoles": [
                    {"rolearn": ROLE, "userid": "AROAEXAMPLE", "username": "v", "groups": ["g"]}
                ]
            }
        )
    )
    (row,) = read_file_rows(path, dynamic=True, strict=strict).rows
    assert row.principal_id == kept


def test_a_file_the_server_would_refuse_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "dynamic.json"
    path.write_text('{"mapRoles": {"rolearn": "x"}}')
    with pytest.raises(ConfigError, match="the server would refuse it"):
        read_file_rows(path, dynamic=True)


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_file_rows(tmp_path / "absent.yaml", dynamic=False)


def test_access_entries_rows_carry_policies_and_node_groups() -> None:
    node_role = f"arn:aws:iam::{ACCOUNT}:role/nodes"
    entries = [
        AccessEntry(
            ROLE,
            "viewer:{{SessionName}}",
            ("viewers",),
            policies=(PolicyGrant("AmazonEKSViewPolicy", ScopeType.NAMESPACE, ("dev",)),),
        ),
        AccessEntry(node_role, "system:node:{{EC2PrivateDNSName}}", entry_type="EC2_LINUX"),
    ]
    viewer, node = entry_rows(entries)
    assert viewer.source == "access-entries"
    assert viewer.kind is RowKind.ROLE
    assert viewer.access_policies == (
        AccessPolicyAssociation("AmazonEKSViewPolicy", ScopeType.NAMESPACE, ("dev",)),
    )
    assert node.groups == NODE_GROUPS
    assert viewer.created_at is None


def test_access_entry_rows_carry_created_at_which_entry_equality_ignores() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    entry = AccessEntry(ROLE, "v", ("viewers",), created_at=created)
    (row,) = entry_rows([entry])
    assert row.created_at == created
    # What kubeiam manages is compared (plans, diffs); when EKS made the entry is not.
    assert entry == AccessEntry(ROLE, "v", ("viewers",))
    assert "createdAt" not in entry.to_json()


class _Entries:
    def __init__(self, mode: AuthenticationMode | None) -> None:
        self.mode = mode
        self.read = 0

    def describe_cluster(self) -> ClusterInfo:
        if self.mode is None:
            raise NotFoundError("no EKS cluster c1")
        return ClusterInfo("c1", "arn:aws:eks:r:1:cluster/c1", self.mode, "aws", "1", "r")

    def read_entries(self) -> list[AccessEntry]:
        self.read += 1
        return [AccessEntry(ROLE, "v", ("viewers",))]


def test_not_an_eks_cluster_reads_the_existing_stores_and_says_so() -> None:
    steps, entries, notes = plan(Where(entries=_Entries(None), cluster="c1"))
    assert [s.store for s in steps] == [StoreStep.AWS_AUTH, StoreStep.CRD]
    assert entries is None
    assert "not an EKS cluster" in notes[0]


def test_eks_api_mode_reads_access_entries_only(tmp_path: Path) -> None:
    reader = _Entries(AuthenticationMode.API)
    steps, entries, _ = plan(Where(entries=reader, cluster="c1"))
    assert [s.store for s in steps] == [StoreStep.ACCESS_ENTRIES]
    (source,) = asyncio.run(read_sources(steps, None, entries))
    assert source.name == "access-entries"
    assert source.rows[0].principal == ROLE
    assert reader.read == 1


def test_server_config_wins_over_eks(tmp_path: Path) -> None:
    config = _config(tmp_path, {"backendMode": ["CRD"]})
    reader = _Entries(AuthenticationMode.API)
    steps, entries, _ = plan(Where(server_config=config, entries=reader))
    assert [s.store for s in steps] == [StoreStep.CRD]
    assert entries is None


def test_an_access_entry_shadows_the_principals_aws_auth_row() -> None:
    """API_AND_CONFIG_MAP: the access entry decides; the aws-auth row for the same role (written
    with a path, differently cased) is dropped with a note; other rows stay."""
    entries = SourceRows(
        "access-entries", "EKS", (MappingRow("access-entries", RowKind.ROLE, ROLE, "v"),)
    )
    aws_auth = SourceRows(
        "aws-auth",
        "ConfigMap",
        (
            MappingRow(
                "aws-auth",
                RowKind.ROLE,
                f"arn:aws:iam::{ACCOUNT}:role/team/VIEWER",
                "old",
            ),
            MappingRow("aws-auth", RowKind.USER, USER, "alice"),
        ),
    )
    kept, notes = drop_shadowed([entries, aws_auth])
    assert [r.username for s in kept for r in s.rows] == ["v", "alice"]
    assert len(notes) == 1
    assert "its access entry wins" in notes[0]


def test_without_access_entries_nothing_is_shadowed() -> None:
    aws_auth = SourceRows(
        "aws-auth", "ConfigMap", (MappingRow("aws-auth", RowKind.ROLE, ROLE, "v"),)
    )
    crd = SourceRows("crd", "CRD", (MappingRow("crd", RowKind.ROLE, ROLE, "w"),))
    assert drop_shadowed([aws_auth, crd]) == ([aws_auth, crd], [])
