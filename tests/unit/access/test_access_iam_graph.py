"""Who can become a principal: the pure join over GetAccountAuthorizationDetails pages."""

from __future__ import annotations

import pytest
from access_helpers import (
    ACCOUNT,
    MFA,
    OIDC,
    OTHER,
    ROOT,
    SAML,
    account,
    arn,
    assume,
    group,
    managed,
    role,
    trust,
    user,
)

from kubeiam.access.iam_graph import (
    AccountIAM,
    EntryKind,
    IAMGraph,
    Path,
    principal_key,
    who_can_become,
)
from kubeiam.access.policy import Decision


def ways(paths: tuple[Path, ...]) -> dict[tuple[str, str, tuple[str, ...]], Decision]:
    """Paths as {(kind, start, via names): decision}, names short for reading."""
    return {
        (
            p.kind.value,
            p.start.rsplit("/", 1)[-1],
            tuple(v.rsplit("/", 1)[-1] for v in p.via),
        ): p.decision
        for p in paths
    }


A, D, C, U = Decision.ALLOWED, Decision.DENIED, Decision.CONDITIONAL, Decision.UNKNOWN

SCENARIOS: dict[str, tuple[AccountIAM, str, dict[tuple[str, str, tuple[str, ...]], Decision]]] = {
    "user-is-reached-by-itself": (
        account(user("alice")),
        arn("user", "alice"),
        {("user", "alice", ()): A},
    ),
    "trust-names-user": (
        account(user("alice"), user("bob"), role("admin", trust({"AWS": arn("user", "alice")}))),
        arn("role", "admin"),
        {("user", "alice", ("admin",)): A},
    ),
    "trust-names-account-members-need-identity-allow": (
        account(
            user("alice", "devs"),
            user("bob"),
            group("devs", assume(arn("role", "admin"))),
            role("admin", trust({"AWS": ROOT})),
        ),
        arn("role", "admin"),
        {("user", "alice", ("admin",)): A, ("account", ACCOUNT, ("admin",)): A},
    ),
    "trust-deny-names-one-of-two-alike-members": (
        account(
            user("alice", "devs"),
            user("bob", "devs"),
            group("devs", assume()),
            role(
                "admin",
                trust({"AWS": ROOT}),
                {
                    "Effect": "Deny",
                    "Principal": {"AWS": arn("user", "alice")},
                    "Action": "sts:AssumeRole",
                },
            ),
        ),
        arn("role", "admin"),
        {("user", "bob", ("admin",)): A, ("account", ACCOUNT, ("admin",)): A},
    ),
    "group-deny-stops-member": (
        account(
            user("alice", "devs", policies=[assume()]),
            group("devs", assume(effect="Deny")),
            role("admin", trust({"AWS": ROOT})),
        ),
        arn("role", "admin"),
        {("account", ACCOUNT, ("admin",)): A},
    ),
    "mfa-condition-carried": (
        account(user("alice"), role("admin", trust({"AWS": arn("user", "alice")}, Condition=MFA))),
        arn("role", "admin"),
        {("user", "alice", ("admin",)): C},
    ),
    "role-chain": (
        account(
            user("alice"),
            role("hop", trust({"AWS": arn("user", "alice")})),
            role("admin", trust({"AWS": arn("role", "hop")})),
        ),
        arn("role", "admin"),
        {("role", "hop", ("admin",)): A, ("user", "alice", ("hop", "admin")): A},
    ),
    "chain-carries-conditions-of-each-hop": (
        account(
            user("alice"),
            role("hop", trust({"AWS": arn("user", "alice")}, Condition=MFA)),
            role("admin", trust({"AWS": arn("role", "hop")})),
        ),
        arn("role", "admin"),
        {("role", "hop", ("admin",)): A, ("user", "alice", ("hop", "admin")): C},
    ),
    "cycle-terminates": (
        account(
            user("alice"),
            role("a", trust({"AWS": arn("role", "b")}), trust({"AWS": arn("user", "alice")})),
            role("b", trust({"AWS": arn("role", "a")})),
        ),
        arn("role", "b"),
        {("role", "a", ("b",)): A, ("user", "alice", ("a", "b")): A},
    ),
    "sso-permission-set": (
        account(
            role(
                "AWSReservedSSO_PlatformAdmin_0123456789abcdef",
                trust(
                    {"Federated": SAML},
                    action="sts:AssumeRoleWithSAML",
                ),
                path="/aws-reserved/sso.amazonaws.com/",
            )
        ),
        arn("role", "AWSReservedSSO_PlatformAdmin_0123456789abcdef"),
        {("sso", "PlatformAdmin", ("AWSReservedSSO_PlatformAdmin_0123456789abcdef",)): U},
    ),
    "oidc-provider": (
        account(
            role(
                "ci",
                trust(
                    {"Federated": OIDC},
                    action="sts:AssumeRoleWithWebIdentity",
                ),
            )
        ),
        arn("role", "ci"),
        {("federated", "token.actions.githubusercontent.com", ("ci",)): U},
    ),
    "other-account-is-unknown": (
        account(role("vendor", trust({"AWS": f"arn:aws:iam::{OTHER}:root"}))),
        arn("role", "vendor"),
        {("account", OTHER, ("vendor",)): U},
    ),
    "other-account-role-is-unknown": (
        account(role("vendor", trust({"AWS": f"arn:aws:iam::{OTHER}:role/ci"}))),
        arn("role", "vendor"),
        {("role", "ci", ("vendor",)): U},
    ),
    "service-principal": (
        account(role("node", trust({"Service": "ec2.amazonaws.com"}))),
        arn("role", "node"),
        {("service", "ec2.amazonaws.com", ("node",)): A},
    ),
    "everyone": (
        account(user("alice"), role("open", trust({"AWS": "*"}))),
        arn("role", "open"),
        {("anyone", "*", ("open",)): A, ("user", "alice", ("open",)): A},
    ),
    "everyone-denied-by-explicit-deny": (
        account(
            role(
                "open", trust("*"), {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}
            )
        ),
        arn("role", "open"),
        {},
    ),
    "missing-managed-policy-makes-member-unknown": (
        account(
            user("alice", managed=[f"arn:aws:iam::{ACCOUNT}:policy/gone"]),
            role("admin", trust({"AWS": ROOT})),
        ),
        arn("role", "admin"),
        {("user", "alice", ("admin",)): U, ("account", ACCOUNT, ("admin",)): A},
    ),
    "managed-policy-default-version-used": (
        account(
            user("alice", managed=[f"arn:aws:iam::{ACCOUNT}:policy/assume"]),
            role("admin", trust({"AWS": ROOT})),
            policies=[managed(f"arn:aws:iam::{ACCOUNT}:policy/assume", assume())],
        ),
        arn("role", "admin"),
        {("user", "alice", ("admin",)): A, ("account", ACCOUNT, ("admin",)): A},
    ),
    "boundary-limits-member": (
        account(
            user(
                "alice",
                policies=[assume()],
                PermissionsBoundary={
                    "PermissionsBoundaryArn": f"arn:aws:iam::{ACCOUNT}:policy/s3only"
                },
            ),
            role("admin", trust({"AWS": ROOT})),
            policies=[
                managed(
                    f"arn:aws:iam::{ACCOUNT}:policy/s3only",
                    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                )
            ],
        ),
        arn("role", "admin"),
        {("account", ACCOUNT, ("admin",)): A},
    ),
    "unreadable-trust-is-unknown": (
        account(role("broken", AssumeRolePolicyDocument="{not json")),
        arn("role", "broken"),
        {("role", "broken", ("broken",)): U},
    ),
    "deleted-principal-id-lets-nobody-in": (
        account(user("alice"), role("admin", trust({"AWS": "AIDAOLDALICE000000"}))),
        arn("role", "admin"),
        {},
    ),
    "unknown-arn-has-no-ways": (account(user("alice")), arn("role", "nothere"), {}),
}


