"""The seeds (../shared/seeds/) end to end: kubectl -> kube-apiserver -> kubeiam server -> STS.

Every test runs against the session's one system (`system` fixture): the real kube-apiserver
with kubeiam's webhook, `kubeiam server` with MountedFile, EKSConfigMap and CRD backends, and
the local AWS environment. Each test uses IAM users and roles of its own, so they share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from system import (
    CLUSTER_ID,
    GRANT_SECONDS,
    KUBEIAM,
    REVOCATION_SECONDS,
    IamUser,
    System,
    groups_of,
    is_unauthorized,
    profile_home,
    run_kubeiam,
    wait_for,
)

# -- seed 1: an IAM user in aws-auth ----------------------------------------------------------


def _kubedemy_kubeconfig(system: System, user: IamUser) -> tuple[Path, dict[str, str]]:
    """The seed's steps 5 and 6: a credentials profile (`aws configure`), then the kubeconfig
    entry (`kubeiam kubeconfig update`, for a cluster outside EKS: --server and CA)."""
    home = system.workdir / "homes" / "kubedemy"
    env = profile_home(home, user, "kubedemy", system.aws.region)
    kubeconfig = home / ".kube" / "config"
    done = run_kubeiam(
        "kubeconfig",
        "update",
        "--cluster",
        CLUSTER_ID,
        "--server",
        system.plane.server,
        "--certificate-authority",
        str(system.plane.ca_file),
        "--profile",
        "kubedemy",
        "--exec-command",
        KUBEIAM,
        "--kubeconfig",
        str(kubeconfig),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert user.secret_access_key not in done.stdout + done.stderr
    return kubeconfig, env


def test_cluster_owner_maps_kubedemy_to_system_masters(system: System) -> None:
    user = system.create_user("kubedemy")
    # Step 4, as the cluster owner (the admin kubeconfig): map the user in aws-auth.
    system.mapping("add-user", user.arn, "--username", "kubedemy", "--group", "system:masters")
    data = system.aws_auth_data()
    assert f"userarn: {user.arn}" in data["mapUsers"]
    kubeconfig, env = _kubedemy_kubeconfig(system, user)

    info = wait_for(
        lambda: system.whoami(kubeconfig, env=env), timeout=GRANT_SECONDS, what="kubedemy"
    )
    assert info["username"] == "kubedemy"
    assert groups_of(info) == {"system:masters", "system:authenticated"}
    assert info["uid"].startswith(f"aws-iam-authenticator:{system.aws.account_id}:")
    assert info["extra"]["arn"] == [user.arn]
    assert info["extra"]["canonicalArn"] == [user.arn]
    assert info["extra"]["accessKeyId"] == [user.access_key_id]

    table = system.kubectl(kubeconfig, "auth", "whoami", env=env)
    assert table.returncode == 0, table.stderr
    assert "kubedemy" in table.stdout
    assert "system:masters" in table.stdout
    nodes = system.kubectl(kubeconfig, "get", "nodes", env=env)
    assert nodes.returncode == 0, nodes.stderr
    namespaces = system.kubectl(kubeconfig, "get", "namespaces", "-o", "name", env=env)
    assert "namespace/kube-system" in namespaces.stdout.split()


def test_unmapped_user_is_unauthorized_until_mapped_without_restarts(system: System) -> None:
    user = system.create_user("e2e-late")
    kubeconfig = system.token_kubeconfig(user)
    apiserver, server = system.plane.apiserver, system.server
    assert apiserver is not None
    pids = (apiserver.pid, server.pid)

    refused = system.kubectl(kubeconfig, "get", "namespaces")
    assert refused.returncode != 0
    assert is_unauthorized(refused.stderr), refused.stderr
    assert system.whoami(kubeconfig) is None

    system.mapping("add-user", user.arn, "--username", "late", "--group", "e2e-late-group")
    info = system.wait_authenticated(kubeconfig)
    assert info["username"] == "late"
    assert "e2e-late-group" in groups_of(info)
    assert (apiserver.pid, server.pid) == pids  # nothing was restarted


# -- seed 2: access through an IAM group and a role ------------------------------------------


def _put_json(value: object) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [value]})


def test_role_access_through_an_iam_group(system: System) -> None:
    aws = system.aws
    iam = aws.boto3_client("iam")
    account = aws.account_id
    # The role is trusted by the account: the members' own policies decide who may assume it.
    trust = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "sts:AssumeRole",
    }
    role = iam.create_role(RoleName="e2e-k8s-admins", AssumeRolePolicyDocument=_put_json(trust))
    role_arn = role["Role"]["Arn"]
    policy = iam.create_policy(
        PolicyName="e2e-assume-k8s-admins",
        PolicyDocument=_put_json(
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}
        ),
    )
    iam.create_group(GroupName="e2e-k8s-admins")
    iam.attach_group_policy(GroupName="e2e-k8s-admins", PolicyArn=policy["Policy"]["Arn"])
    system.mapping(
        "add-role",
        role_arn,
        "--username",
        "e2e-admin:{{SessionName}}",
        "--group",
        "system:masters",
    )
    member = system.create_user("e2e-group-member")
    iam.add_user_to_group(GroupName="e2e-k8s-admins", UserName=member.name)
    # --no-cache: the plugin otherwise keeps the assumed role's credentials (and the token) for
    # up to an hour, and "the next token" after leaving the group would not call AssumeRole.
    kubeconfig = system.token_kubeconfig(member, role=role_arn, session_name="alice", cache=False)

    info = system.wait_authenticated(kubeconfig)
    assert info["username"] == "e2e-admin:alice"
    assert "system:masters" in groups_of(info)
    assert info["extra"]["arn"] == [f"arn:aws:sts::{account}:assumed-role/e2e-k8s-admins/alice"]
    assert info["extra"]["canonicalArn"] == [role_arn]
    assert info["extra"]["sessionName"] == ["alice"]

    iam.remove_user_from_group(GroupName="e2e-k8s-admins", UserName=member.name)
    refused = system.kubectl(kubeconfig, "auth", "whoami")
    assert refused.returncode != 0
    assert "AccessDenied" in refused.stderr, refused.stderr
    assert member.secret_access_key not in refused.stderr


# -- RBAC authorises what kubeiam authenticated ----------------------------------------------


def test_view_only_group_is_forbidden_on_secrets(system: System) -> None:
    user = system.create_user("e2e-viewer")
    # `view` itself is aggregated by kube-controller-manager, which this cluster does not run;
    # `system:aggregate-to-view` holds the rules `view` would aggregate (no secrets among them).
    system.plane.kubectl(
        "create",
        "clusterrolebinding",
        "e2e-viewers",
        "--clusterrole=system:aggregate-to-view",
        "--group=e2e-viewers",
    )
    system.mapping("add-user", user.arn, "--username", "viewer", "--group", "e2e-viewers")
    kubeconfig = system.token_kubeconfig(user)
    info = system.wait_authenticated(kubeconfig)
    assert "e2e-viewers" in groups_of(info)

    allowed = system.kubectl(kubeconfig, "get", "configmaps", "-n", "kube-system")
    assert allowed.returncode == 0, allowed.stderr
    secrets = system.kubectl(kubeconfig, "get", "secrets", "-n", "kube-system")
    assert secrets.returncode != 0
    assert "Forbidden" in secrets.stderr
    assert 'User "viewer" cannot list resource "secrets"' in secrets.stderr
    can_i = system.kubectl(kubeconfig, "auth", "can-i", "delete", "pods")
    assert can_i.stdout.strip() == "no"


# -- nodes: {{EC2PrivateDNSName}} from moto's EC2 --------------------------------------------


def test_node_role_is_named_after_the_instance_private_dns_name(system: System) -> None:
    aws = system.aws
    ec2 = aws.boto3_client("ec2")
    image = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    instance_id, dns_name = instance["InstanceId"], instance["PrivateDnsName"]
    assert dns_name
    # The node's agent: in AWS the instance profile; here a user the role trusts.
    agent = system.create_user("e2e-node-agent")
    node_role = aws.create_role(
        "e2e-node-instance-role", trusted=agent.arn, grant_to_user=agent.name
    )
    system.mapping(
        "add-role",
        node_role,
        "--username",
        "system:node:{{EC2PrivateDNSName}}",
        "--group",
        "system:bootstrappers,system:nodes",
    )
    calls_before = system.server.metric("aws_iam_authenticator_ec2_describe_instances_calls_total")
    kubeconfig = system.token_kubeconfig(agent, role=node_role, session_name=instance_id)

    info = system.wait_authenticated(kubeconfig)
    assert info["username"] == f"system:node:{dns_name}"
    assert {"system:bootstrappers", "system:nodes"} <= groups_of(info)
    assert info["extra"]["sessionName"] == [instance_id]
    calls = system.server.metric("aws_iam_authenticator_ec2_describe_instances_calls_total")
    assert calls > calls_before
    # The Node authorizer recognises the node identity kubeiam produced: it may read its own
    # Node object (not registered, hence NotFound rather than Forbidden), and no other.
    own = system.kubectl(kubeconfig, "get", "node", dns_name)
    assert "NotFound" in own.stderr, own.stderr
    other = system.kubectl(kubeconfig, "get", "node", "ip-10-0-0-1.ec2.internal")
    assert "Forbidden" in other.stderr, other.stderr
    listing = system.kubectl(kubeconfig, "get", "nodes")
    assert "only its own Node object" in listing.stderr, listing.stderr

    # A session name that is no instance, or an instance EC2 does not know: no node name, no
    # access (the template cannot be rendered, so the entry does not map the identity).
    for session in ("not-an-instance", "i-0123456789abcdef0"):
        stranger = system.token_kubeconfig(
            agent, role=node_role, session_name=session, label=f"e2e-node-{session}"
        )
        assert system.whoami(stranger) is None, session
    secrets = system.kubectl(kubeconfig, "get", "secrets", "-n", "kube-system")
    assert "Forbidden" in secrets.stderr


# -- IAMIdentityMapping objects (the CRD backend) --------------------------------------------


def test_iam_identity_mapping_object_grants_and_deleting_it_revokes(system: System) -> None:
    user = system.create_user("e2e-crd-user")
    kubeconfig = system.token_kubeconfig(user)
    assert system.whoami(kubeconfig) is None
    system.plane.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "iamauthenticator.k8s.aws/v1alpha1",
                "kind": "IAMIdentityMapping",
                "metadata": {"name": "e2e-crd-user"},
                "spec": {"arn": user.arn, "username": "crd-user", "groups": ["e2e-crd-group"]},
            }
        ),
    )
    info = system.wait_authenticated(kubeconfig)
    assert info["username"] == "crd-user"
    assert "e2e-crd-group" in groups_of(info)

    system.plane.kubectl("delete", "iamidentitymapping", "e2e-crd-user")
    # The same cached token: kube-apiserver may keep its successful answer for 10 s + TTL.
    took = system.wait_unauthorized(kubeconfig)
    assert took < REVOCATION_SECONDS


# -- MountedFile: the server's own config file -------------------------------------------------


def test_mounted_file_mapping_works_next_to_the_watched_backends(system: System) -> None:
    info = system.wait_authenticated(system.token_kubeconfig(system.file_user))
    assert info["username"] == "file-user"
    assert "e2e-file-group" in groups_of(info)


# -- a corrupted aws-auth edit ------------------------------------------------------------------


@pytest.fixture
def restore_aws_auth(system: System) -> Iterator[dict[str, str]]:
    saved = system.aws_auth_data()
    yield saved
    system.write_aws_auth(saved)


def test_corrupted_aws_auth_edit_keeps_the_valid_mappings(
    system: System, restore_aws_auth: dict[str, str]
) -> None:
    kept = system.create_user("e2e-kept")
    system.mapping("add-user", kept.arn, "--username", "kept", "--group", "e2e-kept-group")
    # No token cache: every kubectl call is a new token, so every call is a real review.
    kubeconfig = system.token_kubeconfig(kept, cache=False)
    assert system.wait_authenticated(kubeconfig)["username"] == "kept"
    good = system.aws_auth_data()

    # 1. An edit that is not YAML at all: the server keeps the last good version.
    failures = "aws_iam_authenticator_configmap_watch_failures_total"
    before = system.server.metric(failures)
    broken = dict(good)
    broken["mapUsers"] = good["mapUsers"] + "- userarn: [this is not yaml\n  username: :\n"
    system.write_aws_auth(broken)
    wait_for(
        lambda: True if system.server.metric(failures) > before else None,
        timeout=GRANT_SECONDS,
        what="the server to refuse the broken aws-auth",
    )
    info = system.whoami(kubeconfig)
    assert info is not None
    assert info["username"] == "kept"
    assert system.server.ready()

    # 2. One invalid entry among valid ones: it is skipped, the rest apply.
    newcomer = system.create_user("e2e-newcomer")
    skipped = "kubeiam_mapping_entries_skipped_total"
    skipped_before = system.server.metric(skipped)
    partly = dict(good)
    partly["mapUsers"] = (
        good["mapUsers"]
        + "- userarn: not-an-arn\n  username: nobody\n"
        + f"- userarn: {newcomer.arn}\n  username: newcomer\n  groups: [e2e-new]\n"
    )
    system.write_aws_auth(partly)
    newcomer_info = system.wait_authenticated(system.token_kubeconfig(newcomer, cache=False))
    assert newcomer_info["username"] == "newcomer"
    assert system.server.metric(skipped) > skipped_before
    info = system.whoami(kubeconfig)
    assert info is not None
    assert info["username"] == "kept"

    # 3. Conflicting duplicates (the same ARN twice, different groups: the reference let the last
    #    one win): the whole version is refused, the previous one keeps serving, and a user the
    #    bad edit adds gets nothing from it.
    intruder = system.create_user("e2e-intruder")
    before = system.server.metric(failures)
    conflicting = dict(partly)
    conflicting["mapUsers"] = (
        partly["mapUsers"]
        + f"- userarn: {kept.arn}\n  username: kept\n  groups: [system:masters]\n"
        + f"- userarn: {intruder.arn}\n  username: intruder\n  groups: [system:masters]\n"
    )
    system.write_aws_auth(conflicting)
    wait_for(
        lambda: True if system.server.metric(failures) > before else None,
        timeout=GRANT_SECONDS,
        what="the server to refuse the conflicting aws-auth",
    )
    info = system.whoami(kubeconfig)
    assert info is not None
    assert groups_of(info) == {"e2e-kept-group", "system:authenticated"}
    assert system.whoami(system.token_kubeconfig(intruder, cache=False)) is None


def test_removing_an_aws_auth_mapping_revokes_access(system: System) -> None:
    user = system.create_user("e2e-leaver")
    system.mapping("add-user", user.arn, "--username", "leaver", "--group", "e2e-leaver")
    kubeconfig = system.token_kubeconfig(user, cache=False)
    assert system.wait_authenticated(kubeconfig)["username"] == "leaver"
    system.mapping("remove", user.arn)
    assert f"userarn: {user.arn}" not in system.aws_auth_data().get("mapUsers", "")
    # A fresh token per request: no answer of kube-apiserver's success cache applies, so the
    # refusal follows the server's watch within seconds.
    assert system.wait_unauthorized(kubeconfig, timeout=GRANT_SECONDS) < GRANT_SECONDS


def test_server_log_holds_no_secret_and_no_refused_api_call(system: System) -> None:
    user = system.create_user("e2e-log-check")
    system.mapping("add-user", user.arn, "--username", "log-check", "--group", "e2e-log")
    assert system.wait_authenticated(system.token_kubeconfig(user))["username"] == "log-check"

    def logged() -> str | None:
        text = system.server.log_text()
        return text if f"arn={user.arn}" in text else None

    # The server writes log lines on a thread of their own, a moment after answering.
    text = wait_for(logged, timeout=10, what="the review's log line")
    for secret in system.secrets():  # every key handed out in this session so far
        assert secret not in text
    assert "X-Amz-Signature" not in text
    assert "k8s-aws-v1." not in text
    # The server read everything it needed with deploy/rbac.yaml's grants: no API call refused.
    assert '"HTTP/1.1 403' not in text
    assert '"HTTP/1.1 401' not in text
