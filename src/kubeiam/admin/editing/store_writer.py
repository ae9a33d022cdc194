"""The MappingWriter seam of the IAM workflows over any mapping store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from kubeiam.admin.editing.editor import MappingEditor, Operation
from kubeiam.admin.editing.store import MappingStore
from kubeiam.admin.editing.writer import (
    MappingChange,
)
from kubeiam.mapping.aws_auth import Change


class StoreMappingWriter:
    """A :class:`~kubeiam.admin.editing.writer.MappingWriter` over any store (aws-auth, CRD,
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
