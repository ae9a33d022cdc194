"""Every mapping case against every backend it applies to.

Each backend is loaded the way it is in production, minus the transport: MountedFile from the
config lists, DynamicFile from a JSON file in tmp_path, EKSConfigMap from an aws-auth ConfigMap
object fed through its watch-event handling, CRD from IAMIdentityMapping objects fed through its
list handling. The watch loops themselves are replayed in test_watch_replay.py; the real API
server arrives with issue 4 (tests/e2e).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mapping_helpers import (
    ACCOUNT,
    OTHER_ACCOUNT,
    config_map,
    crd_objects,
    ec2_names,
    role_identity,
    user_identity,
)

from kubeiam.errors import MappingDeniedError, MappingError
from kubeiam.identity import Identity
from kubeiam.kube.watch import EventType, WatchEvent
from kubeiam.mapping.backends.configmap import EKSConfigMap
from kubeiam.mapping.backends.crd import CRD
from kubeiam.mapping.backends.dynamic_file import DynamicFile
from kubeiam.mapping.backends.mounted_file import MountedFile
from kubeiam.mapping.chain import Backend, KubeUser, MappingChain

ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin"
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/NodeRole"
KUBEDEMY = f"arn:aws:iam::{ACCOUNT}:user/kubedemy"
SSO_SUFFIX = "0123456789abcdef"

Sections = dict[str, list[Any]]


@dataclass(frozen=True)
class Denied:
    """The entry matched but the review must be denied; ``reason`` is in the message."""

    reason: str


REFUSED = "refused"  # the version as a whole is refused (errors), nothing from it is served
Expected = tuple[str, tuple[str, ...]] | None | Denied | str


@dataclass(frozen=True)
class Case:
    id: str
    sections: Sections
    identity: Identity
    expected: Expected
    #: Backends the case does not apply to (CRD has no SSO entries and no accounts).
    not_for: frozenset[str] = frozenset()
    #: Per-backend expectation where one differs (MountedFile refuses what others skip).
    override: Mapping[str, Expected] = field(default_factory=dict)
    reserved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The caller's IAM group ARNs, as the server's resolver would list them.
    iam_groups: frozenset[str] = frozenset()


def _role(arn: str, username: str, groups: Sequence[str] = ()) -> dict[str, Any]:
    return {"rolearn": arn, "username": username, "groups": list(groups)}


def _user(arn: str, username: str, groups: Sequence[str] = ()) -> dict[str, Any]:
    return {"userarn": arn, "username": username, "groups": list(groups)}


def _sso(name: str, username: str, groups: Sequence[str] = (), **extra: str) -> dict[str, Any]:
    return {
        "sso": {"permissionSetName": name, "accountID": ACCOUNT, **extra},
        "username": username,
        "groups": list(groups),
    }


def _grp(arn: str, username: str, groups: Sequence[str] = ()) -> dict[str, Any]:
    return {"groupArn": arn, "username": username, "groups": list(groups)}


NO_CRD = frozenset({"CRD"})
DEVS = f"arn:aws:iam::{ACCOUNT}:group/eng/Developers"
OPS = f"arn:aws:iam::{ACCOUNT}:group/Operators"
IN_DEVS = frozenset({DEVS.lower()})

CASES = [
    Case(
        "user-exact",
        {"mapUsers": [_user(KUBEDEMY, "kubedemy", ["system:masters"])]},
        user_identity(),
        ("kubedemy", ("system:masters",)),
    ),
    Case(
        "user-arn-case-insensitive",
        {"mapUsers": [_user(f"arn:aws:iam::{ACCOUNT}:user/KubeDemy", "k")]},
        user_identity(),
        ("k", ()),
    ),
    Case(
        "user-with-path",
        {"mapUsers": [_user(f"arn:aws:iam::{ACCOUNT}:user/eng/bob", "bob", ["dev"])]},
        user_identity("bob", path="eng/"),
        ("bob", ("dev",)),
    ),
    Case(
        "role-session-template",
        {"mapRoles": [_role(ADMIN_ROLE, "admin:{{SessionName}}", ["system:masters"])]},
        role_identity(),
        ("admin:alice-example.com", ("system:masters",)),
    ),
    Case(
        "role-with-path-matches-sts-arn",
        {"mapRoles": [_role(f"arn:aws:iam::{ACCOUNT}:role/team/eng/Admin", "admin", ["ops"])]},
        role_identity(),
        ("admin", ("ops",)),
    ),
    Case(
        "role-of-other-account-unmapped",
        {"mapRoles": [_role(ADMIN_ROLE, "admin")]},
        role_identity(account=OTHER_ACCOUNT),
        None,
    ),
    Case(
        "sso-permission-set",
        {"mapRoles": [_sso("Admin", "sso:{{SessionName}}", ["admins"])]},
        role_identity(f"AWSReservedSSO_Admin_{SSO_SUFFIX}", "alice@example.com"),
        ("sso:alice-example.com", ("admins",)),
        not_for=NO_CRD,
    ),
    Case(
        "sso-explicit-partition-matches",
        {"mapRoles": [_sso("Admin", "sso", partition="aws")]},
        role_identity(f"AWSReservedSSO_Admin_{SSO_SUFFIX}"),
        ("sso", ()),
        not_for=NO_CRD,
    ),
    Case(
        "sso-govcloud-partition",
        {"mapRoles": [_sso("Admin", "gov", partition="aws-us-gov")]},
        role_identity(f"AWSReservedSSO_Admin_{SSO_SUFFIX}", partition="aws-us-gov"),
        ("gov", ()),
        not_for=NO_CRD,
    ),
    Case(
        "sso-set-name-is-not-a-prefix",
        {"mapRoles": [_sso("Admin", "sso")]},
        role_identity(f"AWSReservedSSO_Admin_ReadOnly_{SSO_SUFFIX}"),
        None,
        not_for=NO_CRD,
    ),
    Case(
        "sso-set-with-underscore",
        {"mapRoles": [_sso("Admin_ReadOnly", "ro")]},
        role_identity(f"AWSReservedSSO_Admin_ReadOnly_{SSO_SUFFIX}"),
        ("ro", ()),
        not_for=NO_CRD,
    ),
    Case(
        "account-any-principal",
        {"mapAccounts": [ACCOUNT]},
        role_identity("Whatever", "s"),
        (f"arn:aws:iam::{ACCOUNT}:role/Whatever", ()),
        not_for=NO_CRD,
    ),
    Case(
        "account-other-account-unmapped",
        {"mapAccounts": [ACCOUNT]},
        user_identity(account=OTHER_ACCOUNT),
        None,
        not_for=NO_CRD,
    ),
    Case(
        "templates-account-raw-session-key",
        {
            "mapRoles": [
                _role(
                    ADMIN_ROLE,
                    "u-{{AccountID}}-{{SessionNameRaw}}",
                    ["k-{{AccessKeyID}}", "s-{{SessionName}}"],
                )
            ]
        },
        role_identity(),
        (
            f"u-{ACCOUNT}-alice@example.com",
            ("k-ASIAEXAMPLEKEY000002", "s-alice-example.com"),
        ),
    ),
    Case(
        "node-role-ec2-private-dns-name",
        {
            "mapRoles": [
                _role(
                    NODE_ROLE,
                    "system:node:{{EC2PrivateDNSName}}",
                    ["system:bootstrappers", "system:nodes"],
                )
            ]
        },
        role_identity("NodeRole", "i-0123456789abcdef0"),
        ("system:node:ip-10-0-0-1.ec2.internal", ("system:bootstrappers", "system:nodes")),
        # The reserved prefixes of DynamicFile and CRD refuse system: unless configured away.
        reserved={"DynamicFile": (), "CRD": ()},
    ),
    Case(
        "node-role-short-instance-id",
        {"mapRoles": [_role(NODE_ROLE, "system:node:{{EC2PrivateDNSName}}", ["system:nodes"])]},
        role_identity("NodeRole", "i-01234567"),
        ("system:node:ip-10-0-0-2.ec2.internal", ("system:nodes",)),
        reserved={"DynamicFile": (), "CRD": ()},
    ),
    Case(
        "node-template-with-non-instance-session-denied",
        {"mapRoles": [_role(NODE_ROLE, "system:node:{{EC2PrivateDNSName}}", ["system:nodes"])]},
        role_identity("NodeRole", "i-am-not-an-instance"),
        Denied("not an EC2 instance id"),
        reserved={"DynamicFile": (), "CRD": ()},
    ),
    Case(
        "default-reserved-prefix-refuses-system-username",
        {"mapRoles": [_role(NODE_ROLE, "system:node:{{EC2PrivateDNSName}}", ["system:nodes"])]},
        role_identity("NodeRole", "i-0123456789abcdef0"),
        Denied("reserved prefix 'system:'"),
        not_for=frozenset({"MountedFile", "EKSConfigMap"}),
    ),
    Case(
        "reserved-prefix-checked-after-rendering",
        {"mapRoles": [_role(ADMIN_ROLE, "{{SessionName}}", ["g"])]},
        role_identity(session="admin-bob"),
        Denied("reserved prefix 'admin-'"),
        reserved=dict.fromkeys(("MountedFile", "DynamicFile", "EKSConfigMap", "CRD"), ("admin-",)),
    ),
    Case(
        "reserved-prefix-not-hit",
        {"mapRoles": [_role(ADMIN_ROLE, "{{SessionName}}", ["g"])]},
        role_identity(session="bob"),
        ("bob", ("g",)),
        reserved=dict.fromkeys(("MountedFile", "DynamicFile", "EKSConfigMap", "CRD"), ("admin-",)),
    ),
    Case(
        "empty-rendered-username-denied",
        {"mapUsers": [_user(KUBEDEMY, "{{SessionName}}")]},
        user_identity(),
        Denied("renders empty"),
    ),
    Case(
        "precedence-user-over-account",
        {"mapUsers": [_user(KUBEDEMY, "kubedemy", ["team"])], "mapAccounts": [ACCOUNT]},
        user_identity(),
        ("kubedemy", ("team",)),
        not_for=NO_CRD,
    ),
    Case(
        "precedence-exact-role-over-sso",
        {
            "mapRoles": [
                _sso("Admin", "from-sso"),
                _role(f"arn:aws:iam::{ACCOUNT}:role/AWSReservedSSO_Admin_{SSO_SUFFIX}", "exact"),
            ]
        },
        role_identity(f"AWSReservedSSO_Admin_{SSO_SUFFIX}"),
        ("exact", ()),
        not_for=NO_CRD,
    ),
    Case(
        "precedence-sso-over-account",
        {"mapRoles": [_sso("Admin", "from-sso")], "mapAccounts": [ACCOUNT]},
        role_identity(f"AWSReservedSSO_Admin_{SSO_SUFFIX}"),
        ("from-sso", ()),
        not_for=NO_CRD,
    ),
    Case(
        "identical-duplicate-loads",
        {"mapUsers": [_user(KUBEDEMY, "kubedemy", ["a"]), _user(KUBEDEMY, "kubedemy", ["a"])]},
        user_identity(),
        ("kubedemy", ("a",)),
    ),
    Case(
        "path-variant-duplicate-conflicts",
        {
            "mapRoles": [
                _role(ADMIN_ROLE, "admin", ["system:masters"]),
                _role(f"arn:aws:iam::{ACCOUNT}:role/x/Admin", "viewer", ["view"]),
            ]
        },
        role_identity(),
        REFUSED,
    ),
    Case(
        "conflicting-duplicate-refused",
        {"mapUsers": [_user(KUBEDEMY, "kubedemy", ["system:masters"]), _user(KUBEDEMY, "x")]},
        user_identity(),
        REFUSED,
    ),
    Case(
        "invalid-entry-skipped-others-served",
        {
            "mapUsers": [
                _user(f"arn:aws:iam::{ACCOUNT}:group/devs", "devs"),
                _user(KUBEDEMY, "kubedemy"),
            ]
        },
        user_identity(),
        ("kubedemy", ()),
        override={"MountedFile": REFUSED},
    ),
    Case(
        "unknown-template-entry-skipped",
        {"mapUsers": [_user(KUBEDEMY, "{{ SessionName }}")]},
        user_identity(),
        None,
        override={"MountedFile": REFUSED},
    ),
    Case(
        "group-member",
        {"mapGroups": [_grp(DEVS, "dev:{{AccountID}}", ["devs"])]},
        user_identity(),
        (f"dev:{ACCOUNT}", ("devs",)),
        not_for=NO_CRD,
        iam_groups=IN_DEVS,
    ),
    Case(
        "group-not-a-member",
        {"mapGroups": [_grp(DEVS, "dev", ["devs"])]},
        user_identity(),
        None,
        not_for=NO_CRD,
        iam_groups=frozenset({OPS.lower()}),
    ),
    Case(
        "group-arn-without-path-does-not-match",
        {"mapGroups": [_grp(f"arn:aws:iam::{ACCOUNT}:group/Developers", "dev")]},
        user_identity(),
        None,
        not_for=NO_CRD,
        iam_groups=IN_DEVS,
    ),
    Case(
        "group-exact-user-wins",
        {"mapUsers": [_user(KUBEDEMY, "kubedemy")], "mapGroups": [_grp(DEVS, "dev", ["devs"])]},
        user_identity(),
        ("kubedemy", ()),
        not_for=NO_CRD,
        iam_groups=IN_DEVS,
    ),
    Case(
        "group-beats-account",
        {"mapAccounts": [ACCOUNT], "mapGroups": [_grp(DEVS, "dev", ["devs"])]},
        user_identity(),
        ("dev", ("devs",)),
        not_for=NO_CRD,
        iam_groups=IN_DEVS,
    ),
    Case(
        "group-several-first-username-union",
        {
            "mapGroups": [
                _grp(OPS, "ops", ["ops", "shared"]),
                _grp(DEVS, "dev", ["devs", "shared"]),
            ]
        },
        user_identity(),
        ("ops", ("ops", "shared", "devs")),
        not_for=NO_CRD,
        iam_groups=frozenset({DEVS.lower(), OPS.lower()}),
    ),
    Case(
        "group-roles-never-match",
        {"mapGroups": [_grp(DEVS, "dev")]},
        role_identity(),
        None,
        not_for=NO_CRD,
        iam_groups=IN_DEVS,
    ),
    Case(
        "group-other-account-never-matches",
        {"mapGroups": [_grp(DEVS, "dev")]},
        user_identity(account=OTHER_ACCOUNT),
        None,
        not_for=NO_CRD,
        iam_groups=IN_DEVS,
    ),
    Case(
        "group-session-name-username-denied",
        {"mapGroups": [_grp(DEVS, "{{SessionName}}")]},
        user_identity(),
        Denied("renders empty"),
        not_for=NO_CRD,
        iam_groups=IN_DEVS,
    ),
    Case(
        "group-conflicting-duplicate-refused",
        {"mapGroups": [_grp(DEVS, "dev"), _grp(DEVS.lower(), "other")]},
        user_identity(),
        REFUSED,
        not_for=NO_CRD,
        iam_groups=IN_DEVS,
    ),
    Case(
        "unmapped",
        {"mapUsers": [_user(KUBEDEMY, "kubedemy")], "mapRoles": [_role(ADMIN_ROLE, "admin")]},
        user_identity("someone-else"),
        None,
    ),
]


# --------------------------------------------------------------------------------------------
# Loaders: one per backend, each returning a backend that has handled the sections.

Loader = Callable[[Sections, Path], Backend]


def load_mounted(sections: Sections, tmp_path: Path) -> Backend:
    return MountedFile(
        sections.get("mapRoles", []),
        sections.get("mapUsers", []),
        sections.get("mapAccounts", []),
        sections.get("mapGroups", []),
    )


def load_dynamic(sections: Sections, tmp_path: Path) -> Backend:
    path = tmp_path / "mappings.json"
    path.write_text(json.dumps({"Version": "1", **sections}))
    backend = DynamicFile(path)
    backend.check()
    return backend


def load_configmap(sections: Sections, tmp_path: Path) -> Backend:
    backend = EKSConfigMap(source=None)
    backend.apply(WatchEvent(EventType.ADDED, config_map(sections)))
    return backend


def load_crd(sections: Sections, tmp_path: Path) -> Backend:
    backend = CRD(source=None)
    backend.replace_all(crd_objects(sections))
    return backend


LOADERS: dict[str, Loader] = {
    "MountedFile": load_mounted,
    "DynamicFile": load_dynamic,
    "EKSConfigMap": load_configmap,
    "CRD": load_crd,
}

PAIRS = [
    pytest.param(name, case, id=f"{name}-{case.id}")
    for case in CASES
    for name in LOADERS
    if name not in case.not_for
]


@pytest.mark.parametrize(("backend_name", "case"), PAIRS)
async def test_mapping_case(backend_name: str, case: Case, tmp_path: Path) -> None:
    expected = case.override.get(backend_name, case.expected)
    loader = LOADERS[backend_name]
    if expected == REFUSED and backend_name == "MountedFile":
        with pytest.raises(MappingError):
            loader(case.sections, tmp_path)
        return
    backend = loader(case.sections, tmp_path)
    assert backend.name == backend_name

    async def groups_of(identity: Identity) -> frozenset[str]:
        return case.iam_groups

    chain = MappingChain(
        [backend],
        reserved_prefixes=case.reserved,
        ec2_resolver=ec2_names,
        group_resolver=groups_of,
    )
    if expected == REFUSED:
        assert not backend.ready
        assert await chain.map(case.identity) is None
        return
    assert backend.ready
    if isinstance(expected, Denied):
        with pytest.raises(MappingDeniedError, match=expected.reason):
            await chain.map(case.identity)
        return
    user = await chain.map(case.identity)
    if expected is None:
        assert user is None
        return
    assert isinstance(user, KubeUser)
    assert (user.username, user.groups) == expected
    assert user.backend == backend_name


def test_every_case_runs_against_at_least_two_backends() -> None:
    for case in CASES:
        assert len(set(LOADERS) - case.not_for) >= 2, case.id
