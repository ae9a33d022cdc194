"""Safe edits of the IAM-to-Kubernetes mappings: the engine behind `kubeiam mapping`.

Every change goes through :meth:`MappingEditor.edit`, the same loop for every store:

1. read the store (a fresh :class:`~kubeiam.admin.editing.store.Snapshot`);
2. apply the operation to the document (an identical mapping is ``unchanged``: nothing is written);
3. check the guards (:func:`~kubeiam.admin.editing.guards.check_guards`): node entries are
   never removed or changed, and the last ``system:masters`` entry never removed, without
   ``force``; a change that makes the mapping invalid is refused;
4. save the previous state in the store's backup history, then write conditionally (the
   ConfigMap's ``resourceVersion``); a conflict starts again at 1 after a short random pause,
   at most ``attempts`` times, so two writers racing never lose each other's entries.

``dry_run`` stops after 3 and returns the unified diff
(:func:`~kubeiam.admin.editing.diff.unified_diff`).
"""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubeiam.admin.editing.backups import (
    BackupRecord,
)
from kubeiam.admin.editing.diff import unified_diff
from kubeiam.admin.editing.document import (
    MappingDocument,
)
from kubeiam.admin.editing.guards import (
    check_guards,
)
from kubeiam.admin.editing.store import MappingStore, Snapshot
from kubeiam.arn import arn_resource
from kubeiam.errors import ConflictError, MappingError, NotFoundError
from kubeiam.mapping.aws_auth import Change
from kubeiam.suggestions import MAX_SUGGESTIONS, closest_names, not_found_message, quote_name

#: Attempts at read-change-write before a conflict is reported. Six writers racing on one loaded
#: 2-core machine exhausted five attempts once; ten with a doubling pause wait ~5 s at worst.
DEFAULT_ATTEMPTS = 10
#: First pause between attempts (seconds); it doubles each attempt up to _MAX_RETRY_PAUSE and is
#: scaled by a random factor in [0.5, 1.5) so racing writers spread out.
_RETRY_PAUSE = 0.05
_MAX_RETRY_PAUSE = 1.0


@dataclass(frozen=True, slots=True)
class EditResult:
    """What an edit did (or, on a dry run, would do)."""

    change: Change
    target: str
    diff: str
    written: bool
    attempts: int
    #: Guards that ``force`` overrode.
    forced: tuple[str, ...] = ()
    #: The store did not exist and the edit created it (only the add-* edits may).
    created: bool = False
    #: What else the user should know (a corrupt backup history kept aside ...).
    notes: tuple[str, ...] = ()


Operation = Callable[[MappingDocument], Change]


