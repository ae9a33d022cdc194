"""`kubeiam mapping explain`: which entry maps a caller and to what, or why nothing does (pure)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubeiam.arn import (
    ArnParts,
    PrincipalKind,
    arn_key,
    canonicalize_mapping_arn,
    is_iam_role_arn,
    parse_caller_arn,
    split_arn,
    sso_permission_set,
)
from kubeiam.errors import KubeIAMError, MappingError
from kubeiam.identity import Identity
from kubeiam.mapping.chain import DEFAULT_RESERVED_PREFIX_CONFIG
from kubeiam.mapping.model import (
    AccountMapping,
    EntryKind,
    MappingSet,
    RoleMapping,
    SSOMapping,
    UserMapping,
)
from kubeiam.mapping.templates import render_partially, reserved_prefix_of

if TYPE_CHECKING:
    from kubeiam.admin.editing.store import MappingStore


@dataclass(frozen=True, slots=True)
class Explanation:
    """What one store's mappings make of a caller."""

    backend: str
    target: str
    arn: str
    canonical_arn: str
    matched: bool
    entry: str = ""
    username: str = ""
    groups: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "target": self.target,
            "arn": self.arn,
            "canonicalArn": self.canonical_arn,
            "matched": self.matched,
            "entry": self.entry or None,
            "username": self.username or None,
            "groups": list(self.groups),
            "notes": list(self.notes),
        }


def identity_for(arn: str, *, session_name: str = "") -> tuple[Identity, list[str]]:
    """The identity a caller with ``arn`` would have (a role ARN becomes a session of it)."""
    notes: list[str] = []
    if is_iam_role_arn(arn):
        mapped = canonicalize_mapping_arn(arn)
        if mapped.had_path:
            notes.append(
                f"{arn} has an IAM path; STS reports the role's sessions without it, so it is "
                f"looked up as {mapped.canonical}"
            )
        name = mapped.canonical.rsplit("/", 1)[1]
        session = session_name
        caller = f"arn:{mapped.partition}:sts::{mapped.account_id}:assumed-role/{name}/{session}"
        return (
            Identity(
                arn=caller if session else mapped.canonical,
                canonical_arn=mapped.canonical,
                account_id=mapped.account_id,
                user_id="",
                session_name=session,
                access_key_id="",
                kind=PrincipalKind.ASSUMED_ROLE,
                partition=mapped.partition,
                principal_id="",
            ),
            notes,
        )
    try:
        principal = parse_caller_arn(arn)
    except KubeIAMError as exc:
        raise MappingError(
            f"{arn!r} is not an IAM user, role or STS caller ARN ({exc.message})",
            hint="pass an ARN like arn:aws:iam::111122223333:role/Name or "
            "arn:aws:sts::111122223333:assumed-role/Name/session",
        ) from None
    if session_name and principal.kind is not PrincipalKind.ASSUMED_ROLE:
        notes.append("--session-name only applies to roles; ignored")
    return (
        Identity(
            arn=arn,
            canonical_arn=principal.canonical_arn,
            account_id=principal.account_id,
            user_id="",
            session_name=principal.session_name,
            access_key_id="",
            kind=principal.kind,
            partition=principal.partition,
            principal_id="",
        ),
        notes,
    )


