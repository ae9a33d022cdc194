"""The server-side deny list: principals refused outright, for incidents (pure).

STS answers GetCallerIdentity even for credentials an IAM deny ("revoke active sessions") has cut
off, so a token signed with stolen role credentials keeps working through any authenticator that
only asks STS. The deny list closes that gap on the webhook's side::

    denyList:
      userARNs: [arn:aws:iam::111122223333:user/mallory]
      roleARNs: [arn:aws:iam::111122223333:role/Admin]          # every session of the role
      sessionNames: [jane@example.com]
      accessKeyIDs:
      - ASIAEXAMPLESTOLEN                                       # exactly those credentials
      - {id: AKIAEXAMPLELEAKED, signedBefore: "2026-12-06T22:00:00Z"}

Each list takes plain strings or mappings with the value (``arn``, ``name`` or ``id``) and an
optional ``signedBefore``. What can be known about time: STS's answer does not say when the
credentials were issued, and the token says only when it was signed (``X-Amz-Date``), which is
*after* the credentials were issued, never before. So ``signedBefore`` refuses tokens signed
before that instant (the right tool for a leaked *token*, which stays valid for 15 minutes); it
cannot refuse "credentials issued before T", because a thief signs fresh tokens. For stolen
credentials list their access key id (it names exactly those credentials) or the whole role.

ARNs are compared as mappings compare them (case-insensitively; a role's IAM path removed, a
user's kept); session names and access key ids exactly.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeiam.arn import PrincipalKind, arn_key, canonicalize_mapping_arn
from kubeiam.errors import ConfigError, MappingError
from kubeiam.identity import Identity
from kubeiam.token.protocol import TOKEN_LIFETIME_SECONDS


class DenyKind(enum.Enum):
    """The four lists; the value is the config key and the metric's ``list`` label."""

    USER_ARN = "userARNs"
    ROLE_ARN = "roleARNs"
    SESSION_NAME = "sessionNames"
    ACCESS_KEY_ID = "accessKeyIDs"


#: Lower-cased config key -> list, and the key naming the value in an entry's mapping form.
_KINDS = {kind.value.lower(): kind for kind in DenyKind}
_VALUE_KEY = {
    DenyKind.USER_ARN: "arn",
    DenyKind.ROLE_ARN: "arn",
    DenyKind.SESSION_NAME: "name",
    DenyKind.ACCESS_KEY_ID: "id",
}
_SIGNED_BEFORE = "signedbefore"
#: An access key id is 16 to 128 characters of [A-Z0-9] (IAM's AccessKeyId type).
_KEY_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


@dataclass(frozen=True, slots=True)
class DenyRule:
    """One entry: refuse ``kind`` = ``value`` (for tokens signed before ``signed_before``)."""

    kind: DenyKind
    #: As written (for logs).
    value: str
    #: The compared form (ARNs canonical and lower-cased).
    key: str
    #: Unix time; None refuses every token of the principal.
    signed_before: float | None = None

    def describe(self) -> str:
        return f"{self.kind.value} {self.value}"


