"""DynamicFile: a JSON mapping file, reloaded when it changes.

The file has the reference's shape (keys case-insensitive, as Go's JSON decoding is)::

    {"LastUpdatedDateTime": "...", "Version": "...",
     "mapRoles": [{"rolearn": "...", "username": "...", "groups": [...], "userid": "AROA..."}],
     "mapUsers": [{"userarn": "...", "username": "...", "groups": [...], "userid": "AIDA..."}],
     "mapAccounts": ["111122223333"],
     "mapGroups": [{"grouparn": "arn:aws:iam::...:group/[path/]Name", "username": "...",
                    "groups": [...]}]}

* Changes are found by polling the file's (mtime, size, inode) every ``poll_interval`` seconds:
  this sees writes, atomic renames and ConfigMap volume symlink swaps alike, with no inotify.
  The file is read and parsed in a worker thread, so a reload never stalls reviews.
* With ``user_id_strict`` (``dynamicfileUserIDStrict``) entries are matched by the STS UserId in
  their ``userid``; an entry that also names an ARN must name the caller's canonical ARN.
* A deleted file fails closed: no mappings until it is back.
* A corrupt file (unreadable, not JSON, wrong shape, conflicting entries) keeps the last good
  mapping, logs why and counts a failure (``dynamicfile_failures_total``). Invalid entries in an
  otherwise good file are skipped, each logged and counted.
* Ready after the first good load; a file missing at start-up leaves the backend not ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from kubeiam.documents import (
    MAX_DOCUMENT_BYTES,
    DocumentError,
    MappingDocumentError,
    decode_text,
    load_json,
)
from kubeiam.fileio import FileSignature, file_signature, os_error_problem, read_regular_file
from kubeiam.identity import Identity
from kubeiam.mapping.backends import (
    DYNAMIC_FILE,
    FailureHook,
    SkippedHook,
    StoredBackend,
    StoredMappings,
    cancel_task,
)
from kubeiam.mapping.model import LoadResult, MappingSet, MatchResult, load_sections

log = logging.getLogger("kubeiam.mapping")

#: A mapping file larger than this is refused (a runaway writer must not exhaust memory).
MAX_FILE_BYTES = MAX_DOCUMENT_BYTES


def parse_dynamic_file(content: bytes, *, user_id_strict: bool = False) -> LoadResult:
    """Load the JSON document; structural problems are ERROR issues (the file is refused).

    The bytes pass :mod:`kubeiam.documents` (UTF-8, characters, depth, digits, duplicate keys).
    """
    from kubeiam.mapping.model import INVALID_ENTRY, LoadIssue, Location, Severity

    def refused(message: str, code: str | None = None) -> LoadResult:
        issue = LoadIssue(Severity.ERROR, Location("dynamic file"), message, code or INVALID_ENTRY)
        return LoadResult(MappingSet(), (issue,))

    try:
        text = decode_text(content, source="JSON", error=MappingDocumentError)
        document = load_json(text, source="JSON", error=MappingDocumentError)
    except DocumentError as exc:
        return refused(str(exc).replace("\n  fix:", ";"), exc.code)
    if not isinstance(document, Mapping):
        return refused("the top level must be a JSON object")
    return load_sections(document, match_by_user_id=user_id_strict)


class DynamicFile(StoredBackend):
    """Mappings from a JSON file that other software rewrites while the server runs."""

    name = DYNAMIC_FILE

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        user_id_strict: bool = False,
        poll_interval: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_failure: FailureHook | None = None,
        on_skipped: SkippedHook | None = None,
    ) -> None:
        self.path = Path(path)
        self.user_id_strict = user_id_strict
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._store = StoredMappings(self.name, on_failure=on_failure, on_skipped=on_skipped)
        self._signature: FileSignature | None = None
        self._present = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the file now, then poll it in the background."""
        await self.check_async()
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name=f"kubeiam-{self.name}")

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None

    async def _poll(self) -> None:
        while True:
            await self._sleep(self.poll_interval)
            try:
                await self.check_async()
            except Exception:  # the poller must outlive any one bad read
                log.exception("%s: unexpected error while checking %s", self.name, self.path)
                self._store.failed(f"checking {self.path} failed unexpectedly")

    def _stat(self) -> FileSignature | None:
        return file_signature(self.path)

    def _changed(self) -> bool | None:
        """True: load the file; False: nothing to do; None: handled here (gone, unreadable)."""
        try:
            signature = self._stat()
        except OSError as exc:
            self._store.failed(f"cannot stat {self.path}: {exc.strerror}")
            return False
        if signature is None:
            if self._present or self._signature is None:
                self._present = False
                self._signature = (-1, -1, -1)
                if self._store.ready:
                    self._store.clear(f"{self.path} was deleted")
                else:
                    log.warning("%s: %s does not exist yet; not ready", self.name, self.path)
                return None
            return False
        if signature == self._signature:
            return False
        self._signature = signature
        self._present = True
        return True

    def check(self) -> bool:
        """Reload when the file changed since the last look; True when something changed."""
        changed = self._changed()
        if changed:
            self._install(self._read())
        return changed is not False

    async def check_async(self) -> bool:
        """:meth:`check`, reading and parsing in a thread so the event loop keeps serving."""
        changed = self._changed()
        if changed:
            self._install(await asyncio.to_thread(self._read))
        return changed is not False

    def _read(self) -> LoadResult | str:
        """The parsed file, or why it could not be read (runs in a worker thread)."""
        try:  # a FIFO or device at the path is refused without being opened
            content = read_regular_file(self.path, MAX_FILE_BYTES)
        except OSError as exc:
            return f"cannot read {self.path}: {os_error_problem(exc)[0]}"
        return parse_dynamic_file(content, user_id_strict=self.user_id_strict)

    def _install(self, result: LoadResult | str) -> None:
        if isinstance(result, str):
            self._store.failed(result)
        else:
            self._store.install(result, source=str(self.path))

    def match(
        self, identity: Identity, iam_groups: frozenset[str] = frozenset()
    ) -> MatchResult | None:
        mappings = self._store.mappings
        result = mappings.lookup(identity, iam_groups)
        if result is None and self.user_id_strict:
            other = mappings.user_id_mismatch(identity)
            if other is not None:
                log.warning(
                    "%s: %s has the caller's userid %s but names %s, not %s; not matched",
                    self.name,
                    other.describe(),
                    identity.user_id,
                    other.canonical_arn,
                    identity.canonical_arn,
                )
        return result
