"""kubeiam's reading of EKS's access-entry rules (kubeiam.eks.access_entries), as tables."""

from __future__ import annotations

import pytest

from kubeiam.eks.access_entries import (
    AccessEntry,
    PolicyGrant,
    check_groups,
    check_username,
    default_username,
    merge_policies,
    parse_policy_option,
)
from kubeiam.eks.access_policies import ACCESS_POLICIES, ScopeType
from kubeiam.errors import MappingError

ARN = "arn:{}:eks::aws:cluster-access-policy/{}"
VIEW = ARN.format("aws", "AmazonEKSViewPolicy")
EDIT = ARN.format("aws", "AmazonEKSEditPolicy")

PARSED = [
    ("short-name", "AmazonEKSViewPolicy", "aws", VIEW, ()),
    ("arn", EDIT, "aws", EDIT, ()),
    ("namespaces-sorted", "AmazonEKSEditPolicy:test,dev", "aws", EDIT, ("dev", "test")),
    ("arn-with-namespaces", VIEW + ":dev-*", "aws", VIEW, ("dev-*",)),
    ("china", "AmazonEKSViewPolicy", "aws-cn", ARN.format("aws-cn", "AmazonEKSViewPolicy"), ()),
]


@pytest.mark.parametrize(
    ("text", "partition", "arn", "namespaces"), [c[1:] for c in PARSED], ids=[c[0] for c in PARSED]
)
def test_parse_policy_option(
    text: str, partition: str, arn: str, namespaces: tuple[str, ...]
) -> None:
    grant = parse_policy_option(text, partition)
    assert grant.policy_arn == arn
    assert grant.namespaces == namespaces
    assert grant.scope is (ScopeType.NAMESPACE if namespaces else ScopeType.CLUSTER)


REFUSED_POLICIES = [
    ("typo-suggests", "AmazonEKSViewPolicey", "closest: AmazonEKSViewPolicy"),
    ("no-suggestion-for-nonsense", "Zzz", "unknown access policy Zzz"),
    ("iam-policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess", "not an EKS access-policy ARN"),
    ("other-partition", ARN.format("aws-us-gov", "AmazonEKSViewPolicy"), "partition aws-us-gov"),
    ("empty-namespace", "AmazonEKSViewPolicy:dev,", "an empty namespace"),
    ("upper-case-namespace", "AmazonEKSViewPolicy:Dev", "not a namespace name"),
    ("cluster-only-hybrid", "AmazonEKSHybridPolicy:dev", "cluster-wide policy"),
    ("cluster-only-auto-mode", "AmazonEKSComputePolicy:dev", "cluster-wide policy"),
]


@pytest.mark.parametrize(
    ("text", "says"), [c[1:] for c in REFUSED_POLICIES], ids=[c[0] for c in REFUSED_POLICIES]
)
def test_refused_policies(text: str, says: str) -> None:
    with pytest.raises(MappingError) as err:
        parse_policy_option(text, "aws")
    assert says in err.value.message


def test_every_documented_namespaced_policy_takes_namespaces() -> None:
    for name, policy in ACCESS_POLICIES.items():
        if policy.rules_documented and any(r.namespaced for r in policy.rules):
            assert parse_policy_option(f"{name}:dev").namespaces == ("dev",)


USERNAMES = [
    ("system", "system:admin", "'system:'"),
    ("eks", "eks:x", "'eks:'"),
    ("aws", "aws:x", "'aws:'"),
    ("amazon", "amazon:x", "'amazon:'"),
    ("iam", "iam:x", "'iam:'"),
    ("empty", "", "empty"),
    ("session-no-colon", "dev{{SessionName}}", "colon before {{SessionName}}"),
    ("raw-no-colon", "dev{{SessionNameRaw}}", "colon before {{SessionNameRaw}}"),
]


@pytest.mark.parametrize(
    ("username", "says"), [c[1:] for c in USERNAMES], ids=[c[0] for c in USERNAMES]
)
def test_refused_usernames(username: str, says: str) -> None:
    with pytest.raises(MappingError) as err:
        check_username(username)
    assert says in err.value.message


@pytest.mark.parametrize("username", ["alice", "dev:{{SessionName}}", "a-system:b"])
def test_accepted_usernames(username: str) -> None:
    check_username(username)


GROUPS = [
    ("masters-names-the-policy", ["system:masters"], "AmazonEKSClusterAdminPolicy"),
    ("other-system-group", ["devs", "system:nodes"], "RBAC"),
    ("empty", [""], "drop the empty"),
]


@pytest.mark.parametrize(("groups", "hint"), [c[1:] for c in GROUPS], ids=[c[0] for c in GROUPS])
def test_refused_groups(groups: list[str], hint: str) -> None:
    with pytest.raises(MappingError) as err:
        check_groups(groups)
    assert err.value.hint is not None
    assert hint in err.value.hint


IAM = "arn:aws:iam::111122223333:"
DEFAULTS = [
    ("user", IAM + "user/alice", "STANDARD", IAM + "user/alice"),
    (
        "role-path-dropped",
        IAM + "role/team/Dev",
        "STANDARD",
        "arn:aws:sts::111122223333:assumed-role/Dev/{{SessionName}}",
    ),
    ("ec2-node", IAM + "role/nodes", "EC2_LINUX", "system:node:{{EC2PrivateDNSName}}"),
    ("fargate", IAM + "role/pods", "FARGATE_LINUX", "system:node:{{SessionName}}"),
]


@pytest.mark.parametrize(
    ("arn", "kind", "username"), [c[1:] for c in DEFAULTS], ids=[c[0] for c in DEFAULTS]
)
def test_default_usernames(arn: str, kind: str, username: str) -> None:
    assert default_username(arn, kind) == username


def test_one_grant_per_policy() -> None:
    view = PolicyGrant(ARN.format("aws", "AmazonEKSViewPolicy"))
    assert merge_policies([view, view]) == (view,)
    scoped = PolicyGrant(view.policy_arn, ScopeType.NAMESPACE, ("dev",))
    with pytest.raises(MappingError):
        merge_policies([view, scoped])


def test_entry_json_round_trip() -> None:
    entry = AccessEntry(
        "arn:aws:iam::111122223333:role/team/Dev",
        "dev:{{SessionName}}",
        ("devs",),
        "STANDARD",
        (PolicyGrant(ARN.format("aws", "AmazonEKSEditPolicy"), ScopeType.NAMESPACE, ("dev",)),),
    )
    assert AccessEntry.from_json(entry.to_json()) == entry
    with pytest.raises(MappingError):
        AccessEntry.from_json({"username": "x"})
