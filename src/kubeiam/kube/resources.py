"""The Kubernetes resources kubeiam reads and writes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

#: The IAMIdentityMapping CRD (deploy/crd.yaml), as the reference defines it.
CRD_GROUP = "iamauthenticator.k8s.aws"
CRD_VERSION = "v1alpha1"
CRD_KIND = "IAMIdentityMapping"
CRD_PLURAL = "iamidentitymappings"


@lru_cache(maxsize=1)
def iam_identity_mapping() -> Any:
    """The lightkube resource class for IAMIdentityMapping (built on first use, not at import)."""
    from lightkube.generic_resource import create_global_resource

    return create_global_resource(CRD_GROUP, CRD_VERSION, CRD_KIND, CRD_PLURAL)


def config_map() -> Any:
    """The lightkube resource class for core/v1 ConfigMap."""
    from lightkube.resources.core_v1 import ConfigMap

    return ConfigMap
