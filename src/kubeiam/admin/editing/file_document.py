"""A local mapping file (server config YAML or DynamicFile JSON) opened for editing (pure)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubeiam.admin.editing.document import (
    ArnUpserts,
    check_role_or_user,
    lenient_key,
    replacing,
    same_key,
    validate_entry,
)
from kubeiam.admin.editing.file_text import SECTION_NAMES, ConfigText
from kubeiam.case_insensitive import get_any_case, key_in, set_any_case
from kubeiam.documents import DocumentError, load_document, parse_yaml
from kubeiam.errors import ConfigError, MappingError
from kubeiam.mapping.aws_auth import Change, entry_names
from kubeiam.mapping.block_list import NotSplicable, Style, load_entry, render_scalar
from kubeiam.mapping.model import (
    ACCOUNTS,
    GROUPS,
    INVALID_ENTRY,
    ROLES,
    UNKNOWN_KEY,
    USERS,
    EntryCache,
    GroupMapping,
    LoadIssue,
    LoadResult,
    Location,
    MappingSet,
    Problem,
    Severity,
    SSOMapping,
    load_sections,
    parse_account_entry,
    parse_new_entry,
    parse_role_entry,
)

#: An edited config file smaller than this is validated by parsing the new text again (a few
#: milliseconds); a bigger one through the document kept in step with the text.
FULL_PARSE_BELOW = 256 * 1024


class FileMappings(ArnUpserts):
    """A server config YAML or a DynamicFile JSON, as the server reads it and as edits change it.

    :meth:`load` is the server's own reading of the file (:func:`load_server_config` for YAML,
    :func:`~kubeiam.mapping.backends.dynamic_file.parse_dynamic_file` for JSON): a file the
    server would refuse (unreadable, duplicate keys, a section of the wrong shape, an invalid
    entry MountedFile would stop on) loads with ERROR issues, so `list`, `lint` and `explain`
    show why. An edit refuses such a file, and a section of the wrong shape, with nothing
    written (:class:`ConfigError`).

    YAML edits splice the text (:class:`~kubeiam.admin.editing.file_text.ConfigText`): untouched
    lines stay byte for byte and 10,000 entries edit in well under a second. A file the splicer
    does not recognise falls back to the ruamel round trip (comments and unknown keys kept too,
    but seconds on a big file). JSON is re-written with ``json.dumps`` (two-space indent).
    """

    def __init__(
        self,
        text: str | None,
        *,
        json_format: bool,
        name: str = "mapping file",
        splice: bool = True,
        full_parse_below: int = FULL_PARSE_BELOW,
    ) -> None:
        """``splice``: False edits YAML through the ruamel round trip even where the splicer
        could. ``full_parse_below``: an edited YAML text shorter than this is validated by
        parsing it again, a longer one through the document kept in step with it."""
        self._json = json_format
        self._splice = splice
        self._full_parse_below = full_parse_below
        self._name = name
        self._original = text or ""
        self._absent = text is None
        self._error: ConfigError | None = None
        self._doc: Any = None
        try:
            if self._original.strip():
                self._doc = load_document(
                    self._original, source=name, json_format=json_format, error=DocumentError
                )
        except ConfigError as exc:
            self._error = exc
        self._splicer: ConfigText | None = None
        self._yaml: Any = None  # ruamel, when the splicer cannot edit the file
        self._opened = False
        self._dirty = False
        self._result: LoadResult | None = None
        self._cache: EntryCache = {}
        self._json_text: str | None = None

    # -- reading -------------------------------------------------------------------------------

    def load(self) -> LoadResult:
        if self._result is None:
            if self._json and not self._dirty and self._absent:
                self._result = LoadResult(MappingSet())  # no file yet: nothing mapped
            elif self._json:
                self._result = self._load_dynamic()
            elif (
                self._dirty
                and self._splicer is not None
                and len(self._original) > self._full_parse_below
            ):
                # The document spliced with the text (see editing.file_text): 10,000 entries
                # are not parsed again.
                self._result = load_server_config(
                    self._splicer.doc, name=self._name, cache=self._cache
                )
            elif self._dirty:
                self._result = load_server_config_text(self.text(), name=self._name)
            elif self._error is not None:
                self._result = _refused(self._error)
            else:
                self._result = load_server_config(self._doc, name=self._name, cache=self._cache)
        return self._result

    def _load_dynamic(self) -> LoadResult:
        """DynamicFile's reading (:func:`parse_dynamic_file`) of the document this holds: the
        text parsed once by the same bounded JSON loader, then :func:`load_sections` with the
        entry cache. After an edit the text is ``json.dumps`` of the document, which reads back
        as the same document. (The tests compare it with parse_dynamic_file on a corpus.)"""
        if self._error is not None:
            return _refused(self._error)
        if not isinstance(self._doc, Mapping):
            return _refused(ConfigError("the top level must be a JSON object"))
        return load_sections(self._doc, cache=self._cache)

    @property
    def spliced(self) -> bool:
        """True when edits change only the lines they touch (the splicer), False when the file
        goes through the ruamel round trip (or has not been edited yet)."""
        return self._splicer is not None

    def text(self) -> str:
        if not self._dirty:
            return self._original
        if self._json:
            if self._json_text is None:  # json's indenting encoder is slow: once per change
                self._json_text = json.dumps(self._doc, indent=2) + "\n"
            return self._json_text
        if self._splicer is not None:
            return self._splicer.text()
        from kubeiam.admin.kubeconfig import roundtrip

        return roundtrip.dump(self._doc, self._yaml)

    def state(self) -> Any:
        return self.text()

    def names(self) -> list[str]:
        """What each entry maps (ARNs, accounts, permission sets), for "did you mean" answers."""
        holder = self._holder_value()
        if not isinstance(holder, dict):
            return []
        out: list[str] = []
        for key, value in holder.items():
            if str(key).lower() in SECTION_NAMES and isinstance(value, list):
                for item in value:
                    out += entry_names(item)
        return out

    # -- opening for an edit ---------------------------------------------------------------------

    def _holder_value(self) -> Any:
        doc = self._doc if not self._opened or self._splicer is None else self._splicer.doc
        if not isinstance(doc, dict):
            return None
        if self._json:
            return doc
        return next((v for k, v in doc.items() if str(k).lower() == "server"), None)

    def _open(self) -> None:
        """Check the file can be edited; choose the splicer or the round trip."""
        if self._opened:
            return
        if self._error is not None:
            raise ConfigError(
                f"{self._error.message}; nothing was written", hint=self._error.hint
            ) from None
        doc = self._doc
        if doc is not None and not isinstance(doc, dict):
            raise ConfigError(
                f"{self._name}: the top level is not a mapping; nothing was written",
                hint="a mapping file is a JSON object (DynamicFile) or a server config YAML",
            )
        if not self._json:
            self._check_yaml_shape(doc or {})
        if self._json:
            self._doc = doc if doc is not None else {}
            self._check_sections(self._doc, prefix="")
        else:
            from kubeiam.admin.kubeconfig import roundtrip

            default = roundtrip.guess_sequence_indent(self._original, _DEFAULT_INDENT)
            style = Style(0, default[1])
            try:
                if not self._splice:
                    raise NotSplicable("the round trip was asked for")
                self._splicer = ConfigText(
                    self._original, doc, parse_item=self._parse_item, style=style
                )
            except NotSplicable:
                self._doc, self._yaml = roundtrip.load(
                    Path(self._name), self._original, default_indent=_DEFAULT_INDENT
                )
                if self._doc is None:
                    from ruamel.yaml.comments import CommentedMap

                    self._doc = CommentedMap()
        self._opened = True

    def _parse_item(self, text: str) -> Any:
        return parse_yaml(text, source=self._name, error=DocumentError)

    def _check_yaml_shape(self, doc: dict[Any, Any]) -> None:
        flat = [k for k in doc if str(k).lower() in SECTION_NAMES]
        if flat:
            raise ConfigError(
                f"{self._name} has `{flat[0]}` at the top level, where kubeiam server does not "
                "read it (MountedFile reads server.mapRoles, server.mapUsers ...); nothing was "
                "written",
                hint="move the lists under `server:`, or use a DynamicFile *.json for a file "
                "of lists only",
            )
        holder = self._holder_value()
        if holder is not None and not isinstance(holder, dict):
            raise ConfigError(
                f"{self._name}: `server` is a {type(holder).__name__}, not a mapping of "
                "settings; nothing was written",
                hint="fix the file: `server:` holds mapRoles, mapUsers ... and the settings",
            )
        if isinstance(holder, dict):
            self._check_sections(holder, prefix="server.")

    def _check_sections(self, holder: dict[Any, Any], *, prefix: str) -> None:
        for key, value in holder.items():
            if str(key).lower() in SECTION_NAMES and not isinstance(value, list | None):
                raise ConfigError(
                    f"{self._name}: `{prefix}{key}` is a {type(value).__name__}, not a list "
                    "of entries; nothing was written",
                    hint=f"fix the file: write `{key}:` followed by `- ...` entries",
                )

    # -- sections --------------------------------------------------------------------------------

    def _items(self, section: str, *, create: bool) -> list[Any]:
        """The list of ``section`` (created when ``create``; else empty when absent)."""
        self._open()
        if self._splicer is not None:
            block = self._splicer.block(section, create=create)
            return block.items if block is not None else []
        holder = self._holder(create=create)
        key = key_in(holder, section.lower())
        if key is None or holder[key] is None:
            if not create:
                return []
            holder[section if key is None else key] = self._new_list()
            key = section if key is None else key
        value: list[Any] = holder[key]
        return value

    def _new_list(self) -> Any:
        if self._json:
            return []
        from ruamel.yaml.comments import CommentedSeq

        return CommentedSeq()

    def _new_map(self) -> Any:
        if self._json:
            return {}
        from ruamel.yaml.comments import CommentedMap

        return CommentedMap()

    def _holder(self, *, create: bool) -> Any:
        """The mapping holding the lists in the round-trip document (JSON: the top level)."""
        doc = self._doc
        if self._json:
            return doc
        for key, value in doc.items():
            if str(key).lower() == "server" and isinstance(value, dict):
                return value
        if not create:
            return {}
        key = next((k for k in doc if str(k).lower() == "server"), "server")
        server = self._new_map()
        doc[key] = server
        return server

    def _changed(self) -> None:
        self._dirty = True
        self._result = None
        self._json_text = None

    def _append(self, section: str, entry: Any) -> None:
        if self._splicer is not None:
            block = self._splicer.block(section, create=True)
            assert block is not None
            block.append(entry)
        else:
            self._items(section, create=True).append(entry)
        self._changed()

    def _rewrite(self, section: str, index: int, username: str, groups: Sequence[str]) -> None:
        if self._splicer is not None:
            from ruamel.yaml.comments import CommentedSeq

            block = self._splicer.block(section, create=False)
            assert block is not None
            entry = load_entry(block.item_lines(index), block.style)
            set_any_case(entry, "username", username)
            set_any_case(entry, "groups", CommentedSeq(groups))
            block.replace(index, entry)
        else:
            first = self._items(section, create=False)[index]
            set_any_case(first, "username", username)
            set_any_case(first, "groups", list(groups))
        self._changed()

    def _remove(self, section: str, indexes: Sequence[int]) -> bool:
        if not indexes:
            return False
        if self._splicer is not None:
            block = self._splicer.block(section, create=False)
            assert block is not None
            block.remove(indexes)
            self._splicer.drop_if_empty(section)
        else:
            items = self._items(section, create=False)
            for i in sorted(indexes, reverse=True):
                del items[i]
            self._drop_empty()
        self._changed()
        return True

    def _drop_empty(self) -> None:
        holder = self._holder(create=False)
        for key in [k for k, v in holder.items() if str(k).lower() in SECTION_NAMES and v == []]:
            del holder[key]
        if holder is not self._doc and not holder:
            for key in [k for k, v in self._doc.items() if v is holder]:
                del self._doc[key]

    def _arn_key_name(self, items: Sequence[Any], wanted: str) -> str:
        for entry in items:
            key = key_in(entry, wanted) if isinstance(entry, dict) else None
            if key is not None:
                return str(key)
        if self._json:
            return wanted
        return {"rolearn": "roleARN", "userarn": "userARN", "grouparn": "groupARN"}[wanted]

    # -- MappingDocument ---------------------------------------------------------------------------

    def _upsert(
        self,
        section: str,
        match: Any,
        new_entry: Any,
        what: str,
        username: str,
        groups: Sequence[str],
        replace: bool,
    ) -> Change:
        items = self._items(section, create=False)
        found = [i for i, e in enumerate(items) if isinstance(e, dict) and match(e)]
        if not found:
            self._append(section, new_entry)
            return Change.ADDED
        first = items[found[0]]
        old_user = get_any_case(first, "username")
        old_groups = list(get_any_case(first, "groups") or [])
        if not replacing(
            what, old_user, old_groups, username, groups, copies=len(found), replace=replace
        ):
            return Change.UNCHANGED
        self._remove(section, found[1:])
        self._rewrite(section, found[0], username, groups)
        return Change.REPLACED

    def _upsert_arn(
        self, kind: str, arn: str, username: str, groups: Sequence[str], replace: bool
    ) -> Change:
        key = check_role_or_user(arn, kind)
        field = f"{kind}arn"
        section = ROLES if kind == "role" else USERS
        validate_entry(kind, arn, username, groups)
        items = self._items(section, create=False)
        entry = self._new_map()
        entry[self._arn_key_name(items, field)] = arn
        entry["username"] = username
        entry["groups"] = self._list_of(groups)
        tail = _arn_tail(arn)
        return self._upsert(
            section,
            lambda e: same_key(get_any_case(e, field), key, tail),
            entry,
            arn,
            username,
            groups,
            replace,
        )

    def _list_of(self, values: Sequence[str]) -> Any:
        out = self._new_list()
        out.extend(values)
        return out

    def upsert_sso(
        self,
        permission_set: str,
        account_id: str,
        username: str,
        groups: Sequence[str],
        *,
        partition: str,
        replace: bool,
    ) -> Change:
        sso = self._new_map()
        sso["permissionSetName"] = permission_set
        sso["accountID"] = self._quoted(account_id)
        if partition != "aws":
            sso["partition"] = partition
        entry = self._new_map()
        entry["sso"] = sso
        entry["username"] = username
        entry["groups"] = self._list_of(groups)
        parsed = parse_new_entry(ROLES, _plain(entry))
        assert isinstance(parsed, SSOMapping)
        return self._upsert(
            ROLES,
            lambda e: _sso_key(e) == parsed.key,
            entry,
            f"permission set {permission_set} in account {account_id}",
            username,
            groups,
            replace,
        )

    def _quoted(self, value: str) -> Any:
        if self._json:
            return value
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        return DoubleQuotedScalarString(value)

    def upsert_group(
        self, grouparn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        parsed = parse_new_entry(
            GROUPS, {"grouparn": grouparn, "username": username, "groups": list(groups)}
        )
        assert isinstance(parsed, GroupMapping)
        items = self._items(GROUPS, create=False)
        entry = self._new_map()
        entry[self._arn_key_name(items, "grouparn")] = grouparn
        entry["username"] = username
        entry["groups"] = self._list_of(groups)
        tail = _arn_tail(grouparn)
        return self._upsert(
            GROUPS,
            lambda e: same_key(get_any_case(e, "grouparn"), parsed.key, tail),
            entry,
            grouparn,
            username,
            groups,
            replace,
        )

    def add_account(self, account_id: str) -> Change:
        parse_account_entry(account_id)
        items = self._items(ACCOUNTS, create=False)
        if any(str(a).strip() == account_id for a in items):
            return Change.UNCHANGED
        if self._splicer is not None:
            block = self._splicer.block(ACCOUNTS, create=True)
            assert block is not None
            line = " " * block.style.top + "- " + render_scalar(self._quoted(account_id))
            block.append_lines([line + block.newline])
            self._changed()
        else:
            self._append(ACCOUNTS, self._quoted(account_id))
        return Change.ADDED

    def _remove_where(self, section: str, match: Any) -> bool:
        items = self._items(section, create=False)
        return self._remove(section, [i for i, e in enumerate(items) if match(e)])

    def remove(self, arn_or_account: str) -> Change:
        removed = False
        if arn_or_account.startswith("arn:"):
            key = lenient_key(arn_or_account)
            tail = _arn_tail(arn_or_account)
            for section, field in ((ROLES, "rolearn"), (USERS, "userarn"), (GROUPS, "grouparn")):
                removed |= self._remove_where(
                    section,
                    lambda e, f=field: (
                        isinstance(e, dict) and same_key(get_any_case(e, f), key, tail)
                    ),
                )
        else:
            removed = self._remove_where(ACCOUNTS, lambda e: str(e).strip() == arn_or_account)
        return Change.REMOVED if removed else Change.UNCHANGED

    def remove_sso(self, permission_set: str, account_id: str, *, partition: str) -> Change:
        key = (partition, account_id, permission_set.lower())
        if self._remove_where(ROLES, lambda e: isinstance(e, dict) and _sso_key(e) == key):
            return Change.REMOVED
        return Change.UNCHANGED


#: New lists in a YAML file without one to copy: ``key:\n  - item`` (dash offset 2).
_DEFAULT_INDENT = (4, 2)


#: The code of what kubeiam server logs about a config it still reads, by the log call's fixed
#: message (its format string, never text from the file): keys it ignores.
_LOGGED_CODES = {"unknown key in server config": UNKNOWN_KEY}
#: The code of top-level mapping sections MountedFile does not read.
NOT_READ = "not-read"


def _refused(error: ConfigError) -> LoadResult:
    issue = LoadIssue(Severity.ERROR, Location("file"), error.message, error.code or INVALID_ENTRY)
    return LoadResult(MappingSet(), (issue,))


def load_server_config_text(text: str, *, name: str) -> LoadResult:
    """The mappings ``kubeiam server`` would load from config ``text`` (MountedFile), with every
    reason it would refuse the file as ERROR issues; see :func:`load_server_config`."""
    try:
        doc = parse_yaml(text, source=name, error=DocumentError)
    except ConfigError as exc:
        return _refused(exc)
    return load_server_config(doc, name=name)


def load_server_config(doc: Any, *, name: str, cache: EntryCache | None = None) -> LoadResult:
    """The mappings ``kubeiam server`` would load from config document ``doc``.

    The server's own steps: :func:`kubeiam.server.config.parse_config` (wrong shapes and values
    raise there, and the server does not start), then MountedFile's :func:`load_sections` in
    strict mode (a skipped entry stops the server too, so it is an ERROR here). The warnings
    the server would log (unknown keys ...) come back as WARNING issues.
    """
    from kubeiam.server.config import parse_config

    with _server_log_warnings() as warnings:
        try:
            values = parse_config(doc, source=name)
        except ConfigError as exc:
            return _refused(exc)
    result = load_sections(
        {
            ROLES: list(values.get("map_roles", ())),
            USERS: list(values.get("map_users", ())),
            ACCOUNTS: list(values.get("map_accounts", ())),
            GROUPS: list(values.get("map_groups", ())),
        },
        prefix="server.",
        cache=cache,
    )
    flat = [k for k in doc if str(k).lower() in SECTION_NAMES] if isinstance(doc, dict) else []
    warnings += [
        Problem(
            NOT_READ,
            f"`{k}` at the top level is not read by kubeiam server (MountedFile reads "
            f"server.{SECTION_NAMES[str(k).lower()]}): these entries map nobody",
        )
        for k in flat
    ]
    issues = tuple(
        LoadIssue(Severity.WARNING, Location("file"), w.message, w.code) for w in warnings
    ) + tuple(
        LoadIssue(Severity.ERROR, i.location, i.message + " (MountedFile refuses the file)", i.code)
        if i.severity is Severity.SKIPPED
        else i
        for i in result.issues
    )
    return LoadResult(result.mappings, issues)


@contextlib.contextmanager
def _server_log_warnings() -> Iterator[list[Problem]]:
    """What the server config parser logs at WARNING and above, as text with its code."""
    import logging

    collected: list[Problem] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            key = getattr(record, "key", None)
            code = _LOGGED_CODES.get(str(record.msg), INVALID_ENTRY)
            collected.append(Problem(code, record.getMessage() + (f": {key}" if key else "")))

    logger = logging.getLogger("kubeiam.server.config")
    handler = _Collect(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield collected
    finally:
        logger.removeHandler(handler)


def _arn_tail(arn: str) -> str:
    """The name part of an ARN (lower-cased): equal for every spelling of one principal, so a
    cheap filter before the canonical comparison."""
    return arn.rsplit("/", 1)[-1].strip().lower()


def _plain(value: Any) -> Any:
    """ruamel containers and scalars as plain Python (what the server's readers see)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _sso_key(entry: Any) -> tuple[str, str, str] | None:
    if not isinstance(entry, dict) or get_any_case(entry, "sso") is None:
        return None
    try:
        parsed, _ = parse_role_entry(_plain(entry))
    except MappingError:
        return None
    return parsed.key if isinstance(parsed, SSOMapping) else None


# --------------------------------------------------------------------------------------------
# IAMIdentityMapping objects
