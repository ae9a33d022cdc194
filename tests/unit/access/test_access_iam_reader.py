"""Paging and bounded retries of the bulk IAM read.

The IAM client here is a stand-in: the local AWS (moto) neither throttles nor splits
GetAccountAuthorizationDetails into pages, so those two faults are produced by this fake; the
real read against the local AWS is in tests/integration/test_access_iam.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from kubeiam.access.iam_reader import MAX_ATTEMPTS, MAX_DELAY, read_access_key_ages, read_account
from kubeiam.errors import AWSAdminError

ACCOUNT = "111122223333"


def _user(name: str) -> dict[str, Any]:
    return {"UserName": name, "UserId": name.upper(), "Arn": f"arn:aws:iam::{ACCOUNT}:user/{name}"}


class FakeIAM:
    """Serves pages by Marker; fails the first ``failures[marker]`` calls for that page."""

    def __init__(self, failures: dict[str, int], code: str = "Throttling") -> None:
        self.failures = dict(failures)
        self.code = code
        self.calls: list[str] = []

    def get_account_authorization_details(self, **kwargs: Any) -> dict[str, Any]:
        marker = kwargs.get("Marker", "")
        self.calls.append(marker)
        assert "Filter" in kwargs
        if self.failures.get(marker, 0) > 0:
            self.failures[marker] -= 1
            error = {"Error": {"Code": self.code, "Message": "Rate exceeded"}}
            raise ClientError(error, "GetAccountAuthorizationDetails")  # type: ignore[arg-type]
        if marker == "":
            return {"UserDetailList": [_user("a")], "IsTruncated": True, "Marker": "m2"}
        return {"UserDetailList": [_user("b")], "IsTruncated": False}


def test_pages_are_joined_and_a_throttled_page_is_retried_alone() -> None:
    iam = FakeIAM({"m2": 2})
    slept: list[float] = []
    account = read_account(iam, sleep=slept.append)
    assert [u.name for u in account.users] == ["a", "b"]
    assert iam.calls == ["", "m2", "m2", "m2"]  # the first page is not read again
    assert slept == [0.2, 0.4]


def test_throttling_gives_up_after_the_bound_with_a_fix() -> None:
    iam = FakeIAM({"": 100})
    slept: list[float] = []
    with pytest.raises(AWSAdminError) as caught:
        read_account(iam, sleep=slept.append)
    assert len(iam.calls) == MAX_ATTEMPTS
    assert max(slept) <= MAX_DELAY
    assert caught.value.code == "Throttling"
    assert "run the report again later" in str(caught.value)


@pytest.mark.parametrize(
    ("code", "says"),
    [("AccessDenied", "iam:GetAccountAuthorizationDetails"), ("ServiceFailure", "ServiceFailure")],
    ids=["access-denied", "other-error"],
)
def test_other_errors_are_not_retried(code: str, says: str) -> None:
    iam = FakeIAM({"": 1}, code=code)
    with pytest.raises(AWSAdminError) as caught:
        read_account(iam, sleep=lambda _: None)
    assert iam.calls == [""]
    assert says in str(caught.value)


def test_connection_failure_is_translated() -> None:
    class Unreachable:
        def get_account_authorization_details(self, **_: Any) -> dict[str, Any]:
            raise EndpointConnectionError(endpoint_url="https://127.0.0.1:9/")

    with pytest.raises(AWSAdminError) as caught:
        read_account(Unreachable())
    assert "GetAccountAuthorizationDetails" in str(caught.value)


def test_credential_report_polls_are_bounded() -> None:
    class NeverReady:
        calls = 0

        def generate_credential_report(self) -> dict[str, Any]:
            NeverReady.calls += 1
            return {"State": "INPROGRESS"}

    slept: list[float] = []
    with pytest.raises(AWSAdminError) as caught:
        read_access_key_ages(NeverReady(), polls=3, sleep=slept.append)
    assert NeverReady.calls == 3
    assert len(slept) == 3
    assert "run again in a minute" in str(caught.value)
