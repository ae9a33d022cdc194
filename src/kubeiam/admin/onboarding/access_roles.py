"""Seed 2 as commands: `create-access-role`, `grant`, `revoke`, `delete-access-role`.

The seed: a role trusted by the account (its own IAM policies then decide who may assume it), an
IAM group whose inline policy allows ``sts:AssumeRole`` on that role, and the role mapped to
Kubernetes groups. Access is granted and revoked by IAM group membership alone.

The role carries tags naming the group and the cluster, so `grant`, `revoke` and
`delete-access-role` find the group from the role name. A role kubeiam did not create is never
adopted or deleted. A group that existed before is never deleted by a rollback, and
`delete-access-role` deletes the group only when no other policy is left on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kubeiam.admin.editing.writer import MappingWriter
from kubeiam.admin.onboarding.iam_api import policy_equal, tag_list
from kubeiam.admin.onboarding.rollback import Rollback, transaction
from kubeiam.admin.onboarding.steps import NOT_FOUND_HINT, IAMSteps, PolicyHolder, RemovalResult
from kubeiam.admin.onboarding.users import POLICY_VERSION, kubeconfig_command
from kubeiam.errors import AWSAdminError, ConfigError, NotFoundError
from kubeiam.suggestions import closest_names, quote_name

TAG_MANAGED_BY = "kubeiam:managed-by"
TAG_ACCESS_GROUP = "kubeiam:access-group"
TAG_CLUSTER = "kubeiam:cluster"
MANAGED_BY = "kubeiam"
#: Said on every revoke: group membership only gates *new* AssumeRole calls.
REVOKE_NOTE = (
    "role sessions already issued stay valid until they expire (up to 1 hour), and a token "
    "signed with one until its 15 minutes are over"
)


def assume_policy_name(role: str) -> str:
    return f"AssumeRole-{role}"[:128]


def assume_role_policy(role_arn: str) -> dict[str, Any]:
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}],
    }


def account_trust_policy(partition: str, account: str) -> dict[str, Any]:
    """Trust the account itself (seed 2: "Another AWS Account" = your own account id)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


@dataclass(frozen=True, slots=True)
class AccessRoleResult:
    role_name: str
    role_arn: str
    group_name: str
    policy_name: str
    username: str
    k8s_groups: tuple[str, ...]
    mapping_target: str | None
    kubeconfig_command: str
    created: tuple[str, ...]
    notes: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "roleName": self.role_name,
            "roleArn": self.role_arn,
            "iamGroup": self.group_name,
            "groupPolicy": self.policy_name,
            "mapping": self.mapping_target,
            "username": self.username,
            "groups": list(self.k8s_groups),
            "kubeconfigCommand": self.kubeconfig_command,
            "created": list(self.created),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class MembershipResult:
    user_name: str
    role_name: str
    group_name: str
    changed: bool
    notes: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "userName": self.user_name,
            "accessRole": self.role_name,
            "iamGroup": self.group_name,
            "changed": self.changed,
            "notes": list(self.notes),
        }


class DeleteRoleResult(RemovalResult):
    """What `delete-access-role` removed."""

    __slots__ = ()
    NAME_KEY: ClassVar[str] = "roleName"


