"""The smoke test's script (tests/smoke), run on the local emulator, and its refusal to run
against the real service without credentials and a cluster (``make smoke-aws``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from kubeiam.localaws.environment import LocalAWS

SMOKE = Path(__file__).resolve().parents[1] / "smoke"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke_eks_script", SMOKE / "smoke_eks_script.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def run_once(local_aws: LocalAWS, script: ModuleType, mode: str) -> object:
    eks = local_aws.boto3_client("eks")
    cluster = f"smoke-{uuid.uuid4().hex[:8]}"
    eks.create_cluster(
        name=cluster,
        roleArn="arn:aws:iam::123456789012:role/eks-cluster",
        resourcesVpcConfig={},
        accessConfig={"authenticationMode": mode, "bootstrapClusterCreatorAdminPermissions": False},
    )
    role = local_aws.create_role(
        script.temporary_role_name(), trusted=local_aws.admin.arn, path=script.ROLE_PATH
    )
    return script.run_script(eks, cluster, role, retry_create=False)


def test_script_on_the_emulator(local_aws: LocalAWS, script: ModuleType) -> None:
    first = run_once(local_aws, script, "API")
    second = run_once(local_aws, script, "API_AND_CONFIG_MAP")
    assert script.differences(first, second) == []
    outcomes = dict(first.lines)  # type: ignore[attr-defined]
    assert outcomes["cluster mode allows access entries"] is True
    assert outcomes["listed by policy"] is True
    assert outcomes["the emulator's access policies exist, with their ARNs"] == []
    assert outcomes["create"]["accessEntry"]["principalArn"] == "<principal>"
    assert outcomes["create"]["accessEntry"]["accessEntryArn"] == (
        "arn:aws:eks:<region>:<account>:access-entry/<cluster>/role/<account>/<role-name>/<uuid>"
    )
    assert outcomes["create again"] == {"error": "ResourceInUseException"}
    assert outcomes["reserved username"] == {"error": "InvalidParameterException"}
    assert outcomes["reserved group"] == {"error": "InvalidParameterException"}
    assert outcomes["namespace scope without namespaces"] == {"error": "InvalidParameterException"}
    assert outcomes["describe deleted"] == {"error": "ResourceNotFoundException"}


def test_differences_name_the_step(script: ModuleType) -> None:
    real, local = script.Transcript(), script.Transcript()
    real.add("create", {"accessEntry": {"type": "STANDARD"}})
    local.add("create", {"accessEntry": {"type": "EC2_LINUX"}})
    (line,) = script.differences(real, local)
    assert line.startswith("create: service ")
    local.add("extra", True)
    assert any(d.startswith("steps differ") for d in script.differences(real, local))


@pytest.mark.parametrize(
    ("extra", "named"),
    [({}, "KUBEIAM_SMOKE_CLUSTER"), ({"KUBEIAM_SMOKE_CLUSTER": "c"}, "AWS credentials")],
    ids=["no-cluster", "no-credentials"],
)
def test_smoke_refuses_without_credentials_and_cluster(
    tmp_path: Path, extra: dict[str, str], named: str
) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        # Never let botocore ask an instance metadata service from a test.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        **extra,
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            str(SMOKE / "smoke_eks_access.py"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "refusing to run against the real EKS service" in run.stdout + run.stderr
    assert named in run.stdout + run.stderr
