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
* :class:`AwsAuthDocument`, the round-trip editor: ruamel.yaml keeps comments, unknown keys and
  entry order; sections an edit does not touch are written back byte for byte.

Top-level keys are case-sensitive (``mapRoles``), as in the reference; keys inside entries are not.
"""

from __future__ import annotations

import enum
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeiam.arn import arn_key
from kubeiam.documents import DocumentError, MappingDocumentError, parse_yaml
from kubeiam.errors import MappingError
from kubeiam.keys import get_any_case, set_any_case
from kubeiam.mapping.model import (
    ACCOUNTS,
    GROUPS,
    ROLES,
    USERS,
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
    parse_role_entry,
    parse_user_entry,
)

AWS_AUTH_NAME = "aws-auth"
AWS_AUTH_NAMESPACE = "kube-system"
SECTIONS = (ROLES, USERS, ACCOUNTS, GROUPS)

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
        return [], [LoadIssue(Severity.ERROR, Location(name, line=exc.line), problem)]
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
    sections: dict[str, list[RawEntry]] = {}
    issues: list[LoadIssue] = []
    for name in SECTIONS:
        entries, problems = parse_section(name, data.get(name))
        sections[name] = entries
        issues += problems
    result = load_entries(
        sections[ROLES],
        sections[USERS],
        sections[ACCOUNTS],
        sections[GROUPS],
        match_by_user_id=match_by_user_id,
    )
    if issues:
        result = LoadResult(result.mappings, tuple(issues) + result.issues)
    if strict:
        result.raise_for_issues(strict=True)
    return result


# --------------------------------------------------------------------------------------------
# Round-trip editing


class Change(enum.Enum):
    """What an edit did."""

    ADDED = "added"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class _Style:
    """How a section indents: the column of its top-level dashes, and nested lists' offset."""

    top: int = 0
    nested_offset: int = 2


_NESTED_LIST = re.compile(r"^( *)[^\s#-][^\n]*:[ \t]*\n( *)- ", re.MULTILINE)
_FIRST_DASH = re.compile(r"^( *)- ", re.MULTILINE)
#: A block sequence starts with a dash on its first meaningful line.
_BLOCK_START = re.compile(r"\A(?:[ \t]*(?:#[^\n]*)?\n)*[ \t]*- ")


def _style_of(text: str) -> _Style:
    first = _FIRST_DASH.search(text)
    top = len(first.group(1)) if first else 0
    nested = _NESTED_LIST.search(text)
    offset = len(nested.group(2)) - len(nested.group(1)) if nested else 2
    return _Style(top, max(0, offset))


def _render_entry(entry: Any, style: _Style) -> str:
    """One entry as block YAML lines for a top-level list of the given style."""
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.width = 4096
    y.indent(mapping=2, sequence=style.nested_offset + 2, offset=style.nested_offset)
    buf = io.StringIO()
    y.dump(entry, buf)
    lines = buf.getvalue().splitlines()
    pad = " " * style.top
    out = [pad + "- " + lines[0]] + [(pad + "  " + line) if line else line for line in lines[1:]]
    return "\n".join(out) + "\n"


def _load_entry(lines: Sequence[str], style: _Style) -> Any:
    """The ruamel mapping of one entry, from its lines in the section."""
    from ruamel.yaml import YAML

    width = style.top + 2
    body = [lines[0][width:]] + [line[width:] if line.strip() else "" for line in lines[1:]]
    return YAML(typ="rt").load("\n".join(body) + "\n")


def _is_comment_or_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