@pytest.mark.parametrize(("iam", "target", "expected"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_who_can_become(
    iam: AccountIAM, target: str, expected: dict[tuple[str, str, tuple[str, ...]], Decision]
) -> None:
    assert ways(who_can_become(iam, target)) == expected


def test_group_members_are_reached_through_their_group() -> None:
    iam = account(
        user("alice", "devs"), group("devs", assume()), role("admin", trust({"AWS": ROOT}))
    )
    (member,) = [p for p in who_can_become(iam, arn("role", "admin")) if p.kind is EntryKind.USER]
    assert member.groups == (arn("group", "devs"),)


def test_chain_depth_is_bounded() -> None:
    roles = [role("r0", trust({"AWS": arn("user", "alice")}))]
    roles += [role(f"r{i}", trust({"AWS": arn("role", f"r{i - 1}")})) for i in range(1, 6)]
    iam = account(user("alice"), *roles)
    longest = max(len(p.via) for p in who_can_become(iam, arn("role", "r5"), max_chain=3))
    assert longest == 3
    assert any(
        p.start == arn("user", "alice") for p in who_can_become(iam, arn("role", "r5"), max_chain=6)
    )
    assert not any(
        p.start == arn("user", "alice") for p in who_can_become(iam, arn("role", "r5"), max_chain=3)
    )


def test_role_found_without_its_path_and_case_insensitively() -> None:
    iam = account(role("Admin", trust({"Service": "ec2.amazonaws.com"}), path="/team/"))
    assert iam.find(f"arn:aws:iam::{ACCOUNT}:role/admin") is not None
    assert principal_key(arn("role", "Admin", "/team/")) == principal_key(arn("role", "admin"))
    assert principal_key(arn("user", "a", "/x/")) != principal_key(arn("user", "a"))


def test_sso_path_says_what_is_unknown() -> None:
    (path,) = who_can_become(*SCENARIOS["sso-permission-set"][:2])
    assert "permission set PlatformAdmin" in path.verdict.describe()


def test_account_id_and_partition_come_from_the_arns() -> None:
    iam = account(user("alice"))
    assert (iam.account_id, iam.partition) == (ACCOUNT, "aws")


def test_one_graph_answers_like_fresh_ones() -> None:
    """The memoised graph (shared hops and chains across targets) changes no answer."""
    for iam, target, _ in SCENARIOS.values():
        graph = IAMGraph(iam)
        for other in (*iam.roles, *iam.users):
            graph.who_can_become(other.arn)
        assert ways(graph.who_can_become(target)) == ways(who_can_become(iam, target))


def _sso(*actions: str) -> AccountIAM:
    name = "AWSReservedSSO_Ops_0123456789abcdef"
    return account(role(name, trust({"Federated": SAML}, action=list(actions))))


def test_sso_trust_allowing_tag_session_says_nothing_about_tags() -> None:
    iam = _sso("sts:AssumeRoleWithSAML", "sts:TagSession")
    (path,) = who_can_become(iam, arn("role", "AWSReservedSSO_Ops_0123456789abcdef"))
    assert "session tags" not in path.verdict.describe()


def test_federated_trust_without_tag_session_says_tags_would_fail() -> None:
    (path,) = who_can_become(
        _sso("sts:AssumeRoleWithSAML"), arn("role", "AWSReservedSSO_Ops_0123456789abcdef")
    )
    assert "does not allow sts:TagSession" in path.verdict.describe()


def test_one_way_in_per_principal_whatever_the_actions() -> None:
    (path,) = who_can_become(_sso("sts:*"), arn("role", "AWSReservedSSO_Ops_0123456789abcdef"))
    assert path.kind is EntryKind.SSO
