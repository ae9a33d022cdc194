"""Which source decides under each authentication mode (kubeiam.eks.modes), as a table."""

from __future__ import annotations

import pytest

from kubeiam.eks.access_entries import PolicyGrant
from kubeiam.eks.access_policies import AuthenticationMode
from kubeiam.eks.modes import Candidate, Source, decide

VIEW = PolicyGrant("arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy")
ENTRY = Candidate(Source.ACCESS_ENTRY, True, "access entry X", "entry-user", ("devs",), (VIEW,))
NO_ENTRY = Candidate(Source.ACCESS_ENTRY, False)
ROW = Candidate(Source.AWS_AUTH, True, "mapRoles line 3", "row-user", ("ops",))
NO_ROW = Candidate(Source.AWS_AUTH, False)
UNREADABLE_ROW = Candidate(Source.AWS_AUTH, False, unreadable="no kubeconfig")

CONFIG_MAP = AuthenticationMode.CONFIG_MAP
BOTH = AuthenticationMode.API_AND_CONFIG_MAP
API = AuthenticationMode.API

#: mode, access entries' answer, aws-auth's answer -> source, username, a note that must appear
CASES = [
    ("configmap-row", CONFIG_MAP, None, ROW, Source.AWS_AUTH, "row-user", "aws-auth only"),
    ("configmap-nothing", CONFIG_MAP, None, NO_ROW, None, "", "aws-auth only"),
    ("both-entry-wins-over-row", BOTH, ENTRY, ROW, Source.ACCESS_ENTRY, "entry-user", "wins"),
    ("both-entry-alone", BOTH, ENTRY, NO_ROW, Source.ACCESS_ENTRY, "entry-user", None),
    ("both-row-when-no-entry", BOTH, NO_ENTRY, ROW, Source.AWS_AUTH, "row-user", None),
    ("both-nothing", BOTH, NO_ENTRY, NO_ROW, None, "", None),
    ("both-row-unreadable", BOTH, NO_ENTRY, UNREADABLE_ROW, None, "", "could not be read"),
    (
        "both-row-unreadable-entry-wins",
        BOTH,
        ENTRY,
        UNREADABLE_ROW,
        Source.ACCESS_ENTRY,
        "entry-user",
        "cannot change this answer",
    ),
    ("api-entry", API, ENTRY, None, Source.ACCESS_ENTRY, "entry-user", None),
    ("api-row-ignored", API, NO_ENTRY, ROW, None, "", "no longer reads aws-auth"),
    ("api-entry-and-row", API, ENTRY, ROW, Source.ACCESS_ENTRY, "entry-user", "no longer reads"),
]


@pytest.mark.parametrize(
    ("mode", "entry", "row", "source", "username", "note"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(
    mode: AuthenticationMode,
    entry: Candidate | None,
    row: Candidate | None,
    source: Source | None,
    username: str,
    note: str | None,
) -> None:
    decision = decide(mode, entry, row)
    assert decision.source is source
    assert decision.matched is (source is not None)
    assert decision.username == username
    if source is Source.ACCESS_ENTRY:
        assert decision.policies == (VIEW,)
        assert decision.groups == ("devs",)
    if source is Source.AWS_AUTH:
        assert decision.policies == ()
    if note is not None:
        assert any(note in n for n in decision.notes), decision.notes
    else:
        assert decision.notes == ()
    assert decision.to_json()["authenticationMode"] == mode.value


def test_an_entry_never_decides_in_config_map_mode() -> None:
    """CONFIG_MAP has no access-entry API: an entry answer given anyway is not used."""
    decision = decide(CONFIG_MAP, ENTRY, NO_ROW)
    assert decision.source is None