class AwsAuthDocument:
    """aws-auth ``data`` opened for editing, keeping everything an edit does not touch.

    Edits splice text: an added entry is appended to its section, a removed one cut out, a replaced
    one re-rendered from its own ruamel round-trip (its unknown keys and comments stay); every other
    line of every section stays byte for byte, and so do the other keys of ``data``. New entries
    follow the section's own indentation. Validation uses the rules of :func:`read_aws_auth` in
    strict mode, so a document that parses here is one the watcher accepts.
    """

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = dict(data or {})
        for name in SECTIONS:
            text = self._data.get(name)
            if text is not None and text.strip() not in _EMPTY_TEXTS:
                read_aws_auth({name: text}, strict=True)  # raises MappingError naming the line
                # A section left holding only comments (its last entry removed) has no list.
                if parse_section(name, text)[0] and not _BLOCK_START.match(text):
                    raise MappingError(
                        f"{name} is not a block list ('- ' entries), which kubeiam cannot edit "
                        "without rewriting it",
                        hint="rewrite the section as a block list",
                    )

    def to_data(self) -> dict[str, str]:
        """``data`` after the edits."""
        return dict(self._data)

    def load(self) -> LoadResult:
        """The document as the watcher would load it."""
        return read_aws_auth(self._data)

    # -- reading -------------------------------------------------------------------------------

    def _text(self, name: str) -> str:
        text = self._data.get(name)
        return "" if text is None or text.strip() in _EMPTY_TEXTS else text

    def _spans(self, name: str) -> list[tuple[Any, int, int]]:
        """Each entry of a section with its [start, end) line span (0-based)."""
        text = self._text(name)
        entries, _ = parse_section(name, text)
        lines = text.splitlines()
        starts = [(loc.line or 1) - 1 for _, loc in entries]
        spans: list[tuple[Any, int, int]] = []
        for i, (raw, _) in enumerate(entries):
            end = starts[i + 1] if i + 1 < len(starts) else len(lines)
            while end > starts[i] + 1 and _is_comment_or_blank(lines[end - 1]):
                end -= 1
            spans.append((raw, starts[i], end))
        return spans

    def entries(self, name: str) -> list[Any]:
        """A section's raw entries (dicts and strings as written)."""
        return [raw for raw, _, _ in self._spans(name)]

    def _find(self, name: str, arn_field: str, arn: str) -> list[tuple[Any, int, int]]:
        key = _canonical_key(name, arn)
        found = []
        for raw, start, end in self._spans(name):
            value = get_any_case(raw, arn_field) if isinstance(raw, Mapping) else None
            if isinstance(value, str) and _canonical_key(name, value) == key:
                found.append((raw, start, end))
        return found

    # -- editing -------------------------------------------------------------------------------

    def _splice(self, name: str, start: int, end: int, new: str) -> None:
        text = self._text(name)
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        result = "".join(lines[:start]) + new + "".join(lines[end:])
        if result.strip():
            self._data[name] = result
        else:
            self._data.pop(name, None)

    def _append(self, name: str, entry: Any) -> None:
        text = self._text(name)
        n = len(text.splitlines())
        self._splice(name, n, n, _render_entry(entry, _style_of(text)))

    def upsert_role(
        self, rolearn: str, username: str, groups: Sequence[str], *, replace: bool = False
    ) -> Change:
        """Add a mapRoles entry; identical -> unchanged; different -> refused unless ``replace``."""
        parse_role_entry({"rolearn": rolearn, "username": username, "groups": list(groups)})
        return self._upsert(ROLES, "rolearn", rolearn, username, groups, replace)

    def upsert_user(
        self, userarn: str, username: str, groups: Sequence[str], *, replace: bool = False
    ) -> Change:
        """Add a mapUsers entry; identical -> unchanged; different -> refused unless ``replace``."""
        parse_user_entry({"userarn": userarn, "username": username, "groups": list(groups)})
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
            self._append(name, entry)
            return Change.ADDED
        return self._update_found(name, found, arn, username, groups, replace)

    def _update_found(
        self,
        name: str,
        found: list[tuple[Any, int, int]],
        what: str,
        username: str,
        groups: Sequence[str],
        replace: bool,
    ) -> Change:
        """The entries ``found`` for ``what`` in section ``name``: the same mapping once ->
        unchanged; otherwise refused unless ``replace``, which rewrites the first in place and
        drops the rest."""
        from ruamel.yaml.comments import CommentedSeq

        raw, start, end = found[0]
        old_user = get_any_case(raw, "username")
        old_groups = list(get_any_case(raw, "groups") or [])
        if old_user == username and old_groups == list(groups) and len(found) == 1:
            return Change.UNCHANGED
        if not replace:
            raise MappingError(
                f"{name} already maps {what} to username {old_user!r} with groups {old_groups}",
                hint="pass --replace to overwrite it",
            )
        style = _style_of(self._text(name))
        for _, s, e in reversed(found[1:]):
            self._splice(name, s, e, "")
        entry = _load_entry(self._text(name).splitlines()[start:end], style)
        set_any_case(entry, "username", username)
        set_any_case(entry, "groups", CommentedSeq(groups))
        self._splice(name, start, end, _render_entry(entry, style))
        return Change.REPLACED

    def upsert_group(
        self, grouparn: str, username: str, groups: Sequence[str], *, replace: bool = False
    ) -> Change:
        """Add a mapGroups entry (same rules as :meth:`upsert_role`); matched on the full ARN."""
        parse_group_entry({"grouparn": grouparn, "username": username, "groups": list(groups)})
        return self._upsert(GROUPS, "grouparn", grouparn, username, groups, replace)

    def _find_sso(self, key: tuple[str, str, str]) -> list[tuple[Any, int, int]]:
        found = []
        for raw, start, end in self._spans(ROLES):
            if isinstance(raw, Mapping) and get_any_case(raw, "sso") is not None:
                try:
                    entry, _ = parse_role_entry(raw)
                except MappingError:
                    continue
                if isinstance(entry, SSOMapping) and entry.key == key:
                    found.append((raw, start, end))
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
        parsed, _ = parse_role_entry({"sso": dict(sso), "username": username, "groups": groups})
        assert isinstance(parsed, SSOMapping)
        found = self._find_sso(parsed.key)
        if not found:
            self._append(ROLES, new)
            return Change.ADDED
        what = f"permission set {permission_set} in account {account_id}"
        return self._update_found(ROLES, found, what, username, groups, replace)

    def remove_sso(self, permission_set: str, account_id: str, *, partition: str = "aws") -> Change:
        """Remove every ``sso:`` entry for that permission set in that account."""
        key = (partition, account_id, permission_set.lower())
        found = self._find_sso(key)
        for _, start, end in reversed(found):
            self._splice(ROLES, start, end, "")
        return Change.REMOVED if found else Change.UNCHANGED

    def add_account(self, account_id: str) -> Change:
        """Add a mapAccounts entry (quoted, so YAML keeps leading zeros)."""
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        parse_account_entry(account_id)
        if any(str(a).strip() == account_id for a in self.entries(ACCOUNTS)):
            return Change.UNCHANGED
        text = self._text(ACCOUNTS)
        n = len(text.splitlines())
        style = _style_of(text)
        line = " " * style.top + "- " + _render_scalar(DoubleQuotedScalarString(account_id))
        self._splice(ACCOUNTS, n, n, line)
        return Change.ADDED

    def remove(self, arn_or_account: str) -> Change:
        """Remove every entry for a role ARN, user ARN or account id."""
        removed = False
        for name, arn_field in ((ROLES, "rolearn"), (USERS, "userarn"), (GROUPS, "grouparn")):
            try:
                hits = self._find(name, arn_field, arn_or_account)
            except MappingError:
                hits = []
            for _, start, end in reversed(hits):
                self._splice(name, start, end, "")
                removed = True
        spans = self._spans(ACCOUNTS)
        for raw, start, end in reversed(spans):
            if str(raw).strip() == arn_or_account:
                self._splice(ACCOUNTS, start, end, "")
                removed = True
        return Change.REMOVED if removed else Change.UNCHANGED


def _render_scalar(value: Any) -> str:
    from ruamel.yaml import YAML

    buf = io.StringIO()
    YAML(typ="rt").dump([value], buf)
    return buf.getvalue()[2:]


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
