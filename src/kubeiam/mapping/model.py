"""Identity mappings: entries, their validation, and an indexed set to look callers up in (pure).

Entries come from four places (the backends) in the aws-auth shape (protocol.md section 4):
``mapRoles`` (:class:`RoleMapping`, or :class:`SSOMapping` when the entry has ``sso:`` instead of
``rolearn:``), ``mapUsers`` (:class:`UserMapping`), ``mapAccounts`` (:class:`AccountMapping`)
and the kubeiam extension ``mapGroups`` (:class:`GroupMapping`: every IAM user who is a member
of one IAM group).
Entry keys are case-insensitive (``roleARN``, ``rolearn`` and ``RoleArn`` are one key), as in the
reference, whose JSON decoding ignored case.

Matching
    Case-insensitive on the caller's *canonical* ARN (an assumed role's session is dropped, see
    :mod:`kubeiam.arn`). A role ARN written with an IAM path (``role/team/Admin``) is indexed
    without it, because STS never reports the path; the loader warns so the author knows.

Precedence (one rule, for every backend)
    When several entries of one backend could match a caller, the first of these wins:

    1. an exact ``mapUsers`` entry for the caller's canonical ARN;
    2. an exact ``mapRoles`` entry for the caller's canonical role ARN;
    3. an ``sso`` permission-set entry matching the caller's ``AWSReservedSSO_<Set>_<16 hex>`` role;
    4. ``mapGroups`` entries for IAM groups the caller (an IAM user; never a role, federated user
       or root) is a member of, as the server's resolver lists them (``iam:ListGroupsForUser``).
       When several match, the **first in load order** gives the username and the groups are the
       union of every matching entry's groups (first-seen order, duplicates dropped);
    5. a ``mapAccounts`` entry for the caller's account: username = the canonical ARN, no groups.

    Users and roles never share a canonical ARN, so 1 and 2 never compete; an exact role entry
    shadows an SSO entry for the same role (the loader warns). Between backends, the chain's order
    decides (:mod:`kubeiam.mapping.chain`).

Duplicates
    Two entries with the same key (same canonical ARN, same SSO set, same account) are reported
    with both locations: identical ones are a warning (the first is kept), conflicting ones (a
    different username, groups or userid) are an error, and a loader refuses the whole version:
    the reference let whichever came last win, which has silently dropped ``system:masters``.

SSO permission sets
    ``sso: {permissionSetName, accountID, partition}`` matches roles named
    ``AWSReservedSSO_<permissionSetName>_<16 hex digits>`` in that account, with or without the
    ``aws-reserved/sso.amazonaws.com/...`` path. Two reference defects are not ported: an explicit
    ``partition`` never matched there (the pattern was built with an empty partition), and a set
    named ``Admin`` also matched ``Admin_ReadOnly`` (the pattern ended in ``_*``). Here the set name
    is exactly what precedes the final ``_<16 hex>``, and the partition defaults to ``aws``.

Strict UserId matching (DynamicFile's ``dynamicfileUserIDStrict``)
    Entries are keyed by their ``userid`` (the role or user id STS reports: ``AROA...``,
    ``AIDA...``), and an entry that also names an ARN matches only when the caller's canonical
    ARN equals it.
"""

from __future__ import annotations

import copy
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias, TypeVar

from kubeiam.arn import (
    ACCOUNT_ID,
    INVALID_ARN,
    PARTITION_NAME,
    PrincipalKind,
    arn_account,
    arn_key,
    canonicalize_mapping_arn,
    is_root_or_federated_user_arn,
    parse_group_arn,
    split_arn,
    sso_permission_set,
)
from kubeiam.case_insensitive import fold_keys
from kubeiam.errors import DUPLICATE_KEY, MappingError
from kubeiam.identity import Identity
from kubeiam.mapping.templates import (
    RESERVED_GROUP_PREFIXES,
    reserved_prefix_of,
    template_names,
    validate_template,
)
from kubeiam.partitions import PARTITIONS

ROLES = "mapRoles"
USERS = "mapUsers"
ACCOUNTS = "mapAccounts"
GROUPS = "mapGroups"
#: The sections in the order the server reads them (and :func:`load_entries` takes them).
SECTIONS = (ROLES, USERS, ACCOUNTS, GROUPS)

#: Permission set names as IAM Identity Center allows them.
_PERMISSION_SET_NAME = re.compile(r"[\w+=,.@-]{1,32}", re.ASCII)
#: Entries listing more than this many problems are cut short in error messages.
_MAX_LISTED_ISSUES = 20

#: Longest username or group (template or rendered) an entry may hold. Kubernetes sets no limit,
#: but each name travels in every audit event, impersonation header and RBAC subject; the longest
#: real one (an IAM ARN as username: 2048 characters at most, 100 or so in practice, plus a prefix)
#: fits, and a runaway paste or generator does not.
MAX_NAME_LENGTH = 2048
#: Most groups one entry may grant. The aws-auth entries in the wild hold a handful; each one is
#: sent with every request the user makes, so hundreds mean a generator went wrong.
MAX_GROUPS_PER_ENTRY = 100
#: Placeholders that render from a role session: an IAM user, the account root and a federated
#: user have none (STS reports no session), so in ``mapUsers`` and ``mapGroups`` they would render
#: empty (or, ``{{EC2PrivateDNSName}}``, deny) for every caller.
SESSION_TEMPLATES = frozenset({"SessionName", "SessionNameRaw", "EC2PrivateDNSName"})

