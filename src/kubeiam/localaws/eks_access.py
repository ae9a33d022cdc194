"""The EKS access-entry API's state for the local EKS: one :class:`ClusterAccess` per cluster.

moto emulates EKS clusters but not access entries, access policies or a cluster's
authentication mode. A :class:`ClusterAccess` holds one cluster's mode, entries and policy
associations and applies the rules of :mod:`kubeiam.localaws.eks_rules` (where each rule cites
its AWS page, or says ``CHOSEN:`` where AWS documents none); :mod:`kubeiam.localaws.eks_api`
plugs it into moto's EKS backend. No moto, no I/O here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubeiam.localaws.eks_rules import (
    ACCESS_POLICY_NAMES,
    ADMIN_POLICY,
    DEFAULT_MODE,
    STANDARD,
    EksApiError,
    ErrorCode,
    Principal,
    PrincipalDirectory,
    check_access_scope,
    check_entry_api_enabled,
    check_entry_type,
    check_groups,
    check_mode_transition,
    check_node_entry_principal,
    check_policy_allowed_for_type,
    check_policy_arn,
    check_principal_arn,
    check_principal_exists,
    check_principal_partition,
    check_username,
    default_username,
    policy_arn,
)


@dataclass(slots=True)
class Association:
    policy_arn: str
    scope_type: str
    namespaces: tuple[str, ...]
    associated_at: datetime
    modified_at: datetime

    def wire(self) -> dict[str, Any]:
        return {
            "policyArn": self.policy_arn,
            "accessScope": {"type": self.scope_type, "namespaces": list(self.namespaces)},
            "associatedAt": self.associated_at,
            "modifiedAt": self.modified_at,
        }


@dataclass(slots=True)
class AccessEntry:
    cluster_name: str
    principal: Principal
    entry_type: str
    username: str
    groups: tuple[str, ...]
    tags: dict[str, str]
    created_at: datetime
    modified_at: datetime
    arn: str
    associations: dict[str, Association] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        return {
            "clusterName": self.cluster_name,
            "principalArn": self.principal.arn,
            "kubernetesGroups": list(self.groups),
            "accessEntryArn": self.arn,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "tags": dict(self.tags),
            "username": self.username,
            "type": self.entry_type,
        }


class ClusterAccess:
    """One cluster's authentication mode, access entries and policy associations."""

    def __init__(
        self,
        *,
        cluster_name: str,
        account: str,
        region: str,
        partition: str,
        mode: str = DEFAULT_MODE,
        creator: Principal | None = None,
        bootstrap_admin: bool = True,
    ) -> None:
        self.cluster_name = cluster_name
        self.account = account
        self.region = region
        self.partition = partition
        self.mode = mode
        #: [API-CONFIG] bootstrapClusterCreatorAdminPermissions, default true.
        self.bootstrap_admin = bootstrap_admin
        self.creator = creator
        #: principal ARN -> entry, in creation order.
        self.entries: dict[str, AccessEntry] = {}
        #: update id -> the Update document DescribeUpdate returns.
        self.updates: dict[str, dict[str, Any]] = {}

    # -- mode --

    def set_mode(self, desired: str, *, now: datetime) -> dict[str, Any]:
        """UpdateClusterConfig(accessConfig): move the mode forward; returns the Update.

        CHOSEN: the update is applied at once and reported ``Successful`` (the emulator has
        nothing to wait for), where EKS reports ``InProgress`` and finishes minutes later.
        """
        check_mode_transition(self.mode, desired)
        leaving_config_map = self.mode == "CONFIG_MAP"
        self.mode = desired
        if leaving_config_map:
            self.bootstrap_creator_entry(now=now)
        params = [{"type": "AuthenticationMode", "value": desired}]
        return self.record_update("AccessConfigUpdate", params, now=now)

    def record_update(
        self, kind: str, params: list[dict[str, str]], *, now: datetime
    ) -> dict[str, Any]:
        """An Update document (done at once), kept for DescribeUpdate."""
        update_id = str(uuid.uuid4())
        update: dict[str, Any] = {
            "id": update_id,
            "status": "Successful",
            "type": kind,
            "params": params,
            "createdAt": now,
            "errors": [],
        }
        self.updates[update_id] = update
        return update

    def bootstrap_creator_entry(self, *, now: datetime) -> None:
        """[API-CONFIG] with bootstrapClusterCreatorAdminPermissions (default true) the creator
        becomes "a cluster admin access entry"; [CREATE's prerequisites, grant-k8s-access] EKS
        "creates an access entry with administrator permissions to the cluster for the IAM
        principal that originally created the cluster". CHOSEN: this happens when the access
        entry API becomes available (at creation in an API mode, or on leaving CONFIG_MAP), only
        if the creator is known and has no entry yet."""
        creator = self.creator
        if not self.bootstrap_admin or creator is None or creator.arn in self.entries:
            return
        self.entries[creator.arn] = self._new_entry(creator, STANDARD, None, (), {}, now)
        arn = policy_arn(ADMIN_POLICY, self.partition)
        self.entries[creator.arn].associations[arn] = Association(arn, "cluster", (), now, now)

    # -- entries --

    def entry(self, principal_arn: str) -> AccessEntry:
        self._check_api()
        found = self.entries.get(principal_arn)
        if found is None:
            raise EksApiError(
                ErrorCode.NOT_FOUND,
                f"The specified access entry resource {principal_arn} could not be found in "
                f"cluster {self.cluster_name}",
            )
        return found

    def create_entry(
        self,
        principal_arn: str,
        directory: PrincipalDirectory,
        *,
        entry_type: str | None,
        username: str | None,
        groups: Sequence[str] | None,
        tags: Mapping[str, str] | None,
        now: datetime,
    ) -> AccessEntry:
        self._check_api()
        kind = entry_type or STANDARD
        check_entry_type(kind)
        check_principal_partition(check_principal_arn(principal_arn), self.partition)
        if principal_arn in self.entries:
            # [CREATE] "An IAM principal can't be included in more than one access entry."
            raise EksApiError(
                ErrorCode.IN_USE,
                f"The specified access entry resource is already in use on cluster "
                f"{self.cluster_name}: {principal_arn}",
            )
        principal = check_principal_exists(principal_arn, directory)
        check_node_entry_principal(kind, principal, self.account)
        check_username(username, kind)
        check_groups(groups, kind)
        created = self._new_entry(principal, kind, username, tuple(groups or ()), tags or {}, now)
        self.entries[principal_arn] = created
        return created

    def update_entry(
        self,
        principal_arn: str,
        *,
        username: str | None,
        groups: Sequence[str] | None,
        now: datetime,
    ) -> AccessEntry:
        """[CREATE] "You can change the username after the access entry is created"; groups can
        be added and removed. Omitted fields stay; ``kubernetesGroups: []`` removes them all."""
        found = self.entry(principal_arn)
        check_username(username, found.entry_type)
        check_groups(groups, found.entry_type)
        if username is not None:
            found.username = username
        if groups is not None:
            found.groups = tuple(groups)
        found.modified_at = now
        return found

    def delete_entry(self, principal_arn: str) -> None:
        self.entry(principal_arn)
        del self.entries[principal_arn]

    def list_entries(self, associated_policy_arn: str | None) -> list[str]:
        self._check_api()
        if associated_policy_arn is None:
            return list(self.entries)
        check_policy_arn(associated_policy_arn, self.partition)
        return [arn for arn, e in self.entries.items() if associated_policy_arn in e.associations]

    # -- associations --

    def associate(
        self, principal_arn: str, policy: str, scope: Mapping[str, Any] | None, *, now: datetime
    ) -> Association:
        """[ASSOCIATE] "you can only associate each policy to an access entry once"; running the
        association again "with the new scope" changes the scope (associatedAt stays)."""
        found = self.entry(principal_arn)
        name = check_policy_arn(policy, self.partition)
        check_policy_allowed_for_type(name, found.entry_type)
        scope_type, namespaces = check_access_scope(scope)
        current = found.associations.get(policy)
        if current is None:
            current = Association(policy, scope_type, namespaces, now, now)
            found.associations[policy] = current
        else:
            current.scope_type, current.namespaces, current.modified_at = (
                scope_type,
                namespaces,
                now,
            )
        return current

    def disassociate(self, principal_arn: str, policy: str) -> None:
        found = self.entry(principal_arn)
        if policy not in found.associations:
            raise EksApiError(
                ErrorCode.NOT_FOUND,
                f"The access policy {policy} is not associated with the access entry "
                f"{principal_arn}",
            )
        del found.associations[policy]

    # -- helpers --

    def _check_api(self) -> None:
        check_entry_api_enabled(self.mode, self.cluster_name)

    def _new_entry(
        self,
        principal: Principal,
        entry_type: str,
        username: str | None,
        groups: tuple[str, ...],
        tags: Mapping[str, str],
        now: datetime,
    ) -> AccessEntry:
        # The shape EKS uses: access-entry/CLUSTER/KIND/ACCOUNT/NAME/UUID.
        arn = (
            f"arn:{self.partition}:eks:{self.region}:{self.account}:access-entry/"
            f"{self.cluster_name}/{principal.kind}/{principal.account}/{principal.name}/"
            f"{uuid.uuid4()}"
        )
        return AccessEntry(
            cluster_name=self.cluster_name,
            principal=principal,
            entry_type=entry_type,
            username=username if username is not None else default_username(principal, entry_type),
            groups=groups,
            tags=dict(tags),
            created_at=now,
            modified_at=now,
            arn=arn,
        )


def access_policy_list(partition: str) -> list[dict[str, str]]:
    """ListAccessPolicies' items, sorted by name like EKS's answer."""
    return [{"name": n, "arn": policy_arn(n, partition)} for n in sorted(ACCESS_POLICY_NAMES)]
