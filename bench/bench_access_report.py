"""Benchmark: `kubeiam access report` over 1,000 IAM principals and 2,000 mapping rows.

The account lives in the local AWS (moto behind its HTTP endpoint, IAM authorization enforced):
600 users in 20 IAM groups whose policies let them assume some of 380 roles; the roles trust the
account, one user, or another role (chains). The mapping is a 2,000-row DynamicFile read through
``--server-config`` (every user, role and group, plus 1,000 roles that do not exist: dangling).
RBAC is 60 ClusterRoles and 300 bindings held by an in-memory stand-in for the Kubernetes API
(what is measured is kubeiam's work and the AWS round trips, not an API server's).

Measured, as the command runs it: :func:`kubeiam.access.collect.collect` (IAM's
GetAccountAuthorizationDetails pages and credential report over HTTP, the file, RBAC),
:func:`~kubeiam.access.report.build_report` and the JSON rendering. Goal (issue 13): under 10 s.
Prints the median of several runs and PASS/MISS.

Run: ``.venv/bin/python bench/bench_access_report.py [--runs N] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeiam.localaws.environment import LocalAWS, start_local_aws

GOAL_S = 10.0
USERS = 600
GROUPS = 20
ROLES = 380
DANGLING = 1_000
CLUSTER_ROLES = 60
BINDINGS = 300


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def populate(aws: LocalAWS) -> tuple[list[str], list[str], list[str]]:
    """Create the account (setup, not measured); returns user, role and group ARNs."""
    iam = aws.boto3_client("iam")
    account = aws.account_id
    root = f"arn:aws:iam::{account}:root"
    users = [f"bench-user-{i}" for i in range(USERS)]
    groups = [f"bench-group-{i}" for i in range(GROUPS)]
    roles = [f"bench-role-{i}" for i in range(ROLES)]
    role_arn = [f"arn:aws:iam::{account}:role/{r}" for r in roles]
    user_arn = [f"arn:aws:iam::{account}:user/{u}" for u in users]

    def trust(i: int) -> str:
        if i % 4 == 0:
            principal = user_arn[i % USERS]
        elif i % 4 == 1 and i > 0:
            principal = role_arn[i - 1]
        else:
            principal = root
        return _doc(
            {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
        )

    # One call at a time: moto's IAM backend is not safe under concurrent writes.
    for name in groups:
        iam.create_group(GroupName=name)
    for name in users:
        iam.create_user(UserName=name)
    for i, name in enumerate(roles):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(i))
    for i, name in enumerate(users):
        iam.add_user_to_group(GroupName=groups[i % GROUPS], UserName=name)
    for g, name in enumerate(groups):
        # Each group's members may assume 19 of the roles.
        allowed = role_arn[g * 19 : g * 19 + 19]
        iam.put_group_policy(
            GroupName=name,
            PolicyName="assume",
            PolicyDocument=_doc(
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": allowed}
            ),
        )
    group_arn = [f"arn:aws:iam::{account}:group/{g}" for g in groups]
    return user_arn, role_arn, group_arn


def write_mapping(
    path: Path, account: str, users: list[str], roles: list[str], groups: list[str]
) -> int:
    """The server config (DynamicFile) and its 2,000-row mapping file; returns the row count."""
    dynamic = path.with_name("mapping.json")
    k8s = [f"team-{i}" for i in range(BINDINGS // 2)]
    doc = {
        "mapRoles": [
            {"rolearn": arn, "username": f"r{i}:{{{{SessionName}}}}", "groups": [k8s[i % len(k8s)]]}
            for i, arn in enumerate(roles)
        ]
        + [
            {
                "rolearn": f"arn:aws:iam::{account}:role/bench-gone-{i}",
                "username": f"gone-{i}",
                "groups": ["gone"],
            }
            for i in range(DANGLING)
        ],
        "mapUsers": [
            {"userarn": arn, "username": f"u{i}", "groups": [k8s[(i * 7) % len(k8s)]]}
            for i, arn in enumerate(users)
        ],
        "mapGroups": [
            {"grouparn": arn, "username": f"g{i}:{{{{AccessKeyID}}}}", "groups": [k8s[i]]}
            for i, arn in enumerate(groups)
        ],
    }
    dynamic.write_text(json.dumps(doc))
    path.write_text(
        json.dumps(
            {
                "clusterID": "bench",
                "server": {"backendMode": ["DynamicFile"], "dynamicfilepath": str(dynamic)},
            }
        )
    )
    return sum(len(v) for v in doc.values())


class _Obj:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def to_dict(self) -> Mapping[str, Any]:
        return self.raw


class KubeStandIn:
    """Answers the four RBAC lists from memory (the report's only Kubernetes reads here)."""

    def __init__(self) -> None:
        verbs = (["get", "list", "watch"], ["create", "update", "delete"], ["*"])
        self.objects: dict[str, list[dict[str, Any]]] = {
            "ClusterRole": [
                {
                    "metadata": {"name": f"bench-cr-{i}"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["pods", "secrets"][: 1 + i % 2],
                            "verbs": verbs[i % 2],
                        }
                    ],
                }
                for i in range(CLUSTER_ROLES)
            ],
            "Role": [],
            "ClusterRoleBinding": [
                {
                    "metadata": {"name": f"bench-crb-{i}"},
                    "roleRef": {"kind": "ClusterRole", "name": f"bench-cr-{i % CLUSTER_ROLES}"},
                    "subjects": [{"kind": "Group", "name": f"team-{i % (BINDINGS // 2)}"}],
                }
                for i in range(BINDINGS // 2)
            ],
            "RoleBinding": [
                {
                    "metadata": {"name": f"bench-rb-{i}", "namespace": f"ns-{i % 10}"},
                    "roleRef": {"kind": "ClusterRole", "name": f"bench-cr-{i % CLUSTER_ROLES}"},
                    "subjects": [{"kind": "Group", "name": f"team-{i % (BINDINGS // 2)}"}],
                }
                for i in range(BINDINGS // 2)
            ],
        }

    async def list(self, kind: Any, **_: Any) -> AsyncIterator[_Obj]:
        for raw in self.objects[kind.__name__]:
            yield _Obj(raw)

    async def close(self) -> None:
        return None


def one_report(config: Path) -> tuple[float, int, int, list[str]]:
    """One report as the command makes it: seconds, principals, findings, and when each read
    finished (the reads run at the same time)."""
    from kubeiam.access.collect import Where, collect, read_account_iam
    from kubeiam.access.report import build_report, report_json
    from kubeiam.aws.clients import AWSClients

    started = time.perf_counter()
    phases: list[str] = []

    def progress(message: str) -> None:
        phases.append(f"{message} at {time.perf_counter() - started:.2f} s")

    clients = AWSClients()
    inputs = asyncio.run(
        collect(
            Where(server_config=config),
            KubeStandIn,
            lambda: read_account_iam(clients),
            progress=progress,
        )
    )
    report = build_report(
        "bench",
        inputs.rows,
        inputs.graph(),
        inputs.rbac,
        now=datetime.now(UTC),
        access_keys=inputs.access_keys,
    )
    phases.append(f"joined at {time.perf_counter() - started:.2f} s")
    json.dumps(report_json(report))
    return time.perf_counter() - started, len(report.principals), len(report.findings), phases


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else args.runs
    with start_local_aws("us-east-1") as aws, tempfile.TemporaryDirectory() as tmp:
        setup = time.perf_counter()
        users, roles, groups = populate(aws)
        config = Path(tmp) / "server.yaml"
        rows = write_mapping(config, aws.account_id, users, roles, groups)
        print(
            f"setup: {len(users) + len(roles) + len(groups)} IAM principals, {rows} mapping rows "
            f"({time.perf_counter() - setup:.1f} s, not measured)"
        )
        os.environ.update(aws.client_env())
        os.environ["AWS_ACCESS_KEY_ID"] = aws.admin.access_key_id
        os.environ["AWS_SECRET_ACCESS_KEY"] = aws.admin.secret_access_key
        times = []
        for _ in range(runs):
            seconds, principals, findings, phases = one_report(config)
            times.append(seconds)
        median = statistics.median(times)
    ok = median < GOAL_S
    print("last run: " + "; ".join(phases))
    print(
        f"report: {principals} ways in, {findings} findings; runs: "
        + ", ".join(f"{t:.2f}" for t in times)
    )
    print(f"{'access report':<22}{median:>9.2f}s{GOAL_S:>9.1f}s  {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
