"""Safe edits of the IAM-to-Kubernetes mappings: the engine behind `kubeiam mapping`.

Every change goes through :meth:`MappingEditor.edit`, the same loop for every store:

1. read the store (a fresh :class:`~kubeiam.admin.mapping_stores.Snapshot`);
2. apply the operation to the document (an identical mapping is ``unchanged``: nothing is written);
3. check the guards (:func:`check_guards`): node entries are never removed or changed, and the
   last ``system:masters`` entry never removed, without ``force``; a change that makes the
   mapping invalid is refused;
4. save the previous state in the store's backup history, then write conditionally (the
   ConfigMap's ``resourceVersion``); a conflict starts again at 1 after a short random pause,
   at most ``attempts`` times, so two writers racing never lose each other's entries.

``dry_run`` stops after 3 and returns the unified diff. :func:`lint` and :func:`explain` are pure
functions over a loaded :class:`~kubeiam.mapping.model.LoadResult`.
"""

from __future__ import annotations

import asyncio
import difflib
import enum
import random as _random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubeiam.admin.mapping_documents import MappingDocument
from kubeiam.admin.mapping_stores import BackupRecord, MappingStore, Snapshot
from kubeiam.admin.mapping_writer import NODE_GROUPS, NODE_USERNAME_PREFIX, MappingChange
from kubeiam.arn import PrincipalKind, arn_key, canonicalize_mapping_arn, parse_caller_arn
from kubeiam.errors import ConflictError, GuardError, KubeIAMError, MappingError, NotFoundError
from kubeiam.identity import Identity
from kubeiam.mapping.aws_auth import Change
from kubeiam.mapping.chain import DEFAULT_RESERVED_PREFIX_CONFIG
from kubeiam.mapping.model import (
    AccountMapping,
    EntryKind,
    GroupMapping,
    LoadResult,
    MappingEntry,
    MappingSet,
    RoleMapping,
    Severity,
    SSOMapping,
    UserMapping,
    reserved_group_problems,
)
from kubeiam.mapping.templates import DEFAULT_RESERVED_PREFIXES, reserved_prefix_of
from kubeiam.suggestions import MAX_SUGGESTIONS, closest_names, not_found_message, quote_name

#: Attempts at read-change-write before a conflict is reported. Six writers racing on one loaded
#: 2-core machine exhausted five attempts once; ten with a doubling pause wait ~5 s at worst.
DEFAULT_ATTEMPTS = 10
#: First pause between attempts (seconds); it doubles each attempt up to _MAX_RETRY_PAUSE and is
#: scaled by a random factor in [0.5, 1.5) so racing writers spread out.
_RETRY_PAUSE = 0.05
_MAX_RETRY_PAUSE = 1.0
MASTERS = "system:masters"


# --------------------------------------------------------------------------------------------
# Guards


def is_node_entry(entry: MappingEntry) -> bool:
    """True for entries that let nodes join (``system:node:*`` usernames or node groups)."""
    if isinstance(entry, AccountMapping):
        return False
    return entry.username.startswith(NODE_USERNAME_PREFIX) or bool(set(entry.groups) & NODE_GROUPS)


def entry_key(entry: MappingEntry) -> tuple[str, ...]:
    """What identifies an entry across versions of a document."""
    if isinstance(entry, AccountMapping):
        return ("account", entry.account_id)
    if isinstance(entry, SSOMapping):
        return ("sso", *entry.key)
    if isinstance(entry, GroupMapping):
        return ("group", entry.key)
    if isinstance(entry, RoleMapping):
        return ("role", arn_key(entry.canonical_arn) or entry.userid)
    return ("user", arn_key(entry.canonical_arn) or entry.userid)


def entry_name(entry: MappingEntry) -> str:
    """The ARN, permission set or account an entry maps, for messages."""
    if isinstance(entry, AccountMapping):
        return f"account {entry.account_id}"
    if isinstance(entry, SSOMapping):
        return f"permission set {entry.permission_set_name} in account {entry.account_id}"
    if isinstance(entry, GroupMapping):
        return f"IAM group {entry.grouparn}"
    if isinstance(entry, RoleMapping):
        return entry.rolearn
    return entry.userarn