#: The group Kubernetes grants full cluster-admin, which no RBAC rule can restrict.
MASTERS = "system:masters"
#: Groups and username prefix that mark a node entry: removing it locks nodes out.
NODE_GROUPS = frozenset({"system:nodes", "system:bootstrappers"})
NODE_USERNAME_PREFIX = "system:node:"

_ROLE_KEYS = frozenset({"rolearn", "username", "groups", "sso", "userid"})
_USER_KEYS = frozenset({"userarn", "username", "groups", "userid"})
_SSO_KEYS = frozenset({"permissionsetname", "accountid", "partition"})
_GROUP_KEYS = frozenset({"grouparn", "username", "groups"})


class EntryKind(enum.Enum):
    """The kinds of entry, in precedence order."""

    USER = "user"
    ROLE = "role"
    SSO = "sso"
    GROUP = "group"
    ACCOUNT = "account"


class Severity(enum.Enum):
    """How bad a load issue is."""

    #: The entry is used, but read this (a role path was dropped, an identical duplicate).
    WARNING = "warning"
    #: The entry is invalid and left out; the rest of the version is used.
    SKIPPED = "skipped"
    #: The version as a whole cannot be used (conflicting duplicates, unreadable YAML).
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Location:
    """Where an entry was written: ``mapRoles line 12``, ``mapUsers[3]``, ``IAMIdentityMapping``."""

    section: str
    index: int | None = None
    #: 1-based line inside the section's text, when the reader knows it.
    line: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.section} line {self.line}"
        if self.index is not None:
            return f"{self.section}[{self.index}]"
        return self.section


@dataclass(frozen=True, slots=True)
class LoadIssue:
    """One problem found while loading, with its location."""

    severity: Severity
    location: Location
    message: str
    #: What kind of problem, named where it was found (the lint code; see the constants below).
    code: str = "invalid-entry"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


# The codes of load issues (``kubeiam mapping lint`` shows them; a script may match on them).
#: An entry the loader cannot read (a wrong type, a missing key ...): the catch-all.
INVALID_ENTRY = "invalid-entry"
#: A username or group the loader refuses (control characters, too long, too many groups).
INVALID_NAME = "invalid-name"
# INVALID_ARN (a role or user ARN that is not one) comes from kubeiam.arn, UNKNOWN_TEMPLATE (a
# placeholder kubeiam does not know, or stray braces) from kubeiam.mapping.templates.
#: An account id that is not 12 digits.
INVALID_ACCOUNT = "invalid-account"
#: A key the loader ignores (a typo loses what it meant).
UNKNOWN_KEY = "unknown-key"
#: A role ARN written with an IAM path, which STS never reports.
ROLE_PATH = "role-path"
#: A session placeholder in a user or IAM group entry: it never renders for those callers.
SESSION_TEMPLATE = "session-template"
#: A placeholder inside a reserved group prefix: every rendering is refused, the entry only denies.
RESERVED_GROUP = "reserved-group"
#: An identical entry for the same key (the first is kept).
DUPLICATE = "duplicate"
#: A different entry for the same key (the version is refused).
CONFLICT = "conflict"
#: A role entry that wins over a permission-set entry for the same role.
SHADOWED = "shadowed"


@dataclass(frozen=True, slots=True)
class Problem:
    """A warning found while parsing one entry: its code and what to say."""

    code: str
    message: str

    def __str__(self) -> str:
        return self.message


def _where(location: Location | None) -> str:
    return f"{location}: " if location is not None else ""


def _describe_arn(location: Location | None, key: str, arn: str, userid: str) -> str:
    """How a role or user entry is named in messages: its ARN key and value, and its userid."""
    return f"{_where(location)}{key} {arn or '(none)'}" + (f" userid {userid}" if userid else "")


class _Grants:
    """What every entry with a username and groups tells about them (all but accounts)."""

    __slots__ = ()
    username: str
    groups: tuple[str, ...]

    @property
    def is_node(self) -> bool:
        """True for entries that let nodes join (``system:node:*`` usernames or node groups)."""
        return self.username.startswith(NODE_USERNAME_PREFIX) or bool(
            set(self.groups) & NODE_GROUPS
        )

    @property
    def grants_masters(self) -> bool:
        """True for entries granting :data:`MASTERS` (cluster-admin)."""
        return MASTERS in self.groups


@dataclass(frozen=True, slots=True)
class RoleMapping(_Grants):
    """A ``mapRoles`` entry for one IAM role."""

    kind: ClassVar[EntryKind] = EntryKind.ROLE
    #: The ARN as written (possibly with a path); empty only for userid-only strict entries.
    rolearn: str
    username: str
    groups: tuple[str, ...] = ()
    #: The ARN STS reports for the role's sessions (path removed).
    canonical_arn: str = ""
    had_path: bool = False
    userid: str = ""
    location: Location | None = field(default=None, compare=False)

    @property
    def entry_key(self) -> tuple[str, ...]:
        """What identifies the entry across versions of a document."""
        return ("role", arn_key(self.canonical_arn) or self.userid)

    @property
    def display_name(self) -> str:
        """What the entry maps, for messages."""
        return self.rolearn

    @property
    def account_id(self) -> str:
        return arn_account(self.canonical_arn)

    def describe(self) -> str:
        return _describe_arn(self.location, "rolearn", self.rolearn, self.userid)


