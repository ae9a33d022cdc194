"""The aws-auth ConfigMap's mappings opened for editing (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubeiam.admin.editing.document import (
    check_role_or_user,
)
from kubeiam.mapping.aws_auth import AwsAuthDocument, Change
from kubeiam.mapping.model import (
    LoadResult,
)


class AwsAuthMappings:
    """aws-auth ``data`` (a dict of YAML strings), edited line-preservingly.

    Reading (``load``, ``text``, ``state``) works on any content, so `list`, `lint` and `explain`
    can show what is wrong with a broken aws-auth; the first change checks that the content can be
    edited safely (:meth:`AwsAuthDocument.check_editable`, naming the line).
    """

    def __init__(self, data: Mapping[str, str] | None) -> None:
        self._doc = AwsAuthDocument(data, check=False)

    @property
    def data(self) -> dict[str, str]:
        return self._doc.to_data()

    def load(self) -> LoadResult:
        return self._doc.load()

    def names(self) -> list[str]:
        return self._doc.names()

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
        check_role_or_user(arn, "user")
        return self._doc.upsert_user(arn, username, groups, replace=replace)

    def upsert_role(
        self, arn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        check_role_or_user(arn, "role")
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
