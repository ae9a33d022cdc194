"""`kubeiam migrate` proven on the real kube-apiserver, with EKS played by eks_standin.py.

aws-auth holds both seed workflows (an onboarded user, an IAM group's role that its member
assumes) and the awkward rows: the role written without its IAM path, a duplicate ARN (the last
row is the one that applies), a non-masters ``system:`` group whose meaning is its RBAC binding,
and mapAccounts. `kubectl auth whoami` and `kubectl auth can-i` show, through kubeiam's webhook
configured as EKS configures the authenticator, that every migrated principal keeps its access
after apply, rollback gives back the before state, and after finish (mode API) the
cannot-migrate principal loses its access exactly as the plan said while the others keep theirs.
The stand-in reads EKS's rules from AWS's documentation, not kubeiam's own mode logic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from eks_standin import EksStandIns
from system import System, aws_env, groups_of, run_kubeiam, wait_for

DEVS = "e2e-mg-devs"
MONITORING = "system:e2e-mg-monitoring"  # a system: group whose meaning is its binding
REPLACEMENT = "kubeiam:e2e-mg-monitoring"
READER = "e2e-mg-pod-reader"
COPY = "e2e-mg-monitoring-kubeiam-e2e-mg-monitoring"  # the plan's name for the binding's copy


def _env(system: System, workdir: Path) -> dict[str, str]:
    admin = system.aws.admin
    return {
        **aws_env(system.aws, admin.access_key_id, admin.secret_access_key, workdir),
        "KUBEIAM_STATE_DIR": str(workdir / "state"),
        "KUBECONFIG": "",
    }


def _groups(info: dict[str, Any]) -> set[str]:
    return groups_of(info) - {"system:authenticated"}


def _can_i(system: System, kubeconfig: Path, *args: str) -> str:
    done = system.kubectl(kubeconfig, "auth", "can-i", *args)
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i {' '.join(args)}: {done.stderr}"
    return answer


def _binding(name: str, role: str, group: str) -> dict[str, Any]:
    rbac = "rbac.authorization.k8s.io"
    return {
        "apiVersion": f"{rbac}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": rbac, "kind": "Group", "name": group}],
    }


def test_migrate_keeps_access_rolls_back_and_finishes(
    system: System,
    eks_standin: EksStandIns,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    started = time.monotonic()
    aws = system.aws
    eks = aws.boto3_client("eks")
    standin = eks_standin.start("CONFIG_MAP")
    cluster = standin.cluster
    env = _env(system, tmp_path)
    admin_kubeconfig = system.plane.admin_kubeconfig
    context = yaml.safe_load(admin_kubeconfig.read_text())["current-context"]
    where = ["--cluster", cluster, "--kubeconfig", str(admin_kubeconfig), "--context", context]

    def migrate(command: str, *args: str) -> Any:
        done = run_kubeiam("migrate", command, *where, *args, env=env)
        assert done.returncode == 0, f"migrate {command}: {done.stderr}"
        return done

    admin = system.create_user("e2e-mg-admin")
    alice = system.create_user("e2e-mg-alice")  # the onboarded user
    member = system.create_user("e2e-mg-member")  # the IAM group's member
    mon = system.create_user("e2e-mg-mon")
    stranger = system.create_user("e2e-mg-account")  # only mapAccounts maps it
    account_root = f"arn:aws:iam::{aws.account_id}:root"
    team = aws.create_role(
        "e2e-mg-team", trusted=account_root, grant_to_user=member.name, path="/teams/"
    )
    short = team.replace("/teams/", "/")  # written without its path, as aws-auth needs it
    # The duplicate is the same mapping twice: `kubeiam server` refuses an aws-auth whose rows for
    # one ARN conflict (aws-iam-authenticator silently keeps the last); which row the plan keeps
    # when they differ is proven by the planner's unit and integration tests.
    row = {"rolearn": short, "username": "team:{{SessionName}}", "groups": [DEVS]}
    roles = [row, dict(row)]
    users = [
        {"userarn": admin.arn, "username": "e2e-mg-admin", "groups": ["system:masters"]},
        {"userarn": alice.arn, "username": "alice", "groups": [DEVS]},
        {"userarn": mon.arn, "username": "e2e-mg-mon", "groups": [MONITORING]},
    ]
    saved = system.aws_auth_data()
    # A ClusterRole of its own: the built-in "view" is aggregated by kube-controller-manager,
    # which the e2e control plane does not run.
    reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": READER},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }
    manifest = {"apiVersion": "v1", "kind": "List", "items": [
        reader, _binding("e2e-mg-devs", READER, DEVS),
        _binding("e2e-mg-monitoring", READER, MONITORING),
    ]}  # fmt: skip
    system.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    try:
        system.write_aws_auth(
            {
                "mapRoles": yaml.safe_dump(roles),
                "mapUsers": yaml.safe_dump(users),
                "mapAccounts": yaml.safe_dump([aws.account_id]),
            }
        )
        kubeconfigs = {
            u.name: system.token_kubeconfig(u, cache=False) for u in (admin, alice, mon, stranger)
        }
        kubeconfigs["team"] = system.token_kubeconfig(
            member, role=team, session_name="bob", cache=False, label="e2e-mg-team-bob"
        )

        def identities() -> dict[str, tuple[str, set[str]]]:
            out = {}
            for name, kubeconfig in kubeconfigs.items():
                info = system.wait_authenticated(kubeconfig)
                out[name] = (str(info["username"]), _groups(info))
            return out

        def access() -> dict[str, str]:
            return {
                "admin": _can_i(system, kubeconfigs[admin.name], "delete", "nodes"),
                "alice": _can_i(system, kubeconfigs[alice.name], "list", "pods", "-A"),
                "team": _can_i(system, kubeconfigs["team"], "list", "pods", "-A"),
                "mon": _can_i(system, kubeconfigs[mon.name], "list", "pods", "-A"),
                "alice-write": _can_i(system, kubeconfigs[alice.name], "create", "deployments"),
            }

        granted = {"admin": "yes", "alice": "yes", "team": "yes", "mon": "yes", "alice-write": "no"}
        before = identities()
        assert before["team"] == ("team:bob", {DEVS})
        assert before[stranger.name] == (stranger.arn, set())  # mapAccounts: its ARN
        assert access() == granted

        plan = json.loads(migrate("plan", "-o", "json").stdout)
        verdicts = {(r["source"], r["written"]): r["verdict"] for r in plan["rows"]}
        assert verdicts == {
            ("mapRoles[0]", short): "ignored",
            ("mapRoles[1]", short): "exact",
            ("mapUsers[0]", admin.arn): "equivalent",
            ("mapUsers[1]", alice.arn): "exact",
            ("mapUsers[2]", mon.arn): "needs-rbac",
            ("mapAccounts[0]", aws.account_id): "cannot-migrate",
        }
        (mon_row,) = [r for r in plan["rows"] if r["verdict"] == "needs-rbac"]
        assert [b["name"] for b in mon_row["rbacBindings"]] == [COPY]

        # apply: every migrated principal keeps its access, now from its access entry.
        applied = migrate("apply")
        # aws-auth was backed up with the aws-auth store's own history first.
        assert "aws-auth backup: ConfigMap kube-system/aws-auth-kubeiam-backup" in applied.stdout
        listed = run_kubeiam("mapping", "restore", "--list", *where[2:], env=env)
        assert listed.returncode == 0, listed.stderr
        assert "kubeiam migrate apply" in listed.stdout
        assert standin.sync().backends == ("DynamicFile", "EKSConfigMap")
        wait_for(
            lambda: True if REPLACEMENT in _groups(system.whoami(kubeconfigs[mon.name]) or {})
            else None,
            timeout=30, what="the monitoring user's entry served",
        )  # fmt: skip
        after = identities()
        assert after[alice.name] == before[alice.name]
        assert after["team"] == before["team"]
        assert after[mon.name] == ("e2e-mg-mon", {REPLACEMENT})  # the plan's replacement group
        assert after[admin.name] == ("e2e-mg-admin", set())  # the policy, not system:masters
        assert after[stranger.name] == before[stranger.name]  # aws-auth still read
        assert access() == granted
        verified = json.loads(migrate("verify", "-o", "json").stdout)
        assert verified["ok"] is True
        still = [d["source"] for d in verified["stillDependsOnAwsAuth"]]
        assert still == ["mapAccounts[0]"]

        # rollback: the before state, aws-auth deciding again; the binding's copy is gone.
        migrate("rollback")
        standin.sync()
        wait_for(
            lambda: True if MONITORING in _groups(system.whoami(kubeconfigs[mon.name]) or {})
            else None,
            timeout=30, what="the monitoring user back on aws-auth",
        )  # fmt: skip
        assert identities() == before
        assert access() == granted
        gone = system.plane.kubectl("get", "clusterrolebinding", COPY, check=False)
        assert gone.returncode != 0
        assert eks.describe_cluster(name=cluster)["cluster"]["accessConfig"][
            "authenticationMode"
        ] == "API_AND_CONFIG_MAP"  # fmt: skip

        # apply again, then finish: mode API, aws-auth no longer read.
        migrate("apply")
        finished = migrate("finish", "--yes")
        assert "kubectl -n kube-system delete configmap aws-auth" in finished.stdout
        assert standin.sync().backends == ("DynamicFile",)
        system.wait_unauthorized(kubeconfigs[stranger.name])  # cannot-migrate: as planned
        final = identities_without(kubeconfigs, stranger.name, system)
        assert final[alice.name] == before[alice.name]
        assert final["team"] == before["team"]
        assert final[mon.name] == ("e2e-mg-mon", {REPLACEMENT})
        assert access() == granted
        assert system.aws_auth_data()  # finish never deletes aws-auth
    finally:
        system.write_aws_auth(saved)
        for name in ("e2e-mg-devs", "e2e-mg-monitoring", COPY):
            system.plane.kubectl("delete", "clusterrolebinding", name, "--ignore-not-found")
        system.plane.kubectl("delete", "clusterrole", READER, "--ignore-not-found")
    record_property("measured: migrate e2e", f"{time.monotonic() - started:.1f} s")


def identities_without(
    kubeconfigs: dict[str, Path], skip: str, system: System
) -> dict[str, tuple[str, set[str]]]:
    return {
        name: (str(info["username"]), _groups(info))
        for name, kubeconfig in kubeconfigs.items()
        if name != skip
        for info in [system.wait_authenticated(kubeconfig)]
    }
