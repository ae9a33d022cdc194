"""Where `kubeiam mapping` reads and writes: aws-auth, IAMIdentityMapping objects, a local file.

Each store reads a :class:`Snapshot` (a fresh document plus the version it was read at) and writes
a changed document back **only if nothing changed since that read**: the ConfigMap is replaced
with its ``resourceVersion``; IAMIdentityMapping objects are created, replaced with their
``resourceVersion`` or deleted one by one; the file is compared under its lock before the atomic
rename. Otherwise :class:`~kubeiam.errors.ConflictError`, and the editor reads again.

Every store also keeps a bounded history of previous states (:class:`BackupRecord`):

* aws-auth: ConfigMap ``kube-system/aws-auth-kubeiam-backup``;
* CRD: ConfigMap ``kube-system/iamidentitymapping-kubeiam-backup``;
* file: a sibling file ``<file>.kubeiam-backup.json`` (0600).

The server's RBAC (deploy/rbac.yaml) grants nothing on these objects: only admins read them.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import gzip
import json
import os
import random as _random
import re
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict

from kubeiam.admin.files import locked_update
from kubeiam.admin.mapping_documents import (
    AwsAuthMappings,
    CrdMappings,
    FileMappings,
    MappingDocument,
)
from kubeiam.documents import MAX_DOCUMENT_BYTES, DocumentError, load_json
from kubeiam.errors import ConfigError, ConflictError, KubeAPIError
from kubeiam.fileio import read_document_text
from kubeiam.kube.objects import NOT_FOUND, status_code
from kubeiam.mapping.aws_auth import AWS_AUTH_NAME, AWS_AUTH_NAMESPACE
from kubeiam.mapping.backends import CRD, DYNAMIC_FILE, EKS_CONFIG_MAP, MOUNTED_FILE

#: How many previous states a store keeps.
BACKUP_HISTORY = 10
BACKUP_NAMESPACE = AWS_AUTH_NAMESPACE
AWS_AUTH_BACKUP_NAME = "aws-auth-kubeiam-backup"
CRD_BACKUP_NAME = "iamidentitymapping-kubeiam-backup"
FILE_BACKUP_SUFFIX = ".kubeiam-backup.json"
#: A file history kubeiam cannot read is renamed ``<history>.corrupt-<time>`` before a new one
#: starts: kept for a person to inspect, never rewritten or dropped.
CORRUPT_SUFFIX = ".corrupt-"

#: Attempts at updating the backup ConfigMap when concurrent writers race on it.
_BACKUP_ATTEMPTS = 8


class StoreKind(enum.Enum):
    """The stores `kubeiam mapping --store` names."""

    AWS_AUTH = "aws-auth"
    CRD = "crd"
    FILE = "file"


class BackupWire(TypedDict):
    """One backup as stored (JSON)."""

    revision: int
    time: str
    by: str
    command: str
    store: str
    state: Any


@dataclass(frozen=True, slots=True)
class BackupRecord:
    """A previous state of a store, and who replaced it with what command."""

    revision: int
    time: str
    by: str
    command: str
    store: str
    state: Any

    def to_wire(self) -> BackupWire:
        return BackupWire(
            revision=self.revision,
            time=self.time,
            by=self.by,
            command=self.command,
            store=self.store,
            state=self.state,
        )

    @classmethod
    def from_wire(cls, raw: object) -> BackupRecord:
        """A record as stored; :class:`ConfigError` saying what is wrong for anything else (a
        wrong type is refused, never converted: a record that does not read back exactly is not
        a state to restore)."""
        problem = _wire_problem(raw)
        if problem is not None:
            raise ConfigError(
                f"not a kubeiam mapping backup: {problem}",
                hint="pass a file written by `kubeiam mapping backup --output-file FILE`",
            )
        assert isinstance(raw, Mapping)
        return cls(
            raw["revision"],
            raw["time"],
            raw.get("by", ""),
            raw.get("command", ""),
            raw["store"],
            raw["state"],
        )


#: The text fields of a stored record (``by`` and ``command`` may be absent).
_WIRE_TEXT_FIELDS = ("time", "by", "command", "store")
#: A stored record's ``time``, ``by`` and ``command`` are short; longer is not ours.
_MAX_WIRE_TEXT = 1000


def _wire_problem(raw: object) -> str | None:
    """Why ``raw`` is not a stored backup record, or None."""
    if not isinstance(raw, Mapping):
        return f"a record is a JSON {type(raw).__name__}, not an object"
    for name in ("revision", "time", "store", "state"):
        if name not in raw:
            return f"the field {name!r} is missing"
    revision = raw["revision"]
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        return f"revision {str(revision)[:20]!r} is not a positive integer"
    for name in _WIRE_TEXT_FIELDS:
        value = raw.get(name, "")
        if not isinstance(value, str):
            return f"{name} is a {type(value).__name__}, not a string"
        if len(value) > _MAX_WIRE_TEXT:
            return f"{name} is longer than {_MAX_WIRE_TEXT} characters"
    store = raw["store"]
    if store not in {k.value for k in StoreKind}:
        return f"store {store[:20]!r} is not one of {', '.join(k.value for k in StoreKind)}"
    state = raw["state"]
    if state is None:
        return None
    if store == StoreKind.FILE.value and not isinstance(state, str):
        return f"the state of a file backup is a {type(state).__name__}, not the file's text"
    if store == StoreKind.AWS_AUTH.value and not (
        isinstance(state, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in state.items())
    ):
        return "the state of an aws-auth backup is not the ConfigMap's data (strings by name)"
    if store == StoreKind.CRD.value and not (
        isinstance(state, Mapping) and all(isinstance(v, Mapping | None) for v in state.values())
    ):
        return "the state of a CRD backup is not the objects' specs by name"
    return None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A store's content as read, and the version it was read at (for the conditional write)."""

    document: MappingDocument
    #: aws-auth: the ConfigMap or None; CRD: name -> object; file: the text or None.
    version: Any
    exists: bool