class MappingEditor:
    """Read, change, guard, back up, write conditionally; retried on conflict."""

    def __init__(
        self,
        store: MappingStore,
        *,
        now: Callable[[], datetime],
        by: str = "",
        command: str = "",
        attempts: int = DEFAULT_ATTEMPTS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.store = store
        self._now = now
        self._by = by
        self._command = command
        self._attempts = max(1, attempts)
        self._sleep = sleep
        self._random = random

    def record(self, state: Any) -> BackupRecord:
        """A backup of ``state`` (its revision is assigned when stored)."""
        return BackupRecord(
            0,
            self._now().isoformat(timespec="seconds"),
            self._by,
            self._command,
            self.store.kind.value,
            state,
        )

    async def edit(
        self,
        operation: Operation,
        *,
        dry_run: bool = False,
        force: bool = False,
        creates: bool = False,
        must_exist: str | None = None,
    ) -> EditResult:
        """Apply ``operation`` to the store (see the module docstring).

        ``creates``: the operation may create a store that does not exist (the add-* edits);
        otherwise a missing mapping file is :class:`ConfigError` ("no such file").
        ``must_exist``: the operation removes this name; finding nothing to remove is
        :class:`NotFoundError` naming the closest names the store maps (a typo is not a success).
        """

        def change(snapshot: Snapshot) -> tuple[MappingDocument, Change]:
            document = snapshot.document
            outcome = operation(document)
            if outcome is Change.UNCHANGED and must_exist is not None:
                closest = _closest_mapped(must_exist, document.names())
                suggestion = f" (closest: {', '.join(map(quote_name, closest))})" if closest else ""
                raise NotFoundError(
                    not_found_message("mapping of", must_exist, [])
                    + f" in {self.store.target}{suggestion}",
                    hint="check the ARN, account or permission set; pass --ignore-not-found if "
                    "it may already be gone",
                )
            return document, outcome

        return await self._run(change, dry_run=dry_run, force=force, missing_ok=creates)

    async def restore(
        self, state: Any, *, dry_run: bool = False, force: bool = False
    ) -> EditResult:
        """Make the store hold ``state`` again (the current state is backed up first)."""

        def change(snapshot: Snapshot) -> tuple[MappingDocument, Change]:
            document = self.store.open(state)
            same = document.text() == snapshot.document.text()
            return document, Change.UNCHANGED if same else Change.REPLACED

        return await self._run(change, dry_run=dry_run, force=force, missing_ok=True)

    async def backup(self) -> BackupRecord:
        """Save the current state in the history and return it (with its revision). Notes on
        the history (a corrupt one kept aside) are left in ``store.backup_notes``."""
        snapshot = await self.store.read()
        record = self.record(snapshot.document.state() if snapshot.exists else None)
        notes = await self.store.save_backup(record)
        records = await self.store.backups()
        self.store.backup_notes = [*notes, *self.store.backup_notes]
        return records[-1] if records else record

    async def _run(
        self,
        change: Callable[[Snapshot], tuple[MappingDocument, Change]],
        *,
        dry_run: bool,
        force: bool,
        missing_ok: bool,
    ) -> EditResult:
        target = self.store.target
        for attempt in range(1, self._attempts + 1):
            snapshot = await self.store.read(missing_ok=missing_ok)
            before = snapshot.document.load()
            old_text = snapshot.document.text() if dry_run else ""
            # Taken before the operation: documents are edited in place.
            old_state = snapshot.document.state() if snapshot.exists else None
            document, outcome = change(snapshot)
            if outcome is Change.UNCHANGED:
                return EditResult(outcome, target, "", False, attempt)
            # The server's own reading of the result: nothing it would refuse is written.
            after = document.load()
            if not after.ok:
                raise MappingError(
                    f"refused: the change would leave an invalid mapping that {self.store.backend} "
                    "would refuse; nothing was written: "
                    + "; ".join(str(i) for i in after.errors[:3]),
                    hint="fix the entries named above first",
                )
            forced = tuple(check_guards(before, after, force=force))
            if dry_run:
                diff = unified_diff(old_text, document.text(), target)
                return EditResult(
                    outcome, target, diff, False, attempt, forced, created=not snapshot.exists
                )
            notes: list[str] = []
            if snapshot.exists:
                notes = await self.store.save_backup(self.record(old_state))
            try:
                await self.store.write(snapshot, document)
            except ConflictError:
                if attempt == self._attempts:
                    break
                pause = min(_RETRY_PAUSE * 2 ** (attempt - 1), _MAX_RETRY_PAUSE)
                await self._sleep(pause * (0.5 + self._random()))
                continue
            return EditResult(
                outcome,
                target,
                "",
                True,
                attempt,
                forced,
                created=not snapshot.exists,
                notes=tuple(notes),
            )
        raise ConflictError(
            f"{target} kept changing under concurrent writers ({self._attempts} attempts)",
            hint="retry the command; if it persists, find the other writer",
        )


def _closest_mapped(name: str, names: Sequence[str]) -> list[str]:
    """The mapped names closest to ``name``. ARNs are compared by what follows the account
    (``user/alice``): every ARN of one account shares its first 26 characters, which would make
    any of them look close."""

    by_resource: dict[str, list[str]] = {}
    for candidate in names:
        by_resource.setdefault(arn_resource(candidate), []).append(candidate)
    found = closest_names(arn_resource(name), list(by_resource))
    return [full for key in found for full in by_resource[key]][:MAX_SUGGESTIONS]
