"""`kubeiam iam`: the seeds' IAM workflows as idempotent commands that roll back on failure.

Seed 1 (IAM user): create the user with tags, allow ``eks:DescribeCluster`` on the cluster,
create an access key, map the user, configure a profile, write a kubeconfig entry.
:meth:`IAMAdmin.onboard_user` does all of it; :meth:`IAMAdmin.offboard_user` undoes it.

Seed 2 (group-based access role): a role the account trusts, an IAM group whose policy allows
``sts:AssumeRole`` on it, the role mapped to Kubernetes groups; access is then granted and
revoked by group membership. :meth:`IAMAdmin.create_access_role`, :meth:`grant`,
:meth:`revoke`, :meth:`delete_access_role`.

Rules every workflow follows:

* **Idempotent**: each step looks first and changes only what is missing or different, so a
  re-run after a failure (or on a healthy setup) repairs or does nothing.
* **Roll back this run only**: each step that *changed* something records how to undo it; if a
  later step fails, the undo actions run in reverse order and the error is raised. Things that
  existed before the run are never removed by a rollback.
* **Removal rolls forward**: `offboard-user` and `delete-access-role` cannot be rolled back (a
  deleted access key cannot come back), so they remove the cluster mapping first (access ends at
  once), tolerate things already gone, and can simply be rerun after a failure.
* **Secrets**: the secret access key exists only inside :class:`AccessKey` (hidden from repr),
  goes once to a 0600 credentials profile or to the caller that asked to print it, and is never
  passed to the progress callback, an exception or a log.
* ``step_hook(name)`` is called before each step: tests inject failures with it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeiam.admin import credentials_file as credfile
from kubeiam.admin.awsclients import AWSClients, translate_errors
from kubeiam.admin.credentials_file import AccessKey
from kubeiam.admin.mapping_writer import MappingChange, MappingWriter
from kubeiam.errors import AWSAdminError, ConfigError, KubeIAMError

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_iam.type_defs import TagTypeDef

Progress = Callable[[str], None]
StepHook = Callable[[str], None]

#: Role tags through which delete-access-role and grant find what create-access-role made.
TAG_MANAGED_BY = "kubeiam:managed-by"
TAG_ACCESS_GROUP = "kubeiam:access-group"
TAG_CLUSTER = "kubeiam:cluster"
MANAGED_BY = "kubeiam"
#: IAM allows two access keys per user.
MAX_ACCESS_KEYS = 2
POLICY_VERSION = "2012-10-17"


def describe_policy_name(cluster: str) -> str:
    """The user's inline policy (seed 1 called it ``Describe_Kubedemy_Cluster``)."""
    return f"EKSDescribeCluster-{cluster}"[:128]


def assume_policy_name(role: str) -> str:
    return f"AssumeRole-{role}"[:128]


def describe_cluster_policy(cluster_arn: str) -> dict[str, Any]:
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Effect": "Allow", "Action": "eks:DescribeCluster", "Resource": cluster_arn}
        ],
    }


def assume_role_policy(role_arn: str) -> dict[str, Any]:
    return {
        "Version": POLICY_VERSION,
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}],
    }


def account_trust_policy(partition: str, account: str) -> dict[str, Any]:
    """Trust the account (seed 2: "Another AWS account" = your own): its IAM policies decide."""
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


def _policy_equal(a: Any, b: Any) -> bool:
    """IAM normalises documents (a one-element list may come back as a string): compare loosely."""

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


# --- rollback --------------------------------------------------------------------------------


class Rollback:
    """Undo actions of the steps this run completed, run in reverse when a later step fails."""

    def __init__(self, progress: Progress, hook: StepHook | None) -> None:
        self._progress = progress
        self._hook = hook
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self.created: list[str] = []

    def step(self, name: str) -> None:
        """Mark the start of step ``name`` (the failure-injection point for tests)."""
        if self._hook is not None:
            self._hook(name)

    def did(self, description: str, undo: Callable[[], object]) -> None:
        """Record that this run did ``description``, undone by ``undo``."""
        self.created.append(description)
        self._undo.append((description, undo))

    def undo_all(self) -> list[str]:
        """Run every undo in reverse; returns the descriptions that could not be undone."""
        failed: list[str] = []
        while self._undo:
            description, undo = self._undo.pop()
            try:
                undo()
                self._progress(f"rolled back: {description}")
            except KubeIAMError as exc:
                failed.append(description)
                self._progress(f"could not roll back {description}: {exc.message}")
        return failed


@contextmanager
def transaction(progress: Progress, hook: StepHook | None) -> Iterator[Rollback]:
    rollback = Rollback(progress, hook)
    try:
        yield rollback
    except BaseException as exc:
        if rollback.created:
            progress(f"failed: {_safe_message(exc)}; rolling back what this run created")
            failed = rollback.undo_all()
            if failed and isinstance(exc, KubeIAMError):
                exc.hint = (exc.hint + "; " if exc.hint else "") + (
                    "left behind after a failed rollback: " + ", ".join(failed)
                )
        raise


