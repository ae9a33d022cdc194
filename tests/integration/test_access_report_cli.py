"""`kubeiam access report` / `who-can` as processes: the local AWS (IAM and the local EKS with
access entries) and a Kubernetes API stand-in on 127.0.0.1 (plain HTTP, port 0) answering the
RBAC lists, aws-auth and the CRD listing as the API server does.

What the real kube-apiserver adds (aggregated roles, the onboarding workflows) is in
tests/e2e/test_access_report.py; here: EKS's authentication mode deciding the stores, an access
entry's policy giving cluster-admin, aws-auth's row for the same role not used, refusals as one
line with a fix, --output-file and --fail-on.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from kubeiam.localaws.environment import LocalAWS
from support.cli import run_kubeiam

ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


@dataclass
class KubeStandIn:
    """The reads the report makes, answered from ``objects``; ``forbidden`` paths get a 403."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    aws_auth: dict[str, str] | None = None
    forbidden: set[str] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.seen.append(path)
        if path in self.forbidden:
            return _status(403, f'forbidden: User "admin" cannot list resource at {path}')
        if path == "/api/v1/namespaces/kube-system/configmaps/aws-auth":
            if self.aws_auth is None:
                return _status(404, 'configmaps "aws-auth" not found')
            return web.json_response(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "aws-auth", "namespace": "kube-system"},
                    "data": self.aws_auth,
                }
            )
        kind = path.rsplit("/", 1)[1]
        if kind == "iamidentitymappings":
            return _status(404, "the server could not find the requested resource")
        items = self.objects.get(kind, [])
        return web.json_response(
            {
                "kind": "List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        )


def _status(code: int, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code,
    }
    return web.json_response(body, status=code)


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[KubeStandIn, Path]]:
    api = KubeStandIn()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", api.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        api.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        runner_box.append(runner)
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": api.url}}],
                "users": [{"name": "u", "user": {"token": "admin-token"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    try:
        yield api, kubeconfig
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _binding(name: str, role: str, group: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}],
    }


@dataclass
class Cluster:
    name: str
    admin_role: str
    viewer_role: str
    member: str


@pytest.fixture
def eks_cluster(local_aws: LocalAWS, kube: tuple[KubeStandIn, Path]) -> Cluster:
    """An EKS cluster in API_AND_CONFIG_MAP: an access entry gives role `ops` (trusting the
    local AWS's administrator) cluster-admin by policy; aws-auth maps `ops` too (not used) and
    maps `viewer`, assumable by a group member, to a group bound to `view`."""
    api, _ = kube
    sfx = uuid.uuid4().hex[:6]
    iam = local_aws.boto3_client("iam")
    eks = local_aws.boto3_client("eks")
    account = local_aws.account_id
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sts:AssumeRole"}
        ],
    }
    # ops trusts one user (its cluster-admin finding is high; through a whole account: critical).
    ops_trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": local_aws.admin.arn},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    ops = iam.create_role(RoleName=f"ops-{sfx}", AssumeRolePolicyDocument=json.dumps(ops_trust))
    viewer = iam.create_role(RoleName=f"viewer-{sfx}", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_group(GroupName=f"devs-{sfx}")
    iam.put_group_policy(
        GroupName=f"devs-{sfx}",
        PolicyName="assume",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": viewer["Role"]["Arn"],
                    }
                ],
            }
        ),
    )
    iam.create_user(UserName=f"member-{sfx}")
    iam.add_user_to_group(GroupName=f"devs-{sfx}", UserName=f"member-{sfx}")
    name = f"report-{sfx}"
    eks.create_cluster(
        name=name,
        roleArn=f"arn:aws:iam::{account}:role/eks-cluster",
        resourcesVpcConfig={},
        accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"},
    )
    ops_arn = ops["Role"]["Arn"]
    eks.create_access_entry(clusterName=name, principalArn=ops_arn, username="ops")
    eks.associate_access_policy(
        clusterName=name,
        principalArn=ops_arn,
        policyArn=ADMIN_POLICY,
        accessScope={"type": "cluster"},
    )
    api.aws_auth = {
        "mapRoles": yaml.safe_dump(
            [
                {"rolearn": ops_arn, "username": "ops-old", "groups": ["system:masters"]},
                {
                    "rolearn": viewer["Role"]["Arn"],
                    "username": "viewer:{{SessionName}}",
                    "groups": ["viewers"],
                },
            ]
        )
    }
    api.objects = {
        "clusterroles": [
            {"metadata": {"name": "view"}, "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
            ]},
        ],
        "clusterrolebindings": [_binding("viewers", "view", "viewers")],
    }  # fmt: skip
    return Cluster(name, ops_arn, viewer["Role"]["Arn"], local_aws.user_arn(f"member-{sfx}"))


