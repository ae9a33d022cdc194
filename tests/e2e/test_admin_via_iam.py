"""An IAM administrator edits aws-auth as an IAM identity, through the kubeconfig kubeiam wrote.

The seeds' own flow (issue 8 section 1): the cluster owner maps an IAM user to
`system:masters`; from then on that user administers the cluster with kubeiam alone:

1. `kubeiam kubeconfig update` writes an exec entry in `client.authentication.k8s.io/v1` that
   runs `kubeiam token` (the format kubectl and `aws eks update-kubeconfig` write);
2. through that kubeconfig (found through `$KUBECONFIG`, no `--kubeconfig`), against the real
   kube-apiserver whose webhook is `kubeiam server`: `mapping add-user`, `mapping list`,
   `whoami` and `iam onboard-user` writing to aws-auth;
3. the user holds exactly the IAM policy docs/permissions.md documents (read from that file);
   the local AWS enforces IAM policies, so a permission missing from the document fails here,
   and the same commands without the policy are refused, naming the missing action;
4. the RBAC Role docs/permissions.md documents is enough for an aws-auth admin who is not
   `system:masters`, and a command beyond it names the verb and resource RBAC refused;
5. `kubeiam server` watches aws-auth through such a kubeconfig, and when its identity may not,
   `/readyz`, its log (at each retry) and `kubeiam_backend_failures_total` say why.

Every command is a real `kubeiam` process; none may print a traceback or a secret.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from cluster.control_plane import free_port
from system import (
    CLUSTER_ID,
    GRANT_SECONDS,
    KUBEIAM,
    IamUser,
    KubeiamServer,
    System,
    profile_home,
    run_kubeiam,
    wait_for,
)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PERMISSIONS_DOC = REPO_ROOT / "docs" / "permissions.md"
POLICY_MARKER = "<!-- kubeiam-admin-policy"
ADMIN = "e2e-iam-admin"
PROFILE = "iam-admin"


def documented_admin_policy() -> dict[str, Any]:
    """The JSON block after the policy marker in docs/permissions.md."""
    text = PERMISSIONS_DOC.read_text()
    after = text[text.index(POLICY_MARKER) :]
    found = re.search(r"```json\n(.*?)\n```", after, re.S)
    assert found is not None, "docs/permissions.md lost its admin policy block"
    policy: dict[str, Any] = json.loads(found.group(1))
    return policy


def _admin_home(system: System, user: IamUser, name: str) -> tuple[Path, dict[str, str]]:
    """A HOME with an AWS profile holding `user`'s key, and the environment to run in it."""
    home = system.workdir / "homes" / name
    env = {
        **system.aws.client_env(),  # IAM and STS calls go to the local AWS
        **profile_home(home, user, PROFILE, system.aws.region),
        "AWS_PROFILE": PROFILE,
        "KUBECONFIG": str(home / ".kube" / "config"),
    }
    return home, env


def _write_kubeconfig(system: System, env: dict[str, str]) -> Path:
    """`kubeiam kubeconfig update` for the cluster (outside EKS: --server and its CA)."""
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
        PROFILE,
        "--exec-command",
        KUBEIAM,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return Path(env["KUBECONFIG"])


def _run(system: System, env: dict[str, str], *args: str) -> Any:
    done = run_kubeiam(*args, env=env)
    _clean(system, done.stdout + done.stderr)
    assert done.returncode == 0, f"kubeiam {' '.join(args)} failed:\n{done.stderr}"
    return done


def _clean(system: System, output: str) -> None:
    assert "Traceback" not in output
    for secret in system.secrets():
        assert secret not in output