def _same_mapping(a: MappingEntry, b: MappingEntry) -> bool:
    if isinstance(a, AccountMapping) or isinstance(b, AccountMapping):
        return type(a) is type(b)
    return a.username == b.username and a.groups == b.groups


def check_guards(before: LoadResult, after: LoadResult, *, force: bool) -> list[str]:
    """Refuse (:class:`GuardError`) changes that lock nodes or every admin out, unless ``force``.

    Returns what ``force`` overrode, for the command to say so.
    """
    problems: list[str] = []
    new = {entry_key(e): e for e in after.mappings.entries}
    for entry in before.mappings.entries:
        if not is_node_entry(entry):
            continue
        now = new.get(entry_key(entry))
        if now is not None and _same_mapping(entry, now):
            continue
        what = "removes" if now is None else "changes"
        who = f"role {entry_name(entry)}" if isinstance(entry, RoleMapping) else entry_name(entry)
        problems.append(
            f"this {what} the node entry for {entry_name(entry)}: every node using {who} would "
            "lose access to the cluster (kubelets are refused, nodes go NotReady, pods are "
            "evicted); there is no undo on EKS once nodes are gone"
        )
    masters_before = [e for e in before.mappings.entries if _grants_masters(e)]
    masters_after = [e for e in after.mappings.entries if _grants_masters(e)]
    if masters_before and not masters_after:
        names = ", ".join(entry_name(e) for e in masters_before)
        problems.append(
            f"this removes the last system:masters mapping ({names}): no mapped identity would "
            "keep cluster-admin, and only the cluster creator could repair it"
        )
    if problems and not force:
        raise GuardError(
            "refused: " + "; ".join(problems),
            hint="pass --force if you really mean it (the previous state is saved first; "
            "`kubeiam mapping restore --latest` rolls back)",
        )
    return problems


def _grants_masters(entry: MappingEntry) -> bool:
    return not isinstance(entry, AccountMapping) and MASTERS in entry.groups


# --------------------------------------------------------------------------------------------
# Editing


@dataclass(frozen=True, slots=True)
class EditResult:
    """What an edit did (or, on a dry run, would do)."""

    change: Change
    target: str
    diff: str
    written: bool
    attempts: int
    #: Guards that ``force`` overrode.
    forced: tuple[str, ...] = ()
    #: The store did not exist and the edit created it (only the add-* edits may).
    created: bool = False
    #: What else the user should know (a corrupt backup history kept aside ...).
    notes: tuple[str, ...] = ()


#: Lines of context around each change in a diff (difflib's and git's default).
_DIFF_CONTEXT = 3
_HUNK = re.compile(r"@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@")


def unified_diff(old: str, new: str, target: str) -> str:
    """The unified diff of two texts. The common head and tail are cut off before difflib runs
    (an edit changes a few lines of a file that may hold 30,000): difflib on the whole of two
    such texts takes most of a second, on the middle part milliseconds."""
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    head = 0
    limit = min(len(a), len(b))
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    skip = max(0, head - _DIFF_CONTEXT)
    keep_tail = max(0, tail - _DIFF_CONTEXT)
    lines = difflib.unified_diff(
        a[skip : len(a) - keep_tail],
        b[skip : len(b) - keep_tail],
        fromfile=f"{target} (current)",
        tofile=f"{target} (after)",
        n=_DIFF_CONTEXT,
    )

    def shift(match: re.Match[str]) -> str:
        old_start, old_len, new_start, new_len = match.groups()
        return f"@@ -{int(old_start) + skip}{old_len} +{int(new_start) + skip}{new_len} @@"

    out = []
    for line in lines:
        if line.startswith("@@"):
            line = _HUNK.sub(shift, line, count=1)
        out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)


Operation = Callable[[MappingDocument], Change]