class MappingStore(Protocol):
    """One place mappings live."""

    kind: StoreKind
    #: The server backend that reads this store (for `explain`).
    backend: str

    @property
    def target(self) -> str: ...

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        """The store's content. ``missing_ok``: an absent file is an empty document (the edits
        that may create one); otherwise a missing file is :class:`ConfigError` ("no such file").
        An absent aws-auth or CRD set is empty either way (the cluster has none yet)."""
        ...

    def open(self, state: Any) -> MappingDocument:
        """A document holding a backed-up ``state``."""
        ...

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None: ...

    async def backups(self) -> list[BackupRecord]: ...

    async def save_backup(self, record: BackupRecord) -> list[str]:
        """Add ``record`` to the history; returns notes to show (a corrupt history kept aside)."""
        ...

    #: What reading the history found wrong (unreadable records kept, not used).
    backup_notes: list[str]

    async def count_nodes(self) -> int | None:
        """Node objects in the cluster, or None when the store has no cluster."""
        ...

    async def close(self) -> None: ...


def next_revision(records: list[BackupRecord], data: Mapping[str, Any] | None = None) -> int:
    """One past the highest revision in use, counting the keys of unreadable records in
    ``data`` too, so a new record never overwrites one of them."""
    used = [r.revision for r in records]
    for key in data or ():
        match = _BACKUP_KEY.fullmatch(str(key))
        if match is not None:
            used.append(int(match.group(1)))
    return max(used, default=0) + 1


# --------------------------------------------------------------------------------------------
# Kubernetes


