"""The local EKS's rules and state without moto: what boto3 cannot reach (a second account)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubeiam.localaws.eks_access import ClusterAccess
from kubeiam.localaws.eks_rules import EksApiError, ErrorCode, Principal, page

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HOME, OTHER = "111122223333", "444455556666"


class Directory:
    """IAM as a dict: principal ARN -> Principal."""

    def __init__(self, *principals: Principal) -> None:
        self.principals = {p.arn: p for p in principals}

    def find(self, arn: str) -> Principal | None:
        return self.principals.get(arn)


def role(account: str, name: str, path: str = "/") -> Principal:
    arn = f"arn:aws:iam::{account}:role{path}{name}"
    return Principal(arn, f"AROA{name.upper()}", "role", name, path, account, "aws")


def cluster(mode: str = "API") -> ClusterAccess:
    return ClusterAccess(
        cluster_name="c", account=HOME, region="us-east-1", partition="aws", mode=mode
    )


@pytest.mark.parametrize(
    ("account", "entry_type", "code"),
    [
        (HOME, "EC2_LINUX", None),
        (OTHER, "EC2_LINUX", ErrorCode.INVALID_PARAMETER),
        (OTHER, "HYBRID_LINUX", ErrorCode.INVALID_PARAMETER),
        (OTHER, "STANDARD", None),
    ],
    ids=["node-same-account", "node-other-account", "hybrid-other-account", "standard-other"],
)
def test_node_entries_take_a_role_of_the_clusters_account(
    account: str, entry_type: str, code: ErrorCode | None
) -> None:
    principal = role(account, "r")
    access = cluster()

    def create() -> object:
        return access.create_entry(
            principal.arn,
            Directory(principal),
            entry_type=entry_type,
            username=None,
            groups=None,
            tags=None,
            now=NOW,
        )

    if code is None:
        assert create()
    else:
        with pytest.raises(EksApiError) as refused:
            create()
        assert refused.value.code == code


def test_creator_entry_appears_when_the_entry_api_does() -> None:
    creator = role(HOME, "creator")
    access = ClusterAccess(
        cluster_name="c",
        account=HOME,
        region="us-east-1",
        partition="aws-cn",
        mode="CONFIG_MAP",
        creator=creator,
    )
    assert access.entries == {}
    access.set_mode("API_AND_CONFIG_MAP", now=NOW)
    (policy,) = access.entries[creator.arn].associations
    assert policy == "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    access.delete_entry(creator.arn)
    access.set_mode("API", now=NOW)
    assert access.entries == {}  # only once: leaving CONFIG_MAP


@pytest.mark.parametrize(
    ("size", "token", "expected"),
    [(2, None, [0, 1]), (100, None, [0, 1, 2, 3, 4]), (3, "Mw==", [3, 4])],
    ids=["first", "all", "second"],
)
def test_page(size: int, token: str | None, expected: list[int]) -> None:
    items, _ = page(list(range(5)), size, token)
    assert items == expected


@pytest.mark.parametrize(
    ("size", "token"), [(0, None), (101, None), (1, "not base64!"), (1, "eA==")]
)
def test_page_refusals(size: int, token: str | None) -> None:
    with pytest.raises(EksApiError) as refused:
        page([1, 2], size, token)
    assert refused.value.code == ErrorCode.INVALID_PARAMETER


def test_page_tokens_walk_everything_once() -> None:
    seen: list[int] = []
    token = None
    while True:
        items, token = page(list(range(7)), 3, token)
        seen.extend(items)
        if token is None:
            break
    assert seen == list(range(7))