class MappingEditor:
    """Read, change, guard, back up, write conditionally; retried on conflict."""

    def __init__(
        self,
        store: MappingStore,
        *,
        now: Callable[[], datetime],
        by: str = "",
        command: str = "",
        attempts: int = DEFAULT_ATTEMPTS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.store = store
        self._now = now
        self._by = by
        self._command = command
        self._attempts = max(1, attempts)
        self._sleep = sleep
        self._random = random

    def record(self, state: Any) -> BackupRecord:
        """A backup of ``state`` (its revision is assigned when stored)."""
        return BackupRecord(
            0,
            self._now().isoformat(timespec="seconds"),
            self._by,
            self._command,
            self.store.kind.value,
            state,
        )

    async def edit(
        self,
        operation: Operation,
        *,
        dry_run: bool = False,
        force: bool = False,
        creates: bool = False,
        must_exist: str | None = None,
    ) -> EditResult:
        """Apply ``operation`` to the store (see the module docstring).

        ``creates``: the operation may create a store that does not exist (the add-* edits);
        otherwise a missing mapping file is :class:`ConfigError` ("no such file").
        ``must_exist``: the operation removes this name; finding nothing to remove is
        :class:`NotFoundError` naming the closest names the store maps (a typo is not a success).
        """

        def change(snapshot: Snapshot) -> tuple[MappingDocument, Change]:
            document = snapshot.document
            outcome = operation(document)
            if outcome is Change.UNCHANGED and must_exist is not None:
                closest = _closest_mapped(must_exist, document.names())
                suggestion = f" (closest: {', '.join(map(quote_name, closest))})" if closest else ""
                raise NotFoundError(
                    not_found_message("mapping of", must_exist, [])
                    + f" in {self.store.target}{suggestion}",
                    hint="check the ARN, account or permission set; pass --ignore-not-found if "
                    "it may already be gone",
                )
            return document, outcome

        return await self._run(change, dry_run=dry_run, force=force, missing_ok=creates)

    async def restore(
        self, state: Any, *, dry_run: bool = False, force: bool = False
    ) -> EditResult:
        """Make the store hold ``state`` again (the current state is backed up first)."""

        def change(snapshot: Snapshot) -> tuple[MappingDocument, Change]:
            document = self.store.open(state)
            same = document.text() == snapshot.document.text()
            return document, Change.UNCHANGED if same else Change.REPLACED

        return await self._run(change, dry_run=dry_run, force=force, missing_ok=True)

    async def backup(self) -> BackupRecord:
        """Save the current state in the history and return it (with its revision). Notes on
        the history (a corrupt one kept aside) are left in ``store.backup_notes``."""
        snapshot = await self.store.read()
        record = self.record(snapshot.document.state() if snapshot.exists else None)
        notes = await self.store.save_backup(record)
        records = await self.store.backups()
        self.store.backup_notes = [*notes, *self.store.backup_notes]
        return records[-1] if records else record

    async def _run(
        self,
        change: Callable[[Snapshot], tuple[MappingDocument, Change]],
        *,
        dry_run: bool,
        force: bool,
        missing_ok: bool,
    ) -> EditResult:
        target = self.store.target
        for attempt in range(1, self._attempts + 1):
            snapshot = await self.store.read(missing_ok=missing_ok)
            before = snapshot.document.load()
            old_text = snapshot.document.text() if dry_run else ""
            # Taken before the operation: documents are edited in place.
            old_state = snapshot.document.state() if snapshot.exists else None
            document, outcome = change(snapshot)
            if outcome is Change.UNCHANGED:
                return EditResult(outcome, target, "", False, attempt)
            # The server's own reading of the result: nothing it would refuse is written.
            after = document.load()
            if not after.ok:
                raise MappingError(
                    f"refused: the change would leave an invalid mapping that {self.store.backend} "
                    "would refuse; nothing was written: "
                    + "; ".join(str(i) for i in after.errors[:3]),
                    hint="fix the entries named above first",
                )
            forced = tuple(check_guards(before, after, force=force))
            if dry_run:
                diff = unified_diff(old_text, document.text(), target)
                return EditResult(
                    outcome, target, diff, False, attempt, forced, created=not snapshot.exists
                )
            notes: list[str] = []
            if snapshot.exists:
                notes = await self.store.save_backup(self.record(old_state))
            try:
                await self.store.write(snapshot, document)
            except ConflictError:
                if attempt == self._attempts:
                    break
                pause = min(_RETRY_PAUSE * 2 ** (attempt - 1), _MAX_RETRY_PAUSE)
                await self._sleep(pause * (0.5 + self._random()))
                continue
            return EditResult(
                outcome,
                target,
                "",
                True,
                attempt,
                forced,
                created=not snapshot.exists,
                notes=tuple(notes),
            )
        raise ConflictError(
            f"{target} kept changing under concurrent writers ({self._attempts} attempts)",
            hint="retry the command; if it persists, find the other writer",
        )


def _closest_mapped(name: str, names: Sequence[str]) -> list[str]:
    """The mapped names closest to ``name``. ARNs are compared by what follows the account
    (``user/alice``): every ARN of one account shares its first 26 characters, which would make
    any of them look close."""

    def resource(arn: str) -> str:
        return arn.split(":", 5)[-1] if arn.startswith("arn:") else arn

    by_resource: dict[str, list[str]] = {}
    for candidate in names:
        by_resource.setdefault(resource(candidate), []).append(candidate)
    found = closest_names(resource(name), list(by_resource))
    return [full for key in found for full in by_resource[key]][:MAX_SUGGESTIONS]


# --------------------------------------------------------------------------------------------
# The MappingWriter seam of the IAM workflows


class StoreMappingWriter:
    """A :class:`~kubeiam.admin.mapping_writer.MappingWriter` over any store (aws-auth, CRD,
    file), for `kubeiam iam onboard-user` and `create-access-role`. Each call opens the store
    with ``open_store`` inside its own event loop, edits through :class:`MappingEditor` (guards,
    backup, retries) and closes it."""

    def __init__(
        self,
        open_store: Callable[[], MappingStore],
        *,
        now: Callable[[], datetime],
        by: str = "",
        target: str = "",
        dry_run: bool = False,
    ) -> None:
        self._open = open_store
        self._now = now
        self._by = by
        self._target = target
        self.dry_run = dry_run

    @property
    def target(self) -> str:
        return self._target

    def _edit(
        self, operation: Operation, command: str, *, force: bool = False, creates: bool = False
    ) -> Change:
        async def run() -> Change:
            store = self._open()
            try:
                editor = MappingEditor(store, now=self._now, by=self._by, command=command)
                result = await editor.edit(
                    operation, dry_run=self.dry_run, force=force, creates=creates
                )
                return result.change
            finally:
                await store.close()

        return asyncio.run(run())

    def add_user(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        change = self._edit(
            lambda d: d.upsert_user(arn, username, groups, replace=False),
            f"iam add-user {arn}",
            creates=True,
        )
        return MappingChange.UNCHANGED if change is Change.UNCHANGED else MappingChange.ADDED

    def add_role(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        change = self._edit(
            lambda d: d.upsert_role(arn, username, groups, replace=False),
            f"iam add-role {arn}",
            creates=True,
        )
        return MappingChange.UNCHANGED if change is Change.UNCHANGED else MappingChange.ADDED

    def remove(self, arn: str, *, force: bool = False) -> MappingChange:
        change = self._edit(lambda d: d.remove(arn), f"iam remove {arn}", force=force)
        return MappingChange.REMOVED if change is Change.REMOVED else MappingChange.ABSENT


# --------------------------------------------------------------------------------------------
# Lint


class Level(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding."""

    level: Level
    code: str
    location: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "level": self.level.value,
            "code": self.code,
            "location": self.location,
            "message": self.message,
        }


#: Model issue messages -> lint codes (first match wins).
_ISSUE_CODES: tuple[tuple[str, str], ...] = (
    ("only role sessions do", "session-template"),
    ("puts a placeholder in the reserved prefix", "reserved-group"),
    ("control or invisible character", "invalid-name"),
    ("characters long; at most", "invalid-name"),
    ("groups lists", "invalid-name"),
    ("appears twice", "duplicate-key"),
    ("is given twice", "duplicate-key"),
    ("unknown key in server config", "unknown-key"),
    ("is not read by kubeiam server", "not-read"),
    ("has an IAM path", "role-path"),
    ("conflicts with", "conflict"),
    ("duplicates", "duplicate"),
    ("takes precedence over", "shadowed"),
    ("unknown template", "unknown-template"),
    ("malformed template", "unknown-template"),
    ("unknown key", "unknown-key"),
    ("not an ARN", "invalid-arn"),
    ("is not an IAM ARN", "invalid-arn"),
    ("does not name an IAM role or user", "invalid-arn"),
    ("not 12 digits", "invalid-arn"),
    ("characters IAM does not allow", "invalid-arn"),
    ("names an IAM user", "invalid-arn"),
    ("names an IAM role", "invalid-arn"),
    ("12-digit account id", "invalid-account"),
)


def _issue_code(message: str) -> str:
    for needle, code in _ISSUE_CODES:
        if needle in message:
            return code
    return "invalid-entry"


def lint(
    result: LoadResult,
    *,
    backend: str,
    node_count: int | None = None,
) -> list[Finding]:
    """Every problem of a loaded mapping: the loader's issues and kubeiam's own checks."""
    findings: list[Finding] = []
    for issue in result.issues:
        code = _issue_code(issue.message)
        level = Level.WARNING if issue.severity is Severity.WARNING else Level.ERROR
        if code in _ERRORS_FOR_LINT:
            level = Level.ERROR
        findings.append(Finding(level, code, str(issue.location), issue.message))
    reserved = DEFAULT_RESERVED_PREFIX_CONFIG.get(backend, ())
    entries = result.mappings.entries
    accounts = {e.account_id for e in entries if isinstance(e, AccountMapping)}
    for entry in entries:
        where = str(entry.location) if entry.location is not None else entry_name(entry)
        if isinstance(entry, AccountMapping):
            findings.append(
                Finding(
                    Level.WARNING,
                    "account-wide",
                    where,
                    f"every IAM principal of account {entry.account_id} is accepted (username = "
                    "its ARN); prefer mapping the roles and users that need access",
                )
            )
            continue
        if isinstance(entry, GroupMapping):
            findings.append(
                Finding(
                    Level.WARNING,
                    "iam-group",
                    where,
                    f"{entry_name(entry)} is matched only by kubeiam server with "
                    "server.iamGroupMapping on (EKS's own authenticator ignores mapGroups), "
                    "for IAM users only; removal from the group applies after iamGroupCacheTTL",
                )
            )
        findings += _session_groups(entry, where)
        prefix = reserved_prefix_of(entry.username, reserved)
        if prefix is not None:
            findings.append(
                Finding(
                    Level.ERROR,
                    "reserved-prefix",
                    where,
                    f"username {entry.username!r} starts with {prefix!r}, which backend "
                    f"{backend} reserves: the server denies this entry",
                )
            )
        elif not is_node_entry(entry) and reserved_prefix_of(
            entry.username, DEFAULT_RESERVED_PREFIXES
        ):
            findings.append(
                Finding(
                    Level.WARNING,
                    "reserved-prefix",
                    where,
                    f"username {entry.username!r} uses a prefix Kubernetes and EKS reserve for "
                    "their own components; pick a name of your own",
                )
            )
        if MASTERS in entry.groups:
            findings.append(
                Finding(
                    Level.WARNING,
                    "system-masters",
                    where,
                    f"{entry_name(entry)} is granted system:masters: full cluster-admin that no "
                    "RBAC rule can restrict; prefer a group bound to a ClusterRole",
                )
            )
        account = _account_of(entry)
        if account in accounts:
            findings.append(
                Finding(
                    Level.WARNING,
                    "shadowed",
                    where,
                    f"account {account} is also mapped as a whole; this entry takes precedence "
                    "for its principal",
                )
            )
    if node_count and not any(is_node_entry(e) for e in entries):
        level = Level.ERROR if backend != "CRD" else Level.WARNING
        findings.append(
            Finding(
                level,
                "missing-node-role",
                "",
                f"{node_count} node(s) exist but no entry maps nodes (username "
                "system:node:{{EC2PrivateDNSName}}, groups system:bootstrappers and "
                "system:nodes): nodes using IAM authentication cannot join"
                + ("" if level is Level.ERROR else " unless another backend maps them"),
            )
        )
    return findings


#: Loader warnings lint reports as errors: the server loads the entry, but it can never apply as
#: written (every caller is denied or gets an empty name).
_ERRORS_FOR_LINT = frozenset({"session-template", "reserved-group"})
#: Placeholders whose value the caller chooses: anyone allowed to assume the role names the
#: session (``aws sts assume-role --role-session-name``).
_CALLER_CHOSEN = ("SessionName", "SessionNameRaw")


def _session_groups(
    entry: RoleMapping | UserMapping | SSOMapping | GroupMapping, where: str
) -> list[Finding]:
    """Groups the caller's session name decides (issue 9): whoever may assume the role picks
    the group by naming the session (a warning). Where a placeholder sits inside a reserved
    prefix the loader already says the entry only denies (``reserved-group``, an error); where
    the session could form a reserved prefix (``{{SessionName}}:masters``) the server refuses
    those renderings (:func:`~kubeiam.mapping.templates.check_rendered_group`)."""
    out = []
    for group in entry.groups:
        if not any("{{" + name + "}}" in group for name in _CALLER_CHOSEN):
            continue
        if reserved_group_problems([group]):
            continue  # reported by the loader
        out.append(
            Finding(
                Level.WARNING,
                "session-group",
                where,
                f"group {group!r} is chosen by the caller: whoever may assume the role names "
                "the session, and with it this group; prefer fixed groups",
            )
        )
    return out


def terminal_text(text: str) -> str:
    """``text`` safe to print: every character that is not printable (control characters, a
    newline inside a value, bidi overrides, zero-width characters) written as its escape, so what
    a terminal shows is what the mapping holds."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


def _account_of(entry: MappingEntry) -> str:
    if isinstance(entry, AccountMapping | SSOMapping | GroupMapping):
        return entry.account_id
    arn = entry.canonical_arn
    return arn.split(":")[4] if arn.count(":") >= 5 else ""


# --------------------------------------------------------------------------------------------
# Explain


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


_PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9]+)\}\}")
_SSO_ROLE = re.compile(r"AWSReservedSSO_(.+)_[0-9a-fA-F]{16}")


