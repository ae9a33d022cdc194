"""Identities and objects shared by the mapping tests (built through the real constructors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from kubeiam.identity import Identity, identity_from_caller

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"


def user_identity(name: str = "kubedemy", account: str = ACCOUNT, path: str = "") -> Identity:
    return identity_from_caller(
        arn=f"arn:aws:iam::{account}:user/{path}{name}",
        account=account,
        user_id="AIDAEXAMPLEUSER00001",
        access_key_id="AKIAEXAMPLEKEY000001",
        partition="aws",
    )


def role_identity(
    role: str = "Admin",
    session: str = "alice@example.com",
    account: str = ACCOUNT,
    role_id: str = "AROAEXAMPLEROLE00001",
    partition: str = "aws",
) -> Identity:
    return identity_from_caller(
        arn=f"arn:{partition}:sts::{account}:assumed-role/{role}/{session}",
        account=account,
        user_id=f"{role_id}:{session}",
        access_key_id="ASIAEXAMPLEKEY000002",
        partition=partition,
    )


def config_map(sections: Mapping[str, Sequence[Any]], *, rv: str = "100") -> dict[str, Any]:
    """An aws-auth ConfigMap whose data holds each section as a YAML string."""
    data = {
        name: yaml.safe_dump(list(entries), sort_keys=False)
        for name, entries in sections.items()
        if entries
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system", "resourceVersion": rv},
        "data": data,
    }


def crd_objects(sections: Mapping[str, Sequence[Any]], *, rv: int = 200) -> list[dict[str, Any]]:
    """One IAMIdentityMapping per mapRoles/mapUsers entry (the CRD has no SSO or accounts)."""
    out: list[dict[str, Any]] = []
    for section, arn_key in (("mapRoles", "rolearn"), ("mapUsers", "userarn")):
        for i, entry in enumerate(sections.get(section, ())):
            spec: dict[str, Any] = {"arn": entry[arn_key], "username": entry["username"]}
            if "groups" in entry:
                spec["groups"] = entry["groups"]
            out.append(
                {
                    "apiVersion": "iamauthenticator.k8s.aws/v1alpha1",
                    "kind": "IAMIdentityMapping",
                    "metadata": {"name": f"{section.lower()}-{i:03d}", "resourceVersion": str(rv)},
                    "spec": spec,
                }
            )
            rv += 1
    return out


async def ec2_names(instance_id: str) -> str:
    """A stand-in EC2 resolver for the pure tests (the real one is tested against moto's EC2)."""
    known = {
        "i-0123456789abcdef0": "ip-10-0-0-1.ec2.internal",
        "i-01234567": "ip-10-0-0-2.ec2.internal",
    }
    if instance_id not in known:
        raise LookupError(instance_id)
    return known[instance_id]