class _KubeStore:
    """What the aws-auth and CRD stores share: the client, nodes, the backup ConfigMap."""

    backup_name = AWS_AUTH_BACKUP_NAME

    def __init__(
        self,
        client: Any,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.client = client
        self._sleep = sleep
        self._random = random
        self.backup_notes: list[str] = []

    async def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            await close()

    async def count_nodes(self) -> int | None:
        from httpx2 import HTTPError
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Node

        try:
            return len([n async for n in self.client.list(Node)])
        except (ApiError, HTTPError) as exc:
            raise KubeAPIError(
                f"cannot list nodes ({status_code(exc)}): {str(exc).splitlines()[0]}",
                hint="lint lists nodes to check the node-role entry: use a kubeconfig that may "
                "list nodes, or pass --no-nodes",
            ) from None

    async def _backup_map(self) -> Mapping[str, Any] | None:
        from kubeiam.kube.objects import get_object
        from kubeiam.kube.resources import config_map

        return await get_object(
            self.client, config_map(), self.backup_name, namespace=BACKUP_NAMESPACE
        )

    async def backups(self) -> list[BackupRecord]:
        obj = await self._backup_map()
        records, self.backup_notes = _records_from_data(self._backup_data(obj))
        return records

    def _backup_data(self, obj: Mapping[str, Any] | None) -> dict[str, Any]:
        data = (obj or {}).get("data") or {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"the backup ConfigMap {BACKUP_NAMESPACE}/{self.backup_name} has a malformed "
                "data field",
                hint=f"inspect it with kubectl, then move it away (kubectl -n {BACKUP_NAMESPACE} "
                f"get configmap {self.backup_name} -o yaml > saved.yaml; kubectl delete ...)",
            )
        return dict(data)

    async def save_backup(self, record: BackupRecord) -> list[str]:
        """Add ``record`` to the backup ConfigMap (read, change, write; retried on conflict).
        Keys that do not hold a readable record are left as they are (never overwritten or
        dropped) and named in the returned notes."""
        from kubeiam.kube.objects import create_object, replace_object
        from kubeiam.kube.resources import config_map

        for attempt in range(_BACKUP_ATTEMPTS):
            obj = await self._backup_map()
            data = self._backup_data(obj)
            records, notes, keys = _read_backup_data(data)
            if records and records[-1].state == record.state:
                return notes  # the same state is already the newest backup
            revision = next_revision(records, data)
            stored = BackupRecord(
                revision, record.time, record.by, record.command, record.store, record.state
            )
            key, value = _encode_record(stored)
            data[key] = value
            _trim(data, [keys[r.revision] for r in records], self.backup_name)
            try:
                if obj is None:
                    await create_object(
                        self.client,
                        config_map(),
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {
                                "name": self.backup_name,
                                "namespace": BACKUP_NAMESPACE,
                                "labels": {"app.kubernetes.io/managed-by": "kubeiam"},
                            },
                            "data": data,
                        },
                    )
                else:
                    await replace_object(self.client, config_map(), {**obj, "data": data})
                return notes
            except ConflictError:
                await self._sleep(0.05 * (attempt + 1) * (0.5 + self._random()))
        raise ConflictError(
            f"could not save a backup in {BACKUP_NAMESPACE}/{self.backup_name}: it kept "
            "changing under concurrent writers",
            hint="retry the command",
        )


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


#: In a file history, a state larger than :data:`_COMPRESS_ABOVE` is stored under this key
#: (gzip, base64) instead of ``state``: ten states of a 10,000-entry file are 10 MB of JSON to
#: read and write on every edit, compressed about 1 MB.
_STATE_GZIP = "stateGzip"


def parse_history(text: str, *, source: str) -> list[BackupRecord]:
    """A file history (a JSON list of records), oldest first; :class:`ConfigError` saying what
    is wrong when any part of it is not a record kubeiam wrote."""
    return [record for record, _ in _history_items(text, source=source)]


def _history_items(text: str, *, source: str) -> list[tuple[BackupRecord, Any]]:
    """Each record of a file history with the item as stored (kept as is when re-written, so an
    edit compresses only its own new state), oldest first."""
    raw = load_json(text, source=source)
    if not isinstance(raw, list):
        raise ConfigError(f"{source} is a JSON {type(raw).__name__}, not a list of backups")
    out = []
    for i, item in enumerate(raw):
        try:
            wire = _unpacked(item)
        except ConfigError as exc:
            raise ConfigError(f"{source}: backup [{i}]: {exc.message}") from None
        problem = _wire_problem(wire)
        if problem is not None:
            raise ConfigError(f"{source}: backup [{i}]: {problem}")
        out.append((BackupRecord.from_wire(wire), item))
    revisions = [record.revision for record, _ in out]
    if len(set(revisions)) != len(revisions):
        raise ConfigError(f"{source}: a revision appears twice")
    return sorted(out, key=lambda pair: pair[0].revision)


def _unpacked(item: object) -> object:
    """A stored history item with a compressed state inflated into ``state``."""
    if not isinstance(item, Mapping) or _STATE_GZIP not in item:
        return item
    if "state" in item:
        raise ConfigError(f"it holds both state and {_STATE_GZIP}")
    packed = item[_STATE_GZIP]
    if not isinstance(packed, str):
        raise ConfigError(f"{_STATE_GZIP} is a {type(packed).__name__}, not text")
    return {**{k: v for k, v in item.items() if k != _STATE_GZIP}, "state": _inflate(packed)}


def _packed(record: BackupRecord) -> dict[str, Any]:
    """A record as a file history stores it (a big text state compressed)."""
    wire: dict[str, Any] = dict(record.to_wire())
    state = wire["state"]
    if isinstance(state, str) and len(state) > _COMPRESS_ABOVE:
        del wire["state"]
        wire[_STATE_GZIP] = _deflate(state)
    return wire


def _deflate(text: str) -> str:
    data = gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)
    return base64.b64encode(data).decode("ascii")


