"""Which source decides a principal's identity under a cluster's authentication mode (pure).

EKS reads two sources of IAM-to-Kubernetes mappings, and the cluster's
``accessConfig.authenticationMode`` says which ("Set cluster authentication mode",
:data:`MODES_URL`):

* ``CONFIG_MAP``: only the ``aws-auth`` ConfigMap; there are no access entries;
* ``API_AND_CONFIG_MAP``: both; when the principal has an access entry, the access entry is
  used and its aws-auth row is not (the page: access entries take precedence when a principal
  is in both);
* ``API``: only access entries; aws-auth is not read at all.

The mode only moves forward (CONFIG_MAP -> API_AND_CONFIG_MAP -> API). :func:`decide` takes what
each source would make of one principal (already matched and rendered) and answers as EKS does,
saying which source decided and what the other one would have said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubeiam.eks.access_entries import PolicyGrant
from kubeiam.eks.access_policies import AuthenticationMode

MODES_URL = "https://docs.aws.amazon.com/eks/latest/userguide/grant-k8s-access.html#set-cam"


class Source(StrEnum):
    """Where an identity came from."""

    ACCESS_ENTRY = "access-entry"
    AWS_AUTH = "aws-auth"


@dataclass(frozen=True, slots=True)
class Candidate:
    """What one source makes of the principal: matched or not, and to what."""

    source: Source
    matched: bool
    #: The entry that matched, described (``access entry arn:...``, ``mapRoles line 3 ...``).
    entry: str = ""
    username: str = ""
    groups: tuple[str, ...] = ()
    policies: tuple[PolicyGrant, ...] = ()
    #: Why a source could not be read (not readable is not "no match"); "" when it was read.
    unreadable: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The identity EKS gives the principal, and which source decided."""

    mode: AuthenticationMode
    source: Source | None
    entry: str = ""
    username: str = ""
    groups: tuple[str, ...] = ()
    policies: tuple[PolicyGrant, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def matched(self) -> bool:
        return self.source is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "authenticationMode": self.mode.value,
            "source": self.source.value if self.source is not None else None,
            "entry": self.entry or None,
            "username": self.username or None,
            "groups": list(self.groups),
            "accessPolicies": [p.to_json() for p in self.policies],
            "notes": list(self.notes),
        }


def reads_access_entries(mode: AuthenticationMode) -> bool:
    return mode is not AuthenticationMode.CONFIG_MAP


def reads_aws_auth(mode: AuthenticationMode) -> bool:
    return mode is not AuthenticationMode.API


def decide(
    mode: AuthenticationMode, entry: Candidate | None, aws_auth: Candidate | None
) -> Decision:
    """The identity under ``mode``: ``entry`` is the access entries' answer, ``aws_auth`` the
    ConfigMap's (None when that source was not consulted)."""
    notes: list[str] = []
    winner: Candidate | None = None
    entry_hit = entry is not None and entry.matched and reads_access_entries(mode)
    auth_hit = aws_auth is not None and aws_auth.matched and reads_aws_auth(mode)
    if entry_hit:
        winner = entry
        if auth_hit and aws_auth is not None:
            notes.append(
                f"aws-auth also maps this principal ({aws_auth.entry}: username "
                f"{aws_auth.username}); in {mode.value} the access entry wins, that row is "
                "not used"
            )
    elif auth_hit:
        winner = aws_auth
    if aws_auth is not None and aws_auth.matched and not reads_aws_auth(mode):
        notes.append(
            f"aws-auth maps this principal ({aws_auth.entry}), but in mode API EKS no longer "
            "reads aws-auth"
        )
    for source in (entry, aws_auth):
        if source is None or not source.unreadable:
            continue
        if winner is not None and winner.source is Source.ACCESS_ENTRY:
            notes.append(
                f"{source.source.value} was not read ({source.unreadable}); it cannot change "
                f"this answer: in {mode.value} the access entry wins"
            )
        else:
            notes.append(f"{source.source.value} could not be read: {source.unreadable}")
    if not reads_access_entries(mode):
        notes.append(
            "the cluster is in mode CONFIG_MAP: EKS reads aws-auth only (no access entries)"
        )
    if winner is None:
        return Decision(mode, None, notes=tuple(notes))
    return Decision(
        mode,
        winner.source,
        winner.entry,
        winner.username,
        winner.groups,
        winner.policies,
        tuple(notes),
    )
