"""An EKS cluster of the local AWS for the access-entries tests: its entries as EKS holds them,
and `kubeiam mapping --store access-entries` run against it as a real process."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeiam.localaws.environment import LocalAWS
from support.cli import run_kubeiam

VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
EDIT = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Principals:
    """IAM users and roles with names no other test uses, in the local AWS."""

    aws: LocalAWS
    iam: Any

    def role(self, *, path: str = "/") -> str:
        return self.aws.create_role(unique("role"), trusted=self.aws.admin.arn, path=path)

    def user(self) -> str:
        name = unique("user")
        self.iam.create_user(UserName=name)
        return self.aws.user_arn(name)


@dataclass
class Cluster(Principals):
    eks: Any
    name: str
    env: dict[str, str]

    def kubeiam(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_kubeiam(
            "mapping", *args, "--store", "access-entries", "--cluster", self.name, env=self.env
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.kubeiam(*args)
        assert done.returncode == 0, done.stderr
        return done

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every entry as EKS holds it, with its associated policies (principal ARN -> ...)."""
        out = {}
        pages = self.eks.get_paginator("list_access_entries").paginate(clusterName=self.name)
        for arn in [a for page in pages for a in page["accessEntries"]]:
            entry = self.eks.describe_access_entry(clusterName=self.name, principalArn=arn)
            policies = self.eks.list_associated_access_policies(
                clusterName=self.name, principalArn=arn
            )["associatedAccessPolicies"]
            out[arn] = {
                "type": entry["accessEntry"]["type"],
                "username": entry["accessEntry"]["username"],
                "groups": entry["accessEntry"]["kubernetesGroups"],
                "policies": {p["policyArn"]: p["accessScope"] for p in policies},
            }
        return out


def new_cluster(eks: Any, mode: str | None = "API_AND_CONFIG_MAP", **config: Any) -> str:
    """A new EKS cluster in ``mode`` (None: no accessConfig, EKS's default) with the other
    ``accessConfig`` members in ``config``."""
    name = unique("cluster")
    access = dict(config)
    if mode is not None:
        access["authenticationMode"] = mode
    kwargs: dict[str, Any] = {"accessConfig": access} if access else {}
    eks.create_cluster(
        name=name,
        roleArn="arn:aws:iam::123456789012:role/eks-cluster",
        resourcesVpcConfig={},
        **kwargs,
    )
    return name


def make_cluster(
    local_aws: LocalAWS,
    admin_cli_env: dict[str, str],
    tmp_path: Path,
    mode: str = "API_AND_CONFIG_MAP",
) -> Cluster:
    """A new cluster in ``mode``; its CLI environment keeps kubeiam's state under ``tmp_path``."""
    eks = local_aws.boto3_client("eks")
    env = {**admin_cli_env, "KUBEIAM_STATE_DIR": str(tmp_path / "state")}
    return Cluster(
        aws=local_aws,
        iam=local_aws.boto3_client("iam"),
        eks=eks,
        name=new_cluster(eks, mode),
        env=env,
    )
