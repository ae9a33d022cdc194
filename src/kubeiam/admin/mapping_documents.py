"""The three mapping stores' contents, opened for editing with one set of operations (pure).

`kubeiam mapping` edits three kinds of store with the same commands; each store's content is a
:class:`MappingDocument`:

* :class:`AwsAuthMappings`: the aws-auth ConfigMap's ``data`` through
  :class:`~kubeiam.mapping.aws_auth.AwsAuthDocument`, so every line and key an edit does not touch
  stays byte for byte;
* :class:`FileMappings`: a local file the server reads, either a server config YAML
  (``server.mapRoles`` ..., or the lists at the top level) or a DynamicFile JSON; ruamel.yaml round
  trip keeps comments and unknown keys;
* :class:`CrdMappings`: ``IAMIdentityMapping`` objects, one per ARN (the CRD has no form for SSO
  permission sets, IAM groups or accounts: those operations say so).

Every document loads through the same validation as the server's backend for that store
(:meth:`MappingDocument.load`), renders as text for a unified diff (:meth:`MappingDocument.text`),
and converts to and from a JSON-able ``state`` for backups. Operations follow one rule: an identical
mapping is ``UNCHANGED``, a different one for the same key is refused unless ``replace``.
"""

from __future__ import annotations

import abc
import copy
import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kubeiam.arn import arn_key, canonicalize_mapping_arn
from kubeiam.errors import ConfigError, MappingError
from kubeiam.keys import get_any_case, key_in, set_any_case
from kubeiam.mapping.aws_auth import AwsAuthDocument, Change, read_aws_auth
from kubeiam.mapping.backends.crd import entries_from_objects
from kubeiam.mapping.model import (
    ACCOUNTS,
    GROUPS,
    ROLES,
    USERS,
    LoadResult,
    SSOMapping,
    load_entries,
    load_sections,
    parse_account_entry,
    parse_group_entry,
    parse_role_entry,
    parse_user_entry,
)