def test_iam_admin_administers_aws_auth_through_its_exec_v1_kubeconfig(system: System) -> None:
    policy = documented_admin_policy()
    admin = system.create_user(ADMIN)
    iam = system.aws.boto3_client("iam")
    iam.put_user_policy(
        UserName=ADMIN, PolicyName="kubeiam-admin", PolicyDocument=json.dumps(policy)
    )
    # Seed step 4, as the cluster owner: the IAM admin becomes system:masters.
    system.mapping("add-user", admin.arn, "--username", ADMIN, "--group", "system:masters")
    home, env = _admin_home(system, admin, ADMIN)
    kubeconfig = _write_kubeconfig(system, env)

    written = yaml.safe_load(kubeconfig.read_text())
    (user_entry,) = written["users"]
    assert user_entry["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1"
    assert user_entry["user"]["exec"]["command"] == KUBEIAM
    assert "token" in user_entry["user"]["exec"]["args"]
    wait_for(
        lambda: system.whoami(kubeconfig, env=env), timeout=GRANT_SECONDS, what="the IAM admin"
    )

    # 1. mapping add-user through the exec v1 kubeconfig ($KUBECONFIG, no --kubeconfig).
    developer_arn = system.aws.user_arn("e2e-iam-admin-dev")
    _run(
        system,
        env,
        "mapping",
        "add-user",
        developer_arn,
        "--username",
        "dev",
        "--group",
        "e2e-devs",
        "--store",
        "aws-auth",
    )
    assert f"userarn: {developer_arn}" in system.aws_auth_data()["mapUsers"]

    # 2. mapping list.
    listed = _run(system, env, "mapping", "list", "--store", "aws-auth", "-o", "json")
    assert developer_arn in listed.stdout
    assert admin.arn in listed.stdout

    # 3. whoami against the cluster: the admin's own mapping, with its IAM groups looked up.
    who = _run(system, env, "whoami", "--store", "aws-auth", "-o", "json")
    answer = json.loads(who.stdout)
    assert answer["arn"] == admin.arn
    assert (answer["username"], answer["groups"]) == (ADMIN, ["system:masters"])
    assert answer["mappings"][0]["backend"] == "EKSConfigMap"
    # iam:ListGroupsForUser is in the documented policy: the lookup ran (null when refused).
    assert answer["iamGroups"] == []
    # whoami --cluster: explained in the context of that cluster (aws-auth matches first).
    by_cluster = json.loads(
        _run(system, env, "whoami", "--cluster", CLUSTER_ID, "-o", "json").stdout
    )
    assert (by_cluster["username"], by_cluster["groups"]) == (ADMIN, ["system:masters"])
    assert by_cluster["mappings"][0]["backend"] == "EKSConfigMap"
    assert by_cluster["mappings"][0]["matched"] is True

    # 4. iam onboard-user writing the mapping to aws-auth.
    onboarded_credentials = home / ".aws" / "onboarded"
    _run(
        system,
        env,
        "iam",
        "onboard-user",
        "e2e-onboarded",
        "--cluster",
        CLUSTER_ID,
        "--group",
        "e2e-devs",
        "--tag",
        "team=platform",
        "--store",
        "aws-auth",
        "--credentials-file",
        str(onboarded_credentials),
    )
    onboarded_arn = system.aws.user_arn("e2e-onboarded")
    assert f"userarn: {onboarded_arn}" in system.aws_auth_data()["mapUsers"]
    assert iam.get_user(UserName="e2e-onboarded")["User"]["Arn"] == onboarded_arn
    tags = iam.list_user_tags(UserName="e2e-onboarded")["Tags"]
    assert {"Key": "team", "Value": "platform"} in tags
    assert "[e2e-onboarded]" in onboarded_credentials.read_text()


def test_without_the_documented_policy_onboarding_is_refused_by_name(system: System) -> None:
    """The local AWS enforces policies: the same command as an admin with no IAM policy fails,
    naming the action, without a traceback and without touching aws-auth."""
    admin = system.create_user("e2e-iam-admin-nopolicy")
    system.mapping(
        "add-user", admin.arn, "--username", "e2e-iam-admin-nopolicy", "--group", "system:masters"
    )
    home, env = _admin_home(system, admin, "e2e-iam-admin-nopolicy")
    kubeconfig = _write_kubeconfig(system, env)
    wait_for(lambda: system.whoami(kubeconfig, env=env), timeout=GRANT_SECONDS, what="admin")
    before = system.aws_auth_data()
    done = run_kubeiam(
        "iam",
        "onboard-user",
        "e2e-never-onboarded",
        "--cluster",
        CLUSTER_ID,
        "--group",
        "e2e-devs",
        "--store",
        "aws-auth",
        "--credentials-file",
        str(home / ".aws" / "never"),
        env=env,
    )
    _clean(system, done.stdout + done.stderr)
    assert done.returncode != 0
    assert "kubeiam: error:" in done.stderr
    assert re.search(r"iam:(GetUser|CreateUser)", done.stderr), done.stderr
    assert system.aws_auth_data() == before


def test_rbac_refusal_names_verb_and_resource(system: System) -> None:
    """An IAM identity mapped without RBAC on aws-auth: the command names what RBAC refused."""
    viewer = system.create_user("e2e-iam-nobody")
    system.mapping("add-user", viewer.arn, "--username", "e2e-nobody", "--group", "e2e-nothing")
    _, env = _admin_home(system, viewer, "e2e-iam-nobody")
    kubeconfig = _write_kubeconfig(system, env)
    wait_for(lambda: system.whoami(kubeconfig, env=env), timeout=GRANT_SECONDS, what="nobody")
    done = run_kubeiam("mapping", "list", "--store", "aws-auth", env=env)
    _clean(system, done.stdout + done.stderr)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[0] == (
        "kubeiam: error: the Kubernetes API refused user 'e2e-nobody': get configmaps aws-auth "
        "in kube-system (403 Forbidden)"
    ), done.stderr
    assert lines[1].strip().startswith("fix: grant user 'e2e-nobody' RBAC verb 'get'")
    assert len(lines) == 2


def documented_aws_auth_admin_role() -> dict[str, Any]:
    """The Role YAML after its marker in docs/permissions.md."""
    text = PERMISSIONS_DOC.read_text()
    after = text[text.index("<!-- kubeiam-aws-auth-admin-role") :]
    found = re.search(r"```yaml\n(.*?)\n```", after, re.S)
    assert found is not None, "docs/permissions.md lost its aws-auth admin Role"
    role: dict[str, Any] = yaml.safe_load(found.group(1))
    return role


def test_the_documented_rbac_role_is_enough_for_an_aws_auth_admin(system: System) -> None:
    """An IAM identity that is not system:masters, bound only to the Role docs/permissions.md
    documents, lists and edits aws-auth and explains itself."""
    role = documented_aws_auth_admin_role()
    group = "e2e-aws-auth-admins"
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "e2e-aws-auth-admins", "namespace": "kube-system"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        },
        "subjects": [{"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}],
    }
    system.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, binding]))
    narrow = system.create_user("e2e-iam-narrow-admin")
    system.mapping("add-user", narrow.arn, "--username", "e2e-narrow", "--group", group)
    _, env = _admin_home(system, narrow, "e2e-iam-narrow-admin")
    kubeconfig = _write_kubeconfig(system, env)
    wait_for(lambda: system.whoami(kubeconfig, env=env), timeout=GRANT_SECONDS, what="narrow")

    listed = _run(system, env, "mapping", "list", "--store", "aws-auth", "-o", "json")
    assert narrow.arn in listed.stdout
    added = system.aws.user_arn("e2e-narrow-added")
    _run(
        system,
        env,
        "mapping",
        "add-user",
        added,
        "--username",
        "narrow-added",
        "--group",
        "e2e-devs",
        "--store",
        "aws-auth",
    )
    assert f"userarn: {added}" in system.aws_auth_data()["mapUsers"]
    who = json.loads(_run(system, env, "whoami", "--store", "aws-auth", "-o", "json").stdout)
    assert (who["username"], who["groups"]) == ("e2e-narrow", [group])
    # Anything beyond the Role is refused, naming what RBAC refused.
    refused = run_kubeiam("mapping", "list", "--store", "crd", env=env)
    _clean(system, refused.stdout + refused.stderr)
    assert refused.returncode != 0
    assert "list iamidentitymappings.iamauthenticator.k8s.aws (403 Forbidden)" in refused.stderr


