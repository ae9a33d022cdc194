"""IAMIdentityMapping objects opened for editing (pure)."""

from __future__ import annotations

import copy
import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubeiam.admin.editing.document import (
    ArnUpserts,
    check_role_or_user,
    lenient_key,
    replacing,
    same_key,
    validate_entry,
)
from kubeiam.arn import arn_key, arn_resource, canonicalize_mapping_arn
from kubeiam.errors import ConfigError
from kubeiam.mapping.aws_auth import Change
from kubeiam.mapping.backends.crd import entries_from_objects
from kubeiam.mapping.model import (
    LoadResult,
    load_entries,
)

#: Object names kubeiam gives new IAMIdentityMapping objects: DNS-1123 subdomain characters only.
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]+")
_NAME_MAX_STEM = 40


def crd_object_name(arn: str) -> str:
    """A stable object name for ``arn``: readable stem and a hash of the canonical ARN."""
    canonical = canonicalize_mapping_arn(arn)
    resource = arn_resource(canonical.canonical)
    stem = _NAME_UNSAFE.sub("-", resource.lower()).strip("-")[:_NAME_MAX_STEM].strip("-")
    digest = hashlib.sha256(arn_key(canonical.canonical).encode()).hexdigest()[:10]
    return f"{stem}-{canonical.account_id}-{digest}"


class CrdMappings(ArnUpserts):
    """IAMIdentityMapping objects by name (cluster-scoped); one object maps one ARN."""

    def __init__(self, objects: Mapping[str, Mapping[str, Any]]) -> None:
        self.objects: dict[str, dict[str, Any]] = {
            name: copy.deepcopy(dict(obj)) for name, obj in objects.items()
        }

    def specs(self) -> dict[str, Any]:
        return {name: self.objects[name].get("spec") for name in sorted(self.objects)}

    def load(self) -> LoadResult:
        roles, users = entries_from_objects(self.objects)
        return load_entries(roles, users)

    def text(self) -> str:
        import yaml

        buf = io.StringIO()
        for name, spec in self.specs().items():
            buf.write(yaml.safe_dump({name: spec}, sort_keys=False, default_flow_style=False))
        return buf.getvalue()

    def state(self) -> Any:
        return copy.deepcopy(self.specs())

    def names(self) -> list[str]:
        specs = self.specs().values()
        return [str(spec["arn"]) for spec in specs if isinstance(spec, dict) and "arn" in spec]

    def _find(self, key: str) -> list[str]:
        return [
            name
            for name in sorted(self.objects)
            if same_key((self.objects[name].get("spec") or {}).get("arn"), key)
        ]

    def _upsert_arn(
        self, kind: str, arn: str, username: str, groups: Sequence[str], replace: bool
    ) -> Change:
        key = check_role_or_user(arn, kind)
        validate_entry(kind, arn, username, groups)
        found = self._find(key)
        spec = {"arn": arn, "username": username, "groups": list(groups)}
        if not found:
            name = crd_object_name(arn)
            self.objects[name] = {
                "apiVersion": "iamauthenticator.k8s.aws/v1alpha1",
                "kind": "IAMIdentityMapping",
                "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubeiam"}},
                "spec": spec,
            }
            return Change.ADDED
        first = self.objects[found[0]].setdefault("spec", {})
        old_user, old_groups = first.get("username"), list(first.get("groups") or [])
        if not replacing(
            arn, old_user, old_groups, username, groups, copies=len(found), replace=replace
        ):
            return Change.UNCHANGED
        for name in found[1:]:
            del self.objects[name]
        first["username"] = username
        first["groups"] = list(groups)
        return Change.REPLACED

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
        raise ConfigError(
            "IAMIdentityMapping objects map one ARN each; they have no form for SSO permission "
            "sets",
            hint="map the permission set in aws-auth or a mapping file (--store aws-auth|file)",
        )

    def upsert_group(
        self, grouparn: str, username: str, groups: Sequence[str], *, replace: bool
    ) -> Change:
        raise ConfigError(
            "IAMIdentityMapping objects map one user or role ARN each; they have no form for "
            "IAM groups",
            hint="map the IAM group in aws-auth or a mapping file (--store aws-auth|file)",
        )

    def add_account(self, account_id: str) -> Change:
        raise ConfigError(
            "IAMIdentityMapping objects map one ARN each; they have no form for whole accounts",
            hint="map the account in aws-auth or a mapping file (--store aws-auth|file)",
        )

    def remove(self, arn_or_account: str) -> Change:
        if not arn_or_account.startswith("arn:"):
            return Change.UNCHANGED
        found = self._find(lenient_key(arn_or_account))
        for name in found:
            del self.objects[name]
        return Change.REMOVED if found else Change.UNCHANGED

    def remove_sso(self, permission_set: str, account_id: str, *, partition: str) -> Change:
        return Change.UNCHANGED