def _env(aws_cli_env: dict[str, str], local_aws: LocalAWS) -> dict[str, str]:
    return {
        **aws_cli_env,
        "AWS_ACCESS_KEY_ID": local_aws.admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": local_aws.admin.secret_access_key,
    }


def test_eks_report_access_entry_wins_and_policies_count(
    eks_cluster: Cluster,
    kube: tuple[KubeStandIn, Path],
    aws_cli_env: dict[str, str],
    local_aws: LocalAWS,
    tmp_path: Path,
) -> None:
    api, kubeconfig = kube
    env = _env(aws_cli_env, local_aws)
    out = tmp_path / "out" / "report.json"
    out.parent.mkdir()
    done = run_kubeiam(
        "access", "report", "--cluster", eks_cluster.name, "--kubeconfig", str(kubeconfig),
        "-o", "json", "--output-file", str(out), "--fail-on", "critical", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert f"wrote {out}" in done.stderr
    assert "EKS authentication mode API_AND_CONFIG_MAP" in done.stderr
    assert "its access entry wins" in done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    report = json.loads(out.read_text())

    ops = [p for p in report["principals"] if p["mapped"] == eks_cluster.admin_role]
    assert ops
    assert {p["source"] for p in ops} == {"access-entries"}
    assert {p["username"] for p in ops} == {"ops"}
    assert all(p["clusterAdmin"] for p in ops)
    member = [p for p in report["principals"] if p["arn"] == eks_cluster.member]
    assert [(p["via"], p["source"]) for p in member] == [([eks_cluster.viewer_role], "aws-auth")]
    assert any("view cluster-wide" in r for r in member[0]["rights"])
    admin_findings = [f for f in report["findings"] if f["code"] == "cluster-admin"]
    # ops's entry, and the one EKS made for the cluster's creator: neither through an account.
    assert {f["severity"] for f in admin_findings} == {"high"}
    assert any(eks_cluster.admin_role in f["message"] for f in admin_findings)
    # The CRD is not read for an EKS cluster; the four RBAC lists and aws-auth are.
    assert not any("iamidentitymappings" in path for path in api.seen)
    assert f"{RBAC}/clusterrolebindings" in api.seen

    # --fail-on high: the cluster-admin finding (high) gates; the report is still written.
    gated = run_kubeiam(
        "access", "report", "--cluster", eks_cluster.name, "--kubeconfig", str(kubeconfig),
        "-o", "json", "--fail-on", "high", env=env,
    )  # fmt: skip
    assert gated.returncode == 1
    assert json.loads(gated.stdout)["schemaVersion"] == 1
    assert "finding exists (--fail-on high)" in gated.stderr

    who = run_kubeiam(
        "access", "who-can", "delete", "secrets", "-n", "prod", "--cluster", eks_cluster.name,
        "--kubeconfig", str(kubeconfig), env=env,
    )  # fmt: skip
    assert who.returncode == 0, who.stderr
    assert eks_cluster.admin_role in who.stdout
    assert eks_cluster.member not in who.stdout
    as_json = run_kubeiam(
        "access", "who-can", "get", "pods", "--cluster", eks_cluster.name,
        "--kubeconfig", str(kubeconfig), "-o", "json", env=env,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["schemaVersion"] == 1
    assert answer["request"] == {"verb": "get", "resource": "pods", "namespace": None}
    found = {(p["arn"], tuple(p["via"])) for p in answer["principals"]}
    assert (eks_cluster.member, (eks_cluster.viewer_role,)) in found


@pytest.mark.parametrize(
    ("forbid", "wanted", "fix"),
    [
        (
            f"{RBAC}/clusterrolebindings",
            "refused user 'admin': list clusterrolebindings.rbac.authorization.k8s.io",
            "or use a --context that has it",
        ),
        (
            "/api/v1/namespaces/kube-system/configmaps/aws-auth",
            "refused user 'admin': get configmaps",
            "or use a --context that has it",
        ),
    ],
    ids=["rbac-refused", "aws-auth-refused"],
)
def test_a_refused_read_is_one_line_and_exit_1(
    kube: tuple[KubeStandIn, Path],
    aws_cli_env: dict[str, str],
    local_aws: LocalAWS,
    tmp_path: Path,
    forbid: str,
    wanted: str,
    fix: str | None,
) -> None:
    api, kubeconfig = kube
    api.forbidden.add(forbid)
    out = tmp_path / "report.json"
    done = run_kubeiam(
        "access", "report", "--kubeconfig", str(kubeconfig), "-o", "json",
        "--output-file", str(out), env=_env(aws_cli_env, local_aws),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "kubeiam: error:" in done.stderr
    assert wanted in done.stderr
    if fix is not None:
        assert "fix:" in done.stderr
        assert fix in done.stderr
    assert not out.exists()


def test_no_aws_credentials_exit_3(
    kube: tuple[KubeStandIn, Path], aws_cli_env: dict[str, str], tmp_path: Path
) -> None:
    _, kubeconfig = kube
    env = {
        **aws_cli_env,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    done = run_kubeiam("access", "report", "--kubeconfig", str(kubeconfig), env=env)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "kubeiam: error:" in done.stderr


def test_credential_report_refused_is_a_note_not_a_failure(
    kube: tuple[KubeStandIn, Path], aws_cli_env: dict[str, str], local_aws: LocalAWS
) -> None:
    """An auditor whose policy denies the credential report still gets the report; the one
    check it feeds (old keys reaching cluster-admin) is said to be missing."""
    _, kubeconfig = kube
    iam = local_aws.boto3_client("iam")
    name = f"auditor-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="audit",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "*", "Resource": "*"},
                    {
                        "Effect": "Deny",
                        "Action": ["iam:GenerateCredentialReport", "iam:GetCredentialReport"],
                        "Resource": "*",
                    },
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    env = {
        **aws_cli_env,
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    done = run_kubeiam("access", "report", "--kubeconfig", str(kubeconfig), "-o", "json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["schemaVersion"] == 1
    assert "access-key ages not read (AccessDenied on the credential report)" in done.stderr
    assert key["SecretAccessKey"] not in done.stderr


def _into_next_second(moment: datetime) -> None:
    """Wait (under a second) until the clock is past ``moment``'s whole second: IAM's CreateDate
    and the report's comparison are to the second, so a role recreated within the same second
    as the entry is (by design) not told apart from the entry's own principal."""
    later = moment.replace(microsecond=0) + timedelta(seconds=1)
    time.sleep(max(0.0, (later - datetime.now(UTC)).total_seconds()) + 0.01)


def test_recreated_role_with_an_older_access_entry_is_found(
    eks_cluster: Cluster,
    kube: tuple[KubeStandIn, Path],
    aws_cli_env: dict[str, str],
    local_aws: LocalAWS,
) -> None:
    """EKS's access entry API gives no principal id: an entry older than the role it names was
    made for an earlier role of that name (AWS: the entry "won't work" for the new one). The
    report finds it from createdAt vs IAM's CreateDate; the fixture's ops entry, made after its
    role, is not flagged."""
    _, kubeconfig = kube
    iam = local_aws.boto3_client("iam")
    eks = local_aws.boto3_client("eks")
    name = f"deploy-{uuid.uuid4().hex[:6]}"
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": local_aws.account_id},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    eks.create_access_entry(clusterName=eks_cluster.name, principalArn=role_arn, username="deploy")
    entry = eks.describe_access_entry(clusterName=eks_cluster.name, principalArn=role_arn)
    entry_created: datetime = entry["accessEntry"]["createdAt"]
    _into_next_second(entry_created)
    iam.delete_role(RoleName=name)
    again = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]
    assert again["Arn"] == role_arn
    assert again["CreateDate"].replace(microsecond=0) > entry_created  # the test's premise

    done = run_kubeiam(
        "access", "report", "--cluster", eks_cluster.name, "--kubeconfig", str(kubeconfig),
        "-o", "json", env=_env(aws_cli_env, local_aws),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout)["findings"]
    recreated = [f for f in findings if f["code"] == "recreated-principal"]
    assert [f["arns"] for f in recreated] == [[role_arn]]
    (finding,) = recreated
    assert finding["severity"] == "medium"
    assert (
        f"kubeiam mapping remove {role_arn} --store access-entries --cluster {eks_cluster.name}"
        in finding["message"]
    )
    assert f"kubeiam mapping add-role {role_arn}" in finding["message"]
    assert not any(f["code"] == "dangling-mapping" for f in findings)