def _watch_only_server(
    system: System, name: str, kubeconfig: Path, env: dict[str, str]
) -> KubeiamServer:
    """A second `kubeiam server` whose only backend is EKSConfigMap, reading the API server
    through `kubeconfig` (an exec v1 kubeconfig running `kubeiam token`)."""
    workdir = system.workdir / "servers" / name
    state_dir = workdir / "state"
    port = free_port()
    init = run_kubeiam(
        "init",
        "-i",
        CLUSTER_ID,
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        "--kubeconfig-out",
        str(workdir / "webhook.kubeconfig"),
        env=env,
    )
    assert init.returncode == 0, init.stderr
    config = workdir / "server.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "clusterID": CLUSTER_ID,
                "server": {
                    "address": "127.0.0.1",
                    "port": port,
                    "stateDir": str(state_dir),
                    "backendMode": ["EKSConfigMap"],
                    "kubeconfig": str(kubeconfig),
                },
            }
        )
    )
    server_env = {k: v for k, v in env.items() if k != "KUBECONFIG"}
    return KubeiamServer(
        config=config,
        state_dir=state_dir,
        port=port,
        log_path=workdir / "kubeiam-server.log",
        env=server_env,
    )


def test_server_watches_aws_auth_through_an_exec_v1_kubeconfig(system: System) -> None:
    """`kubeiam server --kubeconfig` with the kubeconfig `kubeconfig update` wrote: ready as an
    IAM identity with RBAC on aws-auth; as one without, not ready, and /readyz, the log and the
    failure metric say why."""
    reader = system.create_user("e2e-iam-server-reader")
    system.mapping("add-user", reader.arn, "--username", "e2e-reader", "--group", "system:masters")
    _, env = _admin_home(system, reader, "e2e-iam-server-reader")
    kubeconfig = _write_kubeconfig(system, env)
    wait_for(lambda: system.whoami(kubeconfig, env=env), timeout=GRANT_SECONDS, what="reader")
    good = _watch_only_server(system, "exec-v1-reader", kubeconfig, env)
    try:
        good.start()  # returns once /readyz answers 200: aws-auth listed through exec v1
        assert "EKSConfigMap: loaded" in good.log_text()
    finally:
        good.stop()
    _clean(system, good.log_text())

    stranger = system.create_user("e2e-iam-server-stranger")
    system.mapping("add-user", stranger.arn, "--username", "e2e-stranger", "--group", "e2e-none")
    _, env = _admin_home(system, stranger, "e2e-iam-server-stranger")
    kubeconfig = _write_kubeconfig(system, env)
    wait_for(lambda: system.whoami(kubeconfig, env=env), timeout=GRANT_SECONDS, what="stranger")
    refused = _watch_only_server(system, "exec-v1-stranger", kubeconfig, env)
    refused.process.start()
    try:
        why = (
            "EKSConfigMap: list failed: the Kubernetes API refused user 'e2e-stranger': list "
            "configmaps in kube-system (403 Forbidden)"
        )

        def readyz() -> str | None:
            try:
                status, text = refused.get("/readyz")
            except OSError:
                return None
            return text if status == 503 and why in text else None

        wait_for(readyz, timeout=60, what="/readyz naming the refusal")
        wait_for(
            lambda: True if refused.metric("kubeiam_backend_failures_total") >= 2 else None,
            timeout=60,
            what="two counted failures",
        )
        failures = [line for line in refused.log_text().splitlines() if "list failed" in line]
        assert len(failures) >= 2, refused.log_text()
        assert all("403 Forbidden" in line and "retrying in" in line for line in failures)
    finally:
        refused.stop()
    _clean(system, refused.log_text())