def explain(
    mappings: MappingSet,
    arn: str,
    *,
    backend: str,
    target: str,
    session_name: str = "",
    access_key_id: str = "",
    iam_groups: frozenset[str] | None = None,
) -> Explanation:
    """Which entry maps ``arn`` and to what, or why nothing does.

    ``iam_groups``: the caller's IAM group ARNs when known (``whoami``); None when not, in which
    case ``mapGroups`` entries of the caller's account are listed as "would match if a member".
    """
    identity, notes = identity_for(arn, session_name=session_name)
    match = mappings.lookup(identity, frozenset(arn_key(g) for g in iam_groups or ()))
    if (
        iam_groups is None
        and identity.kind is PrincipalKind.USER
        and (match is None or match.entry.kind is EntryKind.ACCOUNT)
    ):
        for group in mappings.iam_groups.values():
            if group.account_id == identity.account_id:
                notes.append(
                    f"would match {group.describe()} if the caller is a member of IAM group "
                    f"{group.grouparn} (the server asks iam:ListGroupsForUser)"
                )
    if match is None:
        notes += _near_misses(mappings, identity)
        return Explanation(backend, target, arn, identity.canonical_arn, False, notes=tuple(notes))
    entry = match.entry
    if isinstance(entry, RoleMapping) and entry.had_path:
        notes.append(
            f"the entry is written with an IAM path ({entry.rolearn}); it matches through path "
            "stripping (aws-iam-authenticator never matched such entries)"
        )
    written = entry.display_name
    if (
        isinstance(entry, RoleMapping | UserMapping)
        and written.startswith("arn:")
        and canonicalize_mapping_arn(written).canonical != identity.canonical_arn
        and not (isinstance(entry, RoleMapping) and entry.had_path)
    ):
        notes.append(f"matched case-insensitively: the entry says {written}")
    if isinstance(entry, AccountMapping):
        notes.append(
            f"no entry names this ARN; account {entry.account_id} is mapped as a whole, so the "
            "username is the ARN and there are no groups"
        )
    if match.templated:
        caller = dataclasses.replace(identity, access_key_id=access_key_id)
        username = render_partially(match.username, caller)
        groups = tuple(render_partially(g, caller) for g in match.groups)
    else:
        username, groups = match.username, match.groups
    text = " ".join((username, *groups))
    if "{{EC2PrivateDNSName}}" in text:
        notes.append(
            "{{EC2PrivateDNSName}} is the private DNS name of the EC2 instance named by the "
            "session; the server looks it up (ec2:DescribeInstances)"
        )
    if "{{SessionName}}" in text or "{{SessionNameRaw}}" in text:
        notes.append("pass --session-name to see {{SessionName}} rendered")
    if "{{AccessKeyID}}" in text:
        notes.append("{{AccessKeyID}} is the access key id that signed the caller's token")
    reserved = DEFAULT_RESERVED_PREFIX_CONFIG.get(backend, ())
    prefix = reserved_prefix_of(username, reserved)
    if prefix is not None:
        notes.append(
            f"DENIED: the username starts with {prefix!r}, which backend {backend} reserves"
        )
    return Explanation(
        backend,
        target,
        arn,
        identity.canonical_arn,
        True,
        entry.describe(),
        username,
        groups,
        tuple(notes),
    )


def _near_misses(mappings: MappingSet, identity: Identity) -> list[str]:
    notes: list[str] = []
    canonical = identity.canonical_arn
    parts = split_arn(canonical) or ArnParts("", "", "", "", canonical)
    kind, name = parts.resource_type, parts.resource_path
    short = name.rsplit("/", 1)[-1].lower()
    for entry in mappings.entries:
        if isinstance(entry, RoleMapping | UserMapping) and entry.canonical_arn:
            e_parts = split_arn(entry.canonical_arn)
            if e_parts is None:
                continue
            e_kind = e_parts.resource_type
            e_short = e_parts.resource_path.rsplit("/", 1)[-1].lower()
            if e_short != short:
                continue
            if e_parts.account != identity.account_id:
                notes.append(
                    f"near miss: {entry.describe()} is for account {e_parts.account}, the caller "
                    f"is in account {identity.account_id}"
                )
            elif e_kind != kind:
                notes.append(
                    f"near miss: {entry.describe()} maps an IAM {e_kind} of that name, the "
                    f"caller is a {kind}"
                )
            elif (
                isinstance(entry, UserMapping) and entry.canonical_arn.lower() != canonical.lower()
            ):
                notes.append(
                    f"near miss: {entry.describe()} has another IAM path ({entry.userarn}); "
                    "user ARNs keep their path"
                )
        elif isinstance(entry, SSOMapping) and kind == "role":
            found = sso_permission_set(name.rsplit("/", 1)[-1])
            if found and found.lower() == entry.permission_set_name.lower():
                notes.append(
                    f"near miss: {entry.describe()} is for account {entry.account_id} "
                    f"(partition {entry.partition}), the caller is in account "
                    f"{identity.account_id} (partition {identity.partition})"
                )
    sso_role = sso_permission_set(name.rsplit("/", 1)[-1]) if kind == "role" else None
    if sso_role is not None:
        notes.append(
            f"this is an IAM Identity Center role: map its permission set with `add-sso "
            f"{sso_role} --account {identity.account_id}` rather than the role ARN, "
            "whose suffix changes when the set is re-provisioned"
        )
    if identity.account_id not in mappings.accounts:
        notes.append(f"account {identity.account_id} is not mapped as a whole (mapAccounts)")
    notes.insert(0, f"no entry maps {canonical}")
    return notes


def explain_store(
    store: MappingStore,
    mappings: MappingSet,
    arn: str,
    *,
    session_name: str = "",
    iam_groups: frozenset[str] | None = None,
) -> Explanation:
    """:func:`~kubeiam.admin.editing.explain.explain` of ``mappings`` read from ``store``,
    named by the store's backend and target."""
    return explain(
        mappings,
        arn,
        backend=store.backend,
        target=store.target,
        session_name=session_name,
        iam_groups=iam_groups,
    )
