"""``mapGroups``: parsing, validation, precedence, several groups, and the chain's resolver use."""

from __future__ import annotations

from typing import Any

import pytest
from mapping_helpers import ACCOUNT, OTHER_ACCOUNT, config_map, role_identity, user_identity

from kubeiam.errors import MappingError
from kubeiam.identity import Identity
from kubeiam.kube.watch import EventType, WatchEvent
from kubeiam.mapping.aws_auth import AwsAuthDocument, Change, read_aws_auth
from kubeiam.mapping.backends.configmap import EKSConfigMap
from kubeiam.mapping.backends.mounted_file import MountedFile
from kubeiam.mapping.chain import MappingChain
from kubeiam.mapping.model import (
    EntryKind,
    GroupMapping,
    Severity,
    load_sections,
    parse_group_entry,
)

DEV = f"arn:aws:iam::{ACCOUNT}:group/Developers"
OPS = f"arn:aws:iam::{ACCOUNT}:group/team/ops/Operators"
DEV_KEY = DEV.lower()
OPS_KEY = OPS.lower()
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"


def _group(arn: str, username: str, *groups: str) -> dict[str, Any]:
    return {"groupARN": arn, "username": username, "groups": list(groups)}


# --------------------------------------------------------------------------------------------
# Parsing and validation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_group(DEV, "dev-{{AccountID}}", "devs"), (DEV, "dev-{{AccountID}}", ("devs",), ACCOUNT)),
        (
            {"GROUPARN": OPS, "USERNAME": "ops"},
            (OPS, "ops", (), ACCOUNT),
        ),
        (
            _group("arn:aws-cn:iam::111122223333:group/G", "g"),
            ("arn:aws-cn:iam::111122223333:group/G", "g", (), ACCOUNT),
        ),
    ],
    ids=["plain", "path-and-key-case", "other-partition"],
)
def test_parse_group_entry(raw: dict[str, Any], expected: tuple[Any, ...]) -> None:
    entry, warnings = parse_group_entry(raw)
    assert (entry.grouparn, entry.username, entry.groups, entry.account_id) == expected
    assert entry.kind is EntryKind.GROUP
    assert warnings == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"grouparn": DEV}, "username is missing"),
        ({"username": "x"}, "grouparn is missing"),
        (_group(f"arn:aws:iam::{ACCOUNT}:role/Dev", "x"), "is not an IAM group ARN"),
        (_group(f"arn:aws:iam::{ACCOUNT}:user/Dev", "x"), "is not an IAM group ARN"),
        (_group("arn:aws:iam::1234:group/Dev", "x"), "is not an IAM group ARN"),
        (_group("arn:aws-moon:iam::111122223333:group/Dev", "x"), "is not an AWS partition"),
        (_group(DEV, "{{ SessionName }}"), "SessionName"),
        ({"grouparn": DEV, "GroupArn": DEV, "username": "x"}, "given twice"),
    ],
    ids=["no-username", "no-arn", "role-arn", "user-arn", "short-account", "partition",
         "bad-template", "duplicate-key"],
)  # fmt: skip
def test_invalid_group_entries_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_group_entry(raw)


def test_unknown_key_is_a_warning() -> None:
    _, warnings = parse_group_entry({**_group(DEV, "x"), "colour": "blue"})
    assert [w.message for w in warnings] == ["unknown key 'colour' ignored"]


def test_aws_auth_section_has_line_numbers_and_reports_conflicts() -> None:
    text = (
        f"- groupARN: {DEV}\n  username: dev\n  groups: [devs]\n"
        f"- grouparn: {DEV_KEY}\n  username: other\n"
        "- grouparn: nonsense\n  username: x\n"
    )
    result = read_aws_auth({"mapGroups": text})
    issues = [(i.severity, str(i)) for i in result.issues]
    assert (
        Severity.ERROR,
        f"mapGroups line 4: grouparn {DEV_KEY} "
        "conflicts with mapGroups line 1 (username 'dev' vs 'other'); remove one of them",
    ) in issues
    assert any(s is Severity.SKIPPED and t.startswith("mapGroups line 6:") for s, t in issues)
    assert not result.ok