def _inflate(packed: str) -> str:
    """The text a base64 gzip value holds, refusing what inflates beyond what kubeiam reads."""
    try:
        data = base64.b64decode(packed, validate=True)
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflater.decompress(data, MAX_DOCUMENT_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ConfigError("it is truncated or inflates beyond the size kubeiam reads")
        return raw.decode("utf-8")
    except (ValueError, zlib.error) as exc:
        raise ConfigError(f"it is not base64 gzip text ({type(exc).__name__})") from None


#: The data keys kubeiam writes in a backup ConfigMap: ``r000012.json`` (the record's JSON) or
#: ``r000012.json.gz`` (gzip, base64: a big aws-auth's state).
_BACKUP_KEY = re.compile(r"r([0-9]{1,9})\.json(\.gz)?")
#: Records larger than this are stored compressed: aws-auth's text compresses about tenfold, so
#: the previous states of a 10,000-entry aws-auth (600 KB each) fit in one ConfigMap.
_COMPRESS_ABOVE = 16 * 1024
#: Kubernetes refuses a ConfigMap over 1 MiB (all keys and values). The oldest records go first
#: to stay under this, leaving room for metadata and for keys kubeiam keeps but cannot read.
CONFIGMAP_BACKUP_BUDGET = 900 * 1024


def _encode_record(record: BackupRecord) -> tuple[str, str]:
    text = json.dumps(record.to_wire(), sort_keys=True)
    if len(text) <= _COMPRESS_ABOVE:
        return f"r{record.revision:06d}.json", text
    return f"r{record.revision:06d}.json.gz", _deflate(text)


def _decode_value(key: str, value: object) -> str:
    """The JSON text a data value holds (decompressed, bounded, for ``.gz`` keys)."""
    if not isinstance(value, str):
        raise ConfigError(f"the value is a {type(value).__name__}, not text")
    return _inflate(value) if key.endswith(".gz") else value


def _trim(data: dict[str, Any], old_keys: list[str], name: str) -> None:
    """Drop the oldest records (``old_keys``, oldest first) beyond :data:`BACKUP_HISTORY` or
    :data:`CONFIGMAP_BACKUP_BUDGET`; the newest record always stays."""
    keep = list(old_keys)
    while len(keep) + 1 > BACKUP_HISTORY:
        data.pop(keep.pop(0), None)

    def size() -> int:
        return sum(len(k) + len(str(v)) for k, v in data.items())

    while keep and size() > CONFIGMAP_BACKUP_BUDGET:
        data.pop(keep.pop(0), None)
    if size() > CONFIGMAP_BACKUP_BUDGET:
        raise ConfigError(
            f"the previous state is too large for the backup ConfigMap {BACKUP_NAMESPACE}/{name} "
            f"({size() // 1024} KiB, Kubernetes allows 1 MiB); nothing was written",
            hint="remove keys kubeiam could not read from that ConfigMap, or save the state with "
            "`kubeiam mapping backup --output-file FILE` and delete the backup ConfigMap",
        )


def _records_from_data(data: Mapping[str, Any]) -> tuple[list[BackupRecord], list[str]]:
    """The readable records of a backup ConfigMap's data, and a note per key of kubeiam's form
    (``r000012.json``) that does not hold one: such keys stay in the ConfigMap untouched (a
    person may want them), are never restored, and are named so nobody believes them used.
    Other keys are not kubeiam's and are ignored."""
    records, notes, _ = _read_backup_data(data)
    return records, notes


def _read_backup_data(
    data: Mapping[str, Any],
) -> tuple[list[BackupRecord], list[str], dict[int, str]]:
    """:func:`_records_from_data`, plus the key each readable record is stored under."""
    records = []
    notes = []
    keys: dict[int, str] = {}
    for key in sorted(data):
        match = _BACKUP_KEY.fullmatch(str(key))
        if match is None:
            continue
        try:
            text = _decode_value(str(key), data[key])
            record = BackupRecord.from_wire(load_json(text, source=key))
            if record.revision != int(match.group(1)):
                raise ConfigError(f"it says revision {record.revision}")
            if record.revision in keys:
                raise ConfigError(f"revision {record.revision} is also in {keys[record.revision]}")
        except ConfigError as exc:
            notes.append(
                f"backup {key} is not a readable kubeiam backup ({exc.message}); it is kept "
                "as it is and not used"
            )
            continue
        records.append(record)
        keys[record.revision] = str(key)
    return sorted(records, key=lambda r: r.revision), notes, keys


class AwsAuthStore(_KubeStore):
    """The aws-auth ConfigMap in kube-system."""

    kind = StoreKind.AWS_AUTH
    backend = EKS_CONFIG_MAP
    backup_name = AWS_AUTH_BACKUP_NAME

    @property
    def target(self) -> str:
        return f"ConfigMap {AWS_AUTH_NAMESPACE}/{AWS_AUTH_NAME}"

    def open(self, state: Any) -> MappingDocument:
        if not isinstance(state, dict):
            raise ConfigError("this backup does not hold aws-auth data")
        return AwsAuthMappings({str(k): str(v) for k, v in state.items()})

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        from kubeiam.kube.objects import get_object
        from kubeiam.kube.resources import config_map

        obj = await get_object(
            self.client, config_map(), AWS_AUTH_NAME, namespace=AWS_AUTH_NAMESPACE
        )
        data = (obj or {}).get("data") or {}
        return Snapshot(AwsAuthMappings(data), obj, obj is not None)

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None:
        from kubeiam.kube.objects import create_object, replace_object
        from kubeiam.kube.resources import config_map

        assert isinstance(document, AwsAuthMappings)
        data = document.data
        if snapshot.version is None:
            await create_object(
                self.client,
                config_map(),
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": AWS_AUTH_NAME, "namespace": AWS_AUTH_NAMESPACE},
                    "data": data,
                },
            )
            return
        # Everything but data (labels, annotations, other keys' owners) is sent back as read.
        await replace_object(self.client, config_map(), {**snapshot.version, "data": data})


