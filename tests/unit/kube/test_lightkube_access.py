"""kubeiam.kube over real HTTP: the lightkube source, objects and client config.

The peer is a recorded API server on 127.0.0.1 (recorded_apiserver.py) answering from the same
sequences the ReplaySource tests use; the real kube-apiserver arrives with issue 4 (tests/e2e).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from recorded_apiserver import RecordedAPIServer, serve, write_kubeconfig

from kubeiam.errors import ConfigError, ConflictError, KubeAPIError
from kubeiam.identity import identity_from_caller
from kubeiam.kube.client import load_kube_config, make_async_client
from kubeiam.kube.objects import create_object, get_object, replace_object
from kubeiam.kube.resources import config_map
from kubeiam.mapping.backends.configmap import EKSConfigMap
from kubeiam.mapping.backends.crd import CRD
from kubeiam.mapping.chain import MappingChain

FIXTURES = Path(__file__).parents[2] / "fixtures" / "mapping"
CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"
MAPPINGS = "/apis/iamauthenticator.k8s.aws/v1alpha1/iamidentitymappings"
ACCOUNT = "111122223333"


def _user(name: str) -> object:
    return identity_from_caller(
        arn=f"arn:aws:iam::{ACCOUNT}:user/{name}",
        account=ACCOUNT,
        user_id="AIDAEXAMPLEUSER00001",
        access_key_id="AKIAEXAMPLE",
        partition="aws",
    )


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []
        self.failures = 0

    async def sleep(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)

    def failure(self) -> None:
        self.failures += 1


async def test_configmap_backend_over_http(tmp_path: Path) -> None:
    server = RecordedAPIServer(FIXTURES / "watch-configmap.json", list_kind="ConfigMapList")
    sleeps = Sleeps()
    async with serve(server, CONFIGMAPS) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        backend = EKSConfigMap(
            kubeconfig=str(kubeconfig),
            sleep=sleeps.sleep,
            random=lambda: 0.5,
            on_failure=sleeps.failure,
        )
        await backend.start()
        try:
            await asyncio.wait_for(server.exhausted.wait(), 10)
            assert backend.served_version == "300"
        finally:
            await backend.stop()
    assert all(r.get("fieldSelector") == "metadata.name=aws-auth" for r in server.requests)
    watches = [r.get("resourceVersion") for r in server.requests if r.get("watch")]
    assert watches == ["100", "200", "250", "300"]
    # drop, ERROR 500 in the stream, two failed lists (the conflicting version adds one)
    assert sleeps.calls == [0.5, 0.5, 1.0, 2.0]
    assert sleeps.failures == 5
    chain = MappingChain([backend], reserved_prefixes={})
    assert await chain.map(_user("admin")) is None  # type: ignore[arg-type]


async def test_crd_backend_over_http(tmp_path: Path) -> None:
    server = RecordedAPIServer(FIXTURES / "watch-crd.json", list_kind="IAMIdentityMappingList")
    sleeps = Sleeps()
    async with serve(server, MAPPINGS) as url:
        backend = CRD(
            kubeconfig=str(write_kubeconfig(tmp_path / "kubeconfig", url)),
            sleep=sleeps.sleep,
            random=lambda: 0.5,
        )
        await backend.start()
        try:
            await asyncio.wait_for(server.exhausted.wait(), 10)
            assert backend.ready
            assert sorted(backend.objects) == ["broken", "ops"]
        finally:
            await backend.stop()
    watches = [r.get("resourceVersion") for r in server.requests if r.get("watch")]
    assert watches == ["500", "700", "700", "701"]
    assert sleeps.calls == [0.5]


async def test_objects_get_create_replace_with_resource_version(tmp_path: Path) -> None:
    server = RecordedAPIServer(FIXTURES / "watch-configmap.json", list_kind="ConfigMapList")
    async with serve(server, CONFIGMAPS) as url:
        client = make_async_client(str(write_kubeconfig(tmp_path / "kubeconfig", url)))
        cm = config_map()
        try:
            assert await get_object(client, cm, "aws-auth", namespace="kube-system") is None
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "aws-auth", "namespace": "kube-system"},
                "data": {"mapUsers": ""},
            }
            created = await create_object(client, cm, body)
            assert created["metadata"]["resourceVersion"] == "1"
            with pytest.raises(ConflictError):
                await create_object(client, cm, body)
            read = await get_object(client, cm, "aws-auth", namespace="kube-system")
            assert read is not None
            first = await replace_object(client, cm, {**read, "data": {"mapUsers": "- a"}})
            assert first["metadata"]["resourceVersion"] == "2"
            with pytest.raises(ConflictError, match="changed since it was read"):
                await replace_object(client, cm, {**read, "data": {"mapUsers": "- b"}})
            with pytest.raises(KubeAPIError, match="without a resourceVersion"):
                await replace_object(client, cm, body)
        finally:
            await client.close()


def test_kubeconfig_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_kube_config(tmp_path / "missing")
    with pytest.raises(ConfigError, match="pass --kubeconfig"):
        load_kube_config(None, environ={})


def test_in_cluster_config(tmp_path: Path, ca_pem: bytes) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("in-cluster-test-token")
    (sa / "namespace").write_text("kube-system")
    (sa / "ca.crt").write_bytes(ca_pem)
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    access = load_kube_config(None, service_account_dir=sa, environ=env)
    assert access.server == "https://127.0.0.1:6443"
    assert access.namespace == "kube-system"
    assert access.token_file == sa / "token"
    (sa / "token").unlink()
    with pytest.raises(ConfigError, match="in-cluster config"):
        load_kube_config(None, service_account_dir=sa, environ=env)
