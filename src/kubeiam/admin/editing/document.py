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
from collections.abc import Sequence
from typing import Any, Protocol

from kubeiam.arn import arn_key, canonicalize_mapping_arn
from kubeiam.errors import MappingError
from kubeiam.mapping.aws_auth import Change
from kubeiam.mapping.model import (
    ROLES,
    USERS,
    LoadResult,
    parse_new_entry,
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

    def names(self) -> list[str]:
        """What the entries map (ARNs, accounts, permission sets), for "did you mean"."""
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


def check_role_or_user(arn: str, kind: str) -> str:
    """The canonical key of ``arn``; MappingError when it is not an IAM ``kind`` ARN."""
    mapped = canonicalize_mapping_arn(arn)
    if mapped.resource_type != kind:
        other = "add-role" if kind == "user" else "add-user"
        raise MappingError(f"{arn} is not an IAM {kind} ARN", hint=f"use `{other}` for it")
    return arn_key(mapped.canonical)


def validate_entry(kind: str, arn: str, username: str, groups: Sequence[str]) -> None:
    """The entry's username and groups (templates) under the loader's rules."""
    probe = {f"{kind}arn": arn, "username": username, "groups": list(groups)}
    parse_new_entry(ROLES if kind == "role" else USERS, probe)


def lenient_key(arn: str) -> str:
    """The lookup key of an ARN as written: canonical when it parses, else as it stands (so a
    malformed entry can still be found and removed)."""
    try:
        return arn_key(canonicalize_mapping_arn(arn).canonical)
    except MappingError:
        return arn_key(arn)


def same_key(written: object, key: str, tail: str | None = None) -> bool:
    if not isinstance(written, str):
        return False
    if tail is not None and written.rsplit("/", 1)[-1].strip().lower() != tail:
        return False
    return lenient_key(written) == key


def replacing(
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


class ArnUpserts(abc.ABC):
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