@dataclass(frozen=True, slots=True)
class UserMapping(_Grants):
    """A ``mapUsers`` entry for one IAM user (or the account root, or a federated user)."""

    kind: ClassVar[EntryKind] = EntryKind.USER
    userarn: str
    username: str
    groups: tuple[str, ...] = ()
    canonical_arn: str = ""
    userid: str = ""
    location: Location | None = field(default=None, compare=False)

    @property
    def entry_key(self) -> tuple[str, ...]:
        return ("user", arn_key(self.canonical_arn) or self.userid)

    @property
    def display_name(self) -> str:
        return self.userarn

    @property
    def account_id(self) -> str:
        return arn_account(self.canonical_arn)

    def describe(self) -> str:
        return _describe_arn(self.location, "userarn", self.userarn, self.userid)


@dataclass(frozen=True, slots=True)
class SSOMapping(_Grants):
    """A ``mapRoles`` entry with ``sso:``: every role of one Identity Center permission set."""

    kind: ClassVar[EntryKind] = EntryKind.SSO
    permission_set_name: str
    account_id: str
    username: str
    groups: tuple[str, ...] = ()
    partition: str = "aws"
    location: Location | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.partition, self.account_id, self.permission_set_name.lower())

    @property
    def entry_key(self) -> tuple[str, ...]:
        return ("sso", *self.key)

    @property
    def display_name(self) -> str:
        return f"permission set {self.permission_set_name} in account {self.account_id}"

    def describe(self) -> str:
        return (
            f"{_where(self.location)}sso permission set {self.permission_set_name} in "
            f"{self.partition} account {self.account_id}"
        )


@dataclass(frozen=True, slots=True)
class AccountMapping:
    """A ``mapAccounts`` entry: any principal of the account, named by its canonical ARN."""

    kind: ClassVar[EntryKind] = EntryKind.ACCOUNT
    account_id: str
    location: Location | None = field(default=None, compare=False)

    @property
    def entry_key(self) -> tuple[str, ...]:
        return ("account", self.account_id)

    @property
    def display_name(self) -> str:
        return f"account {self.account_id}"

    @property
    def is_node(self) -> bool:
        return False

    @property
    def grants_masters(self) -> bool:
        return False

    def describe(self) -> str:
        return f"{_where(self.location)}account {self.account_id}"


@dataclass(frozen=True, slots=True)
class GroupMapping(_Grants):
    """A ``mapGroups`` entry: every IAM user who is a member of one IAM group."""

    kind: ClassVar[EntryKind] = EntryKind.GROUP
    #: The group ARN as written, with its path (ListGroupsForUser reports the path too).
    grouparn: str
    username: str
    groups: tuple[str, ...] = ()
    account_id: str = ""
    location: Location | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """The lower-cased ARN entries are matched on (IAM group names are case-insensitive)."""
        return arn_key(self.grouparn)

    @property
    def entry_key(self) -> tuple[str, ...]:
        return ("group", self.key)

    @property
    def display_name(self) -> str:
        return f"IAM group {self.grouparn}"

    def describe(self) -> str:
        return f"{_where(self.location)}grouparn {self.grouparn}"