class AccessRoleWorkflows(IAMSteps):
    """Seed 2. Mixed into :class:`kubeiam.admin.onboarding.iam_admin.IAMAdmin`."""

    def _managed_tags(self, role: str) -> dict[str, str] | None:
        """The role's tags if kubeiam created it, else None."""
        tags = self.api.role_tags(role)
        return tags if tags.get(TAG_MANAGED_BY) == MANAGED_BY else None

    def _access_group(self, role: str, override: str | None) -> str:
        if override:
            return override
        if self.api.role(role) is None:
            raise AWSAdminError(
                f"access role {role} does not exist{self._closest(role, self._role_names())}",
                hint=f"create it: kubeiam iam create-access-role {role} --cluster C --group G",
                code="NoSuchEntity",
            )
        tags = self._managed_tags(role)
        if tags is None or not tags.get(TAG_ACCESS_GROUP):
            raise AWSAdminError(
                f"role {role} was not created by kubeiam iam create-access-role",
                hint="pass --iam-group with the IAM group that grants it",
                code="NotManaged",
            )
        return tags[TAG_ACCESS_GROUP]

    def create_access_role(
        self,
        name: str,
        *,
        cluster: str,
        k8s_groups: Sequence[str],
        iam_group: str | None = None,
        username: str | None = None,
        mapping: MappingWriter | None = None,
        region: str | None = None,
    ) -> AccessRoleResult:
        """Seed 2 in one command: role, group with an AssumeRole policy, role mapping."""
        if not k8s_groups:
            raise ConfigError("no Kubernetes groups", hint="pass --group")
        group = iam_group or name
        k8s_username = username or f"{name}:{{{{SessionName}}}}"
        role_arn = self.api.role_arn(name)
        policy_name = assume_policy_name(name)
        notes: list[str] = []

        with transaction(self.progress, self.step_hook) as tx:
            tx.step("create-role")
            self._ensure_role(tx, name, group, cluster)
            tx.step("create-group")
            if self.api.missing("get_group", group, GroupName=group) is None:
                self.api.call("create_group", group, GroupName=group)
                tx.did(
                    f"IAM group {group}",
                    lambda: self.api.call("delete_group", group, GroupName=group),
                )
                self.progress(f"created IAM group {group}")
            else:
                self.progress(f"IAM group {group} exists")
            tx.step("group-policy")
            self._ensure_inline_policy(
                tx,
                PolicyHolder.GROUP,
                group,
                policy_name,
                assume_role_policy(role_arn),
                grants="sts:AssumeRole",
            )
            tx.step("mapping")
            self._map(tx, mapping, "role", role_arn, k8s_username, k8s_groups, notes)
            tx.step("done")

        for note in notes:
            self.progress(f"note: {note}")
        return AccessRoleResult(
            role_name=name,
            role_arn=role_arn,
            group_name=group,
            policy_name=policy_name,
            username=k8s_username,
            k8s_groups=tuple(k8s_groups),
            mapping_target=mapping.target if mapping is not None else None,
            kubeconfig_command=kubeconfig_command(
                cluster, region=region or self.api.clients.region, role_arn=role_arn
            ),
            created=tuple(tx.created),
            notes=tuple(notes),
        )

    def _ensure_role(self, tx: Rollback, name: str, group: str, cluster: str) -> None:
        partition, account = self.api.account()
        trust = account_trust_policy(partition, account)
        role = self.api.role(name)
        if role is None:
            tags = {TAG_MANAGED_BY: MANAGED_BY, TAG_ACCESS_GROUP: group, TAG_CLUSTER: cluster}
            self.api.call(
                "create_role",
                name,
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=f"Kubernetes access to {cluster} (kubeiam)",
                Tags=tag_list(tags),
            )
            tx.did(f"IAM role {name}", lambda: self.api.call("delete_role", name, RoleName=name))
            self.progress(f"created IAM role {name} trusted by account {account}")
            return
        managed = self._managed_tags(name)
        if managed is None:
            raise AWSAdminError(
                f"IAM role {name} exists and was not created by kubeiam; left untouched",
                hint="choose another name for the access role",
                code="EntityAlreadyExists",
            )
        owner = managed.get(TAG_ACCESS_GROUP)
        if owner != group:
            raise ConfigError(
                f"access role {name} belongs to IAM group {owner}, not {group}",
                hint=f"pass --iam-group {owner} or omit it",
            )
        self.progress(f"IAM role {name} exists")
        if not policy_equal(role["AssumeRolePolicyDocument"], trust):
            old = json.dumps(role["AssumeRolePolicyDocument"])
            self.api.call(
                "update_assume_role_policy", name, RoleName=name, PolicyDocument=json.dumps(trust)
            )
            tx.did(
                f"trust policy of {name}",
                lambda: self.api.call(
                    "update_assume_role_policy", name, RoleName=name, PolicyDocument=old
                ),
            )
            self.progress(f"repaired the trust policy of {name}")

    # -- membership ----------------------------------------------------------------------------

    def grant(
        self, user: str, *, access_role: str, iam_group: str | None = None
    ) -> MembershipResult:
        """Add ``user`` to the access role's IAM group (idempotent)."""
        group = self._access_group(access_role, iam_group)
        if self.api.user(user) is None:
            raise AWSAdminError(
                f"IAM user {user} does not exist{self._closest(user, self._user_names())}",
                code="NoSuchEntity",
                hint="check the name, or onboard the user first",
            )
        self._step("add-to-group")
        if group in self.api.groups_of(user):
            self.progress(f"{user} is already in group {group}")
            return MembershipResult(user, access_role, group, False, ())
        self.api.call("add_user_to_group", group, GroupName=group, UserName=user)
        self.progress(f"added {user} to group {group}: it may now assume {access_role}")
        return MembershipResult(user, access_role, group, True, ())

    def revoke(
        self,
        user: str,
        *,
        access_role: str,
        iam_group: str | None = None,
        ignore_not_found: bool = False,
    ) -> MembershipResult:
        """Remove ``user`` from the access role's IAM group.

        A role, user or membership that does not exist is
        :class:`~kubeiam.errors.NotFoundError` naming the closest roles, users or group
        members, unless ``ignore_not_found`` (then nothing changes)."""
        if iam_group is None and self.api.role(access_role) is None:
            if not ignore_not_found:
                raise self._not_found(
                    "access role",
                    access_role,
                    self._role_names(),
                    hint="check the name (or pass --iam-group); pass --ignore-not-found if it "
                    "may already be gone",
                )
            note = f"access role {access_role} does not exist"
            self.progress(f"{note}; nothing to revoke")
            return MembershipResult(user, access_role, iam_group or "", False, (note,))
        group = self._access_group(access_role, iam_group)
        self._step("remove-from-group")
        member = self.api.user(user) is not None and group in self.api.groups_of(user)
        if not member and not ignore_not_found:
            members = self.api.names("get_group", "Users", "UserName", GroupName=group)
            if self.api.user(user) is None:
                raise self._not_found("IAM user", user, members or self._user_names())
            closest = closest_names(user, members)
            if closest:
                among = f"closest members: {', '.join(closest)}"
            elif members:
                more = f" and {len(members) - 3} more" if len(members) > 3 else ""
                among = f"members: {', '.join(sorted(members)[:3])}{more}"
            else:
                among = "the group has no members"
            raise NotFoundError(
                f"IAM user {quote_name(user)} is not a member of IAM group {group} (access role "
                f"{access_role}): membership not found ({among})",
                hint=NOT_FOUND_HINT,
            )
        if not member:
            self.progress(f"{user} is not in group {group}")
            return MembershipResult(user, access_role, group, False, ())
        self.api.call("remove_user_from_group", group, GroupName=group, UserName=user)
        self.progress(f"removed {user} from group {group}; {REVOKE_NOTE}")
        return MembershipResult(user, access_role, group, True, (REVOKE_NOTE,))

    # -- delete --------------------------------------------------------------------------------

    def delete_access_role(
        self,
        name: str,
        *,
        iam_group: str | None = None,
        mapping: MappingWriter | None = None,
        force: bool = False,
        ignore_not_found: bool = False,
    ) -> DeleteRoleResult:
        """Undo :meth:`create_access_role` (roll forward: rerun after a failure); ``force`` as
        for :meth:`~kubeiam.admin.onboarding.users.UserWorkflows.offboard_user`.

        When the role does not exist, only what shows it was there is removed: its mapping and
        its group's ``AssumeRole-NAME`` policy (with the group, if nothing else is in it). With
        neither, the role is :class:`~kubeiam.errors.NotFoundError` naming the closest role
        names, unless ``ignore_not_found``."""
        removed: list[str] = []
        notes: list[str] = []
        role_arn = self.api.role_arn(name)
        role = self.api.role(name)
        group = iam_group
        if role is not None:
            tags = self._managed_tags(name)
            if tags is None and iam_group is None:
                raise AWSAdminError(
                    f"IAM role {name} was not created by kubeiam; left untouched",
                    hint="delete it with the tool that created it",
                    code="NotManaged",
                )
            group = group or (tags or {}).get(TAG_ACCESS_GROUP)
        group = group or name
        # Without the role, a group is ours only if it holds the role's AssumeRole policy: a
        # typo must not delete an unrelated group that happens to have that name.
        ours = role is not None or self._holds_assume_policy(group, name)

        self._remove_mapping(mapping, role_arn, removed, force=force)
        if role is None and not ours and not removed and not ignore_not_found:
            raise self._not_found("IAM role", name, self._role_names())
        self._step("group")
        if ours:
            self._delete_group(name, group, removed, notes)
        self._step("role")
        if role is None:
            notes.append(f"IAM role {name} does not exist")
        else:
            self._delete_role(name, removed)
        return DeleteRoleResult(name, tuple(removed), tuple(notes))

    def _holds_assume_policy(self, group: str, role: str) -> bool:
        policy = assume_policy_name(role)
        found = self.api.missing("get_group_policy", group, GroupName=group, PolicyName=policy)
        return found is not None

    def _delete_group(self, role: str, group: str, removed: list[str], notes: list[str]) -> None:
        policy = assume_policy_name(role)
        gone = self.api.missing("delete_group_policy", group, GroupName=group, PolicyName=policy)
        if gone is not None:
            removed.append(f"inline policy {policy} of group {group}")
        if self.api.missing("get_group", group, GroupName=group) is None:
            return
        others = self.api.items("list_group_policies", "PolicyNames", group, GroupName=group)
        attached = self.api.items(
            "list_attached_group_policies", "AttachedPolicies", group, GroupName=group
        )
        if others or attached:
            notes.append(f"IAM group {group} kept: it holds other policies")
            return
        for member in self.api.items("get_group", "Users", group, GroupName=group):
            user = str(member["UserName"])
            self.api.call("remove_user_from_group", group, GroupName=group, UserName=user)
            removed.append(f"membership of {user}")
        self.api.call("delete_group", group, GroupName=group)
        removed.append(f"IAM group {group}")
        self.progress(f"deleted IAM group {group}")

    def _delete_role(self, name: str, removed: list[str]) -> None:
        self._remove_policies("role", name, removed, of=f" of role {name}")
        profiles = self.api.items(
            "list_instance_profiles_for_role", "InstanceProfiles", name, RoleName=name
        )
        for prof in profiles:
            pname = str(prof["InstanceProfileName"])
            self.api.call(
                "remove_role_from_instance_profile", name, InstanceProfileName=pname, RoleName=name
            )
            removed.append(f"role in instance profile {pname}")
        self.api.call("delete_role", name, RoleName=name)
        removed.append(f"IAM role {name}")
        self.progress(f"deleted IAM role {name}")
