"""The IAM policy docs/permissions.md documents is enough for every `kubeiam iam` workflow.

An administrator IAM user holds EXACTLY the policy in the block marked
``<!-- kubeiam-admin-policy`` (parsed from the document, as the e2e suite does) and runs the
whole of seed 1 and seed 2 as real ``kubeiam`` processes against the local AWS, whose moto
enforces IAM policies on every call (:mod:`kubeiam.localaws.moto_server`): onboard-user,
create-access-role, grant, revoke, delete-access-role, offboard-user, and removals of names
that do not exist, which name the closest existing ones. Mappings go to a file
(``--store file --file F``): no kube-apiserver is involved. An observer on moto's policy check
records what the workflows ask for: nothing beyond the document, and everything in it but the
few actions moto cannot ask for (``NOT_ASKED_FOR``), so the document is not over-broad either.

Then, for a handful of the documented actions per workflow, the same policy without that one
action makes the command fail naming it (so each is really needed). The actions the document
lists only for suggestions (``iam:ListUsers``, ``iam:ListRoles``) are shown to change the message
alone, and those listed for rollback to matter only when a run fails and must be undone.

Not provable here: moto checks each call against its own action only, so ``iam:TagUser`` and
``iam:TagRole`` (which AWS requires for a create call carrying tags) are never asked for; the
document says so.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubeiam.localaws.environment import LocalAWS
from support.cli import run_kubeiam

PERMISSIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
POLICY_MARKER = "<!-- kubeiam-admin-policy"
CLUSTER = "perm-cluster"


def documented_admin_policy() -> dict[str, Any]:
    """The JSON block after the admin policy marker in docs/permissions.md."""
    text = PERMISSIONS_DOC.read_text()
    after = text[text.index(POLICY_MARKER) :]
    found = re.search(r"```json\n(.*?)\n```", after, re.S)
    assert found is not None, "docs/permissions.md lost its admin policy block"
    policy: dict[str, Any] = json.loads(found.group(1))
    return policy


def documented_actions() -> set[str]:
    actions: set[str] = set()
    for statement in documented_admin_policy()["Statement"]:
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def policy_without(action: str) -> dict[str, Any]:
    """The documented policy with ``action`` removed from every statement that lists it."""
    policy = documented_admin_policy()
    assert action in documented_actions(), f"{action} is not in the documented policy"
    for statement in policy["Statement"]:
        listed = statement["Action"]
        listed = [listed] if isinstance(listed, str) else listed
        statement["Action"] = [a for a in listed if a != action] or ["iam:GetAccountSummary"]
    return policy


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Admin:
    """An IAM user whose inline policy the test sets, and the environment to run kubeiam as it."""

    name: str
    env: dict[str, str]
    aws: LocalAWS

    def hold(self, policy: dict[str, Any]) -> None:
        """Make ``policy`` the user's only policy (moto reads policies on every request)."""
        self.aws.boto3_client("iam").put_user_policy(
            UserName=self.name, PolicyName="kubeiam-admin", PolicyDocument=json.dumps(policy)
        )

    def kubeiam(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = run_kubeiam("iam", *args, env=self.env)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        assert self.env["AWS_SECRET_ACCESS_KEY"] not in done.stdout + done.stderr
        return done

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.kubeiam(*args)
        assert done.returncode == 0, f"kubeiam iam {' '.join(args)}:\n{done.stderr}"
        return done


def _env(aws_cli_env: dict[str, str], tmp_path: Path, key_id: str, secret: str) -> dict[str, str]:
    env = dict(aws_cli_env)
    env["AWS_ACCESS_KEY_ID"] = key_id
    env["AWS_SECRET_ACCESS_KEY"] = secret
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "aws" / "credentials")
    return env


@pytest.fixture
def admin(local_aws: LocalAWS, aws_cli_env: dict[str, str], tmp_path: Path) -> Admin:
    """An administrator holding exactly the documented policy."""
    name = unique("perm-admin")
    key_id, secret = local_aws.create_user(name)
    who = Admin(name, _env(aws_cli_env, tmp_path, key_id, secret), local_aws)
    who.hold(documented_admin_policy())
    return who


