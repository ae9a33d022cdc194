"""A local mapping file as a store."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from kubeiam.admin.editing.backups import (
    BACKUP_HISTORY,
    CORRUPT_SUFFIX,
    FILE_BACKUP_SUFFIX,
    BackupRecord,
    history_items,
    next_revision,
    packed_record,
    parse_history,
)
from kubeiam.admin.editing.document import (
    MappingDocument,
)
from kubeiam.admin.editing.file_document import (
    FileMappings,
)
from kubeiam.admin.editing.store import Snapshot, StoreKind
from kubeiam.documents import DocumentError
from kubeiam.errors import ConfigError, ConflictError
from kubeiam.fileio import locked_update, read_document_text
from kubeiam.mapping.backends import DYNAMIC_FILE, MOUNTED_FILE


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


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
                    items = history_items(old, source=str(self.backup_path))
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
            keep = [*(item for _, item in items), packed_record(stored)][-BACKUP_HISTORY:]
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
