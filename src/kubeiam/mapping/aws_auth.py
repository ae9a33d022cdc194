"""The aws-auth ConfigMap's ``data`` <-> mappings (pure).

``data`` holds YAML *strings* under ``mapRoles``, ``mapUsers`` and ``mapAccounts`` (protocol.md
section 4), and kubeiam's extension ``mapGroups`` (IAM group -> Kubernetes user; EKS's managed
authenticator ignores that key, only ``kubeiam server`` reads it). Two readers, for two jobs:

* :func:`read_aws_auth`, the fast path the watcher and the server use: PyYAML's C parser emits
  events and a small builder turns them into plain lists and dicts, every scalar kept as the
  string that was written (``- 012345678901`` stays an account id, not a number) and every entry
  tagged with its line inside the section, so issues read ``mapRoles line 12: ...``. Going through
  events instead of PyYAML's composer or constructor is what makes 10,000 entries load well under a
  second. Invalid entries are skipped with a reason; ``strict=True`` (editing tools) raises
  :class:`MappingError` instead.
* :class:`AwsAuthDocument`, the editor: it splices the sections' text, so comments, unknown keys
  and entry order stay, and every line an edit does not touch is written back byte for byte.

Top-level keys are case-sensitive (``mapRoles``), as in the reference; keys inside entries are not.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubeiam.arn import arn_key
from kubeiam.case_insensitive import get_any_case, set_any_case
from kubeiam.documents import DocumentError, MappingDocumentError, parse_yaml
from kubeiam.errors import MappingError
from kubeiam.mapping.block_list import BlockList, load_entry, render_scalar
from kubeiam.mapping.model import (
    ACCOUNTS,
    GROUPS,
    INVALID_ENTRY,
    ROLES,
    SECTIONS,
    USERS,
    EntryCache,
    LoadIssue,
    LoadResult,
    Location,
    RawEntry,
    RoleMapping,
    Severity,
    SSOMapping,
    load_entries,
    parse_account_entry,
    parse_group_entry,
    parse_new_entry,
    parse_role_entry,
    parse_user_entry,
)

AWS_AUTH_NAME = "aws-auth"
AWS_AUTH_NAMESPACE = "kube-system"

#: Section texts the reference treats as "nothing here".
_EMPTY_TEXTS = frozenset({"", "``", '""', "''"})


def _parse_yaml(text: str) -> Any:
    """One YAML document as lists and dicts carrying their lines, and strings.

    :func:`kubeiam.documents.parse_yaml` untyped: the C parser's event stream, bounded (depth,
    alias expansion, size, characters) and refusing duplicate keys; raises
    :class:`~kubeiam.documents.MappingDocumentError`.
    """
    return parse_yaml(text, source="section", typed=False, error=MappingDocumentError)


def parse_section(name: str, text: str | None) -> tuple[list[RawEntry], list[LoadIssue]]:
    """The entries of one ``data`` section, each with its line, or an ERROR issue."""
    if text is None:
        return [], []
    if not isinstance(text, str):
        message = "must be a YAML string (write `mapRoles: |` with the list indented below it)"
        return [], [LoadIssue(Severity.ERROR, Location(name), message)]
    if text.strip() in _EMPTY_TEXTS:
        return [], []
    try:
        value = _parse_yaml(text)
    except DocumentError as exc:
        problem = exc.problem.replace("is not valid YAML: ", "invalid YAML: ")
        location = Location(name, line=exc.line)
        return [], [LoadIssue(Severity.ERROR, location, problem, exc.code or INVALID_ENTRY)]
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], [LoadIssue(Severity.ERROR, Location(name, line=1), "must be a YAML list")]
    lines: list[int] = getattr(value, "lines", [])
    entries = [
        (item, Location(name, i, lines[i] if i < len(lines) else None))
        for i, item in enumerate(value)
    ]
    return entries, []


def read_aws_auth(
    data: Mapping[str, str] | None, *, strict: bool = False, match_by_user_id: bool = False
) -> LoadResult:
    """Load aws-auth ``data``. Skips invalid entries (or raises, ``strict``); see the module doc.

    Sections that are not valid YAML lists are ERROR issues: a caller holding a previous version
    must keep it (:attr:`LoadResult.ok` is False).
    """
    data = data or {}
    parsed = {name: parse_section(name, data.get(name)) for name in SECTIONS}
    result = load_parsed(parsed, match_by_user_id=match_by_user_id)
    if strict:
        result.raise_for_issues(strict=True)
    return result


def load_parsed(
    sections: Mapping[str, tuple[list[RawEntry], list[LoadIssue]]],
    *,
    match_by_user_id: bool = False,
    cache: EntryCache | None = None,
) -> LoadResult:
    """Validate and index sections already parsed by :func:`parse_section` (their issues first)."""
    return load_entries(
        *(sections.get(name, ([], []))[0] for name in SECTIONS),
        match_by_user_id=match_by_user_id,
        cache=cache,
        earlier=[issue for name in SECTIONS for issue in sections.get(name, ([], []))[1]],
    )


# --------------------------------------------------------------------------------------------
# Round-trip editing


class Change(enum.Enum):
    """What an edit did."""

    ADDED = "added"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"
    REMOVED = "removed"


#: An edited section of fewer lines than this is validated by parsing its new text again (a few
#: milliseconds); a bigger one (10,000 entries are 40,000 lines) through the entries spliced in
#: step with its lines.
FULL_PARSE_BELOW_LINES = 4000
#: A block sequence starts with a dash on its first meaningful line.
_BLOCK_START = re.compile(r"\A(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*- ")


def _parse_item(text: str) -> Any:
    """An item's lines read as :func:`parse_section` reads a whole section."""
    return _parse_yaml(text)


