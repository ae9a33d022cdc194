"""`kubeiam access report` / `who-can` against the real kube-apiserver and the local AWS (issue 13).

The two onboarding workflows as an admin runs them (`kubeiam iam onboard-user` to
system:masters; `kubeiam iam create-access-role` + `grant`: an IAM group whose members assume a
role mapped to a group bound to `view`), plus a role trusted by the whole account, a dangling
mapping and a mapped group no binding names. The report must show the user as cluster admin
directly, the member reaching `view` through the role, and flag the account-wide trust, the
dangling and the dead entries; after `kubeiam iam revoke` the member is gone. The JSON and the
table of the first report are kept when E2E_ACCESS_REPORT names a file (with the HTML beside
it), for the issue's closing note.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from system import CLUSTER_ID, System, run_kubeiam

VIEWERS = "e2e-report-viewers"
NOBODY_GROUP = "e2e-report-unbound"


def _env(system: System) -> dict[str, str]:
    """The cluster owner: the local AWS's administrator keys and the admin kubeconfig."""
    admin = system.aws.admin
    return {
        **system.aws.client_env(),
        "AWS_ACCESS_KEY_ID": admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
        "AWS_REGION": system.aws.region,
        "KUBECONFIG": str(system.plane.admin_kubeconfig),
    }


def _ok(system: System, env: dict[str, str], *args: str) -> str:
    done = run_kubeiam(*args, env=env, timeout=180)
    assert done.returncode == 0, f"kubeiam {' '.join(args)}:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    for secret in system.secrets():
        assert secret not in done.stdout + done.stderr
    return done.stdout


def _report(system: System, env: dict[str, str], *extra: str) -> dict[str, Any]:
    out = _ok(system, env, "access", "report", "--cluster", CLUSTER_ID, "-o", "json", *extra)
    document: dict[str, Any] = json.loads(out)
    assert document["schemaVersion"] == 1
    return document


def _ways(report: dict[str, Any], arn: str) -> list[dict[str, Any]]:
    return [p for p in report["principals"] if p["arn"] == arn]


def _codes(report: dict[str, Any], arn: str) -> set[str]:
    return {f["code"] for f in report["findings"] if arn in f["arns"]}