MappingEntry: TypeAlias = RoleMapping | UserMapping | SSOMapping | GroupMapping | AccountMapping


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The entry that matched a caller, with the username and groups still to be rendered."""

    entry: MappingEntry
    username: str
    groups: tuple[str, ...]
    #: False for account entries: their username is an ARN, never a template.
    templated: bool = True
    #: Further ``mapGroups`` entries whose groups were added (several of the caller's IAM groups).
    also: tuple[GroupMapping, ...] = ()

    def describe(self) -> str:
        text = self.entry.describe()
        if self.also:
            text += " (with " + ", ".join(g.describe() for g in self.also) + ")"
        return text


@dataclass(frozen=True, slots=True)
class MappingSet:
    """Accepted entries, indexed by lower-cased canonical ARN (O(1) lookups)."""

    users: Mapping[str, UserMapping] = field(default_factory=dict)
    roles: Mapping[str, RoleMapping] = field(default_factory=dict)
    sso: Mapping[tuple[str, str, str], SSOMapping] = field(default_factory=dict)
    accounts: Mapping[str, AccountMapping] = field(default_factory=dict)
    by_user_id: Mapping[str, RoleMapping | UserMapping] = field(default_factory=dict)
    match_by_user_id: bool = False
    #: Every accepted entry in load order (for listing and explaining).
    entries: tuple[MappingEntry, ...] = ()
    #: ``mapGroups`` entries by lower-cased group ARN, in load order.
    iam_groups: Mapping[str, GroupMapping] = field(default_factory=dict)
    #: Lower-cased group ARN -> its position in load order.
    _group_order: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.iam_groups and not self._group_order:
            order = {arn: i for i, arn in enumerate(self.iam_groups)}
            object.__setattr__(self, "_group_order", order)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def has_group_entries(self) -> bool:
        return bool(self.iam_groups)

    def lookup(
        self, identity: Identity, iam_groups: frozenset[str] = frozenset()
    ) -> MatchResult | None:
        """The entry that maps ``identity`` under the precedence of the module docstring.

        ``iam_groups``: the lower-cased ARNs of the IAM groups the caller is a member of (only
        ever non-empty for IAM users; the chain asks the resolver only when it has to).
        """
        key = arn_key(identity.canonical_arn)
        if self.match_by_user_id:
            found = self.by_user_id.get(identity.user_id)
            if found is not None and (
                not found.canonical_arn or arn_key(found.canonical_arn) == key
            ):
                return MatchResult(found, found.username, found.groups)
        else:
            user = self.users.get(key)
            if user is not None:
                return MatchResult(user, user.username, user.groups)
            role = self.roles.get(key)
            if role is not None:
                return MatchResult(role, role.username, role.groups)
            sso = self._lookup_sso(key, identity)
            if sso is not None:
                return MatchResult(sso, sso.username, sso.groups)
        group = self.lookup_groups(identity, iam_groups)
        if group is not None:
            return group
        account = self.accounts.get(identity.account_id)
        if account is not None:
            return MatchResult(account, identity.canonical_arn, (), templated=False)
        return None

    def user_id_mismatch(self, identity: Identity) -> RoleMapping | UserMapping | None:
        """In strict mode, the entry holding the caller's userid but naming another ARN."""
        found = self.by_user_id.get(identity.user_id) if self.match_by_user_id else None
        if found is None or not found.canonical_arn:
            return None
        return None if arn_key(found.canonical_arn) == arn_key(identity.canonical_arn) else found

    def lookup_groups(self, identity: Identity, iam_groups: frozenset[str]) -> MatchResult | None:
        """The ``mapGroups`` step alone: first matching entry's username, union of groups."""
        if not iam_groups or not self.iam_groups or identity.kind is not PrincipalKind.USER:
            return None
        # Few groups per user (IAM allows 10), possibly many entries: look each group up, then
        # put the matches back in load order (the index keeps it).
        order = self._group_order
        keys = sorted((arn for arn in iam_groups if arn in order), key=order.__getitem__)
        matched = [
            entry
            for entry in (self.iam_groups[arn] for arn in keys)
            if entry.account_id == identity.account_id
        ]
        if not matched:
            return None
        first = matched[0]
        groups: dict[str, None] = {}
        for entry in matched:
            groups.update(dict.fromkeys(entry.groups))
        return MatchResult(first, first.username, tuple(groups), also=tuple(matched[1:]))

    def _lookup_sso(self, key: str, identity: Identity) -> SSOMapping | None:
        if not self.sso:
            return None
        _, _, role_name = key.partition(":role/")
        permission_set = sso_permission_set(role_name) if role_name else None
        if permission_set is None:
            return None
        return self.sso.get((identity.partition, identity.account_id, permission_set))


EMPTY_MAPPING_SET = MappingSet()