class MappingDocument(Protocol):
    """One store's mappings, opened for editing."""

    def load(self) -> LoadResult:
        """The entries as the server's backend for this store would load them."""
        ...

    def text(self) -> str:
        """The content as text, for diffs."""
        ...

    def state(self) -> Any:
        """The content as JSON-able data, for backups (:func:`document_from_state` reverses it)."""
        ...

    def upsert_user(
        self, arn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change: ...

    def upsert_role(
        self, arn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change: ...

    def upsert_sso(
        self,
        permission_set: str,
        account_id: str,
        username: str,
        groups: Sequence[str],
        *,
        partition: str,
        replace: bool,
    ) -> Change: ...

    def upsert_group(
        self, grouparn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change: ...

    def add_account(self, account_id: str) -> Change: ...

    def remove(self, arn_or_account: str) -> Change: ...

    def remove_sso(self, permission_set: str, account_id: str, *, partition: str) -> Change: ...


def _check_role_or_user(arn: str, kind: str) -> str:
    """The canonical key of ``arn``; MappingError when it is not an IAM ``kind`` ARN."""
    mapped = canonicalize_mapping_arn(arn)
    if mapped.resource_type != kind:
        other = "add-role" if kind == "user" else "add-user"
        raise MappingError(f"{arn} is not an IAM {kind} ARN", hint=f"use `{other}` for it")
    return arn_key(mapped.canonical)


def _validate(kind: str, arn: str, username: str, groups: Sequence[str]) -> None:
    """The entry's username and groups (templates) under the loader's rules."""
    probe = {f"{kind}arn": arn, "username": username, "groups": list(groups)}
    if kind == "role":
        parse_role_entry(probe)
    else:
        parse_user_entry(probe)


def _lenient_key(arn: str) -> str:
    """The lookup key of an ARN as written: canonical when it parses, else as it stands (so a
    malformed entry can still be found and removed)."""
    try:
        return arn_key(canonicalize_mapping_arn(arn).canonical)
    except MappingError:
        return arn_key(arn)


def _same_key(written: object, key: str) -> bool:
    return isinstance(written, str) and _lenient_key(written) == key


def _replacing(
    what: str,
    old_username: object,
    old_groups: list[Any],
    username: str,
    groups: Sequence[str],
    *,
    copies: int,
    replace: bool,
) -> bool:
    """An upsert found ``copies`` entries for ``what``, the first saying ``old_*``: False when it
    is the one entry and says the same (unchanged); True to rewrite it (``replace``); otherwise
    the change is refused."""
    if old_username == username and old_groups == list(groups) and copies == 1:
        return False
    if not replace:
        raise MappingError(
            f"{what} is already mapped to username {old_username!r} with groups {old_groups}",
            hint="pass --replace to overwrite it, or use the same --username and --group values",
        )
    return True


# --------------------------------------------------------------------------------------------
# aws-auth


class AwsAuthMappings:
    """aws-auth ``data`` (a dict of YAML strings), edited line-preservingly.

    Reading (``load``, ``text``, ``state``) works on any content, so `list`, `lint` and `explain`
    can show what is wrong with a broken aws-auth; the editor is opened on the first change and
    refuses content it cannot edit safely (naming the line).
    """

    def __init__(self, data: Mapping[str, str] | None) -> None:
        self._data: dict[str, str] = dict(data or {})
        self._editor: AwsAuthDocument | None = None

    @property
    def _doc(self) -> AwsAuthDocument:
        if self._editor is None:
            self._editor = AwsAuthDocument(self._data)
        return self._editor

    @property
    def data(self) -> dict[str, str]:
        return self._editor.to_data() if self._editor is not None else dict(self._data)

    def load(self) -> LoadResult:
        return read_aws_auth(self.data)

    def text(self) -> str:
        out: list[str] = []
        for key, value in sorted(self.data.items()):
            out.append(f"{key}: |\n")
            out += [f"  {line}\n" if line else "\n" for line in str(value).splitlines()]
        return "".join(out)

    def state(self) -> Any:
        return self.data

    def upsert_user(
        self, arn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        _check_role_or_user(arn, "user")
        return self._doc.upsert_user(arn, username, groups, replace=replace)

    def upsert_role(
        self, arn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        _check_role_or_user(arn, "role")
        return self._doc.upsert_role(arn, username, groups, replace=replace)

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
        return self._doc.upsert_sso(
            permission_set, account_id, username, groups, partition=partition, replace=replace
        )

    def upsert_group(
        self, grouparn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        return self._doc.upsert_group(grouparn, username, groups, replace=replace)

    def add_account(self, account_id: str) -> Change:
        return self._doc.add_account(account_id)

    def remove(self, arn_or_account: str) -> Change:
        return self._doc.remove(arn_or_account)

    def remove_sso(self, permission_set: str, account_id: str, *, partition: str) -> Change:
        return self._doc.remove_sso(permission_set, account_id, partition=partition)


# --------------------------------------------------------------------------------------------
# Local file


class _ArnUpserts(abc.ABC):
    """``upsert_user``/``upsert_role`` of the documents that handle both kinds in one
    ``_upsert_arn(kind, ...)`` (kind ``"user"`` or ``"role"``)."""

    @abc.abstractmethod
    def _upsert_arn(
        self, kind: str, arn: str, username: str, groups: Sequence[str], replace: bool
    ) -> Change:
        """Add or replace the mapping of ``arn``, an IAM ``kind`` ARN."""

    def upsert_user(
        self, arn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        return self._upsert_arn("user", arn, username, groups, replace)

    def upsert_role(
        self, arn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        return self._upsert_arn("role", arn, username, groups, replace)


class FileMappings(_ArnUpserts):
    """A server config YAML or a DynamicFile JSON, edited as a round-trip document."""

    def __init__(self, text: str | None, *, json_format: bool, name: str = "mapping file") -> None:
        self._json = json_format
        self._name = name
        self._original = text or ""
        if json_format:
            try:
                doc = json.loads(text) if text and text.strip() else {}
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{name} is not valid JSON (line {exc.lineno}); nothing was written",
                    hint="fix the file, then retry",
                ) from None
            self._yaml: Any = None
        else:
            from kubeiam.admin import roundtrip

            doc, self._yaml = roundtrip.load(
                _path_for(name), text, default_indent=(4, 2)
            )  # raises ConfigError for invalid YAML
            if doc is None:
                from ruamel.yaml.comments import CommentedMap

                doc = CommentedMap()
        if not isinstance(doc, dict):
            raise ConfigError(f"{name}: the top level is not a mapping")
        self._doc: Any = doc
        self._dirty = False

    # -- structure -----------------------------------------------------------------------------

    def _new_map(self) -> Any:
        if self._json:
            return {}
        from ruamel.yaml.comments import CommentedMap

        return CommentedMap()

    def _holder(self, *, create: bool) -> Any:
        """The mapping holding the lists: the top level (JSON, flat YAML) or ``server``."""
        doc = self._doc
        sections = {s.lower() for s in (ROLES, USERS, ACCOUNTS, GROUPS)}
        if self._json or any(str(k).lower() in sections for k in doc):
            return doc
        for key, value in doc.items():
            if str(key).lower() == "server" and isinstance(value, dict):
                return value
        if not create:
            return {}
        server = self._new_map()
        doc["server"] = server
        return server

    def _list(self, section: str, *, create: bool) -> Any:
        holder = self._holder(create=create)
        key = key_in(holder, section.lower())
        if key is None:
            if not create:
                return []
            holder[section] = []
            return holder[section]
        value = holder[key]
        if value is None:
            if not create:
                return []
            holder[key] = []
            return holder[key]
        if not isinstance(value, list):
            raise ConfigError(f"{self._name}: `{key}` is not a list")
        return value

    def _drop_empty(self) -> None:
        holder = self._holder(create=False)
        sections = {s.lower() for s in (ROLES, USERS, ACCOUNTS, GROUPS)}
        for key in [k for k, v in holder.items() if str(k).lower() in sections and v == []]:
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

    # -- MappingDocument -----------------------------------------------------------------------

    def load(self) -> LoadResult:
        holder = self._holder(create=False)
        prefix = "" if holder is self._doc else "server."
        sections: dict[str, Any] = {}
        for key, value in holder.items():
            if str(key).lower() in {s.lower() for s in (ROLES, USERS, ACCOUNTS, GROUPS)}:
                sections[str(key)] = _plain(value)
        return load_sections(sections, prefix=prefix)

    def text(self) -> str:
        if not self._dirty:
            return self._original
        if self._json:
            return json.dumps(self._doc, indent=2) + "\n"
        from kubeiam.admin import roundtrip

        return roundtrip.dump(self._doc, self._yaml)

    def state(self) -> Any:
        return self.text()

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
        items = self._list(section, create=True)
        found = [i for i, e in enumerate(items) if isinstance(e, dict) and match(e)]
        if not found:
            items.append(new_entry)
            self._dirty = True
            return Change.ADDED
        first = items[found[0]]
        old_user = get_any_case(first, "username")
        old_groups = list(get_any_case(first, "groups") or [])
        if not _replacing(
            what, old_user, old_groups, username, groups, copies=len(found), replace=replace
        ):
            return Change.UNCHANGED
        for i in reversed(found[1:]):
            del items[i]
        set_any_case(first, "username", username)
        set_any_case(first, "groups", list(groups))
        self._dirty = True
        return Change.REPLACED

    def _upsert_arn(
        self, kind: str, arn: str, username: str, groups: Sequence[str], replace: bool
    ) -> Change:
        key = _check_role_or_user(arn, kind)
        field = f"{kind}arn"
        section = ROLES if kind == "role" else USERS
        items = self._list(section, create=False)
        entry = self._new_map()
        entry[self._arn_key_name(items, field)] = arn
        entry["username"] = username
        entry["groups"] = list(groups)
        _validate(kind, arn, username, groups)
        return self._upsert(
            section,
            lambda e: _same_key(get_any_case(e, field), key),
            entry,
            arn,
            username,
            groups,
            replace,
        )

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
        sso["accountID"] = account_id
        if partition != "aws":
            sso["partition"] = partition
        entry = self._new_map()
        entry["sso"] = sso
        entry["username"] = username
        entry["groups"] = list(groups)
        parsed, _ = parse_role_entry(_plain(entry))
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

    def upsert_group(
        self, grouparn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        parsed, _ = parse_group_entry(
            {"grouparn": grouparn, "username": username, "groups": list(groups)}
        )
        items = self._list(GROUPS, create=False)
        entry = self._new_map()
        entry[self._arn_key_name(items, "grouparn")] = grouparn
        entry["username"] = username
        entry["groups"] = list(groups)
        return self._upsert(
            GROUPS,
            lambda e: _same_key(get_any_case(e, "grouparn"), parsed.key),
            entry,
            grouparn,
            username,
            groups,
            replace,
        )

    def add_account(self, account_id: str) -> Change:
        parse_account_entry(account_id)
        items = self._list(ACCOUNTS, create=True)
        if any(str(a).strip() == account_id for a in items):
            return Change.UNCHANGED
        if self._json:
            items.append(account_id)
        else:
            from ruamel.yaml.scalarstring import DoubleQuotedScalarString

            items.append(DoubleQuotedScalarString(account_id))
        self._dirty = True
        return Change.ADDED

    def _remove_where(self, section: str, match: Any) -> bool:
        items = self._list(section, create=False)
        hits = [i for i, e in enumerate(items) if match(e)]
        for i in reversed(hits):
            del items[i]
        return bool(hits)

    def remove(self, arn_or_account: str) -> Change:
        removed = False
        if arn_or_account.startswith("arn:"):
            key = _lenient_key(arn_or_account)
            for section, field in ((ROLES, "rolearn"), (USERS, "userarn"), (GROUPS, "grouparn")):
                removed |= self._remove_where(
                    section,
                    lambda e, f=field: isinstance(e, dict) and _same_key(get_any_case(e, f), key),
                )
        else:
            removed = self._remove_where(ACCOUNTS, lambda e: str(e).strip() == arn_or_account)
        if removed:
            self._drop_empty()
            self._dirty = True
        return Change.REMOVED if removed else Change.UNCHANGED

    def remove_sso(self, permission_set: str, account_id: str, *, partition: str) -> Change:
        key = (partition, account_id, permission_set.lower())
        if self._remove_where(ROLES, lambda e: isinstance(e, dict) and _sso_key(e) == key):
            self._drop_empty()
            self._dirty = True
            return Change.REMOVED
        return Change.UNCHANGED


def _path_for(name: str) -> Any:
    from pathlib import Path

    return Path(name)


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

#: Object names kubeiam gives new IAMIdentityMapping objects: DNS-1123 subdomain characters only.
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]+")
_NAME_MAX_STEM = 40


def crd_object_name(arn: str) -> str:
    """A stable object name for ``arn``: readable stem and a hash of the canonical ARN."""
    canonical = canonicalize_mapping_arn(arn)
    resource = canonical.canonical.split(":", 5)[5]
    stem = _NAME_UNSAFE.sub("-", resource.lower()).strip("-")[:_NAME_MAX_STEM].strip("-")
    digest = hashlib.sha256(arn_key(canonical.canonical).encode()).hexdigest()[:10]
    return f"{stem}-{canonical.account_id}-{digest}"


class CrdMappings(_ArnUpserts):
    """IAMIdentityMapping objects by name (cluster-scoped); one object maps one ARN."""

    def __init__(self, objects: Mapping[str, Mapping[str, Any]]) -> None:
        self.objects: dict[str, dict[str, Any]] = {
            name: copy.deepcopy(dict(obj)) for name, obj in objects.items()
        }

    def specs(self) -> dict[str, Any]:
        return {name: self.objects[name].get("spec") for name in sorted(self.objects)}

    def load(self) -> LoadResult:
        roles, users = entries_from_objects(self.objects)
        return load_entries(roles, users)

    def text(self) -> str:
        import yaml

        buf = io.StringIO()
        for name, spec in self.specs().items():
            buf.write(yaml.safe_dump({name: spec}, sort_keys=False, default_flow_style=False))
        return buf.getvalue()

    def state(self) -> Any:
        return copy.deepcopy(self.specs())

    def _find(self, key: str) -> list[str]:
        return [
            name
            for name in sorted(self.objects)
            if _same_key((self.objects[name].get("spec") or {}).get("arn"), key)
        ]

    def _upsert_arn(
        self, kind: str, arn: str, username: str, groups: Sequence[str], replace: bool
    ) -> Change:
        key = _check_role_or_user(arn, kind)
        _validate(kind, arn, username, groups)
        found = self._find(key)
        spec = {"arn": arn, "username": username, "groups": list(groups)}
        if not found:
            name = crd_object_name(arn)
            self.objects[name] = {
                "apiVersion": "iamauthenticator.k8s.aws/v1alpha1",
                "kind": "IAMIdentityMapping",
                "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubeiam"}},
                "spec": spec,
            }
            return Change.ADDED
        first = self.objects[found[0]].setdefault("spec", {})
        old_user, old_groups = first.get("username"), list(first.get("groups") or [])
        if not _replacing(
            arn, old_user, old_groups, username, groups, copies=len(found), replace=replace
        ):
            return Change.UNCHANGED
        for name in found[1:]:
            del self.objects[name]
        first["username"] = username
        first["groups"] = list(groups)
        return Change.REPLACED

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
        raise ConfigError(
            "IAMIdentityMapping objects map one ARN each; they have no form for SSO permission "
            "sets",
            hint="map the permission set in aws-auth or a mapping file (--store aws-auth|file)",
        )

    def upsert_group(
        self, grouparn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        raise ConfigError(
            "IAMIdentityMapping objects map one user or role ARN each; they have no form for "
            "IAM groups",
            hint="map the IAM group in aws-auth or a mapping file (--store aws-auth|file)",
        )

    def add_account(self, account_id: str) -> Change:
        raise ConfigError(
            "IAMIdentityMapping objects map one ARN each; they have no form for whole accounts",
            hint="map the account in aws-auth or a mapping file (--store aws-auth|file)",
        )

    def remove(self, arn_or_account: str) -> Change:
        if not arn_or_account.startswith("arn:"):
            return Change.UNCHANGED
        found = self._find(_lenient_key(arn_or_account))
        for name in found:
            del self.objects[name]
        return Change.REMOVED if found else Change.UNCHANGED

    def remove_sso(self, permission_set: str, account_id: str, *, partition: str) -> Change:
        return Change.UNCHANGED
