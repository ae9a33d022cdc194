"""A watched backend that cannot load says why: a log line at each attempt, the failure hook,
and ``not_ready_reason`` (what ``/readyz`` shows); fixing the cause recovers without a restart.

Real HTTPS API on 127.0.0.1 (kube_api.py); the backoff's sleep is injected.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from pathlib import Path

import pytest
from kube_api import KubeAPI, Pki, kubeconfig_doc, write_yaml

from kubeiam.mapping.backends import WatchedBackend
from kubeiam.mapping.backends.configmap import EKSConfigMap
from kubeiam.mapping.backends.crd import CRD

ALL_CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"


class Attempts:
    """Counts failures; each backoff sleep lets the test look, then goes on."""

    def __init__(self) -> None:
        self.failures = 0
        self.sleeps: list[float] = []
        self.slept = asyncio.Event()

    def failure(self) -> None:
        self.failures += 1

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.slept.set()
        await asyncio.sleep(0.01)


async def _until(predicate: object, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forbidden", "list configmaps in kube-system (403 Forbidden)"),
        ("unauthorized", "did not accept the credentials"),
        ("unreachable", "cannot reach the Kubernetes API"),
        ("missing-kubeconfig", "does not exist"),
        ("exec-v1-plugin-missing", "exec plugin '/nonexistent/plugin' not found"),
    ],
    ids=lambda v: v if v.count(" ") == 0 else None,
)
async def test_backend_failure_is_logged_counted_and_named(
    api: KubeAPI,
    pki: Pki,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: str,
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="kubeiam.kube.watch")
    ca = {"certificate-authority-data": base64.b64encode(pki.ca_pem).decode()}
    server = api.url
    user: dict[str, object] = {"token": "good-token"}
    if case == "forbidden":
        api.forbidden.add(ALL_CONFIGMAPS)
    elif case == "unauthorized":
        user = {"token": "wrong"}
    elif case == "unreachable":
        server = f"https://127.0.0.1:{_closed_port()}"
    elif case == "exec-v1-plugin-missing":
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "/nonexistent/plugin",
                "interactiveMode": "Never",
            }
        }
    kubeconfig = tmp_path / "kc"
    if case != "missing-kubeconfig":
        write_yaml(kubeconfig, kubeconfig_doc(server, cluster=ca, user=user))
    attempts = Attempts()
    backend: WatchedBackend = EKSConfigMap(
        kubeconfig=str(kubeconfig),
        sleep=attempts.sleep,
        random=lambda: 0.5,
        on_failure=attempts.failure,
    )
    await backend.start()
    try:
        await _until(lambda: attempts.failures >= 2)
        assert not backend.ready
        why = backend.not_ready_reason
        assert why is not None
        assert why.startswith("list failed: ")
        assert reason in why
        lines = [r.getMessage() for r in caplog.records if "list failed" in r.getMessage()]
        assert len(lines) >= 2  # the first failure and each backoff
        assert all(reason in line and "retrying in" in line for line in lines)
        assert "good-token" not in caplog.text
        assert attempts.sleeps[:2] == [0.5, 1.0]

        # The cause goes away: the next attempt loads, without a restart.
        api.forbidden.clear()
        api.tokens.add("wrong")
        if case in ("unreachable", "missing-kubeconfig", "exec-v1-plugin-missing"):
            good = kubeconfig_doc(api.url, cluster=ca, user={"token": "good-token"})
            write_yaml(kubeconfig, good)
        await _until(lambda: backend.ready)
        assert backend.not_ready_reason is None
    finally:
        await backend.stop()


async def test_crd_backend_names_the_refused_resource(
    api: KubeAPI, pki: Pki, tmp_path: Path
) -> None:
    ca = {"certificate-authority-data": base64.b64encode(pki.ca_pem).decode()}
    kubeconfig = write_yaml(tmp_path / "kc", kubeconfig_doc(api.url, cluster=ca, user={}))
    attempts = Attempts()
    backend = CRD(kubeconfig=str(kubeconfig), sleep=attempts.sleep, on_failure=attempts.failure)
    await backend.start()
    try:
        await _until(lambda: attempts.failures >= 1)
        why = backend.not_ready_reason
        assert why is not None
        assert "list iamidentitymappings.iamauthenticator.k8s.aws (401 Unauthorized)" in why
        assert "anonymous" in why
    finally:
        await backend.stop()


async def test_readyz_names_the_backend_and_why_and_the_metric_counts_it(
    api: KubeAPI, pki: Pki, tmp_path: Path
) -> None:
    """The server's own wiring (config -> build_chain -> app): a 403 on aws-auth."""
    from aiohttp.test_utils import TestClient, TestServer

    from kubeiam.server.app import create_app
    from kubeiam.server.chain_builder import build_chain
    from kubeiam.server.config import build_config, read_config_file
    from kubeiam.server.identity_cache import IdentityCache
    from kubeiam.server.metrics import ServerMetrics

    api.forbidden.add(ALL_CONFIGMAPS)
    ca = {"certificate-authority-data": base64.b64encode(pki.ca_pem).decode()}
    kubeconfig = write_yaml(
        tmp_path / "kc", kubeconfig_doc(api.url, cluster=ca, user={"token": "good-token"})
    )
    config_file = tmp_path / "server.yaml"
    config_file.write_text(
        f"clusterID: c\nserver:\n  backendMode: [EKSConfigMap]\n  kubeconfig: {kubeconfig}\n"
    )
    config = build_config(read_config_file(config_file), {})
    metrics = ServerMetrics()
    chain, stop = await build_chain(config, metrics, None)
    client = TestClient(
        TestServer(create_app(object(), chain, metrics=metrics, identity_cache=IdentityCache()))  # type: ignore[arg-type]
    )
    await client.start_server()
    try:
        await _until(
            lambda: (
                (
                    metrics.registry.get_sample_value(
                        "kubeiam_backend_failures_total", {"backend": "EKSConfigMap"}
                    )
                    or 0
                )
                >= 1
            )
        )
        answer = await client.get("/readyz")
        text = await answer.text()
        assert answer.status == 503
        assert text.splitlines()[0] == "mapping backends are not ready:"
        assert text.splitlines()[1].startswith(
            "EKSConfigMap: list failed: the Kubernetes API refused user 'token-user': list "
            "configmaps in kube-system (403 Forbidden)"
        )
        scraped = (await (await client.get("/metrics")).text()).splitlines()
        assert any(
            line.startswith('kubeiam_backend_failures_total{backend="EKSConfigMap"}')
            for line in scraped
        )
        assert any(
            line.startswith("aws_iam_authenticator_configmap_watch_failures_total ")
            and float(line.split()[-1]) >= 1
            for line in scraped
        )
    finally:
        await client.close()
        await stop()
