"""deploy/crd.yaml describes the resource the CRD backend watches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubeiam.kube.resources import CRD_GROUP, CRD_KIND, CRD_PLURAL, CRD_VERSION

MANIFEST = Path(__file__).parents[3] / "deploy" / "crd.yaml"


def test_manifest_matches_the_watched_resource() -> None:
    crd: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{CRD_PLURAL}.{CRD_GROUP}"
    assert (spec["group"], spec["scope"]) == (CRD_GROUP, "Cluster")
    assert (spec["names"]["kind"], spec["names"]["plural"]) == (CRD_KIND, CRD_PLURAL)
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (CRD_VERSION, True, True)
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    assert schema["spec"]["required"] == ["arn", "username"]
    assert set(schema["spec"]["properties"]) == {"arn", "username", "groups"}
    assert set(schema["status"]["properties"]) == {"canonicalARN", "userID"}


def test_resource_class_is_built_lazily_and_cluster_scoped() -> None:
    from lightkube.core.resource import GlobalResource, api_info

    from kubeiam.kube.resources import iam_identity_mapping

    res = iam_identity_mapping()
    assert res is iam_identity_mapping()
    assert issubclass(res, GlobalResource)
    info = api_info(res)
    assert info.resource == (CRD_GROUP, CRD_VERSION, CRD_KIND)
    assert info.plural == CRD_PLURAL
