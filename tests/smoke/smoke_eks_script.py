"""The access-entry script the smoke test runs twice: on real EKS, then on the local emulator.

Both runs produce a :class:`Transcript`: one line per call, the answer with everything that
differs by nature (timestamps, account ids, names, uuids) replaced by placeholders, or the error
code. :func:`differences` compares two transcripts. This module is plain Python (no pytest) so
the integration suite can run the same script on the emulator alone.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from kubeiam.localaws.eks_rules import ACCESS_POLICY_NAMES

#: The disposable cluster the smoke test creates and deletes one access entry in.
CLUSTER_VARIABLE = "KUBEIAM_SMOKE_CLUSTER"
#: An existing IAM role or user (without an access entry) to use instead of a temporary role.
PRINCIPAL_VARIABLE = "KUBEIAM_SMOKE_PRINCIPAL_ARN"
VIEW_POLICY = "arn:{partition}:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
NAMESPACE = "kubeiam-smoke"
GROUP = "kubeiam-smoke"
ROLE_PATH = "/kubeiam-smoke/"
#: How long a role fresh from IAM may stay unknown to EKS (IAM is eventually consistent).
IAM_PROPAGATION_SECONDS = 60.0


@dataclass
class Transcript:
    lines: list[tuple[str, Any]] = field(default_factory=list)

    def add(self, step: str, outcome: Any) -> None:
        self.lines.append((step, outcome))


def temporary_role_name() -> str:
    return f"kubeiam-smoke-{uuid.uuid4().hex[:10]}"


def create_role(iam: Any, name: str, account: str, partition: str) -> str:
    """A role nobody can use: trusted by its own account, no permissions."""
    trust = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
        f'{{"AWS":"arn:{partition}:iam::{account}:root"}},"Action":"sts:AssumeRole"}}]}}'
    )
    role = iam.create_role(
        RoleName=name,
        Path=ROLE_PATH,
        AssumeRolePolicyDocument=trust,
        Description="kubeiam smoke test: deleted at the end of the run",
        Tags=[{"Key": "kubeiam-smoke", "Value": "true"}],
    )
    return str(role["Role"]["Arn"])


def normalise(value: Any, replacements: dict[str, str]) -> Any:
    """``value`` with timestamps, uuids and the run's own names replaced by placeholders."""
    if isinstance(value, dict):
        return {
            k: normalise(v, replacements)
            for k, v in sorted(value.items())
            if k != "ResponseMetadata"
        }
    if isinstance(value, list):
        return [normalise(v, replacements) for v in value]
    if isinstance(value, datetime):
        return "<timestamp>"
    if isinstance(value, str):
        for real, placeholder in replacements.items():
            value = value.replace(real, placeholder)
        return re.sub(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", value
        )
    return value


def _outcome(call: Callable[[], Any], replacements: dict[str, str]) -> Any:
    try:
        return normalise(call(), replacements)
    except ClientError as error:
        return {"error": error.response["Error"]["Code"]}


def run_script(eks: Any, cluster: str, principal_arn: str, *, retry_create: bool) -> Transcript:
    """Create, read, associate, update, probe and delete one access entry; never leave it."""
    partition, account = principal_arn.split(":")[1], principal_arn.split(":")[4]
    role_name = principal_arn.rsplit("/", 1)[1]
    policy = VIEW_POLICY.format(partition=partition)
    replacements = {
        principal_arn: "<principal>",
        cluster: "<cluster>",
        role_name: "<role-name>",
        account: "<account>",
        eks.meta.region_name: "<region>",
    }
    transcript = Transcript()
    mode = eks.describe_cluster(name=cluster)["cluster"]["accessConfig"]["authenticationMode"]
    transcript.add("cluster mode allows access entries", mode in ("API", "API_AND_CONFIG_MAP"))
    pages = eks.get_paginator("list_access_policies").paginate()
    listed_policies = {p["name"]: p["arn"] for page in pages for p in page["accessPolicies"]}
    # The service may list newer policies than the emulator knows; every one it knows must exist.
    transcript.add(
        "the emulator's access policies exist, with their ARNs",
        sorted(
            name
            for name in ACCESS_POLICY_NAMES
            if listed_policies.get(name)
            != VIEW_POLICY.format(partition=partition).replace("AmazonEKSViewPolicy", name)
        ),
    )

    def create() -> Any:
        deadline = time.monotonic() + (IAM_PROPAGATION_SECONDS if retry_create else 0)
        while True:
            try:
                return eks.create_access_entry(
                    clusterName=cluster,
                    principalArn=principal_arn,
                    kubernetesGroups=[GROUP],
                    tags={"kubeiam-smoke": "true"},
                )
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if code != "InvalidParameterException" or time.monotonic() > deadline:
                    raise
                time.sleep(5)

    entry = {"clusterName": cluster, "principalArn": principal_arn}
    transcript.add("create", _outcome(create, replacements))
    try:
        transcript.add(
            "describe", _outcome(lambda: eks.describe_access_entry(**entry), replacements)
        )
        transcript.add(
            "associate view in a namespace",
            _outcome(
                lambda: eks.associate_access_policy(
                    **entry,
                    policyArn=policy,
                    accessScope={"type": "namespace", "namespaces": [NAMESPACE]},
                ),
                replacements,
            ),
        )
        transcript.add(
            "list associated",
            _outcome(lambda: eks.list_associated_access_policies(**entry), replacements),
        )
        listed = eks.list_access_entries(clusterName=cluster, associatedPolicyArn=policy)
        transcript.add("listed by policy", principal_arn in listed["accessEntries"])
        transcript.add(
            "update groups",
            _outcome(
                lambda: eks.update_access_entry(**entry, kubernetesGroups=[GROUP, f"{GROUP}-2"]),
                replacements,
            ),
        )
        transcript.add(
            "create again",
            _outcome(lambda: eks.create_access_entry(**entry), replacements),
        )
        transcript.add(
            "reserved username",
            _outcome(
                lambda: eks.update_access_entry(**entry, username="system:smoke"), replacements
            ),
        )
        transcript.add(
            "reserved group",
            _outcome(
                lambda: eks.update_access_entry(**entry, kubernetesGroups=["system:masters"]),
                replacements,
            ),
        )
        transcript.add(
            "namespace scope without namespaces",
            _outcome(
                lambda: eks.associate_access_policy(
                    **entry, policyArn=policy, accessScope={"type": "namespace"}
                ),
                replacements,
            ),
        )
        transcript.add(
            "disassociate",
            _outcome(
                lambda: eks.disassociate_access_policy(**entry, policyArn=policy), replacements
            ),
        )
    finally:
        transcript.add("delete", _outcome(lambda: eks.delete_access_entry(**entry), replacements))
    transcript.add(
        "describe deleted", _outcome(lambda: eks.describe_access_entry(**entry), replacements)
    )
    return transcript


def differences(real: Transcript, local: Transcript) -> list[str]:
    """Where the emulator's transcript departs from the service's, one line per step."""
    found = []
    if [s for s, _ in real.lines] != [s for s, _ in local.lines]:
        found.append(f"steps differ: {[s for s, _ in real.lines]} != {[s for s, _ in local.lines]}")
    for (step, want), (_, got) in zip(real.lines, local.lines, strict=False):
        if want != got:
            found.append(f"{step}: service {want!r} != emulator {got!r}")
    return found