def test_identical_duplicate_is_a_warning() -> None:
    result = load_sections({"mapGroups": [_group(DEV, "dev"), _group(DEV.lower(), "dev")]})
    assert result.ok
    assert [str(i) for i in result.warnings] == [
        f"mapGroups[1]: grouparn {DEV.lower()} duplicates mapGroups[0]"
    ]
    assert len(result.mappings) == 1


def test_section_name_is_case_insensitive_in_json_and_config() -> None:
    result = load_sections({"MAPGROUPS": [_group(DEV, "dev")]}, prefix="server.")
    assert result.ok
    (entry,) = result.mappings.entries
    assert isinstance(entry, GroupMapping)
    assert str(entry.location) == "server.mapGroups[0]"


# --------------------------------------------------------------------------------------------
# Precedence and several groups


def _set(**sections: list[Any]) -> Any:
    result = load_sections(sections)
    assert result.ok, result.issues
    return result.mappings


def _lookup(identity: Identity, groups: frozenset[str], **sections: list[Any]) -> Any:
    return _set(**sections).lookup(identity, groups)


@pytest.mark.parametrize(
    ("sections", "groups", "expected"),
    [
        ({"mapUsers": [{"userarn": ALICE, "username": "exact"}], "mapGroups": [_group(DEV, "g")]},
         {DEV_KEY}, ("exact", EntryKind.USER)),
        ({"mapAccounts": [ACCOUNT], "mapGroups": [_group(DEV, "g")]},
         {DEV_KEY}, ("g", EntryKind.GROUP)),
        ({"mapAccounts": [ACCOUNT], "mapGroups": [_group(DEV, "g")]},
         set(), (ALICE, EntryKind.ACCOUNT)),
        ({"mapGroups": [_group(DEV, "g")]}, {OPS_KEY}, None),
        ({"mapGroups": [_group(OPS, "ops")]}, {OPS_KEY}, ("ops", EntryKind.GROUP)),
    ],
    ids=["user-beats-group", "group-beats-account", "no-groups-account", "not-a-member",
         "path-in-arn"],
)  # fmt: skip
def test_precedence(
    sections: dict[str, list[Any]], groups: set[str], expected: tuple[str, EntryKind] | None
) -> None:
    found = _lookup(user_identity("alice"), frozenset(groups), **sections)
    if expected is None:
        assert found is None
    else:
        assert (found.username, found.entry.kind) == expected


def test_roles_never_match_group_entries() -> None:
    found = _lookup(role_identity("Dev"), frozenset({DEV_KEY}), mapGroups=[_group(DEV, "g")])
    assert found is None


def test_group_of_another_account_never_matches() -> None:
    # ListGroupsForUser runs in the server's account; a same-named user elsewhere must not gain
    # that account's groups.
    stranger = user_identity("alice", account=OTHER_ACCOUNT)
    found = _lookup(stranger, frozenset({DEV_KEY}), mapGroups=[_group(DEV, "g", "devs")])
    assert found is None


def test_several_groups_first_username_union_of_groups() -> None:
    mappings = _set(
        mapGroups=[
            _group(OPS, "ops-{{AccountID}}", "ops", "shared"),
            _group(DEV, "dev", "devs", "shared"),
            _group(f"arn:aws:iam::{ACCOUNT}:group/Other", "other", "others"),
        ]
    )
    found = mappings.lookup(user_identity("alice"), frozenset({DEV_KEY, OPS_KEY}))
    assert found.username == "ops-{{AccountID}}"
    assert found.groups == ("ops", "shared", "devs")
    assert found.entry.grouparn == OPS
    assert found.describe() == (f"mapGroups[0]: grouparn {OPS} (with mapGroups[1]: grouparn {DEV})")


# --------------------------------------------------------------------------------------------
# aws-auth editing


def test_upsert_and_remove_group_in_aws_auth() -> None:
    doc = AwsAuthDocument(
        {"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/R\n  username: r\n"}
    )
    assert doc.upsert_group(OPS, "ops", ["ops"]) is Change.ADDED
    assert doc.upsert_group(OPS.lower(), "ops", ["ops"]) is Change.UNCHANGED
    with pytest.raises(MappingError, match="already maps"):
        doc.upsert_group(OPS, "other", [])
    assert doc.upsert_group(OPS, "other", [], replace=True) is Change.REPLACED
    data = doc.to_data()
    assert data["mapRoles"].startswith("- rolearn")
    loaded = read_aws_auth(data)
    assert loaded.ok
    assert [e.username for e in loaded.mappings.entries if isinstance(e, GroupMapping)] == ["other"]
    assert doc.remove(OPS) is Change.REMOVED
    assert "mapGroups" not in doc.to_data()