class CrdStore(_KubeStore):
    """IAMIdentityMapping objects (cluster-scoped)."""

    kind = StoreKind.CRD
    backend = CRD
    backup_name = CRD_BACKUP_NAME

    @property
    def target(self) -> str:
        return "IAMIdentityMapping objects"

    def open(self, state: Any) -> MappingDocument:
        if not isinstance(state, dict):
            raise ConfigError("this backup does not hold IAMIdentityMapping objects")
        return CrdMappings(
            {
                str(name): {
                    "apiVersion": "iamauthenticator.k8s.aws/v1alpha1",
                    "kind": "IAMIdentityMapping",
                    "metadata": {"name": str(name)},
                    "spec": spec,
                }
                for name, spec in state.items()
            }
        )

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        from httpx2 import HTTPError
        from lightkube import ApiError

        from kubeiam.kube.resources import iam_identity_mapping

        try:
            items = [o.to_dict() async for o in self.client.list(iam_identity_mapping())]
        except (ApiError, HTTPError) as exc:
            if status_code(exc) == NOT_FOUND:
                raise KubeAPIError(
                    "the IAMIdentityMapping CRD is not installed in this cluster",
                    hint="kubectl apply -f deploy/crd.yaml",
                ) from None
            raise KubeAPIError(f"cannot list IAMIdentityMapping objects: {exc}") from None
        objects = {o["metadata"]["name"]: o for o in items}
        return Snapshot(CrdMappings(objects), objects, True)

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None:
        from kubeiam.kube.objects import create_object, replace_object
        from kubeiam.kube.resources import iam_identity_mapping

        assert isinstance(document, CrdMappings)
        resource = iam_identity_mapping()
        old: Mapping[str, Any] = snapshot.version
        new = document.objects
        for name in sorted(set(old) - set(new)):
            await self._delete(name, old[name])
        for name in sorted(new):
            if name not in old:
                obj = dict(new[name])
                obj["metadata"] = {
                    k: v
                    for k, v in (obj.get("metadata") or {}).items()
                    if k in ("name", "labels", "annotations")
                }
                await create_object(self.client, resource, obj)
            elif new[name].get("spec") != old[name].get("spec"):
                await replace_object(
                    self.client, resource, {**old[name], "spec": new[name].get("spec")}
                )

    async def _delete(self, name: str, obj: Mapping[str, Any]) -> None:
        """Delete ``name``. Each object maps one ARN and only the removed ARN's objects are
        deleted, so another writer's objects are never touched; already gone is fine."""
        from httpx2 import HTTPError
        from lightkube import ApiError

        from kubeiam.kube.resources import iam_identity_mapping

        try:
            await self.client.delete(iam_identity_mapping(), name)
        except (ApiError, HTTPError) as exc:
            if status_code(exc) != NOT_FOUND:
                raise KubeAPIError(f"delete IAMIdentityMapping {name} failed: {exc}") from None


