"""The seam through which the IAM workflows write "the mapping", and its local-file writer.

`kubeiam iam onboard-user` and `create-access-role` end with "map this ARN to these Kubernetes
groups"; where that mapping lives (the aws-auth ConfigMap, ``IAMIdentityMapping`` objects, or a
local file the server reads) is not their business. They call a :class:`MappingWriter`.

:class:`LocalFileMappingWriter` edits a local file:

* a server config file in the reference's format (YAML, lists under ``server.mapUsers`` /
  ``server.mapRoles``; a file whose top level already has ``mapUsers``/``mapRoles`` is edited
  there), round trip with ruamel.yaml so comments and unknown keys stay;
* a DynamicFile (``*.json``: top-level ``mapRoles`` / ``mapUsers`` arrays).

Entries are compared by canonical ARN (role paths stripped, case-insensitive), so adding an
identical mapping is a no-op and a different mapping for the same ARN is refused. Entries for
nodes are never removed. New entries use the key spelling the file already uses (``roleARN`` or
``rolearn``); by default ``userARN``/``roleARN`` in YAML (the reference's documentation) and
``userarn``/``rolearn`` in JSON (aws-auth's spelling). Writes go through
:func:`kubeiam.admin.files.locked_update` (lock, atomic rename; an existing file keeps its mode).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from kubeiam.admin import roundtrip
from kubeiam.admin.files import locked_update
from kubeiam.arn import arn_key, canonicalize_mapping_arn
from kubeiam.errors import ConfigError, GuardError, MappingError
from kubeiam.keys import get_any_case, key_in

#: Groups and username prefix that mark a node entry: removing it locks nodes out.
NODE_GROUPS = frozenset({"system:nodes", "system:bootstrappers"})
NODE_USERNAME_PREFIX = "system:node:"


class _FileAbsentError(Exception):
    """Internal: the file to remove from does not exist (nothing to write)."""


class MappingChange(enum.Enum):
    """What a :class:`MappingWriter` call did."""

    ADDED = "added"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    ABSENT = "absent"


class EntryKind(enum.Enum):
    USER = "user"
    ROLE = "role"


class MappingWriter(Protocol):
    """Where the IAM workflows write mappings. Every method is idempotent."""

    @property
    def target(self) -> str:
        """Where the mapping lives, for messages (``file /etc/kubeiam/config.yaml``)."""
        ...

    def add_user(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        """Map IAM user ``arn``; UNCHANGED if already identical; MappingError if different."""
        ...

    def add_role(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        """Map IAM role ``arn``; UNCHANGED if already identical; MappingError if different."""
        ...

    def remove(self, arn: str) -> MappingChange:
        """Remove every entry for ``arn``; ABSENT if there was none; GuardError for nodes."""
        ...


#: The ARN key of a new entry in a YAML file that has none yet (the reference's documentation);
#: JSON files use the lower-case key, as aws-auth does.
_YAML_ARN_KEYS = {"userarn": "userARN", "rolearn": "roleARN"}


def _arn_of(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    for key, value in entry.items():
        if str(key).lower() in ("userarn", "rolearn") and isinstance(value, str):
            return value
    return None


def _same_arn(a: str, b: str) -> bool:
    try:
        ca = canonicalize_mapping_arn(a).canonical
        cb = canonicalize_mapping_arn(b).canonical
    except MappingError:
        return arn_key(a) == arn_key(b)
    return arn_key(ca) == arn_key(cb)


def _is_node_entry(entry: dict[str, Any]) -> bool:
    username = str(get_any_case(entry, "username") or "")
    groups = {str(g) for g in (get_any_case(entry, "groups") or ())}
    return username.startswith(NODE_USERNAME_PREFIX) or bool(groups & NODE_GROUPS)


class LocalFileMappingWriter:
    """A :class:`MappingWriter` over a server config YAML file or a DynamicFile JSON file."""

    def __init__(self, path: Path, *, dry_run: bool = False) -> None:
        self.path = Path(path)
        self.dry_run = dry_run
        self._json = self.path.suffix.lower() == ".json"

    @property
    def target(self) -> str:
        return f"file {self.path}"

    # -- the protocol --------------------------------------------------------------------------

    def add_user(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        return self._add(EntryKind.USER, arn, username, groups)

    def add_role(self, arn: str, username: str, groups: Sequence[str]) -> MappingChange:
        return self._add(EntryKind.ROLE, arn, username, groups)

    def remove(self, arn: str) -> MappingChange:
        outcome: list[MappingChange] = []

        def change(old: str | None) -> str:
            if old is None:
                raise _FileAbsentError
            doc, dump = self._load(old)
            holder = self._holder(doc, create=False)
            removed = False
            for list_key in ("mapUsers", "mapRoles"):
                items = self._list(holder, list_key, create=False)
                if items is None:
                    continue
                keep = []
                for entry in items:
                    entry_arn = _arn_of(entry)
                    if entry_arn is not None and _same_arn(entry_arn, arn):
                        if _is_node_entry(entry):
                            raise GuardError(
                                f"{self.path}: the entry for {entry_arn} maps nodes; removing it "
                                "would lock every node using that role out of the cluster",
                                hint="edit the file by hand if you really mean it",
                            )
                        removed = True
                        continue
                    keep.append(entry)
                if removed:
                    items[:] = keep
            if removed:
                self._drop_empty(doc, holder)
            outcome.append(MappingChange.REMOVED if removed else MappingChange.ABSENT)
            return dump(doc) if removed else old

        try:
            locked_update(self.path, change, dry_run=self.dry_run, preserve_mode=True)
        except _FileAbsentError:
            return MappingChange.ABSENT
        return outcome[-1]

    # -- internals -----------------------------------------------------------------------------

    def _add(
        self, kind: EntryKind, arn: str, username: str, groups: Sequence[str]
    ) -> MappingChange:
        parsed = canonicalize_mapping_arn(arn)
        if parsed.resource_type != kind.value:
            raise MappingError(f"{arn} is not an IAM {kind.value} ARN")
        if not username:
            raise MappingError(f"no username for {arn}", hint="pass --username")
        outcome: list[MappingChange] = []

        def change(old: str | None) -> str:
            doc, dump = self._load(old)
            holder = self._holder(doc, create=True)
            list_key = "mapUsers" if kind is EntryKind.USER else "mapRoles"
            items = self._list(holder, list_key, create=True)
            assert items is not None
            for entry in items:
                entry_arn = _arn_of(entry)
                if entry_arn is None or not _same_arn(entry_arn, arn):
                    continue
                have = (
                    str(get_any_case(entry, "username") or ""),
                    list(get_any_case(entry, "groups") or []),
                )
                if have == (username, list(groups)):
                    outcome.append(MappingChange.UNCHANGED)
                    return old if old is not None else dump(doc)
                raise MappingError(
                    f"{self.path}: {entry_arn} is already mapped to username {have[0]!r} with "
                    f"groups {have[1]}; kubeiam will not replace it",
                    hint="remove that entry first, or use the same --username and groups",
                )
            arn_field = self._arn_key(items, kind)
            entry = self._new_map()
            entry[arn_field] = arn
            entry["username"] = username
            entry["groups"] = list(groups)
            items.append(entry)
            outcome.append(MappingChange.ADDED)
            return dump(doc)

        locked_update(self.path, change, dry_run=self.dry_run, preserve_mode=True)
        return outcome[-1]

    def _arn_key(self, items: Any, kind: EntryKind) -> str:
        wanted = f"{kind.value}arn"
        for entry in items:
            key = key_in(entry, wanted) if isinstance(entry, dict) else None
            if key is not None:
                return str(key)
        return wanted if self._json else _YAML_ARN_KEYS[wanted]

    def _new_map(self) -> Any:
        if self._json:
            return {}
        from ruamel.yaml.comments import CommentedMap

        return CommentedMap()

    def _load(self, text: str | None) -> tuple[Any, Callable[[Any], str]]:
        if self._json:
            return self._load_json(text)
        return self._load_yaml(text)

    def _load_json(self, text: str | None) -> tuple[Any, Callable[[Any], str]]:
        try:
            doc = json.loads(text) if text and text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{self.path} is not valid JSON (line {exc.lineno}); nothing was written",
                hint="fix the file, then retry",
            ) from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{self.path}: the top level is not a JSON object")

        def dump(d: Any) -> str:
            return json.dumps(d, indent=2) + "\n"

        return doc, dump

    def _load_yaml(self, text: str | None) -> tuple[Any, Callable[[Any], str]]:
        from ruamel.yaml.comments import CommentedMap

        # The reference's documentation indents lists under their key: do the same in new files.
        doc, yaml = roundtrip.load(self.path, text, default_indent=(4, 2))
        if doc is None:
            doc = CommentedMap()
        if not isinstance(doc, dict):
            raise ConfigError(f"{self.path}: the top level is not a mapping")
        return doc, lambda d: roundtrip.dump(d, yaml)

    def _holder(self, doc: Any, *, create: bool) -> Any:
        """The mapping that holds mapUsers/mapRoles: top level for JSON or a flat file."""
        if self._json or any(str(k).lower() in ("mapusers", "maproles") for k in doc):
            return doc
        for key, value in doc.items():
            if str(key).lower() == "server" and isinstance(value, dict):
                return value
        if not create:
            return self._new_map()
        server = self._new_map()
        doc["server"] = server
        return server

    @staticmethod
    def _drop_empty(doc: Any, holder: Any) -> None:
        """Empty lists and an emptied ``server`` section go (absent and empty mean the same), so
        removing the only entry restores the file an add started from."""
        for key in [k for k, v in holder.items() if str(k).lower() in ("mapusers", "maproles")]:
            if holder[key] == []:
                del holder[key]
        if holder is not doc and not holder:
            for key in [k for k, v in doc.items() if v is holder]:
                del doc[key]

    def _list(self, holder: Any, name: str, *, create: bool) -> Any | None:
        key = key_in(holder, name.lower())
        if key is not None:
            value = holder[key]
            if value is None and create:
                holder[key] = []
                return holder[key]
            if value is not None and not isinstance(value, list):
                raise ConfigError(f"{self.path}: `{key}` is not a list")
            return value
        if not create:
            return None
        holder[name] = []
        return holder[name]
