"""The aws-auth ConfigMap's ``data`` <-> mappings (pure).

``data`` holds YAML *strings* under ``mapRoles``, ``mapUsers`` and ``mapAccounts`` (protocol.md
section 4). Two readers, for two jobs:

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

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kubeiam.arn import arn_key
from kubeiam.errors import MappingError
from kubeiam.mapping.model import (
    ACCOUNTS,
    ROLES,
    USERS,
    LoadIssue,
    LoadResult,
    Location,
    RawEntry,
    RoleMapping,
    Severity,
    load_entries,
    parse_account_entry,
    parse_role_entry,
    parse_user_entry,
)

AWS_AUTH_NAME = "aws-auth"
AWS_AUTH_NAMESPACE = "kube-system"
SECTIONS = (ROLES, USERS, ACCOUNTS)

#: Section texts the reference treats as "nothing here".
_EMPTY_TEXTS = frozenset({"", "``", '""', "''"})
#: Plain scalars that mean null in YAML 1.1 (``groups:`` with nothing after it).
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


class _Map(dict[str, Any]):
    """A dict that remembers the line its mapping started on."""

    __slots__ = ("line",)
    line: int


class _Seq(list[Any]):
    """A list that remembers its own line and the line each item started on."""

    __slots__ = ("line", "lines")
    line: int
    lines: list[int]


_NOKEY = object()


def _parse_yaml(text: str) -> Any:
    """One YAML document as lists, dicts (with line numbers) and strings; raises ``yaml.YAMLError``.

    Built from the C parser's event stream. Tags are ignored and scalars stay strings, except that
    plain null spellings become ``None``. Aliases resolve to the anchored value.
    """
    stack: list[tuple[Any, list[Any]]] = []  # (container, [pending mapping key or _NOKEY])
    anchors: dict[str, Any] = {}
    root: Any = None
    documents = 0
    nokey = _NOKEY
    scalar_t, map_start_t, seq_start_t = (
        yaml.ScalarEvent,
        yaml.MappingStartEvent,
        yaml.SequenceStartEvent,
    )
    map_end_t, seq_end_t, alias_t = yaml.MappingEndEvent, yaml.SequenceEndEvent, yaml.AliasEvent
    doc_start_t, stream_end_t = yaml.DocumentStartEvent, yaml.StreamEndEvent
    loader: Any = yaml.CSafeLoader(text)
    get_event = loader.get_event
    try:
        while True:
            event: Any = get_event()
            cls = type(event)
            if cls is scalar_t:
                value: Any = event.value
                if event.style is None and value in _NULLS and event.implicit[0]:
                    value = None
                if event.anchor:
                    anchors[event.anchor] = value
            elif cls is map_start_t:
                m = _Map()
                m.line = event.start_mark.line + 1
                if event.anchor:
                    anchors[event.anchor] = m
                stack.append((m, [nokey]))
                continue
            elif cls is seq_start_t:
                q = _Seq()
                q.line = event.start_mark.line + 1
                q.lines = []
                if event.anchor:
                    anchors[event.anchor] = q
                stack.append((q, [nokey]))
                continue
            elif cls is map_end_t or cls is seq_end_t:
                value = stack.pop()[0]
            elif cls is alias_t:
                if event.anchor not in anchors:
                    raise yaml.YAMLError(f"unknown alias *{event.anchor}")
                value = anchors[event.anchor]
            elif cls is doc_start_t:
                documents += 1
                if documents > 1:
                    raise yaml.YAMLError("expected one YAML document, found several")
                continue
            elif cls is stream_end_t or event is None:
                break
            else:
                continue
            if not stack:
                root = value
                continue
            container, pending = stack[-1]
            if type(container) is _Seq:
                container.append(value)
                line = getattr(value, "line", None)
                container.lines.append(line if line is not None else event.start_mark.line + 1)
            elif pending[0] is nokey:
                pending[0] = value if isinstance(value, str) else str(value)
            else:
                container[pending[0]] = value
                pending[0] = nokey
    finally:
        loader.dispose()
    return root


def parse_section(name: str, text: str | None) -> tuple[list[RawEntry], list[LoadIssue]]:
    """The entries of one ``data`` section, each with its line, or an ERROR issue."""
    if text is None or text.strip() in _EMPTY_TEXTS:
        return [], []
    try:
        value = _parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return [], [
            LoadIssue(Severity.ERROR, Location(name, line=line), f"invalid YAML: {problem}")
        ]
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
        sections[ROLES], sections[USERS], sections[ACCOUNTS], match_by_user_id=match_by_user_id
    )
    if issues:
        result = LoadResult(result.mappings, tuple(issues) + result.issues)
    if strict:
        result.raise_for_issues(strict=True)
    return result


# --------------------------------------------------------------------------------------------
# Round-trip editing


class Change(str):
    """What an edit did: ``added``, ``replaced``, ``unchanged`` or ``removed``."""


ADDED = Change("added")
REPLACED = Change("replaced")
UNCHANGED = Change("unchanged")
REMOVED = Change("removed")


@dataclass(frozen=True, slots=True)
class _Indent:
    mapping: int
    sequence: int
    offset: int


def _yaml_rt(indent: _Indent | None = None) -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    if indent is not None:
        y.indent(mapping=indent.mapping, sequence=indent.sequence, offset=indent.offset)
    else:
        y.indent(mapping=2, sequence=2, offset=0)
    return y


def _guess_indent(text: str) -> _Indent:
    from ruamel.yaml.util import load_yaml_guess_indent

    try:
        _, ind, block_seq = load_yaml_guess_indent(text)
    except Exception:  # unreadable text is reported by the strict reader, not here
        return _Indent(2, 2, 0)
    ind = ind or 2
    block_seq = block_seq or 0
    return _Indent(ind, max(ind, block_seq + 2), block_seq)


def _get(entry: Mapping[str, Any], key: str) -> Any:
    for k, v in entry.items():
        if str(k).lower() == key:
            return v
    return None


def _set(entry: Any, key: str, value: Any) -> None:
    for k in list(entry):
        if str(k).lower() == key:
            entry[k] = value
            return
    entry[key] = value


class AwsAuthDocument:
    """aws-auth ``data`` opened for editing, keeping everything an edit does not touch.

    Validation uses the same rules as :func:`read_aws_auth` in strict mode, so a document that
    parses here is one the watcher accepts.
    """

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._original: dict[str, str] = dict(data or {})
        self._sections: dict[str, Any] = {}
        self._indent: dict[str, _Indent] = {}
        self._dirty: set[str] = set()
        for name in SECTIONS:
            text = self._original.get(name)
            if text is None or text.strip() in _EMPTY_TEXTS:
                continue
            read_aws_auth({name: text}, strict=True)  # raises MappingError naming the line
            self._indent[name] = _guess_indent(text)
            self._sections[name] = _yaml_rt(self._indent[name]).load(text)

    # -- reading -------------------------------------------------------------------------------

    def section(self, name: str) -> list[Any]:
        """The live (ruamel) list of one section, created empty when absent."""
        if name not in SECTIONS:
            raise MappingError(f"unknown aws-auth section {name!r}")
        if self._sections.get(name) is None:
            from ruamel.yaml.comments import CommentedSeq

            self._sections[name] = CommentedSeq()
        value: list[Any] = self._sections[name]
        return value

    def load(self) -> LoadResult:
        """The document as the watcher would load it."""
        return read_aws_auth(self.to_data())

    def _find(self, name: str, arn_field: str, arn: str) -> Iterator[tuple[int, Any]]:
        key = _canonical_key(name, arn)
        for i, entry in enumerate(self.section(name)):
            value = _get(entry, arn_field) if isinstance(entry, Mapping) else None
            if isinstance(value, str) and _canonical_key(name, value) == key:
                yield i, entry

    # -- editing -------------------------------------------------------------------------------

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

        found = list(self._find(name, arn_field, arn))
        if found:
            _, entry = found[0]
            same = _get(entry, "username") == username and list(
                _get(entry, "groups") or []
            ) == list(groups)
            if same and len(found) == 1:
                return UNCHANGED
            if not replace:
                raise MappingError(
                    f"{name} already maps {arn} to username {_get(entry, 'username')!r} with "
                    f"groups {list(_get(entry, 'groups') or [])}",
                    hint="pass --replace to overwrite it",
                )
            _set(entry, "username", username)
            _set(entry, "groups", CommentedSeq(groups))
            seq = self.section(name)
            for i, _ in reversed(found[1:]):
                del seq[i]
            self._dirty.add(name)
            return REPLACED
        entry = CommentedMap()
        entry[arn_field] = arn
        entry["username"] = username
        entry["groups"] = CommentedSeq(groups)
        self.section(name).append(entry)
        self._dirty.add(name)
        return ADDED

    def add_account(self, account_id: str) -> Change:
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        parse_account_entry(account_id)
        seq = self.section(ACCOUNTS)
        if any(str(a).strip() == account_id for a in seq):
            return UNCHANGED
        seq.append(DoubleQuotedScalarString(account_id))
        self._dirty.add(ACCOUNTS)
        return ADDED

    def remove(self, arn_or_account: str) -> Change:
        """Remove every entry for a role ARN, user ARN or account id."""
        removed = False
        for name, arn_field in ((ROLES, "rolearn"), (USERS, "userarn")):
            if name not in self._sections:
                continue
            try:
                hits = [i for i, _ in self._find(name, arn_field, arn_or_account)]
            except MappingError:
                hits = []
            seq = self.section(name)
            for i in reversed(hits):
                del seq[i]
                removed = True
                self._dirty.add(name)
        if ACCOUNTS in self._sections:
            seq = self.section(ACCOUNTS)
            for i in reversed([i for i, a in enumerate(seq) if str(a).strip() == arn_or_account]):
                del seq[i]
                removed = True
                self._dirty.add(ACCOUNTS)
        return REMOVED if removed else UNCHANGED

    # -- writing -------------------------------------------------------------------------------

    def to_data(self) -> dict[str, str]:
        """``data`` with edited sections re-serialised and everything else as it was."""
        out = dict(self._original)
        for name in SECTIONS:
            if name not in self._dirty:
                continue
            seq = self._sections.get(name)
            if not seq:
                out.pop(name, None)
                continue
            buf = io.StringIO()
            _yaml_rt(self._indent.get(name)).dump(seq, buf)
            out[name] = buf.getvalue()
        return out


def _canonical_key(section: str, arn: str) -> str:
    """The lookup key an ARN written in ``section`` is indexed under."""
    if section == ROLES:
        role, _ = parse_role_entry({"rolearn": arn, "username": "x"})
        return arn_key(role.canonical_arn) if isinstance(role, RoleMapping) else arn.lower()
    user, _ = parse_user_entry({"userarn": arn, "username": "x"})
    return arn_key(user.canonical_arn)