@dataclass(frozen=True, slots=True)
class LoadResult:
    """A :class:`MappingSet` and every issue found while building it."""

    mappings: MappingSet
    issues: tuple[LoadIssue, ...] = ()

    @property
    def errors(self) -> tuple[LoadIssue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.ERROR)

    @property
    def skipped(self) -> tuple[LoadIssue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.SKIPPED)

    @property
    def warnings(self) -> tuple[LoadIssue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        """True when the version may be used (skipped entries are allowed, errors are not)."""
        return not self.errors

    def raise_for_issues(self, *, strict: bool) -> None:
        """Raise :class:`MappingError` on errors, and in ``strict`` mode on skipped entries too."""
        bad = [i for i in self.issues if i.severity is Severity.ERROR]
        if strict:
            bad += [i for i in self.issues if i.severity is Severity.SKIPPED]
        if bad:
            raise MappingError(format_issues(bad), hint="fix the entries named above")


def format_issues(issues: Sequence[LoadIssue]) -> str:
    """One line per issue, cut short after a screenful."""
    lines = [str(i) for i in issues[:_MAX_LISTED_ISSUES]]
    if len(issues) > _MAX_LISTED_ISSUES:
        lines.append(f"... and {len(issues) - _MAX_LISTED_ISSUES} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Parsing one entry


def _lower_keys(raw: object, what: str) -> dict[str, object]:
    if not isinstance(raw, Mapping):
        raise MappingError(f"{what} entry must be a mapping, not {type(raw).__name__}")
    return fold_keys(
        raw,
        lambda k: MappingError(
            f"key {k!r} is given twice (keys are case-insensitive)", code=DUPLICATE_KEY
        ),
    )


def _string(value: object, name: str, *, required: bool) -> str:
    if value is not None and not isinstance(value, str):
        raise MappingError(f"{name} must be a string, not {type(value).__name__}")
    text = (value or "").strip()
    if not text and required:
        raise MappingError(f"{name} is missing")
    return text


def check_name(text: str, what: str) -> None:
    """The rules every username and group follows, in the loader and the editor alike: printable
    characters only (no control character, newline, or invisible format character that would make
    what a terminal shows differ from what Kubernetes sees), at most :data:`MAX_NAME_LENGTH`
    characters, and only the known templates, spelled exactly. Raises :class:`MappingError`."""
    if len(text) > MAX_NAME_LENGTH:
        raise MappingError(
            f"{what} is {len(text)} characters long; at most {MAX_NAME_LENGTH} are allowed",
            code=INVALID_NAME,
        )
    if not text.isprintable():
        bad = next(c for c in text if not c.isprintable())
        raise MappingError(
            f"{what} {text!r} contains the control or invisible character U+{ord(bad):04X}",
            hint="usernames and groups are printable text: no newline, tab or control character",
            code=INVALID_NAME,
        )
    validate_template(text)


def _groups(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if not isinstance(value, list | tuple):
        raise MappingError("groups must be a list of strings")
    if len(value) > MAX_GROUPS_PER_ENTRY:
        raise MappingError(
            f"groups lists {len(value)} groups; at most {MAX_GROUPS_PER_ENTRY} are allowed",
            code=INVALID_NAME,
        )
    out: list[str] = []
    for g in value:
        if not isinstance(g, str) or not g.strip():
            raise MappingError(f"groups contains {g!r}, which is not a group name")
        group = g.strip()
        check_name(group, "group")
        out.append(group)
    return tuple(out)


def _username(value: object) -> str:
    username = _string(value, "username", required=True)
    check_name(username, "username")
    return username


def session_template_problems(kind: EntryKind, username: str, groups: Sequence[str]) -> list[str]:
    """Why templates of a ``kind`` entry cannot render for its callers (a load warning; the editor
    refuses such input): :data:`SESSION_TEMPLATES` in a user, account-root, federated-user or IAM
    group entry, whose callers have no role session."""
    if kind not in (EntryKind.USER, EntryKind.GROUP):
        return []
    problems = []
    for what, text in (("username", username), *(("group", g) for g in groups)):
        used = sorted(template_names(text) & SESSION_TEMPLATES)
        if used:
            problems.append(
                f"{what} {text!r} uses {{{{{used[0]}}}}}, which IAM users have no value for "
                "(only role sessions do): it renders empty or denies for every caller"
            )
    return problems


#: ``{{Name}}``: where the first placeholder of a template starts.
_ANY_PLACEHOLDER = re.compile(r"\{\{[A-Za-z0-9]+\}\}")


def reserved_group_problems(groups: Sequence[str]) -> list[str]:
    """Groups that put a placeholder inside a reserved prefix (``system:{{SessionName}}``,
    ``eks:{{AccountID}}``): :func:`~kubeiam.mapping.templates.check_rendered_group` refuses every
    rendering of such a group (a placeholder never renders empty), so the entry can only deny. A
    load warning; the editor refuses such input."""
    problems = []
    for group in groups:
        found = _ANY_PLACEHOLDER.search(group)
        if found is None:
            continue
        prefix = reserved_prefix_of(group[: found.start()], RESERVED_GROUP_PREFIXES)
        if prefix is not None:
            problems.append(
                f"group {group!r} puts a placeholder in the reserved prefix {prefix!r}: the "
                "server refuses such a group for every caller, so the entry only denies"
            )
    return problems


def template_problems(kind: EntryKind, username: str, groups: Sequence[str]) -> list[Problem]:
    """Every reason an entry's templates can never apply as written (see the two rules)."""
    return [
        Problem(SESSION_TEMPLATE, m) for m in session_template_problems(kind, username, groups)
    ] + [Problem(RESERVED_GROUP, m) for m in reserved_group_problems(groups)]


def _unknown_key_warnings(d: Mapping[str, object], allowed: frozenset[str]) -> list[Problem]:
    return [Problem(UNKNOWN_KEY, f"unknown key {k!r} ignored") for k in _unknown_keys(d, allowed)]


def _user_arn(arn: str) -> tuple[str, str]:
    """(canonical ARN, resource type) of a mapUsers ARN; root and federated users allowed."""
    if is_root_or_federated_user_arn(arn):
        return arn, "user"
    mapped = canonicalize_mapping_arn(arn)
    return mapped.canonical, mapped.resource_type


def _unknown_keys(keys: Iterable[str], allowed: frozenset[str]) -> list[str]:
    if allowed.issuperset(keys):
        return []
    return sorted(k for k in keys if k not in allowed)


def parse_role_entry(
    raw: object, location: Location | None = None, *, need_user_id: bool = False
) -> tuple[RoleMapping | SSOMapping, list[Problem]]:
    """One ``mapRoles`` entry and its warnings; :class:`MappingError` when it is invalid."""
    d = _lower_keys(raw, ROLES)
    warnings = _unknown_key_warnings(d, _ROLE_KEYS)
    username = _username(d.get("username"))
    groups = _groups(d.get("groups"))
    warnings += [Problem(RESERVED_GROUP, m) for m in reserved_group_problems(groups)]
    rolearn = _string(d.get("rolearn"), "rolearn", required=False)
    userid = _string(d.get("userid"), "userid", required=need_user_id)
    sso = d.get("sso")
    if rolearn and sso is not None:
        raise MappingError("an entry takes rolearn or sso, not both")
    if sso is not None:
        if need_user_id:
            raise MappingError("sso entries cannot be matched by UserId (strict mode)")
        return _parse_sso(sso, username, groups, location), warnings
    if not rolearn:
        if not need_user_id:
            raise MappingError("rolearn (or sso) is missing")
        return RoleMapping("", username, groups, "", False, userid, location), warnings
    mapped = canonicalize_mapping_arn(rolearn)
    if mapped.resource_type != "role":
        raise MappingError(
            f"rolearn {rolearn} names an IAM user: move it to mapUsers as userarn",
            code=INVALID_ARN,
        )
    if mapped.had_path:
        warnings.append(
            Problem(
                ROLE_PATH,
                f"rolearn {rolearn} has an IAM path; it matches {mapped.canonical}, the ARN STS "
                "reports (drop the path to silence this warning)",
            )
        )
    entry = RoleMapping(
        rolearn, username, groups, mapped.canonical, mapped.had_path, userid, location
    )
    return entry, warnings


def _parse_sso(
    raw: object, username: str, groups: tuple[str, ...], location: Location | None
) -> SSOMapping:
    d = _lower_keys(raw, "sso")
    unknown = _unknown_keys(d, _SSO_KEYS)
    if unknown:
        raise MappingError(f"sso has unknown key {unknown[0]!r}", code=UNKNOWN_KEY)
    name = _string(d.get("permissionsetname"), "sso.permissionSetName", required=True)
    account = d.get("accountid")
    account_s = str(account).strip() if isinstance(account, str | int) else ""
    partition = _string(d.get("partition"), "sso.partition", required=False) or "aws"
    if not _PERMISSION_SET_NAME.fullmatch(name):
        raise MappingError(f"sso.permissionSetName {name!r} is not a valid permission set name")
    if not ACCOUNT_ID.fullmatch(account_s):
        raise MappingError(
            f"sso.accountID {account!r} is not a 12-digit account id (quote it)",
            code=INVALID_ACCOUNT,
        )
    if not PARTITION_NAME.fullmatch(partition) or partition not in PARTITIONS:
        raise MappingError(f"sso.partition {partition!r} is not an AWS partition")
    return SSOMapping(name, account_s, username, groups, partition, location)


def parse_user_entry(
    raw: object, location: Location | None = None, *, need_user_id: bool = False
) -> tuple[UserMapping, list[Problem]]:
    """One ``mapUsers`` entry and its warnings; :class:`MappingError` when it is invalid."""
    d = _lower_keys(raw, USERS)
    warnings = _unknown_key_warnings(d, _USER_KEYS)
    username = _username(d.get("username"))
    groups = _groups(d.get("groups"))
    userid = _string(d.get("userid"), "userid", required=need_user_id)
    userarn = _string(d.get("userarn"), "userarn", required=not need_user_id)
    warnings += template_problems(EntryKind.USER, username, groups)
    if not userarn:
        return UserMapping("", username, groups, "", userid, location), warnings
    canonical, rtype = _user_arn(userarn)
    if rtype != "user":
        raise MappingError(
            f"userarn {userarn} names an IAM role: move it to mapRoles as rolearn",
            code=INVALID_ARN,
        )
    return UserMapping(userarn, username, groups, canonical, userid, location), warnings


def parse_group_entry(
    raw: object, location: Location | None = None
) -> tuple[GroupMapping, list[Problem]]:
    """One ``mapGroups`` entry and its warnings; :class:`MappingError` when it is invalid.

    ``username`` is required: IAM users have no session name, so write e.g.
    ``{{AccountID}}:alice``-style names or a fixed name per group.
    """
    d = _lower_keys(raw, GROUPS)
    warnings = _unknown_key_warnings(d, _GROUP_KEYS)
    username = _username(d.get("username"))
    groups = _groups(d.get("groups"))
    warnings += template_problems(EntryKind.GROUP, username, groups)
    grouparn = _string(d.get("grouparn"), "grouparn", required=True)
    parsed = parse_group_arn(grouparn)
    if parsed is None:
        raise MappingError(
            f"grouparn {grouparn} is not an IAM group ARN "
            "(arn:<partition>:iam::<account>:group/[path/]Name)"
        )
    partition, account = parsed
    if partition not in PARTITIONS:
        raise MappingError(f"grouparn {grouparn}: {partition!r} is not an AWS partition")
    return GroupMapping(grouparn, username, groups, account, location), warnings


def parse_new_entry(section: str, raw: object) -> MappingEntry:
    """An entry an editor is about to write, by the loader's own rules (:class:`MappingError`
    when the loader would skip it), refusing also what the loader only warns about because it can
    never apply: a session template in a user or IAM group entry. So the editor writes nothing the
    server would not use as written."""
    entry: MappingEntry
    if section == ACCOUNTS:
        return parse_account_entry(raw)
    if section == ROLES:
        entry, _ = parse_role_entry(raw)
    elif section == USERS:
        entry, _ = parse_user_entry(raw)
    elif section == GROUPS:
        entry, _ = parse_group_entry(raw)
    else:
        raise MappingError(f"unknown mapping section {section!r}")
    problems = template_problems(entry.kind, entry.username, entry.groups)
    if problems:
        raise MappingError(
            problems[0].message,
            code=problems[0].code,
            hint="write reserved groups literally (system:masters ...); keep placeholders out of "
            "system:, eks:, aws:, iam: and amazon: groups, and session templates out of user "
            "and IAM group entries",
        )
    return entry


def parse_account_entry(raw: object, location: Location | None = None) -> AccountMapping:
    """One ``mapAccounts`` entry: a 12-digit account id (a string, or a number JSON gave us)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise MappingError(f"account {raw!r} must be a 12-digit account id", code=INVALID_ACCOUNT)
    account = str(raw).strip()
    if not ACCOUNT_ID.fullmatch(account):
        raise MappingError(
            f"account {account!r} is not a 12-digit account id",
            hint="quote account ids so YAML and JSON keep their leading zeros",
            code=INVALID_ACCOUNT,
        )
    return AccountMapping(account, location)


# --------------------------------------------------------------------------------------------
# Building an indexed set


RawEntry: TypeAlias = tuple[object, Location]
_K = TypeVar("_K")
_E = TypeVar("_E", bound=MappingEntry)


class _Builder:
    """Accumulates entries, detecting duplicates and conflicts with both locations."""

    def __init__(self, match_by_user_id: bool) -> None:
        self.match_by_user_id = match_by_user_id
        self.issues: list[LoadIssue] = []
        self.users: dict[str, UserMapping] = {}
        self.roles: dict[str, RoleMapping] = {}
        self.sso: dict[tuple[str, str, str], SSOMapping] = {}
        self.accounts: dict[str, AccountMapping] = {}
        self.by_user_id: dict[str, RoleMapping | UserMapping] = {}
        self.iam_groups: dict[str, GroupMapping] = {}
        self.entries: list[MappingEntry] = []

    def issue(self, severity: Severity, location: Location, message: str, code: str) -> None:
        self.issues.append(LoadIssue(severity, location, message, code))

    def _same(self, a: MappingEntry, b: MappingEntry) -> bool:
        return a == b or (
            not isinstance(a, AccountMapping)
            and not isinstance(b, AccountMapping)
            and type(a) is type(b)
            and a.username == b.username
            and a.groups == b.groups
            and getattr(a, "userid", "") == getattr(b, "userid", "")
        )

    def _place(
        self, index: dict[_K, _E], key: _K, entry: _E, location: Location, what: str
    ) -> bool:
        first = index.get(key)
        if first is None:
            index[key] = entry
            return True
        where = str(first.location) if first.location is not None else "an earlier entry"
        if self._same(first, entry):
            self.issue(Severity.WARNING, location, f"{what} duplicates {where}", DUPLICATE)
        else:
            self.issue(
                Severity.ERROR,
                location,
                f"{what} conflicts with {where} ({_difference(first, entry)}); remove one of them",
                CONFLICT,
            )
        return False

    def add(self, entry: MappingEntry, location: Location) -> None:
        if isinstance(entry, AccountMapping):
            placed = self._place(
                self.accounts, entry.account_id, entry, location, f"account {entry.account_id}"
            )
        elif isinstance(entry, SSOMapping):
            what = f"sso permission set {entry.permission_set_name}"
            placed = self._place(self.sso, entry.key, entry, location, what)
        elif isinstance(entry, GroupMapping):
            what = f"grouparn {entry.grouparn}"
            placed = self._place(self.iam_groups, entry.key, entry, location, what)
        elif self.match_by_user_id:
            what = f"userid {entry.userid}"
            placed = self._place(self.by_user_id, entry.userid, entry, location, what)
        elif isinstance(entry, RoleMapping):
            key = arn_key(entry.canonical_arn)
            placed = self._place(self.roles, key, entry, location, f"rolearn {entry.rolearn}")
        else:
            key = arn_key(entry.canonical_arn)
            placed = self._place(self.users, key, entry, location, f"userarn {entry.userarn}")
        if placed:
            self.entries.append(entry)

    def check_sso_shadowing(self) -> None:
        for role in self.roles.values():
            parts = split_arn(arn_key(role.canonical_arn))
            permission_set = sso_permission_set(parts.resource_path) if parts else None
            if parts is None or permission_set is None:
                continue
            shadowed = self.sso.get((parts.partition, parts.account, permission_set))
            if shadowed is not None and role.location is not None:
                self.issue(
                    Severity.WARNING,
                    role.location,
                    f"rolearn {role.rolearn} takes precedence over {shadowed.describe()}",
                    SHADOWED,
                )

    def result(self) -> LoadResult:
        self.check_sso_shadowing()
        mappings = MappingSet(
            users=self.users,
            roles=self.roles,
            sso=self.sso,
            accounts=self.accounts,
            by_user_id=self.by_user_id,
            match_by_user_id=self.match_by_user_id,
            entries=tuple(self.entries),
            iam_groups=self.iam_groups,
        )
        return LoadResult(mappings, tuple(self.issues))


def _difference(a: MappingEntry, b: MappingEntry) -> str:
    if isinstance(a, AccountMapping) or isinstance(b, AccountMapping):
        return "different entries"
    if a.username != b.username:
        return f"username {a.username!r} vs {b.username!r}"
    if a.groups != b.groups:
        return f"groups {list(a.groups)} vs {list(b.groups)}"
    return "different userid"


#: Parsed entries an editor keeps between loading a document before and after an edit, keyed
#: by section and the entry as written (``repr``): an entry the edit did not touch is not
#: validated twice. Holds the parse result without its location, or the refusal.
EntryCache: TypeAlias = dict[tuple[str, bool, str], tuple[object, tuple[Problem, ...]]]


def _parse_one(
    section: str,
    raw: object,
    location: Location,
    match_by_user_id: bool,
    cache: EntryCache | None,
) -> tuple[MappingEntry, Sequence[Problem]] | Problem:
    """One entry and its warnings, or why it is skipped; through ``cache`` when given."""
    key = (section, match_by_user_id, repr(raw)) if cache is not None else None
    if key is not None and cache is not None:
        hit = cache.get(key)
        if hit is not None:
            found, warnings = hit
            if isinstance(found, Problem):
                return found
            if getattr(found, "location", None) != location:  # moved by the edit
                found = copy.copy(found)
                object.__setattr__(found, "location", location)
            return found, warnings  # type: ignore[return-value]
    entry: MappingEntry
    warned: list[Problem]
    try:
        if section == ROLES:
            entry, warned = parse_role_entry(raw, location, need_user_id=match_by_user_id)
        elif section == USERS:
            entry, warned = parse_user_entry(raw, location, need_user_id=match_by_user_id)
        elif section == GROUPS:
            entry, warned = parse_group_entry(raw, location)
        else:
            entry, warned = parse_account_entry(raw, location), []
    except MappingError as exc:
        refusal = Problem(exc.code or INVALID_ENTRY, exc.message)
        if key is not None and cache is not None:
            cache[key] = (refusal, ())
        return refusal
    if key is not None and cache is not None:
        cache[key] = (entry, tuple(warned))
    return entry, warned


def load_entries(
    roles: Iterable[RawEntry] = (),
    users: Iterable[RawEntry] = (),
    accounts: Iterable[RawEntry] = (),
    groups: Iterable[RawEntry] = (),
    *,
    match_by_user_id: bool = False,
    cache: EntryCache | None = None,
    earlier: Sequence[LoadIssue] = (),
) -> LoadResult:
    """Validate and index raw entries (dicts as read from YAML/JSON, with their locations).

    Invalid entries are left out with a ``SKIPPED`` issue; duplicates and conflicts are reported
    as described in the module docstring. Never raises for entry problems: callers decide with
    :meth:`LoadResult.raise_for_issues` or :attr:`LoadResult.ok`. ``cache``: see
    :data:`EntryCache` (the result is the same with or without it). ``earlier``: issues the
    caller found while reading the sections, listed before the entries' own.
    """
    builder = _Builder(match_by_user_id)
    for section, raws in ((ROLES, roles), (USERS, users), (ACCOUNTS, accounts), (GROUPS, groups)):
        for raw, location in raws:
            parsed = _parse_one(section, raw, location, match_by_user_id, cache)
            if isinstance(parsed, Problem):
                message = f"entry skipped: {parsed.message}"
                builder.issue(Severity.SKIPPED, location, message, parsed.code)
                continue
            entry, warnings = parsed
            for w in warnings:
                builder.issue(Severity.WARNING, location, w.message, w.code)
            builder.add(entry, location)
    result = builder.result()
    if earlier:
        return LoadResult(result.mappings, tuple(earlier) + result.issues)
    return result


def load_sections(
    sections: Mapping[str, Sequence[object] | None],
    *,
    prefix: str = "",
    match_by_user_id: bool = False,
    cache: EntryCache | None = None,
) -> LoadResult:
    """Load already-parsed ``mapRoles``/``mapUsers``/``mapAccounts``/``mapGroups`` lists.

    ``sections`` keys are matched case-insensitively (a section given twice, ``mapRoles`` and
    ``MapRoles``, is an ERROR: a reader would keep only one); locations read
    ``<prefix><section>[i]``.
    """
    found: dict[str, Sequence[object]] = {}
    issues: list[LoadIssue] = []
    spelled: dict[str, str] = {}
    for name, value in sections.items():
        canonical = {s.lower(): s for s in SECTIONS}.get(str(name).lower())
        if canonical is None:
            continue
        if canonical in spelled:
            message = (
                f"is given twice, as {spelled[canonical]!r} and {name!r} (keys are "
                "case-insensitive): keep one"
            )
            location = Location(prefix + canonical)
            issues.append(LoadIssue(Severity.ERROR, location, message, DUPLICATE_KEY))
            continue
        spelled[canonical] = str(name)
        if value is None:
            continue
        if not isinstance(value, list | tuple):
            issues.append(
                LoadIssue(Severity.ERROR, Location(prefix + canonical), "must be a list of entries")
            )
            continue
        found[canonical] = value

    return load_entries(
        *(
            [(v, Location(prefix + section, i)) for i, v in enumerate(found.get(section, ()))]
            for section in SECTIONS
        ),
        match_by_user_id=match_by_user_id,
        cache=cache,
        earlier=issues,
    )
