"""The one cluster id rule (kubeiam.cluster_id), as a table."""

from __future__ import annotations

import pytest

from kubeiam.cluster_id import MAX_CLUSTER_ID_LENGTH, check_cluster_id
from kubeiam.errors import ConfigError

ACCEPTED = [
    ("eks-name", "kubedemy"),
    ("eks-name-with-digits-and-dash", "prod-eu-west-1_2"),
    ("outposts-uuid", "8c1a7c2f-2f1c-4f9e-b5a2-6bd6d9cd2f0e"),
    ("punctuation", "team/a:b@c+d=e,f.g~h"),
    ("max-length", "x" * MAX_CLUSTER_ID_LENGTH),
]

REFUSED = [
    ("empty", "", "is empty"),
    ("inner-space", "my cluster", "space"),
    ("leading-space", " kubedemy", "space"),
    ("tab", "kube\tdemy", "control"),
    ("newline", "kubedemy\n", "control"),
    ("nul", "kube\x00demy", "control"),
    ("del", "kube\x7fdemy", "control"),
    ("non-ascii", "kübedemy", "non-ASCII"),
    ("lone-surrogate", "kube\udcffdemy", "non-ASCII"),
    ("too-long", "x" * (MAX_CLUSTER_ID_LENGTH + 1), "characters long"),
]


@pytest.mark.parametrize(("case", "value"), ACCEPTED, ids=[c for c, _ in ACCEPTED])
def test_accepted(case: str, value: str) -> None:
    assert check_cluster_id(value) == value


@pytest.mark.parametrize(("case", "value", "why"), REFUSED, ids=[c for c, _, _ in REFUSED])
def test_refused_names_the_source_and_the_reason(case: str, value: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_cluster_id(value, source="--cluster")
    message = caught.value.message
    assert caught.value.exit_code == 2
    assert "(--cluster)" in message
    assert why in message
    assert "printable ASCII characters without spaces" in message
    # The message quotes at most a bounded, escaped prefix of the value.
    assert "\n" not in message
    assert "\x00" not in message
    assert len(message) < 300
