"""The IAM seed workflows against the local AWS environment (moto with IAM auth enforced)."""

from __future__ import annotations

import configparser
import json
import logging
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from kubeiam.admin.editing.file_store import FileStore
from kubeiam.admin.editing.store_writer import StoreMappingWriter
from kubeiam.admin.onboarding.iam_admin import IAMAdmin, describe_policy_name
from kubeiam.aws.clients import AWSClients
from kubeiam.errors import (
    AWSAdminError,
    ConfigError,
    GuardError,
    KubeIAMError,
    MappingError,
    NotFoundError,
)

if TYPE_CHECKING:
    from conftest import AdminEnv


CLUSTER = "kubedemy"


class InjectedFailure(KubeIAMError):
    """Raised by a step hook to stop a workflow midway."""


def fail_at(step: str) -> Any:
    def hook(name: str) -> None:
        if name == step:
            raise InjectedFailure(f"injected failure before step {step}")

    return hook


def user_exists(iam: Any, name: str) -> bool:
    try:
        iam.get_user(UserName=name)
    except iam.exceptions.NoSuchEntityException:
        return False
    return True


def role_exists(iam: Any, name: str) -> bool:
    try:
        iam.get_role(RoleName=name)
    except iam.exceptions.NoSuchEntityException:
        return False
    return True


def group_exists(iam: Any, name: str) -> bool:
    try:
        iam.get_group(GroupName=name)
    except iam.exceptions.NoSuchEntityException:
        return False
    return True


def keys_of(iam: Any, name: str) -> list[str]:
    return [k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]]


def read_profile(path: Path, profile: str) -> dict[str, str] | None:
    parser = configparser.RawConfigParser()
    parser.read(path)
    return dict(parser.items(profile)) if parser.has_section(profile) else None


#: A server config that maps another cluster admin: removing a mapping the tests added is then
#: never the removal of the last system:masters mapping, which the guards refuse without force.
WITH_ADMIN = (
    "clusterID: demo\nserver:\n  port: 21362  # keep\n  mapRoles:\n"
    "  - rolearn: arn:aws:iam::111122223333:role/ClusterAdmin\n    username: admin\n"
    "    groups: [system:masters]\n"
)


def mapping_file(
    env: AdminEnv, text: str = "clusterID: demo\nserver:\n  port: 21362  # keep\n"
) -> Path:
    path = env.tmp / "server.yaml"
    path.write_text(text)
    return path


def file_writer(path: Path) -> StoreMappingWriter:
    """What `kubeiam iam ... --file PATH` writes through."""
    return StoreMappingWriter(
        lambda: FileStore(path), now=lambda: datetime.now(UTC), target=f"file {path}"
    )


def onboard(env: AdminEnv, name: str, admin: IAMAdmin | None = None, **kw: Any) -> Any:
    kw.setdefault("mapping", file_writer(env.tmp / "server.yaml"))
    kw.setdefault("credentials_file", env.credentials_file)
    return (admin or env.admin()).onboard_user(
        name, cluster=CLUSTER, groups=["system:masters"], tags={"owner": "kubedemy"}, **kw
    )


# --- onboard-user ----------------------------------------------------------------------------


def test_onboard_user_does_every_step_of_the_seed(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    name = env.name()
    mapping = mapping_file(env)
    result = onboard(env, name)

    account = env.aws.account_id
    assert result.user_arn == f"arn:aws:iam::{account}:user/{name}"
    tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=name)["Tags"]}
    assert tags == {"owner": "kubedemy"}
    doc = iam.get_user_policy(UserName=name, PolicyName=describe_policy_name(CLUSTER))
    assert doc["PolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "eks:DescribeCluster",
            "Resource": f"arn:aws:eks:us-east-1:{account}:cluster/{CLUSTER}",
        }
    ]
    (key_id,) = keys_of(iam, name)
    profile = read_profile(env.credentials_file, name)
    assert profile is not None
    assert profile["aws_access_key_id"] == key_id
    assert len(profile["aws_secret_access_key"]) == 40
    assert stat.S_IMODE(env.credentials_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env.credentials_file.parent.stat().st_mode) == 0o700
    assert f"userARN: {result.user_arn}" in mapping.read_text()
    assert "port: 21362  # keep" in mapping.read_text()
    assert result.kubeconfig_command == (
        f"kubeiam kubeconfig update --cluster {CLUSTER} --region us-east-1 --profile {name}"
    )
    assert len(result.created) == 5