@pytest.fixture
def owner(local_aws: LocalAWS, aws_cli_env: dict[str, str], tmp_path: Path) -> Admin:
    """The local AWS's allow-everything identity, to set the stage for one command."""
    keys = local_aws.admin
    return Admin(
        "localaws-admin",
        _env(aws_cli_env, tmp_path, keys.access_key_id, keys.secret_access_key),
        local_aws,
    )


#: The statements of the documented policy that serve each workflow (the document says an
#: administrator may drop the statements of workflows they do not run).
STATEMENTS = {
    "onboard-user": {"KubeiamOnboardUsers"},
    "offboard-user": {"KubeiamOffboardUsers", "KubeiamClosestNames"},
    "create-access-role": {"KubeiamAccessRoles"},
    "delete-access-role": {"KubeiamAccessRoles", "KubeiamClosestNames"},
    "grant": {"KubeiamAccessRoleMembers", "KubeiamClosestNames"},
    "revoke": {"KubeiamAccessRoleMembers", "KubeiamClosestNames"},
}


def test_the_table_and_the_policy_say_the_same() -> None:
    """Each `kubeiam iam` row of the table lists only actions its own statements allow, and the
    policy allows nothing that no row lists (whoami's row names iam:ListGroupsForUser)."""
    text = PERMISSIONS_DOC.read_text()
    rows = {
        m.group(1): set(re.findall(r"`(iam:\w+)`", m.group(2)))
        for m in re.finditer(r"^\| `kubeiam iam ([a-z-]+)` \| (.*) \|$", text, re.M)
    }
    assert set(rows) == set(STATEMENTS)
    statements = {st["Sid"]: set(st["Action"]) for st in documented_admin_policy()["Statement"]}
    for workflow, sids in STATEMENTS.items():
        allowed = set().union(*(statements[sid] for sid in sids))
        assert rows[workflow] <= allowed, (workflow, rows[workflow] - allowed)
    assert documented_actions() == set().union(*rows.values(), {"iam:ListGroupsForUser"})


#: Documented actions the full run below never asks moto for, and why.
NOT_ASKED_FOR = {
    # AWS checks it for CreateRole with tags; moto checks CreateRole alone.
    "iam:TagRole",
    # Only to roll back a tag repair (test_rollback_actions_matter_only_when_a_run_is_undone).
    "iam:UntagUser",
    # offboard-user's DeleteConflict path: moto cannot create service-specific credentials.
    "iam:ListServiceSpecificCredentials",
    "iam:DeleteServiceSpecificCredential",
}


