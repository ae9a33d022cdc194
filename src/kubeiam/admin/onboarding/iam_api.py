"""The IAM/STS calls the seed workflows make, each through :func:`translate_errors`.

A thin adapter over :class:`~kubeiam.aws.clients.AWSClients`: ``call`` runs one API
operation by name, ``missing`` turns IAM's NoSuchEntity into ``None`` (every workflow looks
before it changes anything), ``items`` walks a paginated list. Policy documents are compared
with :func:`policy_equal`, because IAM hands back a normalised form of what it was given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubeiam.aws.clients import AWSClients, translate_errors
from kubeiam.errors import AWSAdminError, ConfigError

_NOT_FOUND = frozenset({"NoSuchEntity", "NoSuchEntityException"})


def policy_equal(a: Any, b: Any) -> bool:
    """Compare policy documents as IAM does: JSON text or dict, one-element lists as scalars,
    statement order ignored."""

    def norm(x: Any) -> Any:
        if isinstance(x, str):
            try:
                x = json.loads(x)
            except ValueError:
                return x
        if isinstance(x, dict):
            return {k: norm(v) for k, v in sorted(x.items())}
        if isinstance(x, list):
            items = [norm(v) for v in x]
            return items[0] if len(items) == 1 else sorted(items, key=json.dumps)
        return x

    return bool(norm(a) == norm(b))


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class IAMApi:
    """IAM and STS for one command; errors already translated to the kubeiam tree."""

    def __init__(self, clients: AWSClients) -> None:
        self._clients = clients
        self._account: tuple[str, str] | None = None

    @property
    def clients(self) -> AWSClients:
        return self._clients

    def _action(self, op: str) -> str:
        """``create_user`` -> ``iam:CreateUser``, the permission named in error hints."""
        mapping: Mapping[str, str] = self._clients.iam.meta.method_to_api_mapping
        return "iam:" + mapping.get(op, op)

    def call(self, op: str, resource: str | None = None, /, **params: Any) -> Any:
        """IAM operation ``op`` (snake_case, e.g. ``create_user``) with ``params``."""
        with translate_errors(self._action(op), resource=resource):
            return getattr(self._clients.iam, op)(**params)

    def missing(self, op: str, resource: str | None = None, /, **params: Any) -> Any | None:
        """Like :meth:`call`, but None when IAM answers NoSuchEntity."""
        try:
            return self.call(op, resource, **params)
        except AWSAdminError as exc:
            if exc.code in _NOT_FOUND:
                return None
            raise

    def items(self, op: str, key: str, resource: str | None = None, /, **params: Any) -> list[Any]:
        """Every item under ``key`` of every page of list operation ``op``."""
        with translate_errors(self._action(op), resource=resource):
            pages = self._clients.iam.get_paginator(op).paginate(**params)  # type: ignore[call-overload]
            return [item for page in pages for item in page[key]]

    def account(self) -> tuple[str, str]:
        """(partition, account id) of the caller, from STS GetCallerIdentity (asked once)."""
        if self._account is None:
            with translate_errors("sts:GetCallerIdentity"):
                ident = self._clients.sts.get_caller_identity()
            self._account = (str(ident["Arn"]).split(":")[1], str(ident["Account"]))
        return self._account

    def region(self, region: str | None) -> str:
        resolved = region or self._clients.region
        if not resolved:
            raise ConfigError("no AWS region", hint="pass --region or set AWS_REGION")
        return resolved

    # -- lookups the workflows share ---------------------------------------------------------

    def user(self, name: str) -> Mapping[str, Any] | None:
        found = self.missing("get_user", name, UserName=name)
        return None if found is None else found["User"]

    def role(self, name: str) -> Mapping[str, Any] | None:
        found = self.missing("get_role", name, RoleName=name)
        return None if found is None else found["Role"]

    def role_tags(self, name: str) -> dict[str, str]:
        tags = self.call("list_role_tags", name, RoleName=name)["Tags"]
        return {str(t["Key"]): str(t["Value"]) for t in tags}

    def access_key_ids(self, user: str) -> list[str]:
        keys = self.items("list_access_keys", "AccessKeyMetadata", user, UserName=user)
        return [str(k["AccessKeyId"]) for k in keys]

    def groups_of(self, user: str) -> list[str]:
        groups = self.items("list_groups_for_user", "Groups", user, UserName=user)
        return [str(g["GroupName"]) for g in groups]

    def role_arn(self, role: str) -> str:
        partition, account = self.account()
        return f"arn:{partition}:iam::{account}:role/{role}"

    def names(self, op: str, key: str, field: str, /, **params: Any) -> list[str]:
        """The ``field`` of every item of list operation ``op``, for "closest names" in a not
        found message; empty when the caller may not list them (the message then has none)."""
        try:
            return [str(item[field]) for item in self.items(op, key, None, **params)]
        except AWSAdminError:
            return []

    def user_arn(self, user: str) -> str:
        partition, account = self.account()
        return f"arn:{partition}:iam::{account}:user/{user}"
