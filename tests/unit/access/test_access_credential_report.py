"""Access-key ages from the credential report's CSV (columns as IAM documents them)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubeiam.access.credential_report import key_ages
from kubeiam.errors import AWSAdminError

HEADER = (
    "user,arn,user_creation_time,password_enabled,access_key_1_active,access_key_1_last_rotated,"
    "access_key_2_active,access_key_2_last_rotated"
)
T1 = "2025-01-02T03:04:05+00:00"
T2 = "2026-06-01T00:00:00Z"


def _line(name: str, k1: str, r1: str, k2: str, r2: str) -> str:
    return f"{name},arn:aws:iam::111122223333:user/{name},{T1},false,{k1},{r1},{k2},{r2}"


CASES = {
    "one-active-key": (
        _line("a", "true", T1, "false", "N/A"),
        {"a": (datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),)},
    ),
    "two-active-keys-z-suffix": (
        _line("b", "true", T1, "true", T2),
        {"b": (datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))},
    ),
    "inactive-key-ignored": (_line("c", "false", T1, "false", "N/A"), {}),
    "active-without-date-ignored": (_line("d", "true", "N/A", "false", "N/A"), {}),
    "naive-date-ignored": (_line("e", "true", "2025-01-02T03:04:05", "false", "N/A"), {}),
}


@pytest.mark.parametrize(("line", "expected"), CASES.values(), ids=CASES.keys())
def test_key_ages(line: str, expected: dict[str, tuple[datetime, ...]]) -> None:
    ages = key_ages(f"{HEADER}\n{line}\n")
    assert {arn.rsplit("/", 1)[-1]: times for arn, times in ages.items()} == expected


def test_not_a_credential_report() -> None:
    with pytest.raises(AWSAdminError) as caught:
        key_ages("name,value\nx,1\n")
    assert "access_key_1_active" in str(caught.value)
