"""mapGroups end to end: kubectl -> kube-apiserver -> kubeiam server -> STS, and IAM groups.

An IAM user gets into the cluster through its membership of an IAM group mapped in aws-auth
(`kubeiam mapping add-group`), and is refused once it leaves the group: after kubeiam server's
membership cache (iamGroupCacheTTL) and kube-apiserver's own token cache.
"""

from __future__ import annotations

from system import REVOCATION_SECONDS, System


def test_iam_group_member_gets_in_and_leaves(system: System) -> None:
    iam = system.aws.boto3_client("iam")
    group = iam.create_group(GroupName="e2e-mapgroups-devs", Path="/eng/")["Group"]
    user = system.create_user("e2e-mapgroups-member")
    iam.add_user_to_group(GroupName="e2e-mapgroups-devs", UserName=user.name)
    system.mapping(
        "add-group", group["Arn"], "--username", "dev:{{AccessKeyID}}", "--group", "e2e-devs"
    )
    assert "mapGroups" in system.aws_auth_data()

    try:
        kubeconfig = system.token_kubeconfig(user)
        info = system.wait_authenticated(kubeconfig)
        assert info["username"] == f"dev:{user.access_key_id}"
        assert "e2e-devs" in info["groups"]
        assert system.server.metric("kubeiam_iam_list_groups_for_user_calls_total") >= 1

        iam.remove_user_from_group(GroupName="e2e-mapgroups-devs", UserName=user.name)
        took = system.wait_unauthorized(kubeconfig)
        assert took < REVOCATION_SECONDS
        assert system.server.metric("kubeiam_iam_group_lookup_failures_total") == 0
    finally:
        # The system is shared by the session: leave aws-auth as the other tests expect it.
        system.mapping("remove", group["Arn"])
