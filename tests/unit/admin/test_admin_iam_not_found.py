"""Typos are not successes: removals of an IAM user, access role or membership that does not
exist raise NotFoundError naming the closest existing names, unless ignore_not_found; adds stay
idempotent. Against the local AWS (moto), as the other admin tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kubeiam.admin.editing.file_store import FileStore
from kubeiam.admin.editing.store_writer import StoreMappingWriter
from kubeiam.errors import NotFoundError

if TYPE_CHECKING:
    from conftest import AdminEnv

CLUSTER = "kubedemy"


def typo(name: str) -> str:
    """``name`` with its last character changed: the typo the message should catch."""
    return name[:-1] + ("x" if name[-1] != "x" else "y")


def writer(env: AdminEnv) -> StoreMappingWriter:
    path = env.tmp / "server.yaml"
    if not path.exists():
        path.write_text("clusterID: demo\n")
    return StoreMappingWriter(
        lambda: FileStore(path), now=lambda: datetime.now(UTC), target=f"file {path}"
    )


def make_user(env: AdminEnv) -> str:
    name = env.name()
    env.iam.create_user(UserName=name)
    return name


def make_role(env: AdminEnv, member: str | None = None) -> str:
    role = env.name("r")
    env.admin().create_access_role(
        role, cluster=CLUSTER, k8s_groups=["developers"], mapping=writer(env)
    )
    if member is not None:
        env.admin().grant(member, access_role=role)
    return role


#: case -> (set-up returning (wrong name, expected closest name)), the removal, what it names.
Removal = Callable[[Any, str, bool], object]


def offboard(env: AdminEnv, name: str, ignore: bool) -> object:
    return env.admin().offboard_user(name, mapping=writer(env), ignore_not_found=ignore)


def delete_role(env: AdminEnv, name: str, ignore: bool) -> object:
    return env.admin().delete_access_role(name, mapping=writer(env), ignore_not_found=ignore)


def revoke_unknown_user(env: AdminEnv, name: str, ignore: bool) -> object:
    role = env.tmp.joinpath("role").read_text()
    return env.admin().revoke(name, access_role=role, ignore_not_found=ignore)


def revoke_unknown_role(env: AdminEnv, name: str, ignore: bool) -> object:
    user = env.tmp.joinpath("user").read_text()
    return env.admin().revoke(user, access_role=name, ignore_not_found=ignore)


def revoke_non_member(env: AdminEnv, name: str, ignore: bool) -> object:
    role = env.tmp.joinpath("role").read_text()
    return env.admin().revoke(name, access_role=role, ignore_not_found=ignore)


def setup_user(env: AdminEnv) -> tuple[str, str]:
    user = make_user(env)
    return typo(user), user


def setup_role(env: AdminEnv) -> tuple[str, str]:
    role = make_role(env)
    return typo(role), role


def setup_member(env: AdminEnv) -> tuple[str, str]:
    """A role with one member; the wrong name is an existing user who is not a member."""
    member = make_user(env)
    role = make_role(env, member=member)
    env.tmp.joinpath("role").write_text(role)
    outsider = make_user(env)
    return outsider, member


def setup_member_typo(env: AdminEnv) -> tuple[str, str]:
    member = make_user(env)
    role = make_role(env, member=member)
    env.tmp.joinpath("role").write_text(role)
    return typo(member), member


def setup_unknown_role(env: AdminEnv) -> tuple[str, str]:
    user = make_user(env)
    env.tmp.joinpath("user").write_text(user)
    role = make_role(env)
    return typo(role), role


CASES: dict[str, tuple[Callable[[Any], tuple[str, str]], Removal, str]] = {
    "offboard-user-typo": (setup_user, offboard, "IAM user {wrong} not found"),
    "delete-access-role-typo": (setup_role, delete_role, "IAM role {wrong} not found"),
    "revoke-user-typo": (setup_member_typo, revoke_unknown_user, "IAM user {wrong} not found"),
    "revoke-role-typo": (setup_unknown_role, revoke_unknown_role, "access role {wrong} not found"),
    "revoke-non-member": (
        setup_member,
        revoke_non_member,
        "IAM user {wrong} is not a member of IAM group",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_removal_of_nothing_is_not_found_with_the_closest_names(
    admin_env: AdminEnv, case: str
) -> None:
    setup, removal, message = CASES[case]
    wrong, closest = setup(admin_env)
    users_before = sorted(u["UserName"] for u in admin_env.iam.list_users()["Users"])
    with pytest.raises(NotFoundError) as err:
        removal(admin_env, wrong, False)
    assert err.value.exit_code == 1
    assert message.format(wrong=wrong) in err.value.message
    assert "not found" in err.value.message
    assert f"closest: {closest}" in err.value.message or f"members: {closest}" in (
        err.value.message
    )
    assert err.value.hint is not None
    assert "--ignore-not-found" in err.value.hint
    # nothing was changed on the way to the error
    assert sorted(u["UserName"] for u in admin_env.iam.list_users()["Users"]) == users_before

    # kubectl delete's convention: told it may be gone, it is a no-op
    result = removal(admin_env, wrong, True)
    assert not getattr(result, "removed", ())
    assert not getattr(result, "changed", False)


def test_offboard_rolls_forward_a_run_that_deleted_the_user_but_not_the_mapping(
    admin_env: AdminEnv,
) -> None:
    """The user is gone but its mapping is still there (a run stopped midway, or someone
    deleted the user by hand): that is not "not found", the mapping is removed."""
    env = admin_env
    name = make_user(env)
    arn = env.iam.get_user(UserName=name)["User"]["Arn"]
    mapping = writer(env)
    mapping.add_user(arn, name, ["developers"])
    env.iam.delete_user(UserName=name)
    result = env.admin().offboard_user(name, mapping=mapping)
    assert result.removed == (f"mapping of {arn} in {mapping.target}",)
    assert result.notes == (f"IAM user {name} does not exist",)
    assert arn not in (env.tmp / "server.yaml").read_text()


def test_delete_access_role_typo_never_deletes_an_unrelated_group(admin_env: AdminEnv) -> None:
    """Without the role, a group of the same name is not proof the role was ever there."""
    env = admin_env
    unrelated = env.name("g")
    env.iam.create_group(GroupName=unrelated)
    member = make_user(env)
    env.iam.add_user_to_group(GroupName=unrelated, UserName=member)
    with pytest.raises(NotFoundError, match=f"IAM role {unrelated} not found"):
        env.admin().delete_access_role(unrelated, mapping=writer(env))
    env.admin().delete_access_role(unrelated, mapping=writer(env), ignore_not_found=True)
    assert env.iam.get_group(GroupName=unrelated)["Users"][0]["UserName"] == member


def test_delete_access_role_cleans_up_after_a_hand_deleted_role(admin_env: AdminEnv) -> None:
    """The role was deleted by hand, its group and policy are left: removed, no error."""
    env = admin_env
    role = make_role(env)
    env.iam.delete_role(RoleName=role)
    result = env.admin().delete_access_role(role, mapping=writer(env))
    assert f"IAM group {role}" in result.removed
    assert f"IAM role {role} does not exist" in result.notes


def test_adds_stay_idempotent(admin_env: AdminEnv) -> None:
    env = admin_env
    member = make_user(env)
    role = make_role(env, member=member)
    assert not env.admin().grant(member, access_role=role).changed
    again = env.admin().create_access_role(
        role, cluster=CLUSTER, k8s_groups=["developers"], mapping=writer(env)
    )
    assert again.role_name == role


def test_without_list_permission_the_message_has_no_names(
    admin_env: AdminEnv, tmp_path: Path
) -> None:
    """iam:ListUsers refused (the local AWS enforces IAM policies): still "not found", still
    exit 1, only without suggestions."""
    env = admin_env
    limited = make_user(env)
    env.iam.put_user_policy(
        UserName=limited,
        PolicyName="only-get",
        PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
            '"Action": ["iam:GetUser", "sts:GetCallerIdentity"], "Resource": "*"}]}'
        ),
    )
    key = env.iam.create_access_key(UserName=limited)["AccessKey"]
    import boto3

    from kubeiam.admin.onboarding.iam_admin import IAMAdmin
    from kubeiam.aws.clients import AWSClients

    session = boto3.session.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=env.aws.region,
    )
    admin = IAMAdmin(AWSClients(session=session))
    with pytest.raises(NotFoundError) as err:
        admin.offboard_user(typo(limited))
    assert err.value.message == f"IAM user {typo(limited)} not found"


def test_grant_to_a_typo_names_the_closest_user_and_role(admin_env: AdminEnv) -> None:
    """Adds stay idempotent, but a typo in what they name is still an error, now with the fix."""
    from kubeiam.errors import AWSAdminError

    env = admin_env
    user = make_user(env)
    role = make_role(env)
    with pytest.raises(AWSAdminError, match=f"IAM user {typo(user)} does not exist") as err:
        env.admin().grant(typo(user), access_role=role)
    assert f"(closest: {user}" in err.value.message
    with pytest.raises(AWSAdminError, match=f"access role {typo(role)} does not exist") as err:
        env.admin().grant(user, access_role=typo(role))
    assert f"(closest: {role}" in err.value.message
