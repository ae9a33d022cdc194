"""The deny list: parsing (every class of bad entry refused with where and why) and matching."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kubeiam.errors import ConfigError
from kubeiam.identity import Identity
from kubeiam.server.config import parse_config
from kubeiam.server.denylist import DenyKind, DenyList, parse_deny_list
from kubeiam.server.denylist_watch import DenyListGuard
from support.identities import role_session_identity, user_identity

SIGNED = dt.datetime(2026, 12, 6, 22, 0, tzinfo=dt.UTC)
EXPIRES = SIGNED.timestamp() + 15 * 60

ROLE_SESSION = role_session_identity(access_key_id="ASIAEXAMPLESTOLEN1", expires_at=EXPIRES)
USER = user_identity(
    "mallory", path="/ops/", access_key_id="AKIAEXAMPLELEAKED1", expires_at=EXPIRES
)


@pytest.mark.parametrize(
    ("doc", "identity", "refused_by"),
    [
        ({"roleARNs": ["arn:aws:iam::111122223333:role/Admin"]}, ROLE_SESSION, "roleARNs"),
        # written with the role's path and in another case: still the role STS reports
        ({"rolearns": ["arn:aws:iam::111122223333:role/team/ADMIN"]}, ROLE_SESSION, "roleARNs"),
        ({"sessionNames": ["jane@example.com"]}, ROLE_SESSION, "sessionNames"),
        ({"accessKeyIDs": ["ASIAEXAMPLESTOLEN1"]}, ROLE_SESSION, "accessKeyIDs"),
        ({"userARNs": ["arn:aws:iam::111122223333:user/ops/mallory"]}, USER, "userARNs"),
        ({"accessKeyIDs": [{"id": "AKIAEXAMPLELEAKED1"}]}, USER, "accessKeyIDs"),
        # signed before the cut-off: refused
        (
            {
                "roleARNs": [
                    {
                        "arn": "arn:aws:iam::111122223333:role/Admin",
                        "signedBefore": "2026-12-06T22:00:01Z",
                    }
                ]
            },
            ROLE_SESSION,
            "roleARNs",
        ),
        # YAML makes a datetime of an unquoted timestamp
        (
            {
                "accessKeyIDs": [
                    {"id": "ASIAEXAMPLESTOLEN1", "signedBefore": SIGNED + dt.timedelta(minutes=1)}
                ]
            },
            ROLE_SESSION,
            "accessKeyIDs",
        ),
    ],
    ids=[
        "role",
        "role-with-path-any-case",
        "session-name",
        "session-key",
        "user",
        "user-key-mapping-form",
        "signed-before-cutoff",
        "yaml-datetime",
    ],
)
def test_refused(doc: dict[str, Any], identity: Identity, refused_by: str) -> None:
    rule = parse_deny_list(doc).match(identity)
    assert rule is not None
    assert rule.kind.value == refused_by


@pytest.mark.parametrize(
    ("doc", "identity"),
    [
        ({"roleARNs": ["arn:aws:iam::111122223333:role/Other"]}, ROLE_SESSION),
        ({"roleARNs": ["arn:aws:iam::444455556666:role/Admin"]}, ROLE_SESSION),
        ({"sessionNames": ["Jane@example.com"]}, ROLE_SESSION),  # session names are exact
        ({"userARNs": ["arn:aws:iam::111122223333:user/mallory"]}, USER),  # users keep paths
        # a role rule never matches an IAM user, a user rule never an assumed role
        ({"roleARNs": ["arn:aws:iam::111122223333:role/mallory"]}, USER),
        (
            {
                "roleARNs": [
                    {
                        "arn": "arn:aws:iam::111122223333:role/Admin",
                        "signedBefore": "2026-12-06T22:00:00Z",
                    }
                ]
            },
            ROLE_SESSION,
        ),
        ({}, ROLE_SESSION),
        (None, ROLE_SESSION),
    ],
    ids=[
        "other-role",
        "other-account",
        "session-case",
        "user-path",
        "role-rule-vs-user",
        "signed-at-cutoff-passes",
        "empty",
        "none",
    ],
)
def test_not_refused(doc: dict[str, Any] | None, identity: Identity) -> None:
    assert parse_deny_list(doc).match(identity) is None


def test_unknown_signing_time_fails_closed() -> None:
    rules = parse_deny_list(
        {"sessionNames": [{"name": "jane@example.com", "signedBefore": "2000-01-01T00:00:00Z"}]}
    )
    unknown = Identity(**{**_fields(ROLE_SESSION), "expires_at": 0.0})
    assert rules.match(unknown) is not None
    assert rules.match(ROLE_SESSION) is None


def _fields(identity: Identity) -> dict[str, Any]:
    return {name: getattr(identity, name) for name in Identity.__slots__}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("arn:aws:iam::1:role/x", "must be a mapping"),
        ({"groups": ["x"]}, "unknown list 'groups'"),
        ({"roleARNs": "arn:aws:iam::111122223333:role/Admin"}, "roleARNs must be a list"),
        ({"roleARNs": ["not-an-arn"]}, "denyList.roleARNs[0]: 'not-an-arn' is not an ARN"),
        ({"roleARNs": ["arn:aws:iam::111122223333:user/bob"]}, "is not an IAM role ARN"),
        ({"userARNs": ["arn:aws:iam::111122223333:role/Admin"]}, "is not an IAM user ARN"),
        ({"userARNs": ["arn:aws:iam::1234:user/bob"]}, "not 12 digits"),
        ({"accessKeyIDs": ["asia-lower"]}, "is not an access key id"),
        ({"accessKeyIDs": ["SHORT"]}, "is not an access key id"),
        ({"sessionNames": [""]}, "denyList.sessionNames[0] is empty"),
        ({"sessionNames": [7]}, "denyList.sessionNames[0] must be a string"),
        ({"sessionNames": [{"arn": "x"}]}, "unknown key 'arn'"),
        ({"sessionNames": [{"signedBefore": "2026-01-01T00:00:00Z"}]}, "name is missing"),
        (
            {"accessKeyIDs": [{"id": "ASIAEXAMPLESTOLEN1", "signedBefore": "yesterday"}]},
            "is not a timestamp with a time zone",
        ),
        (
            {"accessKeyIDs": [{"id": "ASIAEXAMPLESTOLEN1", "signedBefore": "2026-12-06T22:00:00"}]},
            "is not a timestamp with a time zone",
        ),
        (
            {"accessKeyIDs": [{"id": "ASIAEXAMPLESTOLEN1", "signedBefore": 5}]},
            "must be a timestamp",
        ),
    ],
    ids=[
        "not-a-mapping",
        "unknown-list",
        "list-not-a-list",
        "not-an-arn",
        "user-under-roles",
        "role-under-users",
        "bad-account",
        "key-lower-case",
        "key-short",
        "empty-session",
        "session-not-string",
        "wrong-value-key",
        "value-missing",
        "time-words",
        "time-without-zone",
        "time-a-number",
    ],
)
def test_bad_entries_are_refused_with_where_and_why(doc: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_deny_list(doc)
    assert message in str(err.value)


def test_config_file_section_and_file_key() -> None:
    values = parse_config(
        {
            "clusterID": "c",
            "server": {
                "DenyList": {"roleARNs": ["arn:aws:iam::111122223333:role/Admin"]},
                "denyListFile": "/etc/kubeiam/deny.yaml",
            },
        }
    )
    assert len(values["deny_list"]) == 1
    assert values["deny_list"].rules[0].kind is DenyKind.ROLE_ARN
    assert values["deny_list_file"] == Path("/etc/kubeiam/deny.yaml")
    with pytest.raises(ConfigError, match=r"server\.denylist\.roleARNs\[0\]"):
        parse_config({"server": {"denyList": {"roleARNs": ["nope"]}}})


def test_guard_reloads_the_file_keeps_the_last_good_list_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "deny.yaml"
    registry = CollectorRegistry()
    static = parse_deny_list({"userARNs": ["arn:aws:iam::111122223333:user/ops/mallory"]})
    guard = DenyListGuard(static, registry=registry, path=path)
    guard.load()  # no file yet: the config's entries alone
    assert guard.refusal(USER) == "userARNs arn:aws:iam::111122223333:user/ops/mallory"
    assert guard.refusal(ROLE_SESSION) is None

    path.write_text("accessKeyIDs: [ASIAEXAMPLESTOLEN1]\n")
    assert guard.poll()
    assert guard.refusal(ROLE_SESSION) == "accessKeyIDs ASIAEXAMPLESTOLEN1"
    assert guard.refusal(USER) is not None  # the config's entries stay
    assert not guard.poll()  # unchanged: nothing read

    path.write_text("accessKeyIDs: [oops\n")  # an incident-time typo
    assert not guard.poll()
    assert guard.refusal(ROLE_SESSION) is not None  # the last good list stays in force
    assert registry.get_sample_value("kubeiam_deny_list_reload_failures_total") == 1

    path.unlink()  # removed: the config's entries alone again
    assert guard.poll()
    assert guard.refusal(ROLE_SESSION) is None
    assert registry.get_sample_value("kubeiam_deny_list_entries") == 1
    assert (
        registry.get_sample_value("kubeiam_deny_list_refusals_total", {"list": "accessKeyIDs"}) == 2
    )


def test_bad_file_at_start_up_stops_the_server(tmp_path: Path) -> None:
    path = tmp_path / "deny.yaml"
    path.write_text("roleARNs: [not-an-arn]\n")
    guard = DenyListGuard(DenyList(), registry=CollectorRegistry(), path=path)
    with pytest.raises(ConfigError, match=r"deny\.yaml\.roleARNs\[0\]"):
        guard.load()


async def test_refusal_logs_the_entry_except_for_scrubbed_accounts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from kubeiam.server.app import create_app
    from kubeiam.server.identity_cache import IdentityCache
    from kubeiam.server.metrics import ServerMetrics

    class Verifier:
        async def verify(self, token: str) -> Identity:
            return ROLE_SESSION

    class Mapper:
        ready = True

        async def map(self, identity: Identity) -> None:
            raise AssertionError("a denied caller is never mapped")

    deny = parse_deny_list({"roleARNs": ["arn:aws:iam::111122223333:role/Admin"]})
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "t"},
    }
    caplog.set_level(logging.INFO, logger="kubeiam.server.review")
    for scrubbed, logged in (
        ((), "roleARNs arn:aws:iam::111122223333:role/Admin"),
        (("111122223333",), "roleARNs"),
    ):
        metrics = ServerMetrics()
        guard = DenyListGuard(deny, registry=metrics.registry)
        app = create_app(
            Verifier(),
            Mapper(),
            metrics=metrics,
            identity_cache=IdentityCache(),
            deny_list=guard,
            scrubbed_accounts=scrubbed,
        )
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/authenticate", json=review)
            assert resp.status == 403
            body = await resp.json()
        assert body["status"]["error"] == "this AWS principal is refused by the webhook's deny list"
        assert caplog.records[-1].review["deny_rule"] == logged  # type: ignore[attr-defined]
        assert caplog.records[-1].review["status"] == 403  # type: ignore[attr-defined]


def _laughs(levels: int) -> str:
    lines = ["a0: &a0 [x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


#: 2**30 nodes from 30 short lines: refused by the expansion bound, not expanded.
_BILLION_LAUGHS = _laughs(30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("userARNs: []\nuserARNs: []\n", "lines 1 and 2"),
        (
            _BILLION_LAUGHS,
            "alias",
        ),
        ("[" * 200 + "]" * 200, "nest"),
    ],
    ids=["duplicate-key", "alias-expansion", "deep-nesting"],
)
def test_the_deny_list_file_is_read_by_the_shared_bounded_reader(
    tmp_path: Path, text: str, expected: str
) -> None:
    from kubeiam.server.denylist_watch import read_deny_list_file

    path = tmp_path / "deny.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_deny_list_file(path)
    assert expected in str(err.value).lower()
