"""One access entry with a policy on a real EKS cluster, compared with the local emulator.

Run it with ``make smoke-aws`` (docs/access-entries.md, "Testing against the real service"). It
uses the caller's credentials and ``KUBEIAM_SMOKE_CLUSTER``; it creates a temporary IAM role
(path ``/kubeiam-smoke/``) unless ``KUBEIAM_SMOKE_PRINCIPAL_ARN`` names an existing principal,
runs :func:`smoke_eks_script.run_script` on the real cluster, deletes what it created, then runs
the same script on the local emulator and fails on any difference in the answers.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from smoke_eks_script import (
    CLUSTER_VARIABLE,
    PRINCIPAL_VARIABLE,
    create_role,
    differences,
    run_script,
    temporary_role_name,
)

from kubeiam.localaws import start_local_aws


def test_access_entry_lifecycle_matches_the_emulator() -> None:
    session = boto3.Session()
    cluster = os.environ[CLUSTER_VARIABLE]
    eks: Any = session.client("eks")
    iam: Any = session.client("iam")
    identity = session.client("sts").get_caller_identity()
    account, partition = identity["Account"], identity["Arn"].split(":")[1]
    mode = eks.describe_cluster(name=cluster)["cluster"]["accessConfig"]["authenticationMode"]
    assert mode in ("API", "API_AND_CONFIG_MAP"), (
        f"cluster {cluster} is in {mode} mode: the smoke test never changes a cluster's mode; "
        "give it a cluster with access entries enabled"
    )

    given = os.environ.get(PRINCIPAL_VARIABLE)
    role_name = None if given else temporary_role_name()
    principal = given or create_role(iam, str(role_name), account, partition)
    try:
        real = run_script(eks, cluster, principal, retry_create=given is None)
    finally:
        if role_name is not None:
            iam.delete_role(RoleName=role_name)

    with start_local_aws(session.region_name or "us-east-1") as aws:
        local_eks = aws.boto3_client("eks")
        local_eks.create_cluster(
            name=cluster,
            roleArn=f"arn:{partition}:iam::{aws.account_id}:role/eks-cluster",
            resourcesVpcConfig={},
            accessConfig={"authenticationMode": mode},
        )
        name = principal.rsplit("/", 1)[1]
        path = "/" + principal.split(":", 5)[5].split("/", 1)[1].rsplit("/", 1)[0] + "/"
        path = path.replace("//", "/")
        local_principal = aws.create_role(name, trusted=aws.admin.arn, path=path)
        local = run_script(local_eks, cluster, local_principal, retry_create=False)

    assert differences(real, local) == []