def test_access_report_joins_iam_mappings_and_rbac(system: System, tmp_path: Path) -> None:
    sfx = uuid.uuid4().hex[:6]
    env = _env(system)
    iam = system.aws.boto3_client("iam")
    account = system.aws.account_id
    kubeconfig = str(system.plane.admin_kubeconfig)
    aws_auth = ("--store", "aws-auth", "--kubeconfig", kubeconfig)

    # Workflow 1: an IAM user onboarded straight to system:masters.
    admin_name = f"e2e-report-admin-{sfx}"
    _ok(
        system,
        env,
        "iam",
        "onboard-user",
        admin_name,
        "--cluster",
        CLUSTER_ID,
        "--group",
        "system:masters",
        *aws_auth,
        "--credentials-file",
        str(tmp_path / "credentials"),
    )
    admin_arn = system.aws.user_arn(admin_name)

    # Workflow 2: an access role for an IAM group; its Kubernetes group is bound to `view`.
    role = f"e2e-report-viewer-{sfx}"
    _ok(
        system,
        env,
        "iam",
        "create-access-role",
        role,
        "--cluster",
        CLUSTER_ID,
        "--group",
        VIEWERS,
        *aws_auth,
    )
    system.plane.kubectl(
        "create",
        "clusterrolebinding",
        f"e2e-report-viewers-{sfx}",
        "--clusterrole",
        "view",
        "--group",
        VIEWERS,
    )
    member = system.create_user(f"e2e-report-member-{sfx}")
    _ok(system, env, "iam", "grant", member.name, "--access-role", role)
    role_arn = f"arn:aws:iam::{account}:role/{role}"

    # A role any principal of the account may assume (its own identity policy permitting).
    open_role = f"e2e-report-open-{sfx}"
    open_arn = iam.create_role(
        RoleName=open_role,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": account},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    system.mapping("add-role", open_arn, "--username", "open:{{SessionName}}", "--group", VIEWERS)
    # A mapping whose role does not exist (whoever creates that name gets its access) ...
    dangling_arn = f"arn:aws:iam::{account}:role/e2e-report-gone-{sfx}"
    system.mapping("add-role", dangling_arn, "--username", "gone", "--group", VIEWERS)
    # ... and a mapped group that no RBAC binding names.
    unbound = system.create_user(f"e2e-report-unbound-{sfx}")
    system.mapping("add-user", unbound.arn, "--username", "unbound", "--group", NOBODY_GROUP)

    try:
        report = _report(system, env)

        (direct,) = _ways(report, admin_arn)
        assert direct["kind"] == "user"
        assert direct["via"] == []
        assert direct["clusterAdmin"] is True
        assert direct["source"] == "aws-auth"
        assert "system:masters" in direct["groups"]
        assert "cluster-admin" in _codes(report, admin_arn)

        (through_role,) = _ways(report, member.arn)
        assert through_role["via"] == [role_arn]
        assert through_role["decision"] == "allowed"
        assert through_role["clusterAdmin"] is False
        assert any(r.startswith("view cluster-wide") for r in through_role["rights"])

        assert "trusted-by-account" in _codes(report, open_arn)
        assert "dangling-mapping" in _codes(report, dangling_arn)
        dead = [f for f in report["findings"] if f["code"] == "dead-mapping-group"]
        assert any(NOBODY_GROUP in f["message"] for f in dead)
        assert not any(VIEWERS in f["message"] for f in dead)

        # The same report through the server's config: its backendMode order, its own file.
        by_config = _report(system, env, "--server-config", str(system.workdir / "server.yaml"))
        (file_user,) = _ways(by_config, system.file_user.arn)
        assert file_user["source"] == "file"
        assert _ways(by_config, member.arn)

        # who-can get pods: the member through the role; the admin directly.
        who = json.loads(
            _ok(
                system,
                env,
                "access",
                "who-can",
                "get",
                "pods",
                "-n",
                "default",
                "--cluster",
                CLUSTER_ID,
                "-o",
                "json",
            )
        )
        found = {(p["arn"], tuple(p["via"])) for p in who["principals"]}
        assert (member.arn, (role_arn,)) in found
        assert (admin_arn, ()) in found
        assert not any(p["arn"] == unbound.arn for p in who["principals"])

        # --fail-on: the cluster-admin finding is high, so `--fail-on high` exits 1 with the
        # report still on stdout.
        gated = run_kubeiam(
            "access", "report", "--cluster", CLUSTER_ID, "-o", "json", "--fail-on", "high",
            env=env, timeout=180,
        )  # fmt: skip
        assert gated.returncode == 1, gated.stderr
        assert json.loads(gated.stdout)["schemaVersion"] == 1

        # -o html --output-file: one self-contained page, written whole.
        page = tmp_path / "report.html"
        _ok(system, env, "access", "report", "--cluster", CLUSTER_ID, "-o", "html",
            "--output-file", str(page))  # fmt: skip
        html = page.read_text()
        assert html.startswith("<!DOCTYPE html>")
        assert admin_arn in html
        assert page.stat().st_mode & 0o777 == 0o600

        _keep_artifact(system, env, report, html)

        _ok(system, env, "iam", "revoke", member.name, "--access-role", role)
        after = _report(system, env)
        assert _ways(after, member.arn) == []
        assert _ways(after, admin_arn)
    finally:
        for arn in (open_arn, dangling_arn, unbound.arn, admin_arn, role_arn):
            run_kubeiam("mapping", "remove", arn, *aws_auth, "--ignore-not-found", env=env)
        system.plane.kubectl(
            "delete", "clusterrolebinding", f"e2e-report-viewers-{sfx}", check=False
        )


def _keep_artifact(system: System, env: dict[str, str], report: dict[str, Any], html: str) -> None:
    """The table and JSON of this report, for the issue's closing note (when asked for: the
    variable is not KUBEIAM_-prefixed because the suite scrubs those)."""
    target = os.environ.get("E2E_ACCESS_REPORT")
    if not target:
        return
    Path(target).with_suffix(".html").write_text(html)
    table = _ok(system, env, "access", "report", "--cluster", CLUSTER_ID)
    Path(target).write_text(
        "$ kubeiam access report --cluster kubeiam-e2e\n"
        + table
        + "\n$ kubeiam access report --cluster kubeiam-e2e -o json\n"
        + json.dumps(report, indent=2)
        + "\n"
    )
