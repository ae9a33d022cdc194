"""Did-you-mean names for "not found" messages (kubeiam.suggestions), as tables."""

from __future__ import annotations

import pytest

from kubeiam.suggestions import MAX_SUGGESTIONS, closest_names, not_found_message, quote_name

NAMES = ["alice", "alicia", "bob", "K8sAdmins", "K8sReaders", "kubedemy", "carol"]

CLOSEST = [
    ("transposed-letters", "alcie", ["alice", "alicia"]),
    ("missing-letter", "K8sAdmin", ["K8sAdmins"]),
    ("case-ignored", "KUBEDEMY", ["kubedemy"]),
    ("nothing-close", "zzzzzz", []),
    ("exact-match-is-not-a-suggestion", "bob", []),
]


@pytest.mark.parametrize(("case", "name", "expected"), CLOSEST, ids=[c for c, _, _ in CLOSEST])
def test_closest_names(case: str, name: str, expected: list[str]) -> None:
    assert closest_names(name, NAMES) == expected


def test_at_most_a_few_are_offered_best_first() -> None:
    many = [f"user{i}" for i in range(100)]
    found = closest_names("user5", many)
    assert len(found) == MAX_SUGGESTIONS
    assert "user5" not in found  # the exact name is in the list, and never suggested
    assert set(found) <= set(many)


QUOTED = [
    ("plain", "alice", "alice"),
    ("escape-sequence", "a\x1b[31m", "'a\\x1b[31m'"),
    ("newline", "a\nb", "'a\\nb'"),
    ("surrounding-space", " a", "' a'"),
    ("empty", "", "''"),
    ("long", "x" * 200, "x" * 80 + "..."),
]


@pytest.mark.parametrize(("case", "name", "expected"), QUOTED, ids=[c for c, _, _ in QUOTED])
def test_names_are_quoted_safely(case: str, name: str, expected: str) -> None:
    assert quote_name(name) == expected


def test_message() -> None:
    assert not_found_message("IAM user", "alcie", ["alice"]) == (
        "IAM user alcie not found (closest: alice)"
    )
    assert not_found_message("IAM role", "x", []) == "IAM role x not found"
