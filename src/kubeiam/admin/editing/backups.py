"""The bounded history of previous states every mapping store keeps, and its stored forms."""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from kubeiam.admin.editing.store import StoreKind
from kubeiam.documents import MAX_DOCUMENT_BYTES, load_json
from kubeiam.errors import ConfigError
from kubeiam.mapping.aws_auth import AWS_AUTH_NAMESPACE

#: How many previous states a store keeps.
BACKUP_HISTORY = 10
BACKUP_NAMESPACE = AWS_AUTH_NAMESPACE
AWS_AUTH_BACKUP_NAME = "aws-auth-kubeiam-backup"
CRD_BACKUP_NAME = "iamidentitymapping-kubeiam-backup"
FILE_BACKUP_SUFFIX = ".kubeiam-backup.json"
#: A file history kubeiam cannot read is renamed ``<history>.corrupt-<time>`` before a new one
#: starts: kept for a person to inspect, never rewritten or dropped.
CORRUPT_SUFFIX = ".corrupt-"


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
    if store == StoreKind.ACCESS_ENTRIES.value and not (
        isinstance(state, list) and all(isinstance(e, Mapping) for e in state)
    ):
        return "the state of an access-entries backup is not a list of entries"
    return None


def next_revision(records: list[BackupRecord], data: Mapping[str, Any] | None = None) -> int:
    """One past the highest revision in use, counting the keys of unreadable records in
    ``data`` too, so a new record never overwrites one of them."""
    used = [r.revision for r in records]
    for key in data or ():
        match = _BACKUP_KEY.fullmatch(str(key))
        if match is not None:
            used.append(int(match.group(1)))
    return max(used, default=0) + 1


#: In a file history, a state larger than :data:`_COMPRESS_ABOVE` is stored under this key
#: (gzip, base64) instead of ``state``: ten states of a 10,000-entry file are 10 MB of JSON to
#: read and write on every edit, compressed about 1 MB.
_STATE_GZIP = "stateGzip"


def parse_history(text: str, *, source: str) -> list[BackupRecord]:
    """A file history (a JSON list of records), oldest first; :class:`ConfigError` saying what
    is wrong when any part of it is not a record kubeiam wrote."""
    return [record for record, _ in history_items(text, source=source)]


def history_items(text: str, *, source: str) -> list[tuple[BackupRecord, Any]]:
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


def packed_record(record: BackupRecord) -> dict[str, Any]:
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


def encode_record(record: BackupRecord) -> tuple[str, str]:
    text = json.dumps(record.to_wire(), sort_keys=True)
    if len(text) <= _COMPRESS_ABOVE:
        return f"r{record.revision:06d}.json", text
    return f"r{record.revision:06d}.json.gz", _deflate(text)


def _decode_value(key: str, value: object) -> str:
    """The JSON text a data value holds (decompressed, bounded, for ``.gz`` keys)."""
    if not isinstance(value, str):
        raise ConfigError(f"the value is a {type(value).__name__}, not text")
    return _inflate(value) if key.endswith(".gz") else value


def trim_backups(data: dict[str, Any], old_keys: list[str], name: str) -> None:
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


def records_from_data(data: Mapping[str, Any]) -> tuple[list[BackupRecord], list[str]]:
    """The readable records of a backup ConfigMap's data, and a note per key of kubeiam's form
    (``r000012.json``) that does not hold one: such keys stay in the ConfigMap untouched (a
    person may want them), are never restored, and are named so nobody believes them used.
    Other keys are not kubeiam's and are ignored."""
    records, notes, _ = read_backup_data(data)
    return records, notes


def read_backup_data(
    data: Mapping[str, Any],
) -> tuple[list[BackupRecord], list[str], dict[int, str]]:
    """:func:`records_from_data`, plus the key each readable record is stored under."""
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