@pytest.fixture
def asked_for(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every action moto checks for ``admin`` while the test runs.

    An observer on moto's policy check (moto serves the local AWS in this process), not a
    stand-in: the check itself runs unchanged."""
    from moto.iam.access_control import IAMRequestBase

    seen: set[str] = set()
    original = IAMRequestBase.check_action_permitted

    def check_action_permitted(self: Any, resource: str) -> None:
        if str(self._access_key.arn).endswith(f":user/{admin.name}"):
            seen.add(str(self._action))
        original(self, resource)

    monkeypatch.setattr(IAMRequestBase, "check_action_permitted", check_action_permitted)
    return seen


def test_the_documented_policy_runs_every_iam_workflow(
    admin: Admin, local_aws: LocalAWS, tmp_path: Path, asked_for: set[str]
) -> None:
    """Every workflow succeeds with exactly the documented policy, and the policy is not broader
    than what the workflows ask for (but for NOT_ASKED_FOR)."""
    iam = local_aws.boto3_client("iam")
    mapping = tmp_path / "mapping.json"
    store = ["--store", "file", "--file", str(mapping)]
    user, role = unique("perm-dev"), unique("perm-role")

    admin.ok(
        "onboard-user", user, "--cluster", CLUSTER, "--group", "devs", "--tag", "team=a", *store
    )
    assert iam.get_user(UserName=user)["User"]["UserName"] == user
    # A rerun with another tag value repairs the tag (ListUserTags, TagUser).
    admin.ok(
        "onboard-user", user, "--cluster", CLUSTER, "--group", "devs", "--tag", "team=b", *store
    )
    assert {"Key": "team", "Value": "b"} in iam.list_user_tags(UserName=user)["Tags"]

    admin.ok("create-access-role", role, "--cluster", CLUSTER, "--group", "viewers", *store)
    # A rerun over a tampered trust policy repairs it (ListRoleTags, UpdateAssumeRolePolicy).
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=_TRUST_NOBODY)
    repaired = admin.ok(
        "create-access-role", role, "--cluster", CLUSTER, "--group", "viewers", *store
    )
    assert "repaired the trust policy" in repaired.stderr
    admin.ok("grant", user, "--access-role", role)
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]] == [role]
    admin.ok("revoke", user, "--access-role", role)
    assert iam.list_groups_for_user(UserName=user)["Groups"] == []

    # Removals of names that do not exist: exit 1, naming the closest existing names.
    typo_user, typo_role = user[:-1] + "x", role[:-1] + "x"
    gone = admin.kubeiam("offboard-user", typo_user, *store)
    assert gone.returncode == 1, gone.stderr
    assert "not found" in gone.stderr, gone.stderr
    assert user in gone.stderr, gone.stderr
    gone = admin.kubeiam("delete-access-role", typo_role, *store)
    assert gone.returncode == 1, gone.stderr
    assert "not found" in gone.stderr, gone.stderr
    assert role in gone.stderr, gone.stderr
    gone = admin.kubeiam("revoke", user, "--access-role", typo_role)
    assert gone.returncode == 1, gone.stderr
    assert role in gone.stderr, gone.stderr
    gone = admin.kubeiam("revoke", user, "--access-role", role)  # not a member (any more)
    assert gone.returncode == 1, gone.stderr
    assert "membership not found" in gone.stderr, gone.stderr

    # The membership survives into delete-access-role, which empties the group first; the role
    # also holds an inline and an attached policy and sits in an instance profile.
    admin.ok("grant", user, "--access-role", role)
    managed = iam.create_policy(PolicyName=unique("perm-managed"), PolicyDocument=_ANY_POLICY)
    managed_arn = managed["Policy"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="extra", PolicyDocument=_ANY_POLICY)
    iam.attach_role_policy(RoleName=role, PolicyArn=managed_arn)
    profile = unique("perm-profile")
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    deleted = admin.ok("delete-access-role", role, *store, "-o", "json")
    removed = json.loads(deleted.stdout)["removed"]
    assert f"membership of {user}" in removed
    assert f"role in instance profile {profile}" in removed
    assert role not in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert role not in [g["GroupName"] for g in iam.list_groups()["Groups"]]

    # offboard-user with every kind of thing DeleteUser needs gone that moto can make.
    # (Service-specific credentials cannot be made: moto does not implement them, so the
    # DeleteConflict path of offboard-user is not run here.)
    iam.put_user_policy(UserName=user, PolicyName="extra", PolicyDocument=_ANY_POLICY)
    iam.attach_user_policy(UserName=user, PolicyArn=managed_arn)
    iam.create_login_profile(UserName=user, Password="Not-a-real-passw0rd!")
    group = unique("perm-other-group")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    mfa = iam.create_virtual_mfa_device(VirtualMFADeviceName=unique("perm-mfa"))
    serial = mfa["VirtualMFADevice"]["SerialNumber"]
    iam.enable_mfa_device(
        UserName=user,
        SerialNumber=serial,
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )
    iam.upload_ssh_public_key(UserName=user, SSHPublicKeyBody=_ssh_public_key())
    iam.upload_signing_certificate(UserName=user, CertificateBody=_certificate())
    offboarded = admin.ok("offboard-user", user, *store, "-o", "json")
    removed = json.loads(offboarded.stdout)["removed"]
    for what in (
        "console password",
        "MFA device",
        "signing certificate",
        "SSH public key",
        "inline policy extra",
        "attached policy",
        f"membership of group {group}",
    ):
        assert any(item.startswith(what) for item in removed), (what, removed)
    assert user not in [u["UserName"] for u in iam.list_users()["Users"]]
    assert json.loads(mapping.read_text()).get("mapUsers", []) == []
    assert json.loads(mapping.read_text()).get("mapRoles", []) == []

    # Only the documented actions were asked for, and all of them were but NOT_ASKED_FOR.
    asked = asked_for - {"sts:GetCallerIdentity"}  # allowed without a policy, as in AWS
    assert asked <= documented_actions()
    assert documented_actions() - asked == NOT_ASKED_FOR


_TRUST_NOBODY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:user/nobody"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def _ssh_public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def _certificate() -> str:
    import trustme

    return trustme.CA().cert_pem.bytes().decode()


_ANY_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}],
    }
)


# -- one action less: the command fails naming it -------------------------------------------


def _onboard(owner: Admin, tmp_path: Path) -> list[str]:
    user = unique("perm-new")
    return ["onboard-user", user, "--cluster", CLUSTER, "--group", "devs", *_store(tmp_path)]


def _offboard(owner: Admin, tmp_path: Path) -> list[str]:
    user = unique("perm-leaving")
    owner.ok("onboard-user", user, "--cluster", CLUSTER, "--group", "devs", *_store(tmp_path))
    group = unique("perm-group")
    iam = owner.aws.boto3_client("iam")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    return ["offboard-user", user, *_store(tmp_path)]


def _create_role(owner: Admin, tmp_path: Path) -> list[str]:
    role = unique("perm-role")
    return ["create-access-role", role, "--cluster", CLUSTER, "--group", "g", *_store(tmp_path)]


def _access_role(owner: Admin, tmp_path: Path) -> str:
    role = unique("perm-role")
    owner.ok("create-access-role", role, "--cluster", CLUSTER, "--group", "g", *_store(tmp_path))
    return role


def _grant(owner: Admin, tmp_path: Path) -> list[str]:
    role, user = _access_role(owner, tmp_path), unique("perm-member")
    owner.aws.boto3_client("iam").create_user(UserName=user)
    return ["grant", user, "--access-role", role]


def _revoke(owner: Admin, tmp_path: Path) -> list[str]:
    args = _grant(owner, tmp_path)
    owner.ok(*args)
    return ["revoke", args[1], "--access-role", args[3]]


def _delete_role(owner: Admin, tmp_path: Path) -> list[str]:
    role = _access_role(owner, tmp_path)
    member = unique("perm-member")
    owner.aws.boto3_client("iam").create_user(UserName=member)
    owner.ok("grant", member, "--access-role", role)
    return ["delete-access-role", role, *_store(tmp_path)]


def _store(tmp_path: Path) -> list[str]:
    return ["--store", "file", "--file", str(tmp_path / "mapping.json")]


#: workflow -> sets the stage as the owner, returns the command's arguments.
WORKFLOWS: dict[str, Callable[[Admin, Path], list[str]]] = {
    "onboard-user": _onboard,
    "offboard-user": _offboard,
    "create-access-role": _create_role,
    "grant": _grant,
    "revoke": _revoke,
    "delete-access-role": _delete_role,
}

#: (workflow, action): a handful per workflow, not every action.
NEEDED = [
    ("onboard-user", "iam:GetUser"),
    ("onboard-user", "iam:CreateUser"),
    ("onboard-user", "iam:PutUserPolicy"),
    ("onboard-user", "iam:CreateAccessKey"),
    ("offboard-user", "iam:DeleteAccessKey"),
    ("offboard-user", "iam:DeleteLoginProfile"),
    ("offboard-user", "iam:ListAttachedUserPolicies"),
    ("offboard-user", "iam:RemoveUserFromGroup"),
    ("offboard-user", "iam:DeleteUser"),
    ("create-access-role", "iam:CreateRole"),
    ("create-access-role", "iam:GetGroup"),
    ("create-access-role", "iam:PutGroupPolicy"),
    ("grant", "iam:ListRoleTags"),
    ("grant", "iam:AddUserToGroup"),
    ("revoke", "iam:ListGroupsForUser"),
    ("revoke", "iam:RemoveUserFromGroup"),
    ("delete-access-role", "iam:GetRole"),
    ("delete-access-role", "iam:DeleteGroupPolicy"),
    ("delete-access-role", "iam:ListInstanceProfilesForRole"),
    ("delete-access-role", "iam:DeleteGroup"),
    ("delete-access-role", "iam:DeleteRole"),
]


@pytest.mark.parametrize(
    ("workflow", "action"), NEEDED, ids=[f"{w}-{a.split(':')[1]}" for w, a in NEEDED]
)
def test_without_one_documented_action_the_command_names_it(
    workflow: str, action: str, admin: Admin, owner: Admin, tmp_path: Path
) -> None:
    args = WORKFLOWS[workflow](owner, tmp_path)
    admin.hold(policy_without(action))
    refused = admin.kubeiam(*args)
    assert refused.returncode == 1, refused.stderr  # AWSAdminError
    # Progress lines (and a rollback) come first; the error and its fix line name the action.
    error, fix = refused.stderr.strip().splitlines()[-2:]
    assert error.startswith(f"kubeiam: error: {action} "), refused.stderr
    assert "AccessDenied" in error, refused.stderr
    assert fix.strip().startswith(
        f"fix: the AWS identity running kubeiam needs permission {action}"
    )
    # With the documented policy back, a rerun completes what the refused run left.
    admin.hold(documented_admin_policy())
    admin.ok(*args)


# -- actions only for suggestions and rollback ------------------------------------------------


@pytest.mark.parametrize(
    ("action", "command", "existing"),
    [
        ("iam:ListUsers", "offboard-user", "user"),
        ("iam:ListRoles", "delete-access-role", "role"),
    ],
)
def test_suggestion_actions_only_change_the_not_found_message(
    action: str, command: str, existing: str, admin: Admin, owner: Admin, tmp_path: Path
) -> None:
    """Without the listing action the removal of a typo still exits 1 "not found", but the
    message names no closest candidate; with it, the message names the real one."""
    if existing == "user":
        name = unique("perm-near")
        owner.aws.boto3_client("iam").create_user(UserName=name)
    else:
        name = _access_role(owner, tmp_path)
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")
    with_list = admin.kubeiam(command, typo)
    assert with_list.returncode == 1, with_list.stderr
    assert "not found" in with_list.stderr, with_list.stderr
    assert name in with_list.stderr, with_list.stderr
    admin.hold(policy_without(action))
    without = admin.kubeiam(command, typo)
    assert without.returncode == 1, without.stderr
    assert "not found" in without.stderr, without.stderr
    assert name not in without.stderr, without.stderr


def test_rollback_actions_matter_only_when_a_run_is_undone(
    admin: Admin, local_aws: LocalAWS, tmp_path: Path
) -> None:
    """onboard-user fails at its mapping step (the mapping file is not one kubeiam can edit),
    after creating the user and its policy. With the documented policy the run undoes both
    (iam:DeleteUserPolicy, iam:DeleteUser); without iam:DeleteUser the normal path is unchanged
    but the undo fails, and the error says what was left behind."""
    iam = local_aws.boto3_client("iam")
    broken = tmp_path / "broken.json"
    broken.write_text('{"mapUsers": [], "mapUsers": []}\n')  # duplicate key: refused
    store = ["--store", "file", "--file", str(broken)]

    undone = unique("perm-undone")
    failed = admin.kubeiam("onboard-user", undone, "--cluster", CLUSTER, "--group", "g", *store)
    assert failed.returncode != 0, failed.stderr
    assert "rolled back: IAM user" in failed.stderr, failed.stderr
    assert undone not in [u["UserName"] for u in iam.list_users()["Users"]]

    admin.hold(policy_without("iam:DeleteUser"))
    left = unique("perm-left")
    failed = admin.kubeiam("onboard-user", left, "--cluster", CLUSTER, "--group", "g", *store)
    assert failed.returncode != 0, failed.stderr
    assert "could not roll back IAM user" in failed.stderr, failed.stderr
    assert "iam:DeleteUser" in failed.stderr, failed.stderr
    assert f"left behind after a failed rollback: IAM user {left}" in failed.stderr
    assert left in [u["UserName"] for u in iam.list_users()["Users"]]

    # A tag this run set on a user that existed before is taken off again (iam:UntagUser).
    admin.hold(documented_admin_policy())
    failed = admin.kubeiam(
        "onboard-user", left, "--cluster", CLUSTER, "--group", "g", "--tag", "new=1", *store
    )
    assert failed.returncode != 0, failed.stderr
    assert "rolled back: tags ['new']" in failed.stderr, failed.stderr
    assert iam.list_user_tags(UserName=left)["Tags"] == []