# --------------------------------------------------------------------------------------------
# The chain and its resolver


class _Resolver:
    """An injected resolver: the chain's contract, not IAM (that one is tested against moto)."""

    def __init__(self, groups: frozenset[str]) -> None:
        self.groups = groups
        self.calls: list[str] = []

    async def __call__(self, identity: Identity) -> frozenset[str]:
        self.calls.append(identity.canonical_arn)
        return self.groups


def _configmap(sections: dict[str, list[Any]]) -> EKSConfigMap:
    backend = EKSConfigMap()
    backend.apply(WatchEvent(EventType.ADDED, config_map(sections)))
    return backend


async def test_chain_resolves_groups_for_users_only_when_needed() -> None:
    resolver = _Resolver(frozenset({DEV_KEY}))
    chain = MappingChain(
        [
            MountedFile(map_users=[{"userarn": ALICE, "username": "alice"}]),
            _configmap({"mapGroups": [_group(DEV, "dev-{{AccountID}}", "devs")]}),
        ],
        reserved_prefixes={},
        group_resolver=resolver,
    )
    user = await chain.map(user_identity("alice"))
    assert user is not None
    assert user.username == "alice"
    assert resolver.calls == []  # an earlier backend's exact entry decides
    bob = await chain.map(user_identity("bob"))
    assert bob is not None
    assert (bob.username, bob.groups, bob.backend) == (f"dev-{ACCOUNT}", ("devs",), "EKSConfigMap")
    assert bob.entry == f"mapGroups line 1: grouparn {DEV}"
    assert await chain.map(role_identity("Dev")) is None
    assert resolver.calls == [f"arn:aws:iam::{ACCOUNT}:user/bob"]


async def test_group_entry_in_earlier_backend_beats_later_exact_user() -> None:
    resolver = _Resolver(frozenset({DEV_KEY}))
    chain = MappingChain(
        [
            _configmap({"mapGroups": [_group(DEV, "via-group")]}),
            MountedFile(map_users=[{"userarn": ALICE, "username": "exact"}]),
        ],
        reserved_prefixes={},
        group_resolver=resolver,
    )
    user = await chain.map(user_identity("alice"))
    assert user is not None
    assert user.username == "via-group"


async def test_group_beats_account_in_the_same_backend_and_failure_falls_back() -> None:
    sections: dict[str, list[Any]] = {"mapAccounts": [ACCOUNT], "mapGroups": [_group(DEV, "dev")]}
    member = MappingChain(
        [_configmap(sections)], reserved_prefixes={}, group_resolver=_Resolver(frozenset({DEV_KEY}))
    )
    user = await member.map(user_identity("alice"))
    assert user is not None
    assert user.username == "dev"
    # A failed lookup is an empty set (fail closed): the account entry still applies as before.
    failed = MappingChain(
        [_configmap(sections)], reserved_prefixes={}, group_resolver=_Resolver(frozenset())
    )
    user = await failed.map(user_identity("alice"))
    assert user is not None
    assert user.username == ALICE


async def test_without_resolver_group_entries_never_match(caplog: pytest.LogCaptureFixture) -> None:
    chain = MappingChain([_configmap({"mapGroups": [_group(DEV, "dev")]})], reserved_prefixes={})
    assert await chain.map(user_identity("alice")) is None
    assert await chain.map(user_identity("bob")) is None
    warnings = [r for r in caplog.records if "iamGroupMapping" in r.getMessage()]
    assert len(warnings) == 1


async def test_session_name_username_is_denied_for_users() -> None:
    from kubeiam.errors import MappingDeniedError

    chain = MappingChain(
        [_configmap({"mapGroups": [_group(DEV, "{{SessionName}}")]})],
        reserved_prefixes={},
        group_resolver=_Resolver(frozenset({DEV_KEY})),
    )
    with pytest.raises(MappingDeniedError, match="renders empty"):
        await chain.map(user_identity("alice"))
