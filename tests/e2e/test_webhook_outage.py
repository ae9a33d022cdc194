"""kube-apiserver and the kubeiam webhook: an outage and recovery, and the v1beta1 webhook API."""

from __future__ import annotations

from cluster.control_plane import Webhook
from system import GRANT_SECONDS, WEBHOOK_CACHE_TTL_SECONDS, System

#: With the webhook unreachable kube-apiserver retries it with backoff before refusing a request.
OUTAGE_SECONDS = 60.0


def test_webhook_down_denies_then_recovers_with_no_restart(system: System) -> None:
    user = system.create_user("e2e-outage")
    system.mapping("add-user", user.arn, "--username", "outage", "--group", "e2e-outage")
    # A fresh token per request, so kube-apiserver's success cache cannot answer for the webhook.
    kubeconfig = system.token_kubeconfig(user, cache=False)
    assert system.wait_authenticated(kubeconfig)["username"] == "outage"
    apiserver = system.plane.apiserver
    assert apiserver is not None
    apiserver_pid = apiserver.pid

    system.server.stop()
    try:
        system.wait_unauthorized(kubeconfig, timeout=OUTAGE_SECONDS)
        # Only webhook-authenticated users are affected: the admin's certificate still works.
        admin = system.plane.kubectl("auth", "whoami", "-o", "name")
        assert admin.returncode == 0, admin.stderr
    finally:
        system.server.start()  # same port, same certificate: the kubeconfig init wrote still fits

    info = system.wait_authenticated(kubeconfig, timeout=OUTAGE_SECONDS)
    assert info["username"] == "outage"
    assert apiserver.pid == apiserver_pid  # kube-apiserver recovered on its own


def test_webhook_api_version_v1beta1(system: System) -> None:
    user = system.create_user("e2e-v1beta1")
    kubeconfig = system.token_kubeconfig(user, cache=False)
    ttl = f"{WEBHOOK_CACHE_TTL_SECONDS:g}s"
    system.plane.restart_apiserver(
        webhook=Webhook(config_file=system.webhook_config, version="v1beta1", cache_ttl=ttl)
    )
    try:
        assert system.plane.apiserver is not None
        assert "--authentication-token-webhook-version=v1beta1" in system.plane.apiserver.argv
        # Mapped only now: the server's watches reconnected after kube-apiserver's restart.
        system.mapping("add-user", user.arn, "--username", "beta", "--group", "e2e-beta")
        info = system.wait_authenticated(kubeconfig, timeout=GRANT_SECONDS)
        assert info["username"] == "beta"
        assert "e2e-beta" in info["groups"]
        assert info["extra"]["arn"] == [user.arn]
    finally:
        system.plane.restart_apiserver(
            webhook=Webhook(config_file=system.webhook_config, version="v1", cache_ttl=ttl)
        )
    assert system.wait_authenticated(kubeconfig)["username"] == "beta"