@dataclass(frozen=True, slots=True)
class DenyList:
    """The rules, indexed by (list, compared value)."""

    rules: tuple[DenyRule, ...] = ()
    _index: Mapping[tuple[DenyKind, str], tuple[DenyRule, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, rules: Sequence[DenyRule]) -> DenyList:
        index: dict[tuple[DenyKind, str], tuple[DenyRule, ...]] = {}
        for rule in rules:
            index[(rule.kind, rule.key)] = (*index.get((rule.kind, rule.key), ()), rule)
        return cls(tuple(rules), index)

    def __len__(self) -> int:
        return len(self.rules)

    def __add__(self, other: DenyList) -> DenyList:
        return DenyList.of(self.rules + other.rules)

    def match(self, identity: Identity) -> DenyRule | None:
        """The first rule that refuses ``identity``, or None."""
        if not self.rules:
            return None
        # The token was signed TOKEN_LIFETIME_SECONDS before it expires (token/protocol.py);
        # unknown (0) matches every signedBefore rule: fail closed.
        signed_at = identity.expires_at - TOKEN_LIFETIME_SECONDS if identity.expires_at else None
        for kind, key in _candidates(identity):
            for rule in self._index.get((kind, key), ()):
                if (
                    rule.signed_before is None
                    or signed_at is None
                    or signed_at < rule.signed_before
                ):
                    return rule
        return None


def _candidates(identity: Identity) -> list[tuple[DenyKind, str]]:
    out = [(DenyKind.ACCESS_KEY_ID, identity.access_key_id)]
    if identity.kind is PrincipalKind.USER:
        out.append((DenyKind.USER_ARN, arn_key(identity.canonical_arn)))
    elif identity.kind is PrincipalKind.ASSUMED_ROLE:
        out.append((DenyKind.ROLE_ARN, arn_key(identity.canonical_arn)))
    if identity.session_name:
        out.append((DenyKind.SESSION_NAME, identity.session_name))
    return out


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_timestamp(where: str, value: Any) -> float:
    """An RFC 3339 instant (a string, or the datetime YAML makes of one) -> unix time."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = dt.datetime.min  # no tzinfo: refused just below
        if moment.tzinfo is None:
            raise ConfigError(
                f"{where}: {value!r} is not a timestamp with a time zone",
                hint='write it as RFC 3339 UTC, e.g. "2026-12-06T22:00:00Z"',
            )
    else:
        raise ConfigError(
            f"{where} must be a timestamp", hint='e.g. signedBefore: "2026-12-06T22:00:00Z"'
        )
    if moment.tzinfo is None:  # YAML timestamps without an offset are UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _compared(where: str, kind: DenyKind, value: str) -> tuple[str, str]:
    """(as written, compared form) of one value, or ConfigError naming ``where``."""
    text = value.strip()
    if not text:
        raise ConfigError(f"{where} is empty")
    if kind in (DenyKind.USER_ARN, DenyKind.ROLE_ARN):
        try:
            arn = canonicalize_mapping_arn(text)
        except MappingError as exc:
            raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None
        wanted = "user" if kind is DenyKind.USER_ARN else "role"
        if arn.resource_type != wanted:
            raise ConfigError(
                f"{where}: {text!r} is not an IAM {wanted} ARN",
                hint=f"list it under {'roleARNs' if wanted == 'user' else 'userARNs'}",
            )
        return text, arn_key(arn.canonical)
    if kind is DenyKind.ACCESS_KEY_ID and (
        not 16 <= len(text) <= 128 or not set(text) <= _KEY_ID_CHARS
    ):
        raise ConfigError(
            f"{where}: {text!r} is not an access key id",
            hint="an access key id is 16-128 upper-case letters and digits (AKIA..., ASIA...)",
        )
    return text, text


def _rule(where: str, kind: DenyKind, item: Any) -> DenyRule:
    signed_before: float | None = None
    if isinstance(item, Mapping):
        entry = {str(k).lower(): v for k, v in item.items()}
        name = _VALUE_KEY[kind]
        unknown = set(entry) - {name, _SIGNED_BEFORE}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {sorted(unknown)[0]!r}",
                hint=f"an entry has {name} and, optionally, signedBefore",
            )
        if name not in entry:
            raise ConfigError(f"{where}: {name} is missing", hint=f"write {{{name}: ...}}")
        item, raw_time = entry[name], entry.get(_SIGNED_BEFORE)
        if raw_time is not None:
            signed_before = parse_timestamp(f"{where}.signedBefore", raw_time)
    if not isinstance(item, str):
        raise ConfigError(f"{where} must be a string")
    value, key = _compared(where, kind, item)
    return DenyRule(kind, value, key, signed_before)


def parse_deny_list(doc: Any, *, where: str = "denyList") -> DenyList:
    """``{userARNs: [...], roleARNs: [...], sessionNames: [...], accessKeyIDs: [...]}`` (keys
    case-insensitive; None or empty is an empty list) -> :class:`DenyList`."""
    if doc is None:
        return DenyList()
    if not isinstance(doc, Mapping):
        raise ConfigError(
            f"{where} must be a mapping of userARNs, roleARNs, sessionNames and accessKeyIDs"
        )
    rules: list[DenyRule] = []
    for raw_key, items in doc.items():
        kind = _KINDS.get(str(raw_key).lower())
        if kind is None:
            raise ConfigError(
                f"{where}: unknown list {raw_key!r}",
                hint="use userARNs, roleARNs, sessionNames or accessKeyIDs",
            )
        if items is None:
            continue
        if isinstance(items, str) or not isinstance(items, Sequence):
            raise ConfigError(f"{where}.{kind.value} must be a list")
        rules.extend(
            _rule(f"{where}.{kind.value}[{i}]", kind, item) for i, item in enumerate(items)
        )
    return DenyList.of(rules)
