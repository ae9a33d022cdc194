"""Seed 1 as commands: `kubeiam iam onboard-user` and `offboard-user`.

The seed's steps: create the IAM user with tags, allow ``eks:DescribeCluster`` on the cluster
(inline policy), create an access key, map the user, configure an AWS profile, make a kubeconfig
entry. :meth:`UserWorkflows.onboard_user` does each step only when it is missing (so a re-run
repairs), records how to undo what it changed, and undoes exactly that if a later step fails.

The secret access key lives only in an :class:`AccessKey` (hidden from ``repr``); it is written
once to a 0600 credentials profile, or handed back to the caller that asked to print it. An
existing key is never duplicated unless asked (``new_key``): AWS cannot show an old secret again,
so the result says how to rotate instead.

:meth:`UserWorkflows.offboard_user` rolls *forward*: it removes the cluster mapping first (access
ends at once), then everything ``DeleteUser`` requires gone, then the user; what is already gone
is skipped, so after a failure it is simply run again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kubeiam.admin.editing.writer import MappingChange, MappingWriter
from kubeiam.admin.onboarding import credentials_file as credfile
from kubeiam.admin.onboarding.credentials_file import AccessKey
from kubeiam.admin.onboarding.iam_api import tag_list
from kubeiam.admin.onboarding.rollback import Rollback, transaction
from kubeiam.admin.onboarding.steps import IAMSteps, PolicyHolder, RemovalResult
from kubeiam.errors import AWSAdminError, ConfigError

#: IAM allows two access keys per user.
MAX_ACCESS_KEYS = 2
POLICY_VERSION = "2012-10-17"


def describe_policy_name(cluster: str) -> str:
    """The user's inline policy (the seed called it ``Describe_Kubedemy_Cluster``)."""
    return f"EKSDescribeCluster-{cluster}"[:128]


def describe_cluster_policy(cluster_arn: str) -> dict[str, Any]:
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Effect": "Allow", "Action": "eks:DescribeCluster", "Resource": cluster_arn}
        ],
    }


def kubeconfig_command(
    cluster: str, *, region: str | None, profile: str | None = None, role_arn: str | None = None
) -> str:
    """The exact `kubeiam kubeconfig update` command for the new identity."""
    import shlex

    parts = ["kubeiam", "kubeconfig", "update", "--cluster", cluster]
    if region:
        parts += ["--region", region]
    if role_arn:
        parts += ["--role-arn", role_arn]
    if profile:
        parts += ["--profile", profile]
    return shlex.join(parts)


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
        """JSON-safe summary (never the secret)."""
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


class OffboardResult(RemovalResult):
    """What `offboard-user` removed."""

    __slots__ = ()
    NAME_KEY: ClassVar[str] = "userName"