def _safe_message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, KubeIAMError) else type(exc).__name__


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnboardResult:
    user_name: str
    user_arn: str
    cluster_arn: str
    policy_name: str
    username: str
    groups: tuple[str, ...]
    mapping_target: str | None
    mapping: MappingChange | None
    access_key_ids: tuple[str, ...]
    credentials_profile: str | None
    credentials_file: Path | None
    kubeconfig_command: str
    created: tuple[str, ...]
    notes: tuple[str, ...]
    #: Only set when the caller asked to print the new key (``print_credentials``).
    new_key: AccessKey | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-safe summary (no secret)."""
        return {
            "userName": self.user_name,
            "userArn": self.user_arn,
            "permissions": f"Allow=eks:DescribeCluster on {self.cluster_arn}",
            "policyName": self.policy_name,
            "mapping": self.mapping_target,
            "username": self.username,
            "groups": list(self.groups),
            "accessKeyIds": list(self.access_key_ids),
            "credentialsProfile": self.credentials_profile,
            "kubeconfigCommand": self.kubeconfig_command,
            "created": list(self.created),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class OffboardResult:
    user_name: str
    removed: tuple[str, ...]
    notes: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "userName": self.user_name,
            "removed": list(self.removed),
            "notes": list(self.notes),
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


@dataclass(frozen=True, slots=True)
class DeleteRoleResult:
    role_name: str
    removed: tuple[str, ...]
    notes: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "roleName": self.role_name,
            "removed": list(self.removed),
            "notes": list(self.notes),
        }


def kubeconfig_command(
    cluster: str, *, region: str | None, profile: str | None = None, role_arn: str | None = None
) -> str:
    """The exact `kubeiam kubeconfig update` command for the new identity."""
    parts = ["kubeiam", "kubeconfig", "update", "--cluster", cluster]
    if region:
        parts += ["--region", region]
    if role_arn:
        parts += ["--role-arn", role_arn]
    if profile:
        parts += ["--profile", profile]
    return shlex.join(parts)


def _tags(tags: Mapping[str, str]) -> list[TagTypeDef]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


# --- the workflows ---------------------------------------------------------------------------


class IAMAdmin:
    """The seed workflows over one set of boto3 clients (built once per command)."""

    def __init__(
        self,
        clients: AWSClients,
        *,
        progress: Progress = lambda _msg: None,
        step_hook: StepHook | None = None,
    ) -> None:
        self._clients = clients
        self._progress = progress
        self._hook = step_hook
        self._identity: tuple[str, str] | None = None

    @property
    def _iam(self) -> IAMClient:
        return self._clients.iam

    # -- helpers -------------------------------------------------------------------------------

    def _account(self) -> tuple[str, str]:
        """(partition, account id) of the caller, from STS GetCallerIdentity."""
        if self._identity is None:
            with translate_errors("sts:GetCallerIdentity"):
                ident = self._clients.sts.get_caller_identity()
            arn = str(ident["Arn"])
            self._identity = (arn.split(":")[1], str(ident["Account"]))
        return self._identity

    def _missing(self, action: str, resource: str, call: Callable[[], Any]) -> Any | None:
        """``call()``'s answer, or None when IAM says NoSuchEntity."""
        try:
            with translate_errors(action, resource=resource):
                return call()
        except AWSAdminError as exc:
            if exc.code in ("NoSuchEntity", "NoSuchEntityException"):
                return None
            raise

    def _do(self, action: str, resource: str, call: Callable[[], Any]) -> Any:
        with translate_errors(action, resource=resource):
            return call()

    def _region(self, region: str | None) -> str:
        resolved = region or self._clients.region
        if not resolved:
            raise ConfigError("no AWS region", hint="pass --region or set AWS_REGION")
        return resolved

    def _get_user(self, name: str) -> Mapping[str, Any] | None:
        found = self._missing("iam:GetUser", name, lambda: self._iam.get_user(UserName=name))
        return None if found is None else found["User"]

    def _user_key_ids(self, name: str) -> list[str]:
        pages = self._do(
            "iam:ListAccessKeys",
            name,
            lambda: list(self._iam.get_paginator("list_access_keys").paginate(UserName=name)),
        )
        return [str(k["AccessKeyId"]) for page in pages for k in page["AccessKeyMetadata"]]

    # -- seed 1: onboard-user -----------------------------------------------------------------

    def onboard_user(
        self,
        name: str,
        *,
        cluster: str,
        groups: Sequence[str],
        username: str | None = None,
        tags: Mapping[str, str] | None = None,
        region: str | None = None,
        mapping: MappingWriter | None = None,
        credentials_file: Path | None = None,
        credentials_profile: str | None = None,
        print_credentials: bool = False,
        new_key: bool = False,
    ) -> OnboardResult:
        """Create or repair IAM user ``name`` with access to ``cluster`` (see the module doc)."""
        if not groups:
            raise ConfigError("no Kubernetes groups", hint="pass --groups (e.g. system:masters)")
        if not print_credentials and credentials_file is None:
            raise ConfigError("nowhere to put the new secret", hint="pass a credentials file")
        profile = (
            None if print_credentials else credfile.check_profile_name(credentials_profile or name)
        )
        k8s_username = username or name
        tags = dict(tags or {})
        region = self._region(region)
        partition, account = self._account()
        cluster_arn = f"arn:{partition}:eks:{region}:{account}:cluster/{cluster}"
        policy_name = describe_policy_name(cluster)
        notes: list[str] = []
        new: AccessKey | None = None
        mapping_change: MappingChange | None = None

        # Pre-flight, before changing anything: a profile we would overwrite must be this user's.
        profile_key = (
            credfile.read_profile_key_id(credentials_file, profile)
            if profile and credentials_file is not None
            else None
        )

        with transaction(self._progress, self._hook) as tx:
            tx.step("create-user")
            user = self._get_user(name)
            if user is None:
                self._do(
                    "iam:CreateUser",
                    name,
                    lambda: (
                        self._iam.create_user(UserName=name, Tags=_tags(tags))
                        if tags
                        else self._iam.create_user(UserName=name)
                    ),
                )
                tx.did(
                    f"IAM user {name}",
                    lambda: self._do(
                        "iam:DeleteUser", name, lambda: self._iam.delete_user(UserName=name)
                    ),
                )
                self._progress(f"created IAM user {name}")
                user = self._get_user(name)
                if user is None:
                    raise AWSAdminError(f"IAM user {name} vanished right after creation")
            else:
                self._progress(f"IAM user {name} exists")
                self._repair_user_tags(tx, name, tags)
            user_arn = str(user["Arn"])
            existing_keys = self._user_key_ids(name)
            if profile_key is not None and profile_key not in existing_keys:
                raise ConfigError(
                    f"profile {profile!r} in {credentials_file} holds key {profile_key}, which "
                    f"is not one of {name}'s access keys; nothing was overwritten",
                    hint="pass another --credentials-profile, or remove that profile first",
                )

            tx.step("put-user-policy")
            self._ensure_user_policy(tx, name, policy_name, describe_cluster_policy(cluster_arn))

            tx.step("mapping")
            if mapping is not None:
                mapping_change = mapping.add_user(user_arn, k8s_username, groups)
                if mapping_change is MappingChange.ADDED:
                    tx.did(
                        f"mapping of {user_arn} in {mapping.target}",
                        lambda: mapping.remove(user_arn),
                    )
                    self._progress(
                        f"mapped {user_arn} to {k8s_username} {list(groups)} in {mapping.target}"
                    )
                else:
                    self._progress(f"mapping of {user_arn} in {mapping.target} is in place")
            else:
                notes.append(
                    "no mapping target was given: add this entry to the cluster's mapping: "
                    + json.dumps(
                        {"userarn": user_arn, "username": k8s_username, "groups": list(groups)}
                    )
                )

            tx.step("access-key")
            key_ids = list(existing_keys)
            if not existing_keys or new_key:
                if len(existing_keys) >= MAX_ACCESS_KEYS:
                    raise AWSAdminError(
                        f"IAM user {name} already has {len(existing_keys)} access keys "
                        f"({', '.join(existing_keys)}); IAM allows {MAX_ACCESS_KEYS}",
                        hint=f"delete one first: aws iam delete-access-key --user-name {name} "
                        f"--access-key-id {existing_keys[0]}",
                        code="LimitExceeded",
                    )
                new = self._create_access_key(tx, name)
                key_ids.append(new.access_key_id)
                if existing_keys:
                    notes.append(
                        f"the old key(s) {', '.join(existing_keys)} stay active; delete them when "
                        f"nothing uses them: aws iam delete-access-key --user-name {name} "
                        f"--access-key-id {existing_keys[0]}"
                    )
            elif profile_key in existing_keys:
                self._progress(f"profile {profile} already holds access key {profile_key}")
            else:
                notes.append(
                    f"IAM user {name} already has access key(s) {', '.join(existing_keys)}, whose "
                    "secret AWS cannot show again; to get a usable key, rerun with --new-key "
                    "(creates a second key), then delete the old one with aws iam "
                    f"delete-access-key --user-name {name} --access-key-id {existing_keys[0]}"
                )

            tx.step("credentials")
            if new is not None and profile is not None and credentials_file is not None:
                previous = credfile.write_profile(credentials_file, profile, new)
                cf, pf = credentials_file, profile
                tx.did(
                    f"profile {profile} in {credentials_file}",
                    lambda: credfile.restore_profile(cf, pf, previous),
                )
                self._progress(
                    f"wrote access key {new.access_key_id} to profile {profile} in "
                    f"{credentials_file} (mode 0600)"
                )

            tx.step("done")

        for note in notes:
            self._progress(f"note: {note}")
        return OnboardResult(
            user_name=name,
            user_arn=user_arn,
            cluster_arn=cluster_arn,
            policy_name=policy_name,
            username=k8s_username,
            groups=tuple(groups),
            mapping_target=mapping.target if mapping is not None else None,
            mapping=mapping_change,
            access_key_ids=tuple(key_ids),
            credentials_profile=profile,
            credentials_file=credentials_file if profile else None,
            kubeconfig_command=kubeconfig_command(cluster, region=region, profile=profile),
            created=tuple(tx.created),
            notes=tuple(notes),
            new_key=new if print_credentials else None,
        )

    def _repair_user_tags(self, tx: Rollback, name: str, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        pages = self._do("iam:ListUserTags", name, lambda: self._iam.list_user_tags(UserName=name))
        have = {str(t["Key"]): str(t["Value"]) for t in pages["Tags"]}
        wanted = {k: v for k, v in tags.items() if have.get(k) != v}
        if not wanted:
            return
        self._do("iam:TagUser", name, lambda: self._iam.tag_user(UserName=name, Tags=_tags(wanted)))
        restore = {k: have[k] for k in wanted if k in have}
        added = [k for k in wanted if k not in have]

        def undo() -> None:
            if restore:
                self._do(
                    "iam:TagUser",
                    name,
                    lambda: self._iam.tag_user(UserName=name, Tags=_tags(restore)),
                )
            if added:
                self._do(
                    "iam:UntagUser",
                    name,
                    lambda: self._iam.untag_user(UserName=name, TagKeys=added),
                )

        tx.did(f"tags {sorted(wanted)} of {name}", undo)
        self._progress(f"set tags {sorted(wanted)} on IAM user {name}")

    def _ensure_user_policy(
        self, tx: Rollback, name: str, policy_name: str, document: dict[str, Any]
    ) -> None:
        current = self._missing(
            "iam:GetUserPolicy",
            name,
            lambda: self._iam.get_user_policy(UserName=name, PolicyName=policy_name),
        )
        if current is not None and _policy_equal(current["PolicyDocument"], document):
            self._progress(f"inline policy {policy_name} of {name} is in place")
            return
        self._do(
            "iam:PutUserPolicy",
            name,
            lambda: self._iam.put_user_policy(
                UserName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
            ),
        )
        if current is None:
            tx.did(
                f"inline policy {policy_name} of {name}",
                lambda: self._do(
                    "iam:DeleteUserPolicy",
                    name,
                    lambda: self._iam.delete_user_policy(UserName=name, PolicyName=policy_name),
                ),
            )
        else:
            old = json.dumps(current["PolicyDocument"])
            tx.did(
                f"update of inline policy {policy_name} of {name}",
                lambda: self._do(
                    "iam:PutUserPolicy",
                    name,
                    lambda: self._iam.put_user_policy(
                        UserName=name, PolicyName=policy_name, PolicyDocument=old
                    ),
                ),
            )
        self._progress(f"put inline policy {policy_name} (eks:DescribeCluster) on {name}")

    def _create_access_key(self, tx: Rollback, name: str) -> AccessKey:
        answer = self._do(
            "iam:CreateAccessKey", name, lambda: self._iam.create_access_key(UserName=name)
        )
        key = AccessKey(
            str(answer["AccessKey"]["AccessKeyId"]), str(answer["AccessKey"]["SecretAccessKey"])
        )
        del answer
        key_id = key.access_key_id
        tx.did(
            f"access key {key_id} of {name}",
            lambda: self._do(
                "iam:DeleteAccessKey",
                name,
                lambda: self._iam.delete_access_key(UserName=name, AccessKeyId=key_id),
            ),
        )
        self._progress(f"created access key {key_id} for {name}")
        return key

    # -- seed 1: offboard-user ----------------------------------------------------------------

    def offboard_user(
        self,
        name: str,
        *,
        mapping: MappingWriter | None = None,
        credentials_file: Path | None = None,
        credentials_profile: str | None = None,
    ) -> OffboardResult:
        """Remove ``name``'s mapping, keys, policies, memberships and the user (roll forward)."""
        removed: list[str] = []
        notes: list[str] = []
        self._step("lookup")
        user = self._get_user(name)
        if user is None:
            partition, account = self._account()
            user_arn = f"arn:{partition}:iam::{account}:user/{name}"
            notes.append(f"IAM user {name} does not exist")
        else:
            user_arn = str(user["Arn"])

        self._step("mapping")
        if mapping is not None and mapping.remove(user_arn) is MappingChange.REMOVED:
            removed.append(f"mapping of {user_arn} in {mapping.target}")
            self._progress(f"removed the mapping of {user_arn} from {mapping.target}")

        deleted_keys: set[str] = set()
        if user is not None:
            iam = self._iam
            self._step("access-keys")
            for key_id in self._user_key_ids(name):
                self._do(
                    "iam:DeleteAccessKey",
                    name,
                    partial(iam.delete_access_key, UserName=name, AccessKeyId=key_id),
                )
                deleted_keys.add(key_id)
                removed.append(f"access key {key_id}")
            self._step("login-profile")
            if (
                self._missing(
                    "iam:DeleteLoginProfile", name, lambda: iam.delete_login_profile(UserName=name)
                )
                is not None
            ):
                removed.append("console password")
            self._step("credentials")
            self._remove_user_credentials(name, removed)
            self._step("policies")
            for page in self._do(
                "iam:ListUserPolicies",
                name,
                lambda: list(iam.get_paginator("list_user_policies").paginate(UserName=name)),
            ):
                for policy in page["PolicyNames"]:
                    self._do(
                        "iam:DeleteUserPolicy",
                        name,
                        partial(iam.delete_user_policy, UserName=name, PolicyName=policy),
                    )
                    removed.append(f"inline policy {policy}")
            for page in self._do(
                "iam:ListAttachedUserPolicies",
                name,
                lambda: list(
                    iam.get_paginator("list_attached_user_policies").paginate(UserName=name)
                ),
            ):
                for att in page["AttachedPolicies"]:
                    arn = str(att["PolicyArn"])
                    self._do(
                        "iam:DetachUserPolicy",
                        name,
                        partial(iam.detach_user_policy, UserName=name, PolicyArn=arn),
                    )
                    removed.append(f"attached policy {arn}")
            self._step("groups")
            for page in self._do(
                "iam:ListGroupsForUser",
                name,
                lambda: list(iam.get_paginator("list_groups_for_user").paginate(UserName=name)),
            ):
                for group in page["Groups"]:
                    g = str(group["GroupName"])
                    self._do(
                        "iam:RemoveUserFromGroup",
                        name,
                        partial(iam.remove_user_from_group, GroupName=g, UserName=name),
                    )
                    removed.append(f"membership of group {g}")
            self._step("delete-user")
            try:
                self._do("iam:DeleteUser", name, lambda: iam.delete_user(UserName=name))
            except AWSAdminError as exc:
                if exc.code != "DeleteConflict":
                    raise
                self._remove_service_credentials(name, removed)
                self._do("iam:DeleteUser", name, lambda: iam.delete_user(UserName=name))
            removed.append(f"IAM user {name}")
            self._progress(f"deleted IAM user {name}")

        self._step("profile")
        if credentials_file is not None and deleted_keys:
            profile = credentials_profile or name
            if credfile.remove_profile_if_key(credentials_file, profile, frozenset(deleted_keys)):
                removed.append(f"profile {profile} in {credentials_file}")
                self._progress(f"removed profile {profile} from {credentials_file}")
        return OffboardResult(name, tuple(removed), tuple(notes))

    def _remove_user_credentials(self, name: str, removed: list[str]) -> None:
        """MFA devices, signing certificates, SSH keys, service credentials: DeleteUser needs
        them gone."""
        iam = self._iam
        for device in self._do(
            "iam:ListMFADevices", name, lambda: iam.list_mfa_devices(UserName=name)
        )["MFADevices"]:
            serial = str(device["SerialNumber"])
            self._do(
                "iam:DeactivateMFADevice",
                name,
                partial(iam.deactivate_mfa_device, UserName=name, SerialNumber=serial),
            )
            removed.append(f"MFA device {serial}")
        for cert in self._do(
            "iam:ListSigningCertificates",
            name,
            lambda: iam.list_signing_certificates(UserName=name),
        )["Certificates"]:
            cid = str(cert["CertificateId"])
            self._do(
                "iam:DeleteSigningCertificate",
                name,
                partial(iam.delete_signing_certificate, UserName=name, CertificateId=cid),
            )
            removed.append(f"signing certificate {cid}")
        for ssh in self._do(
            "iam:ListSSHPublicKeys", name, lambda: iam.list_ssh_public_keys(UserName=name)
        )["SSHPublicKeys"]:
            sid = str(ssh["SSHPublicKeyId"])
            self._do(
                "iam:DeleteSSHPublicKey",
                name,
                partial(iam.delete_ssh_public_key, UserName=name, SSHPublicKeyId=sid),
            )
            removed.append(f"SSH public key {sid}")

    def _remove_service_credentials(self, name: str, removed: list[str]) -> None:
        """Service-specific credentials (CodeCommit, Keyspaces): rare, so only looked up when
        DeleteUser reports a conflict."""
        iam = self._iam
        creds = self._do(
            "iam:ListServiceSpecificCredentials",
            name,
            lambda: iam.list_service_specific_credentials(UserName=name),
        )
        for cred in creds.get("ServiceSpecificCredentials", []):
            cid = str(cred["ServiceSpecificCredentialId"])
            self._do(
                "iam:DeleteServiceSpecificCredential",
                name,
                partial(
                    iam.delete_service_specific_credential,
                    UserName=name,
                    ServiceSpecificCredentialId=cid,
                ),
            )
            removed.append(f"service-specific credential {cid}")

    def _step(self, name: str) -> None:
        if self._hook is not None:
            self._hook(name)

    # -- seed 2: access roles ------------------------------------------------------------------

    def _role_arn(self, role: str) -> str:
        partition, account = self._account()
        return f"arn:{partition}:iam::{account}:role/{role}"

    def _get_role(self, role: str) -> Mapping[str, Any] | None:
        found = self._missing("iam:GetRole", role, lambda: self._iam.get_role(RoleName=role))
        return None if found is None else found["Role"]

    def _role_tags(self, role: str) -> dict[str, str]:
        answer = self._do("iam:ListRoleTags", role, lambda: self._iam.list_role_tags(RoleName=role))
        return {str(t["Key"]): str(t["Value"]) for t in answer["Tags"]}

    def _access_group(self, role: str, override: str | None = None) -> str:
        if override:
            return override
        if self._get_role(role) is None:
            raise AWSAdminError(
                f"access role {role} does not exist",
                hint=f"create it: kubeiam iam create-access-role {role} --cluster C --k8s-groups G",
                code="NoSuchEntity",
            )
        tags = self._role_tags(role)
        group = tags.get(TAG_ACCESS_GROUP)
        if tags.get(TAG_MANAGED_BY) != MANAGED_BY or not group:
            raise AWSAdminError(
                f"role {role} was not created by kubeiam iam create-access-role",
                hint="pass --iam-group with the IAM group that grants it",
                code="NotManaged",
            )
        return group

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
            raise ConfigError("no Kubernetes groups", hint="pass --k8s-groups")
        group = iam_group or name
        k8s_username = username or f"{name}:{{{{SessionName}}}}"
        partition, account = self._account()
        role_arn = self._role_arn(name)
        policy_name = assume_policy_name(name)
        trust = account_trust_policy(partition, account)
        notes: list[str] = []
        iam = self._iam

        with transaction(self._progress, self._hook) as tx:
            tx.step("create-role")
            role = self._get_role(name)
            if role is None:
                tags = {TAG_MANAGED_BY: MANAGED_BY, TAG_ACCESS_GROUP: group, TAG_CLUSTER: cluster}
                self._do(
                    "iam:CreateRole",
                    name,
                    lambda: iam.create_role(
                        RoleName=name,
                        AssumeRolePolicyDocument=json.dumps(trust),
                        Description=f"Kubernetes access to {cluster} (kubeiam)",
                        Tags=_tags(tags),
                    ),
                )
                tx.did(
                    f"IAM role {name}",
                    lambda: self._do(
                        "iam:DeleteRole", name, lambda: iam.delete_role(RoleName=name)
                    ),
                )
                self._progress(f"created IAM role {name} trusted by account {account}")
            else:
                tags = self._role_tags(name)
                if tags.get(TAG_MANAGED_BY) != MANAGED_BY:
                    raise AWSAdminError(
                        f"IAM role {name} exists and was not created by kubeiam; left untouched",
                        hint="choose another name for the access role",
                        code="EntityAlreadyExists",
                    )
                if tags.get(TAG_ACCESS_GROUP) != group:
                    raise ConfigError(
                        f"access role {name} belongs to IAM group {tags.get(TAG_ACCESS_GROUP)}, "
                        f"not {group}",
                        hint=f"pass --iam-group {tags.get(TAG_ACCESS_GROUP)} or omit it",
                    )
                self._progress(f"IAM role {name} exists")
                if not _policy_equal(role["AssumeRolePolicyDocument"], trust):
                    old = json.dumps(role["AssumeRolePolicyDocument"])
                    self._do(
                        "iam:UpdateAssumeRolePolicy",
                        name,
                        lambda: iam.update_assume_role_policy(
                            RoleName=name, PolicyDocument=json.dumps(trust)
                        ),
                    )
                    tx.did(
                        f"trust policy of {name}",
                        lambda: self._do(
                            "iam:UpdateAssumeRolePolicy",
                            name,
                            lambda: iam.update_assume_role_policy(
                                RoleName=name, PolicyDocument=old
                            ),
                        ),
                    )
                    self._progress(f"repaired the trust policy of {name}")

            tx.step("create-group")
            existing_group = self._missing(
                "iam:GetGroup", group, lambda: iam.get_group(GroupName=group)
            )
            if existing_group is None:
                self._do("iam:CreateGroup", group, lambda: iam.create_group(GroupName=group))
                tx.did(
                    f"IAM group {group}",
                    lambda: self._do(
                        "iam:DeleteGroup", group, lambda: iam.delete_group(GroupName=group)
                    ),
                )
                self._progress(f"created IAM group {group}")
            else:
                self._progress(f"IAM group {group} exists")

            tx.step("group-policy")
            document = assume_role_policy(role_arn)
            current = self._missing(
                "iam:GetGroupPolicy",
                group,
                lambda: iam.get_group_policy(GroupName=group, PolicyName=policy_name),
            )
            if current is None or not _policy_equal(current["PolicyDocument"], document):
                self._do(
                    "iam:PutGroupPolicy",
                    group,
                    lambda: iam.put_group_policy(
                        GroupName=group, PolicyName=policy_name, PolicyDocument=json.dumps(document)
                    ),
                )
                if current is None:
                    tx.did(
                        f"inline policy {policy_name} of group {group}",
                        lambda: self._do(
                            "iam:DeleteGroupPolicy",
                            group,
                            lambda: iam.delete_group_policy(
                                GroupName=group, PolicyName=policy_name
                            ),
                        ),
                    )
                else:
                    old_doc = json.dumps(current["PolicyDocument"])
                    tx.did(
                        f"update of policy {policy_name} of group {group}",
                        lambda: self._do(
                            "iam:PutGroupPolicy",
                            group,
                            lambda: iam.put_group_policy(
                                GroupName=group, PolicyName=policy_name, PolicyDocument=old_doc
                            ),
                        ),
                    )
                self._progress(
                    f"put policy {policy_name} (sts:AssumeRole on {role_arn}) on group {group}"
                )
            else:
                self._progress(f"policy {policy_name} of group {group} is in place")

            tx.step("mapping")
            if mapping is not None:
                change = mapping.add_role(role_arn, k8s_username, k8s_groups)
                if change is MappingChange.ADDED:
                    tx.did(
                        f"mapping of {role_arn} in {mapping.target}",
                        lambda: mapping.remove(role_arn),
                    )
                    self._progress(
                        f"mapped {role_arn} to {k8s_username} {list(k8s_groups)} in "
                        f"{mapping.target}"
                    )
                else:
                    self._progress(f"mapping of {role_arn} in {mapping.target} is in place")
            else:
                notes.append(
                    "no mapping target was given: add this entry to the cluster's mapping: "
                    + json.dumps(
                        {"rolearn": role_arn, "username": k8s_username, "groups": list(k8s_groups)}
                    )
                )
            tx.step("done")

        for note in notes:
            self._progress(f"note: {note}")
        return AccessRoleResult(
            role_name=name,
            role_arn=role_arn,
            group_name=group,
            policy_name=policy_name,
            username=k8s_username,
            k8s_groups=tuple(k8s_groups),
            mapping_target=mapping.target if mapping is not None else None,
            kubeconfig_command=kubeconfig_command(
                cluster, region=region or self._clients.region, role_arn=role_arn
            ),
            created=tuple(tx.created),
            notes=tuple(notes),
        )

    def _is_member(self, user: str, group: str) -> bool:
        pages = self._do(
            "iam:ListGroupsForUser",
            user,
            lambda: list(self._iam.get_paginator("list_groups_for_user").paginate(UserName=user)),
        )
        return any(g["GroupName"] == group for page in pages for g in page["Groups"])

    def grant(
        self, user: str, *, access_role: str, iam_group: str | None = None
    ) -> MembershipResult:
        """Add ``user`` to the access role's IAM group (idempotent)."""
        group = self._access_group(access_role, iam_group)
        if self._get_user(user) is None:
            raise AWSAdminError(
                f"IAM user {user} does not exist",
                code="NoSuchEntity",
                hint="check the name, or onboard the user first",
            )
        self._step("add-to-group")
        if self._is_member(user, group):
            self._progress(f"{user} is already in group {group}")
            return MembershipResult(user, access_role, group, False, ())
        self._do(
            "iam:AddUserToGroup",
            group,
            lambda: self._iam.add_user_to_group(GroupName=group, UserName=user),
        )
        self._progress(f"added {user} to group {group}: it may now assume {access_role}")
        return MembershipResult(user, access_role, group, True, ())

    def revoke(
        self, user: str, *, access_role: str, iam_group: str | None = None
    ) -> MembershipResult:
        """Remove ``user`` from the access role's IAM group (idempotent)."""
        group = self._access_group(access_role, iam_group)
        self._step("remove-from-group")
        if self._get_user(user) is None or not self._is_member(user, group):
            self._progress(f"{user} is not in group {group}")
            return MembershipResult(user, access_role, group, False, ())
        self._do(
            "iam:RemoveUserFromGroup",
            group,
            lambda: self._iam.remove_user_from_group(GroupName=group, UserName=user),
        )
        note = (
            "role sessions already issued stay valid until they expire (up to 1 hour), and a "
            "token signed with one until its 15 minutes are over"
        )
        self._progress(f"removed {user} from group {group}; {note}")
        return MembershipResult(user, access_role, group, True, (note,))

    def delete_access_role(
        self, name: str, *, iam_group: str | None = None, mapping: MappingWriter | None = None
    ) -> DeleteRoleResult:
        """Undo :meth:`create_access_role`: mapping, group policy, group (if ours), role."""
        removed: list[str] = []
        notes: list[str] = []
        iam = self._iam
        role_arn = self._role_arn(name)
        role = self._get_role(name)
        group = iam_group
        if role is not None:
            tags = self._role_tags(name)
            if tags.get(TAG_MANAGED_BY) != MANAGED_BY and iam_group is None:
                raise AWSAdminError(
                    f"IAM role {name} was not created by kubeiam; left untouched",
                    hint="delete it with the tool that created it",
                    code="NotManaged",
                )
            group = group or tags.get(TAG_ACCESS_GROUP)
        group = group or name

        self._step("mapping")
        if mapping is not None and mapping.remove(role_arn) is MappingChange.REMOVED:
            removed.append(f"mapping of {role_arn} in {mapping.target}")
            self._progress(f"removed the mapping of {role_arn} from {mapping.target}")

        self._step("group")
        policy_name = assume_policy_name(name)
        if (
            self._missing(
                "iam:DeleteGroupPolicy",
                group,
                lambda: iam.delete_group_policy(GroupName=group, PolicyName=policy_name),
            )
            is not None
        ):
            removed.append(f"inline policy {policy_name} of group {group}")
        found = self._missing(
            "iam:GetGroup",
            group,
            lambda: list(iam.get_paginator("get_group").paginate(GroupName=group)),
        )
        if found is not None:
            others = self._do(
                "iam:ListGroupPolicies", group, lambda: iam.list_group_policies(GroupName=group)
            )["PolicyNames"]
            attached = self._do(
                "iam:ListAttachedGroupPolicies",
                group,
                lambda: iam.list_attached_group_policies(GroupName=group),
            )
            if others or attached["AttachedPolicies"]:
                notes.append(f"IAM group {group} kept: it holds other policies")
            else:
                for page in found:
                    for member in page["Users"]:
                        u = str(member["UserName"])
                        self._do(
                            "iam:RemoveUserFromGroup",
                            group,
                            partial(iam.remove_user_from_group, GroupName=group, UserName=u),
                        )
                        removed.append(f"membership of {u}")
                self._do("iam:DeleteGroup", group, lambda: iam.delete_group(GroupName=group))
                removed.append(f"IAM group {group}")
                self._progress(f"deleted IAM group {group}")

        self._step("role")
        if role is not None:
            for policy in self._do(
                "iam:ListRolePolicies", name, lambda: iam.list_role_policies(RoleName=name)
            )["PolicyNames"]:
                self._do(
                    "iam:DeleteRolePolicy",
                    name,
                    partial(iam.delete_role_policy, RoleName=name, PolicyName=policy),
                )
                removed.append(f"inline policy {policy} of role {name}")
            for att in self._do(
                "iam:ListAttachedRolePolicies",
                name,
                lambda: iam.list_attached_role_policies(RoleName=name),
            )["AttachedPolicies"]:
                arn = str(att["PolicyArn"])
                self._do(
                    "iam:DetachRolePolicy",
                    name,
                    partial(iam.detach_role_policy, RoleName=name, PolicyArn=arn),
                )
                removed.append(f"attached policy {arn} of role {name}")
            for prof in self._do(
                "iam:ListInstanceProfilesForRole",
                name,
                lambda: iam.list_instance_profiles_for_role(RoleName=name),
            )["InstanceProfiles"]:
                pname = str(prof["InstanceProfileName"])
                self._do(
                    "iam:RemoveRoleFromInstanceProfile",
                    name,
                    partial(
                        iam.remove_role_from_instance_profile,
                        InstanceProfileName=pname,
                        RoleName=name,
                    ),
                )
                removed.append(f"role in instance profile {pname}")
            self._do("iam:DeleteRole", name, lambda: iam.delete_role(RoleName=name))
            removed.append(f"IAM role {name}")
            self._progress(f"deleted IAM role {name}")
        else:
            notes.append(f"IAM role {name} does not exist")
        return DeleteRoleResult(name, tuple(removed), tuple(notes))