def _arn_tail(arn: str) -> str:
    """The part of an ARN every spelling of the same principal shares (its name, lower-cased):
    a cheap filter before the canonical comparison."""
    return arn.rsplit("/", 1)[-1].strip().lower()


class AwsAuthDocument:
    """aws-auth ``data`` opened for editing, keeping everything an edit does not touch.

    Edits splice text (:class:`~kubeiam.mapping.block_list.BlockList`): an added entry is appended
    to its section, a removed one cut out, a replaced one re-rendered from its own ruamel round-trip
    (its unknown keys and comments stay); every other line of every section stays byte for byte,
    and so do the other keys of ``data``. New entries follow the section's own indentation.

    Each section is parsed once, by :func:`parse_section` (the server's reader); the parsed entries
    are kept beside the lines and spliced with them, so :meth:`load` after an edit validates with
    the server's rules (:func:`load_parsed`) without parsing 10,000 entries again.

    ``check`` (the default) refuses, naming the line, a document the watcher would read with
    errors or skipped entries, or a section that is not a block list: kubeiam cannot edit those
    safely. Reading tools pass ``check=False`` and call :meth:`check_editable` before an edit.
    """

    def __init__(self, data: Mapping[str, str] | None = None, *, check: bool = True) -> None:
        self._data: dict[str, str] = dict(data or {})
        self._parsed: dict[str, tuple[object, list[RawEntry], list[LoadIssue]]] = {}
        self._lists: dict[str, BlockList] = {}
        self._result: LoadResult | None = None
        self._cache: EntryCache = {}
        self._checked = False
        if check:
            self.check_editable()

    def check_editable(self) -> None:
        """Raise :class:`MappingError` unless this document can be edited safely."""
        if self._checked:
            return
        self.load().raise_for_issues(strict=True)  # names the section and line
        for name in SECTIONS:
            text = self._data.get(name)
            if name in self._lists or not isinstance(text, str) or not self._section(name)[0]:
                continue
            # A section left holding only comments (its last entry removed) has no list.
            if not _BLOCK_START.match(text):
                raise MappingError(
                    f"{name} is not a block list ('- ' entries), which kubeiam cannot edit "
                    "without rewriting it",
                    hint="rewrite the section as a block list",
                )
        self._checked = True

    def to_data(self) -> dict[str, str]:
        """``data`` after the edits."""
        data = dict(self._data)
        for name, block in self._lists.items():
            if not block.changed:
                continue
            text = block.text()
            if text.strip():
                data[name] = text
            else:
                data.pop(name, None)
        return data

    def load(self) -> LoadResult:
        """The document as the watcher would load it."""
        if self._result is None:
            sections = {name: self._section(name) for name in SECTIONS}
            self._result = load_parsed(sections, cache=self._cache)
        return self._result

    # -- reading -------------------------------------------------------------------------------

    def _section(self, name: str) -> tuple[list[RawEntry], list[LoadIssue]]:
        """A section's entries and issues, parsed once per text. An edited section under
        :data:`FULL_PARSE_BELOW_LINES` is parsed again from its new text; a bigger one from the
        entries spliced in step with its lines."""
        block = self._lists.get(name)
        text: object = self._data.get(name)
        if block is not None:
            text = block.text() if block.changed else text
            if block.changed and len(block.lines) > FULL_PARSE_BELOW_LINES:
                return [
                    (item, Location(name, i, start + 1))
                    for i, (item, start) in enumerate(zip(block.items, block.starts, strict=True))
                ], []
        cached = self._parsed.get(name)
        if cached is None or cached[0] is not text:
            entries, issues = parse_section(name, text)  # type: ignore[arg-type]
            cached = (text, entries, issues)
            self._parsed[name] = cached
        return cached[1], cached[2]

    def _list(self, name: str) -> BlockList:
        """The section opened for splicing (an empty list when it is absent)."""
        block = self._lists.get(name)
        if block is None:
            self.check_editable()
            text = self._data.get(name)
            if not isinstance(text, str) or text.strip() in _EMPTY_TEXTS:
                text = ""
            entries, _ = self._section(name)
            lines = text.splitlines(keepends=True)
            block = BlockList(
                lines,
                [raw for raw, _ in entries],
                [(location.line or 1) - 1 for _, location in entries],
                parse_item=_parse_item,
                newline="\r\n" if lines and lines[0].endswith("\r\n") else "\n",
            )
            self._lists[name] = block
        return block

    def _edited(self) -> None:
        self._result = None

    def entries(self, name: str) -> list[Any]:
        """A section's raw entries (dicts and strings as written)."""
        return [raw for raw, _ in self._section(name)[0]]

    def _find(self, name: str, arn_field: str, arn: str) -> list[int]:
        """Indexes of the section's entries for ``arn`` (compared canonically)."""
        key = _canonical_key(name, arn)
        tail = _arn_tail(arn)
        found = []
        for i, raw in enumerate(self._list(name).items):
            value = get_any_case(raw, arn_field) if isinstance(raw, Mapping) else None
            if not isinstance(value, str) or _arn_tail(value) != tail:
                continue
            try:
                if _canonical_key(name, value.strip()) == key:
                    found.append(i)
            except MappingError:
                continue
        return found

    # -- editing -------------------------------------------------------------------------------

    def upsert_role(
        self, rolearn: str, username: str, groups: Sequence[str], *, replace: bool = False
    ) -> Change:
        """Add a mapRoles entry; identical -> unchanged; different -> refused unless ``replace``."""
        parse_new_entry(ROLES, {"rolearn": rolearn, "username": username, "groups": list(groups)})
        return self._upsert(ROLES, "rolearn", rolearn, username, groups, replace)

    def upsert_user(
        self, userarn: str, username: str, groups: Sequence[str], *, replace: bool = False
    ) -> Change:
        """Add a mapUsers entry; identical -> unchanged; different -> refused unless ``replace``."""
        parse_new_entry(USERS, {"userarn": userarn, "username": username, "groups": list(groups)})
        return self._upsert(USERS, "userarn", userarn, username, groups, replace)

    def _upsert(
        self,
        name: str,
        arn_field: str,
        arn: str,
        username: str,
        groups: Sequence[str],
        replace: bool,
    ) -> Change:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        found = self._find(name, arn_field, arn)
        if not found:
            entry = CommentedMap()
            entry[arn_field] = arn
            entry["username"] = username
            entry["groups"] = CommentedSeq(groups)
            self._list(name).append(entry)
            self._edited()
            return Change.ADDED
        return self._update_found(name, found, arn, username, groups, replace)

    def _update_found(
        self,
        name: str,
        found: list[int],
        what: str,
        username: str,
        groups: Sequence[str],
        replace: bool,
    ) -> Change:
        """The entries ``found`` for ``what`` in section ``name``: the same mapping once ->
        unchanged; otherwise refused unless ``replace``, which rewrites the first in place and
        drops the rest."""
        from ruamel.yaml.comments import CommentedSeq

        block = self._list(name)
        raw = block.items[found[0]]
        old_user = get_any_case(raw, "username")
        old_groups = list(get_any_case(raw, "groups") or [])
        if old_user == username and old_groups == list(groups) and len(found) == 1:
            return Change.UNCHANGED
        if not replace:
            raise MappingError(
                f"{name} already maps {what} to username {old_user!r} with groups {old_groups}",
                hint="pass --replace to overwrite it",
            )
        block.remove(found[1:])
        entry = load_entry(block.item_lines(found[0]), block.style)
        set_any_case(entry, "username", username)
        set_any_case(entry, "groups", CommentedSeq(groups))
        block.replace(found[0], entry)
        self._edited()
        return Change.REPLACED

    def upsert_group(
        self, grouparn: str, username: str, groups: Sequence[str], *, replace: bool = False
    ) -> Change:
        """Add a mapGroups entry (same rules as :meth:`upsert_role`); matched on the full ARN."""
        parse_new_entry(
            GROUPS, {"grouparn": grouparn, "username": username, "groups": list(groups)}
        )
        return self._upsert(GROUPS, "grouparn", grouparn, username, groups, replace)

    def _find_sso(self, key: tuple[str, str, str]) -> list[int]:
        found = []
        for i, raw in enumerate(self._list(ROLES).items):
            if isinstance(raw, Mapping) and get_any_case(raw, "sso") is not None:
                try:
                    entry, _ = parse_role_entry(raw)
                except MappingError:
                    continue
                if isinstance(entry, SSOMapping) and entry.key == key:
                    found.append(i)
        return found

    def upsert_sso(
        self,
        permission_set: str,
        account_id: str,
        username: str,
        groups: Sequence[str],
        *,
        partition: str = "aws",
        replace: bool = False,
    ) -> Change:
        """Add a mapRoles ``sso:`` entry (same rules as :meth:`upsert_role`)."""
        from ruamel.yaml.comments import CommentedMap, CommentedSeq
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        sso = CommentedMap()
        sso["permissionSetName"] = permission_set
        sso["accountID"] = DoubleQuotedScalarString(account_id)
        if partition != "aws":
            sso["partition"] = partition
        new = CommentedMap()
        new["sso"] = sso
        new["username"] = username
        new["groups"] = CommentedSeq(groups)
        parsed = parse_new_entry(
            ROLES, {"sso": dict(sso), "username": username, "groups": list(groups)}
        )
        assert isinstance(parsed, SSOMapping)
        found = self._find_sso(parsed.key)
        if not found:
            self._list(ROLES).append(new)
            self._edited()
            return Change.ADDED
        what = f"permission set {permission_set} in account {account_id}"
        return self._update_found(ROLES, found, what, username, groups, replace)

    def remove_sso(self, permission_set: str, account_id: str, *, partition: str = "aws") -> Change:
        """Remove every ``sso:`` entry for that permission set in that account."""
        key = (partition, account_id, permission_set.lower())
        found = self._find_sso(key)
        self._list(ROLES).remove(found)
        if found:
            self._edited()
        return Change.REMOVED if found else Change.UNCHANGED

    def add_account(self, account_id: str) -> Change:
        """Add a mapAccounts entry (quoted, so YAML keeps leading zeros)."""
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        parse_account_entry(account_id)
        block = self._list(ACCOUNTS)
        if any(str(a).strip() == account_id for a in block.items):
            return Change.UNCHANGED
        line = " " * block.style.top + "- " + render_scalar(DoubleQuotedScalarString(account_id))
        block.append_lines([line + block.newline])
        self._edited()
        return Change.ADDED

    def remove(self, arn_or_account: str) -> Change:
        """Remove every entry for a role ARN, user ARN, IAM group ARN or account id."""
        removed = False
        for name, arn_field in ((ROLES, "rolearn"), (USERS, "userarn"), (GROUPS, "grouparn")):
            try:
                hits = self._find(name, arn_field, arn_or_account)
            except MappingError:
                hits = []
            self._list(name).remove(hits)
            removed = removed or bool(hits)
        block = self._list(ACCOUNTS)
        hits = [i for i, raw in enumerate(block.items) if str(raw).strip() == arn_or_account]
        block.remove(hits)
        removed = removed or bool(hits)
        if removed:
            self._edited()
        return Change.REMOVED if removed else Change.UNCHANGED

    def names(self) -> list[str]:
        """What each entry maps (ARN, account, permission set), for "did you mean" answers."""
        out: list[str] = []
        for name in SECTIONS:
            for raw, _ in self._section(name)[0]:
                out += entry_names(raw)
        return out


def entry_names(raw: object) -> list[str]:
    """What one raw mapping entry names (its ARNs, or an account id, or an SSO permission set):
    the candidates a "did you mean" answer offers, for aws-auth and the file documents alike."""
    if not isinstance(raw, Mapping):
        return [str(raw).strip()] if isinstance(raw, str | int) else []
    names = []
    for field in ("rolearn", "userarn", "grouparn"):
        value = get_any_case(raw, field)
        if isinstance(value, str):
            names.append(value.strip())
    sso = get_any_case(raw, "sso")
    if isinstance(sso, Mapping):
        value = get_any_case(sso, "permissionsetname")
        if isinstance(value, str):
            names.append(value.strip())
    return names


def _canonical_key(section: str, arn: str) -> str:
    """The lookup key an ARN written in ``section`` is indexed under."""
    if section == GROUPS:
        group, _ = parse_group_entry({"grouparn": arn, "username": "x"})
        return group.key
    if section == ROLES:
        role, _ = parse_role_entry({"rolearn": arn, "username": "x"})
        return arn_key(role.canonical_arn) if isinstance(role, RoleMapping) else arn.lower()
    user, _ = parse_user_entry({"userarn": arn, "username": "x"})
    return arn_key(user.canonical_arn)