def test_the_new_key_works(admin_env: AdminEnv) -> None:
    env = admin_env
    name = env.name()
    mapping_file(env)
    onboard(env, name)
    profile = read_profile(env.credentials_file, name)
    assert profile is not None
    sts = env.aws.boto3_client(
        "sts", credentials=(profile["aws_access_key_id"], profile["aws_secret_access_key"])
    )
    assert sts.get_caller_identity()["Arn"].endswith(f":user/{name}")


def test_onboard_twice_changes_nothing(admin_env: AdminEnv) -> None:
    env = admin_env
    name = env.name()
    mapping = mapping_file(env)
    onboard(env, name)
    creds, mapped = env.credentials_file.read_text(), mapping.read_text()
    second = onboard(env, name)
    assert second.created == ()
    assert second.notes == ()
    assert len(keys_of(env.iam, name)) == 1
    assert env.credentials_file.read_text() == creds
    assert mapping.read_text() == mapped


def test_rerun_repairs_what_is_missing(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    name = env.name()
    mapping_file(env)
    onboard(env, name)
    iam.delete_user_policy(UserName=name, PolicyName=describe_policy_name(CLUSTER))
    iam.untag_user(UserName=name, TagKeys=["owner"])
    result = onboard(env, name)
    assert sorted(result.created) == sorted(
        [f"tags ['owner'] of {name}", f"inline policy {describe_policy_name(CLUSTER)} of {name}"]
    )
    assert iam.get_user_policy(UserName=name, PolicyName=describe_policy_name(CLUSTER))


@pytest.mark.parametrize(
    "step", ["put-user-policy", "mapping", "access-key", "credentials", "done"]
)
def test_a_failure_midway_rolls_back_this_run(admin_env: AdminEnv, step: str) -> None:
    """The run maps the only system:masters entry: its rollback still removes it (forced)."""
    env = admin_env
    name = env.name()
    mapping = mapping_file(env)
    before = mapping.read_text()
    env.credentials_file.parent.mkdir(mode=0o700)
    env.credentials_file.write_text("[other]\naws_access_key_id = AKIAOTHER\n")
    with pytest.raises(InjectedFailure):
        onboard(env, name, admin=env.admin(fail_at(step)))
    assert not user_exists(env.iam, name)
    assert mapping.read_text() == before
    assert env.credentials_file.read_text() == "[other]\naws_access_key_id = AKIAOTHER\n"
    assert any(m.startswith("rolled back: IAM user") for m in env.progress)


def test_a_real_failure_midway_rolls_back(admin_env: AdminEnv) -> None:
    """The mapping file already maps this ARN differently: the mapping step fails for real."""
    env = admin_env
    name = env.name()
    arn = f"arn:aws:iam::{env.aws.account_id}:user/{name}"
    text = f"server:\n  mapUsers:\n  - userarn: {arn}\n    username: someone-else\n    groups: []\n"
    mapping = mapping_file(env, text)
    with pytest.raises(MappingError, match="already mapped"):
        onboard(env, name)
    assert not user_exists(env.iam, name)
    assert mapping.read_text() == text
    assert not env.credentials_file.exists()


def test_rollback_leaves_what_existed_before(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    name = env.name()
    mapping_file(env)
    iam.create_user(UserName=name)
    with pytest.raises(InjectedFailure):
        onboard(env, name, admin=env.admin(fail_at("done")))
    assert user_exists(iam, name)  # it was not created by this run
    assert keys_of(iam, name) == []  # but the key this run created is gone
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []


def test_existing_key_without_profile_is_not_duplicated(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    name = env.name()
    mapping_file(env)
    iam.create_user(UserName=name)
    old_key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    result = onboard(env, name)
    assert keys_of(iam, name) == [old_key]
    assert read_profile(env.credentials_file, name) is None
    assert any("--new-key" in n for n in result.notes)

    rotated = onboard(env, name, new_key=True)
    assert len(keys_of(iam, name)) == 2
    profile = read_profile(env.credentials_file, name)
    assert profile is not None
    assert profile["aws_access_key_id"] != old_key
    assert any(old_key in n and "delete-access-key" in n for n in rotated.notes)


def test_a_third_key_is_refused_before_creating_anything(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    name = env.name()
    mapping_file(env)
    iam.create_user(UserName=name)
    for _ in range(2):
        iam.create_access_key(UserName=name)
    with pytest.raises(AWSAdminError) as err:
        onboard(env, name, new_key=True)
    assert err.value.code == "LimitExceeded"
    assert len(keys_of(iam, name)) == 2
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []  # rolled back


def test_a_profile_holding_someone_elses_key_is_not_overwritten(admin_env: AdminEnv) -> None:
    env = admin_env
    name = env.name()
    mapping_file(env)
    env.credentials_file.parent.mkdir(mode=0o700)
    original = (
        f"# mine\n[{name}]\naws_access_key_id = AKIANOTTHISUSERSKEY\naws_secret_access_key = x\n"
    )
    env.credentials_file.write_text(original)
    with pytest.raises(ConfigError, match="not one of"):
        onboard(env, name)
    assert env.credentials_file.read_text() == original
    assert not user_exists(env.iam, name)


def test_print_credentials_returns_the_key_and_writes_no_file(admin_env: AdminEnv) -> None:
    env = admin_env
    name = env.name()
    mapping_file(env)
    result = onboard(env, name, print_credentials=True, credentials_file=None)
    assert result.new_key is not None
    assert result.new_key.access_key_id == keys_of(env.iam, name)[0]
    assert result.new_key.secret_access_key not in repr(result)
    assert result.credentials_profile is None
    assert not env.credentials_file.exists()
    assert "--profile" not in result.kubeconfig_command


def test_no_mapping_target_prints_the_entry_to_add(admin_env: AdminEnv) -> None:
    env = admin_env
    name = env.name()
    result = onboard(env, name, mapping=None)
    (note,) = result.notes
    entry = json.loads(note.split(": ", 1)[1].split(": ", 1)[1])
    assert entry == {"userarn": result.user_arn, "username": name, "groups": ["system:masters"]}


def test_secrets_never_reach_logs_progress_or_output(
    admin_env: AdminEnv, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    env = admin_env
    name = env.name()
    mapping_file(env)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    boto3.set_stream_logger("", logging.DEBUG)  # what a user debugging kubeiam might do
    failure = ""
    try:
        with caplog.at_level(logging.DEBUG):
            result = onboard(env, name)
            try:
                onboard(env, name, admin=env.admin(fail_at("credentials")), new_key=True)
            except InjectedFailure as exc:
                failure = str(exc)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    profile = read_profile(env.credentials_file, name)
    assert profile is not None
    secret = profile["aws_secret_access_key"]
    captured = capsys.readouterr()
    haystacks = {
        "logs": caplog.text,
        "progress": "\n".join(env.progress),
        "stdout": captured.out,
        "stderr": captured.err,
        "result": repr(result) + json.dumps(result.summary()),
        "error": failure,
    }
    assert caplog.text  # botocore did log at DEBUG: the check below is not vacuous
    for where, text in haystacks.items():
        assert secret not in text, where


# --- offboard-user ---------------------------------------------------------------------------


def test_offboard_removes_everything_and_is_idempotent(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    name = env.name()
    mapping = mapping_file(env, WITH_ADMIN)
    result = onboard(env, name)
    group = env.name("g")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=name)
    iam.create_login_profile(UserName=name, Password="Passw0rd!Passw0rd!")
    policy_arn = iam.create_policy(
        PolicyName=env.name("p"),
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=policy_arn)

    off = env.admin().offboard_user(
        name, mapping=file_writer(mapping), credentials_file=env.credentials_file
    )
    assert not user_exists(iam, name)
    assert result.user_arn not in mapping.read_text()
    assert read_profile(env.credentials_file, name) is None
    assert iam.get_group(GroupName=group)["Users"] == []
    assert f"IAM user {name}" in off.removed
    assert f"membership of group {group}" in off.removed

    # Gone is gone: a second run is "not found" (a typo must not look like success) ...
    with pytest.raises(NotFoundError, match=f"IAM user {name} not found"):
        env.admin().offboard_user(
            name, mapping=file_writer(mapping), credentials_file=env.credentials_file
        )
    # ... unless the caller says it may already be gone (kubectl delete --ignore-not-found).
    again = env.admin().offboard_user(
        name,
        mapping=file_writer(mapping),
        credentials_file=env.credentials_file,
        ignore_not_found=True,
    )
    assert again.removed == ()
    assert again.notes == (f"IAM user {name} does not exist",)


def test_offboard_of_the_last_admin_mapping_needs_force(admin_env: AdminEnv) -> None:
    """The mapping's guards refuse first, so nothing else is removed; force goes through."""
    env, iam = admin_env, admin_env.iam
    name = env.name()
    mapping = mapping_file(env)
    result = onboard(env, name)
    with pytest.raises(GuardError, match="last system:masters"):
        env.admin().offboard_user(
            name, mapping=file_writer(mapping), credentials_file=env.credentials_file
        )
    assert result.user_arn in mapping.read_text()
    assert user_exists(iam, name)
    assert len(keys_of(iam, name)) == 1
    off = env.admin().offboard_user(
        name, mapping=file_writer(mapping), credentials_file=env.credentials_file, force=True
    )
    assert result.user_arn not in mapping.read_text()
    assert not user_exists(iam, name)
    assert f"IAM user {name}" in off.removed


def test_offboard_keeps_a_profile_that_is_not_the_users(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    name = env.name()
    iam.create_user(UserName=name)
    env.credentials_file.parent.mkdir(mode=0o700)
    env.credentials_file.write_text(f"[{name}]\naws_access_key_id = AKIASOMEONEELSE\n")
    env.admin().offboard_user(name, credentials_file=env.credentials_file)
    assert read_profile(env.credentials_file, name) == {"aws_access_key_id": "AKIASOMEONEELSE"}


# --- access roles ----------------------------------------------------------------------------


def create_role(env: AdminEnv, role: str, admin: IAMAdmin | None = None, **kw: Any) -> Any:
    kw.setdefault("mapping", file_writer(env.tmp / "server.yaml"))
    return (admin or env.admin()).create_access_role(
        role, cluster=CLUSTER, k8s_groups=["system:masters"], **kw
    )


def test_create_access_role_builds_the_second_seed(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    role = env.name("r")
    mapping = mapping_file(env)
    result = create_role(env, role)
    account = env.aws.account_id
    got = iam.get_role(RoleName=role)["Role"]
    (statement,) = got["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"}
    assert statement["Action"] == "sts:AssumeRole"
    policy = iam.get_group_policy(GroupName=role, PolicyName=result.policy_name)["PolicyDocument"]
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": result.role_arn}
    ]
    text = mapping.read_text()
    assert f"roleARN: {result.role_arn}" in text
    assert f"username: {role}:{{{{SessionName}}}}" in text
    assert result.kubeconfig_command.endswith(f"--role-arn {result.role_arn}")


def test_create_access_role_twice_changes_nothing(admin_env: AdminEnv) -> None:
    env = admin_env
    role = env.name("r")
    mapping = mapping_file(env)
    create_role(env, role, iam_group=f"{role}-users")
    text = mapping.read_text()
    again = create_role(env, role, iam_group=f"{role}-users")
    assert again.created == ()
    assert mapping.read_text() == text


@pytest.mark.parametrize("step", ["create-group", "group-policy", "mapping", "done"])
def test_create_access_role_rolls_back(admin_env: AdminEnv, step: str) -> None:
    """As for onboard-user: the run's only system:masters mapping is removed on rollback."""
    env, iam = admin_env, admin_env.iam
    role = env.name("r")
    mapping = mapping_file(env)
    before = mapping.read_text()
    with pytest.raises(InjectedFailure):
        create_role(env, role, admin=env.admin(fail_at(step)))
    assert not role_exists(iam, role)
    assert not group_exists(iam, role)
    assert mapping.read_text() == before


def test_rollback_keeps_a_group_that_existed(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    role, group = env.name("r"), env.name("g")
    mapping_file(env)
    iam.create_group(GroupName=group)
    with pytest.raises(InjectedFailure):
        create_role(env, role, admin=env.admin(fail_at("done")), iam_group=group)
    assert group_exists(iam, group)
    assert iam.list_group_policies(GroupName=group)["PolicyNames"] == []
    assert not role_exists(iam, role)


def test_a_role_kubeiam_did_not_create_is_left_alone(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    role = env.name("r")
    iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    with pytest.raises(AWSAdminError) as err:
        create_role(env, role, mapping=None)
    assert err.value.code == "EntityAlreadyExists"
    with pytest.raises(AWSAdminError, match="not created by kubeiam"):
        env.admin().delete_access_role(role)
    assert role_exists(iam, role)


def groups_of(iam: Any, user: str) -> list[str]:
    return [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]]


def test_grant_and_revoke_change_group_membership(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    role, user = env.name("r"), env.name()
    mapping_file(env)
    create_role(env, role)
    iam.create_user(UserName=user)
    admin = env.admin()

    assert admin.grant(user, access_role=role).changed
    assert groups_of(iam, user) == [role]
    assert not admin.grant(user, access_role=role).changed  # idempotent
    assert groups_of(iam, user) == [role]

    revoked = admin.revoke(user, access_role=role)
    assert revoked.changed
    assert "15 minutes" in revoked.notes[0]
    assert groups_of(iam, user) == []
    with pytest.raises(NotFoundError, match="membership not found"):
        admin.revoke(user, access_role=role)
    assert not admin.revoke(user, access_role=role, ignore_not_found=True).changed


def test_grant_to_a_missing_user_or_role_is_an_error(admin_env: AdminEnv) -> None:
    env = admin_env
    role = env.name("r")
    mapping_file(env)
    with pytest.raises(AWSAdminError, match="does not exist") as err:
        env.admin().grant("nobody", access_role=role)
    assert err.value.code == "NoSuchEntity"
    create_role(env, role)
    with pytest.raises(AWSAdminError, match="IAM user nobody-at-all does not exist"):
        env.admin().grant("nobody-at-all", access_role=role)


def test_delete_access_role_leaves_nothing(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    role, user = env.name("r"), env.name()
    mapping = mapping_file(env, WITH_ADMIN)
    before = mapping.read_text()
    result = create_role(env, role)
    iam.create_user(UserName=user)
    env.admin().grant(user, access_role=role)

    deleted = env.admin().delete_access_role(role, mapping=file_writer(mapping))
    assert not role_exists(iam, role)
    assert not group_exists(iam, role)
    assert groups_of(iam, user) == []
    assert result.role_arn not in mapping.read_text()
    assert mapping.read_text().startswith(before.rstrip("\n"))
    assert f"IAM role {role}" in deleted.removed

    with pytest.raises(NotFoundError, match=f"IAM role {role} not found"):
        env.admin().delete_access_role(role, mapping=file_writer(mapping))
    again = env.admin().delete_access_role(
        role, mapping=file_writer(mapping), ignore_not_found=True
    )
    assert again.removed == ()


def test_delete_access_role_keeps_a_shared_group(admin_env: AdminEnv) -> None:
    env, iam = admin_env, admin_env.iam
    role, group = env.name("r"), env.name("g")
    create_role(env, role, iam_group=group, mapping=None)
    iam.put_group_policy(
        GroupName=group,
        PolicyName="other",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
            }
        ),
    )
    result = env.admin().delete_access_role(role)
    assert group_exists(iam, group)
    assert iam.list_group_policies(GroupName=group)["PolicyNames"] == ["other"]
    assert result.notes == (f"IAM group {group} kept: it holds other policies",)


# --- errors ----------------------------------------------------------------------------------


def test_access_denied_names_the_permission(
    admin_env: AdminEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = admin_env
    key_id, secret = env.aws.create_user(env.name("weak"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with pytest.raises(AWSAdminError) as err:
        IAMAdmin(AWSClients()).onboard_user(  # a fresh session: new keys
            env.name(), cluster=CLUSTER, groups=["g"], credentials_file=env.credentials_file
        )
    assert err.value.code == "AccessDenied"
    assert err.value.hint is not None
    assert "iam:GetUser" in err.value.hint
    assert secret not in str(err.value)


def test_no_region_is_a_config_error(admin_env: AdminEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match="region"):
        onboard(admin_env, admin_env.name(), mapping=None, admin=IAMAdmin(AWSClients()))


# --- removal rolls forward -------------------------------------------------------------------


@pytest.mark.parametrize("step", ["access-keys", "policies", "groups", "delete-user"])
def test_offboard_interrupted_midway_completes_on_rerun(admin_env: AdminEnv, step: str) -> None:
    env, iam = admin_env, admin_env.iam
    name = env.name()
    mapping = mapping_file(env, WITH_ADMIN)
    before = mapping.read_text()
    result = onboard(env, name)
    with pytest.raises(InjectedFailure):
        env.admin(fail_at(step)).offboard_user(
            name, mapping=file_writer(mapping), credentials_file=env.credentials_file
        )
    assert result.user_arn not in mapping.read_text()  # cluster access ends first
    assert user_exists(iam, name)
    env.admin().offboard_user(
        name, mapping=file_writer(mapping), credentials_file=env.credentials_file
    )
    assert not user_exists(iam, name)
    assert mapping.read_text() == before


@pytest.mark.parametrize("step", ["group", "role"])
def test_delete_access_role_interrupted_completes_on_rerun(admin_env: AdminEnv, step: str) -> None:
    env, iam = admin_env, admin_env.iam
    role = env.name("r")
    mapping = mapping_file(env, WITH_ADMIN)
    result = create_role(env, role)
    with pytest.raises(InjectedFailure):
        env.admin(fail_at(step)).delete_access_role(role, mapping=file_writer(mapping))
    assert result.role_arn not in mapping.read_text()
    env.admin().delete_access_role(role, mapping=file_writer(mapping))
    assert not role_exists(iam, role)
    assert not group_exists(iam, role)