def identity_for(arn: str, *, session_name: str = "") -> tuple[Identity, list[str]]:
    """The identity a caller with ``arn`` would have (a role ARN becomes a session of it)."""
    notes: list[str] = []
    if arn.split(":")[2:3] == ["iam"] and ":role/" in arn:
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


def render_partially(template: str, identity: Identity, access_key_id: str = "") -> str:
    """Render what is known about the caller; unknown placeholders stay as written."""
    values = {"AccountID": identity.account_id}
    if identity.session_name:
        values["SessionName"] = identity.session_name.replace("@", "-")
        values["SessionNameRaw"] = identity.session_name
    if access_key_id:
        values["AccessKeyID"] = access_key_id
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


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
    written = entry_name(entry)
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
        username = render_partially(match.username, identity, access_key_id)
        groups = tuple(render_partially(g, identity, access_key_id) for g in match.groups)
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
    parts = canonical.split(":", 5)
    kind, _, name = parts[5].partition("/")
    short = name.rsplit("/", 1)[-1].lower()
    for entry in mappings.entries:
        if isinstance(entry, RoleMapping | UserMapping) and entry.canonical_arn:
            e_parts = entry.canonical_arn.split(":", 5)
            e_kind, _, e_name = e_parts[5].partition("/")
            e_short = e_name.rsplit("/", 1)[-1].lower()
            if e_short != short:
                continue
            if e_parts[4] != identity.account_id:
                notes.append(
                    f"near miss: {entry.describe()} is for account {e_parts[4]}, the caller is "
                    f"in account {identity.account_id}"
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
            found = _SSO_ROLE.fullmatch(name.rsplit("/", 1)[-1])
            if found and found.group(1).lower() == entry.permission_set_name.lower():
                notes.append(
                    f"near miss: {entry.describe()} is for account {entry.account_id} "
                    f"(partition {entry.partition}), the caller is in account "
                    f"{identity.account_id} (partition {identity.partition})"
                )
    sso_role = _SSO_ROLE.fullmatch(name.rsplit("/", 1)[-1]) if kind == "role" else None
    if sso_role is not None:
        notes.append(
            f"this is an IAM Identity Center role: map its permission set with `add-sso "
            f"{sso_role.group(1)} --account {identity.account_id}` rather than the role ARN, "
            "whose suffix changes when the set is re-provisioned"
        )
    if identity.account_id not in mappings.accounts:
        notes.append(f"account {identity.account_id} is not mapped as a whole (mapAccounts)")
    notes.insert(0, f"no entry maps {canonical}")
    return notes