class UserWorkflows(IAMSteps):
    """Seed 1. Mixed into :class:`kubeiam.admin.onboarding.iam_admin.IAMAdmin`."""

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
        """Create or repair IAM user ``name`` with access to ``cluster``."""
        if not groups:
            raise ConfigError("no Kubernetes groups", hint="pass --group (e.g. system:masters)")
        if not print_credentials and credentials_file is None:
            raise ConfigError("nowhere to put the new secret", hint="pass a credentials file")
        profile = (
            None if print_credentials else credfile.check_profile_name(credentials_profile or name)
        )
        k8s_username = username or name
        region = self.api.region(region)
        partition, account = self.api.account()
        cluster_arn = f"arn:{partition}:eks:{region}:{account}:cluster/{cluster}"
        policy_name = describe_policy_name(cluster)
        notes: list[str] = []
        new: AccessKey | None = None
        mapped: MappingChange | None = None
        # Read before changing anything: a profile we would overwrite must hold this user's key.
        profile_key = (
            credfile.read_profile_key_id(credentials_file, profile)
            if profile and credentials_file is not None
            else None
        )

        with transaction(self.progress, self.step_hook) as tx:
            tx.step("create-user")
            user_arn = self._ensure_user(tx, name, dict(tags or {}))
            existing = self.api.access_key_ids(name)
            if profile_key is not None and profile_key not in existing:
                raise ConfigError(
                    f"profile {profile!r} in {credentials_file} holds key {profile_key}, which "
                    f"is not one of {name}'s access keys; nothing was overwritten",
                    hint="pass another --credentials-profile, or remove that profile first",
                )

            tx.step("put-user-policy")
            self._ensure_inline_policy(
                tx,
                PolicyHolder.USER,
                name,
                policy_name,
                describe_cluster_policy(cluster_arn),
                grants="eks:DescribeCluster",
            )

            tx.step("mapping")
            mapped = self._map(tx, mapping, "user", user_arn, k8s_username, groups, notes)

            tx.step("access-key")
            key_ids = list(existing)
            if not existing or new_key:
                new = self._create_access_key(tx, name, existing)
                key_ids.append(new.access_key_id)
                if existing:
                    notes.append(
                        f"the old key(s) {', '.join(existing)} stay active; delete them when "
                        f"nothing uses them: aws iam delete-access-key --user-name {name} "
                        f"--access-key-id {existing[0]}"
                    )
            elif profile_key in existing:
                self.progress(f"profile {profile} already holds access key {profile_key}")
            else:
                notes.append(
                    f"IAM user {name} already has access key(s) {', '.join(existing)}, whose "
                    "secret AWS cannot show again; to get a usable key, rerun with --new-key "
                    "(creates a second key), then delete the old one with aws iam "
                    f"delete-access-key --user-name {name} --access-key-id {existing[0]}"
                )

            tx.step("credentials")
            if new is not None and profile is not None and credentials_file is not None:
                self._write_profile(tx, credentials_file, profile, new)
            tx.step("done")

        for note in notes:
            self.progress(f"note: {note}")
        return OnboardResult(
            user_name=name,
            user_arn=user_arn,
            cluster_arn=cluster_arn,
            policy_name=policy_name,
            username=k8s_username,
            groups=tuple(groups),
            mapping_target=mapping.target if mapping is not None else None,
            mapping=mapped,
            access_key_ids=tuple(key_ids),
            credentials_profile=profile,
            credentials_file=credentials_file if profile else None,
            kubeconfig_command=kubeconfig_command(cluster, region=region, profile=profile),
            created=tuple(tx.created),
            notes=tuple(notes),
            new_key=new if print_credentials else None,
        )

    def _ensure_user(self, tx: Rollback, name: str, tags: dict[str, str]) -> str:
        user = self.api.user(name)
        if user is None:
            params: dict[str, Any] = {"UserName": name}
            if tags:
                params["Tags"] = tag_list(tags)
            created = self.api.call("create_user", name, **params)["User"]
            tx.did(f"IAM user {name}", lambda: self.api.call("delete_user", name, UserName=name))
            self.progress(f"created IAM user {name}")
            return str(created["Arn"])
        self.progress(f"IAM user {name} exists")
        self._repair_user_tags(tx, name, tags)
        return str(user["Arn"])

    def _repair_user_tags(self, tx: Rollback, name: str, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        listed = self.api.call("list_user_tags", name, UserName=name)["Tags"]
        have = {str(t["Key"]): str(t["Value"]) for t in listed}
        wanted = {k: v for k, v in tags.items() if have.get(k) != v}
        if not wanted:
            return
        self.api.call("tag_user", name, UserName=name, Tags=tag_list(wanted))
        restore = {k: have[k] for k in wanted if k in have}
        added = [k for k in wanted if k not in have]

        def undo() -> None:
            if restore:
                self.api.call("tag_user", name, UserName=name, Tags=tag_list(restore))
            if added:
                self.api.call("untag_user", name, UserName=name, TagKeys=added)

        tx.did(f"tags {sorted(wanted)} of {name}", undo)
        self.progress(f"set tags {sorted(wanted)} on IAM user {name}")

    def _create_access_key(self, tx: Rollback, name: str, existing: Sequence[str]) -> AccessKey:
        if len(existing) >= MAX_ACCESS_KEYS:
            raise AWSAdminError(
                f"IAM user {name} already has {len(existing)} access keys "
                f"({', '.join(existing)}); IAM allows {MAX_ACCESS_KEYS}",
                hint=f"delete one first: aws iam delete-access-key --user-name {name} "
                f"--access-key-id {existing[0]}",
                code="LimitExceeded",
            )
        answer = self.api.call("create_access_key", name, UserName=name)["AccessKey"]
        key = AccessKey(str(answer["AccessKeyId"]), str(answer["SecretAccessKey"]))
        del answer
        key_id = key.access_key_id
        tx.did(
            f"access key {key_id} of {name}",
            lambda: self.api.call("delete_access_key", name, UserName=name, AccessKeyId=key_id),
        )
        self.progress(f"created access key {key_id} for {name}")
        return key

    def _write_profile(self, tx: Rollback, path: Path, profile: str, key: AccessKey) -> None:
        previous = credfile.write_profile(path, profile, key)
        tx.did(
            f"profile {profile} in {path}",
            lambda: credfile.restore_profile(path, profile, previous),
        )
        self.progress(
            f"wrote access key {key.access_key_id} to profile {profile} in {path} (mode 0600)"
        )

    # -- offboard ------------------------------------------------------------------------------

    def offboard_user(
        self,
        name: str,
        *,
        mapping: MappingWriter | None = None,
        credentials_file: Path | None = None,
        credentials_profile: str | None = None,
        force: bool = False,
        ignore_not_found: bool = False,
    ) -> OffboardResult:
        """Remove ``name``'s mapping, keys, policies, memberships and the user (roll forward).

        ``force`` lets the mapping's removal past its guards (the last ``system:masters`` or a
        node entry); without it such a removal is refused before anything is removed.

        A user that does not exist is :class:`~kubeiam.errors.NotFoundError` naming the
        closest user names, unless its mapping was still there (what a run that failed after
        deleting the user leaves: removed, and the rerun succeeds) or ``ignore_not_found``."""
        removed: list[str] = []
        notes: list[str] = []
        self._step("lookup")
        user = self.api.user(name)
        user_arn = str(user["Arn"]) if user is not None else self.api.user_arn(name)

        self._remove_mapping(mapping, user_arn, removed, force=force)
        if user is None:
            if not removed and not ignore_not_found:
                raise self._not_found("IAM user", name, self._user_names())
            notes.append(f"IAM user {name} does not exist")

        deleted_keys: set[str] = set()
        if user is not None:
            self._step("access-keys")
            for key_id in self.api.access_key_ids(name):
                self.api.call("delete_access_key", name, UserName=name, AccessKeyId=key_id)
                deleted_keys.add(key_id)
                removed.append(f"access key {key_id}")
            self._step("credentials")
            self._remove_user_credentials(name, removed)
            self._step("policies")
            self._remove_policies("user", name, removed)
            self._step("groups")
            for group in self.api.groups_of(name):
                self.api.call("remove_user_from_group", name, GroupName=group, UserName=name)
                removed.append(f"membership of group {group}")
            self._step("delete-user")
            self._delete_user(name, removed)

        self._step("profile")
        if credentials_file is not None and deleted_keys:
            profile = credentials_profile or name
            if credfile.remove_profile_if_key(credentials_file, profile, frozenset(deleted_keys)):
                removed.append(f"profile {profile} in {credentials_file}")
                self.progress(f"removed profile {profile} from {credentials_file}")
        return OffboardResult(name, tuple(removed), tuple(notes))

    def _remove_user_credentials(self, name: str, removed: list[str]) -> None:
        """Console password, MFA devices, signing certificates, SSH keys."""
        if self.api.missing("delete_login_profile", name, UserName=name) is not None:
            removed.append("console password")
        for device in self.api.items("list_mfa_devices", "MFADevices", name, UserName=name):
            serial = str(device["SerialNumber"])
            self.api.call("deactivate_mfa_device", name, UserName=name, SerialNumber=serial)
            removed.append(f"MFA device {serial}")
        certs = self.api.call("list_signing_certificates", name, UserName=name)["Certificates"]
        for cert in certs:
            cid = str(cert["CertificateId"])
            self.api.call("delete_signing_certificate", name, UserName=name, CertificateId=cid)
            removed.append(f"signing certificate {cid}")
        ssh_keys = self.api.call("list_ssh_public_keys", name, UserName=name)["SSHPublicKeys"]
        for ssh in ssh_keys:
            sid = str(ssh["SSHPublicKeyId"])
            self.api.call("delete_ssh_public_key", name, UserName=name, SSHPublicKeyId=sid)
            removed.append(f"SSH public key {sid}")

    def _delete_user(self, name: str, removed: list[str]) -> None:
        try:
            self.api.call("delete_user", name, UserName=name)
        except AWSAdminError as exc:
            if exc.code != "DeleteConflict":
                raise
            # Service-specific credentials (CodeCommit, Keyspaces) are rare: looked up only now.
            listed = self.api.call("list_service_specific_credentials", name, UserName=name)
            for cred in listed.get("ServiceSpecificCredentials", []):
                cid = str(cred["ServiceSpecificCredentialId"])
                self.api.call(
                    "delete_service_specific_credential",
                    name,
                    UserName=name,
                    ServiceSpecificCredentialId=cid,
                )
                removed.append(f"service-specific credential {cid}")
            self.api.call("delete_user", name, UserName=name)
        removed.append(f"IAM user {name}")
        self.progress(f"deleted IAM user {name}")
