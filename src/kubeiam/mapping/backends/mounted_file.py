"""MountedFile: the ``mapRoles``/``mapUsers``/``mapAccounts``/``mapGroups`` lists of the server
config file.

The server parses its config file and hands the lists over as they are; this backend validates
them once. A config file is written by the operator and read at start-up, so any invalid,
skipped or conflicting entry stops the server with every problem listed (``strict``), rather than
starting with a mapping the operator did not write.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubeiam.mapping.backends import MOUNTED_FILE, StoredBackend, StoredMappings
from kubeiam.mapping.model import ACCOUNTS, GROUPS, ROLES, USERS, load_sections


class MountedFile(StoredBackend):
    """Mappings from the server config file (``server.mapRoles`` ...)."""

    name = MOUNTED_FILE

    def __init__(
        self,
        map_roles: Sequence[object] = (),
        map_users: Sequence[object] = (),
        map_accounts: Sequence[object] = (),
        map_groups: Sequence[object] = (),
        *,
        strict: bool = True,
        section_prefix: str = "server.",
    ) -> None:
        self._store = StoredMappings(self.name)
        result = load_sections(
            {
                ROLES: list(map_roles),
                USERS: list(map_users),
                ACCOUNTS: list(map_accounts),
                GROUPS: list(map_groups),
            },
            prefix=section_prefix,
        )
        result.raise_for_issues(strict=strict)
        self._store.install(result, source="config file")
        self.load_result = result

    async def start(self) -> None:
        """Nothing to watch: the entries were loaded when the backend was built."""

    async def stop(self) -> None:
        """Nothing to stop."""