# --------------------------------------------------------------------------------------------
# Local file


class FileStore:
    """A local mapping file (server config YAML, or DynamicFile JSON when it ends in .json)."""

    kind = StoreKind.FILE

    def __init__(self, path: Path) -> None:
        self.backup_notes: list[str] = []
        self.path = Path(os.path.abspath(path))
        self._json = self.path.suffix.lower() == ".json"
        self.backend = DYNAMIC_FILE if self._json else MOUNTED_FILE
        self.backup_path = self.path.with_name(self.path.name + FILE_BACKUP_SUFFIX)

    @property
    def target(self) -> str:
        return f"file {self.path}"

    def open(self, state: Any) -> MappingDocument:
        if not isinstance(state, str):
            raise ConfigError("this backup does not hold a mapping file")
        return FileMappings(state, json_format=self._json, name=str(self.path))

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        text = read_document_text(self.path, missing_ok=True)
        if text is None and not missing_ok:
            raise ConfigError(
                f"{self.path}: no such file",
                hint="check the path; only the add-* commands create a new mapping file",
            )
        doc = FileMappings(text, json_format=self._json, name=str(self.path))
        return Snapshot(doc, text, text is not None)

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None:
        # locked_update hands over and takes "\n" text, and writes the file's own line endings.
        new_text = _lf(document.text())
        read = None if snapshot.version is None else _lf(snapshot.version)

        def change(old: str | None) -> str:
            if old != read:
                raise ConflictError(f"{self.path} changed since it was read")
            return new_text

        locked_update(self.path, change, preserve_mode=True)

    async def backups(self) -> list[BackupRecord]:
        """The history, oldest first; :class:`ConfigError` naming the file and what is wrong
        when it cannot be read as a whole (restore never guesses from part of a history)."""
        try:
            text = read_document_text(self.backup_path, missing_ok=True)
            if text is None:
                return []
            return parse_history(text, source=str(self.backup_path))
        except ConfigError as exc:
            raise ConfigError(
                f"the backup history cannot be read: {exc.message}",
                hint=f"fix or move {self.backup_path} away; the next change made by kubeiam "
                f"renames it to {self.backup_path.name}{CORRUPT_SUFFIX}<time> and starts a new "
                "history",
            ) from None

    async def save_backup(self, record: BackupRecord) -> list[str]:
        """Add ``record`` (under the history's lock). A history that cannot be read as a whole is
        never rewritten or dropped: it is renamed aside (``...corrupt-<time>``) and a new one
        started, and the note returned says so."""
        notes: list[str] = []

        def change(old: str | None) -> str:
            items: list[tuple[BackupRecord, Any]] = []
            if old is not None:
                try:
                    items = _history_items(old, source=str(self.backup_path))
                except ConfigError as exc:
                    aside = self._set_aside(record.time)
                    notes.append(
                        f"the backup history {self.backup_path} could not be read "
                        f"({exc.message}); it was kept as {aside} and a new history started"
                    )
            records = [r for r, _ in items]
            if records and records[-1].state == record.state:
                return old or ""
            stored = BackupRecord(
                next_revision(records),
                record.time,
                record.by,
                record.command,
                record.store,
                record.state,
            )
            keep = [*(item for _, item in items), _packed(stored)][-BACKUP_HISTORY:]
            return json.dumps(keep, indent=2) + "\n"

        try:
            locked_update(self.backup_path, change)
        except DocumentError as exc:
            # Not even text (not UTF-8, control characters, too large): set aside as well.
            if not self.backup_path.is_file():  # a FIFO, a device: not ours to move
                raise ConfigError(
                    f"cannot save a backup in {self.backup_path}: {exc.problem}; nothing was "
                    "written",
                    hint=f"move {self.backup_path} away, then retry",
                ) from None
            aside = self._set_aside(record.time)
            notes.append(
                f"the backup history {self.backup_path} could not be read ({exc.problem}); it "
                f"was kept as {aside} and a new history started"
            )
            locked_update(self.backup_path, change)
        return notes

    def _set_aside(self, when: str) -> Path:
        stamp = re.sub(r"[^0-9T]", "", when)[:15] or "unknown"
        aside = self.backup_path.with_name(f"{self.backup_path.name}{CORRUPT_SUFFIX}{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = aside.with_name(f"{self.backup_path.name}{CORRUPT_SUFFIX}{stamp}-{n}")
        os.replace(self.backup_path, aside)
        return aside

    async def count_nodes(self) -> int | None:
        return None

    async def close(self) -> None:
        return None
