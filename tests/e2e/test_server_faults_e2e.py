"""The webhook's watches under faults of the real kube-apiserver, while reviews continue.

`kubeiam server` (the `system` fixture: EKSConfigMap and CRD backends watching the API server)
reviews tokens sent straight to it (kube-apiserver is what fails here, so it cannot carry them)
every `REVIEW_INTERVAL` seconds, from a thread, while:

1. its watch connections are dropped under it (`ss -K` resets its TCP connections to the API
   server: what a load balancer or an API server's crash does to a watch);
2. kube-apiserver is stopped for `OUTAGE_SECONDS`, then started again (same port, same etcd).

Mapped users keep being served from the last good state throughout (every review 200, same
user), an unmapped user stays refused (403, a TokenReview), and the reflector resyncs: a
mapping added after each fault reaches the server. Each test prints its figures (`pytest -s`).
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from system import CLUSTER_ID, IamUser, System

from kubeiam.token.encoding import encode_token
from kubeiam.token.presign import presign_get_caller_identity

REVIEW_INTERVAL = 0.2
#: How long kube-apiserver stays down.
OUTAGE_SECONDS = 10.0
#: A change after a fault must reach the server within this long: the watch's backoff grows to
#: 30 s at most, plus kube-apiserver's start-up on two shared cores.
RESYNC_SECONDS = 90.0
WATCH_FAILURES = "aws_iam_authenticator_configmap_watch_failures_total"


@dataclass
class Review:
    at: float
    status: int | None
    username: str | None
    error: str | None = None


@dataclass
class Reviewer:
    """Sends a fresh token of `user` to the server every REVIEW_INTERVAL, from a thread."""

    system: System
    user: IamUser
    reviews: list[Review] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Reviewer:
        self._thread = threading.Thread(target=self._run, name="reviewer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.reviews.append(review(self.system, self.user))
            self._stop.wait(REVIEW_INTERVAL)

    def since(self, moment: float) -> list[Review]:
        return [r for r in list(self.reviews) if r.at >= moment]


def review(system: System, user: IamUser) -> Review:
    """One TokenReview of a token `user` signs now, POSTed straight to the webhook."""
    url = presign_get_caller_identity(
        access_key_id=user.access_key_id,
        secret_access_key=user.secret_access_key,
        session_token=None,
        region=system.aws.region,
        host=system.aws.sts_host,
        cluster_id=CLUSTER_ID,
        now=datetime.now(UTC),
    )
    body = json.dumps(
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": encode_token(url)},
        }
    ).encode()
    request = urllib.request.Request(
        f"{system.server.url}/authenticate",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    context = ssl.create_default_context(cafile=str(system.server.state_dir / "cert.pem"))
    at = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return Review(at, None, None, type(error).__name__)
    try:
        user_info = json.loads(raw)["status"].get("user") or {}
    except (ValueError, KeyError, TypeError):
        return Review(at, status, None, "not a TokenReview")
    return Review(at, status, user_info.get("username"))


def wait_username(system: System, user: IamUser, username: str, timeout: float) -> float:
    """Poll until `user`'s review maps to `username`; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if review(system, user).username == username:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{user.name} not mapped to {username} after {timeout:.0f} s")


def drop_watch_connections(system: System) -> int:
    """Reset every TCP connection of the kubeiam server to the API server; how many."""
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("iproute2's ss is not on PATH")
    port = int(system.plane.server.rsplit(":", 1)[1])
    pid = system.server.pid
    listed = subprocess.run(
        [ss, "-tnpH", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = [
        line.split()[2].rsplit(":", 1)[1]
        for line in listed.splitlines()
        if re.search(rf"pid={pid},", line)
    ]
    for sport in ours:
        subprocess.run(
            [ss, "-K", "-tn", "state", "established", f"( sport = :{sport} and dport = :{port} )"],
            capture_output=True,
            check=True,
        )
    return len(ours)


def test_watch_dropped_and_apiserver_restarted_while_reviews_continue(system: System) -> None:
    kept = system.create_user("e2e-faults-kept")
    after_drop = system.create_user("e2e-faults-after-drop")
    after_restart = system.create_user("e2e-faults-after-restart")
    stranger = system.create_user("e2e-faults-stranger")
    system.mapping("add-user", kept.arn, "--username", "faults-kept", "--group", "e2e-faults")
    wait_username(system, kept, "faults-kept", RESYNC_SECONDS)
    plane = system.plane
    failures_before = system.server.metric(WATCH_FAILURES)

    with Reviewer(system, kept) as reviewer:
        # 1. The watches dropped under the server.
        dropped_at = time.monotonic()
        dropped = drop_watch_connections(system)
        assert dropped >= 1, "the server had no connection to the API server to drop"
        system.mapping("add-user", after_drop.arn, "--username", "faults-after-drop")
        resync_after_drop = wait_username(system, after_drop, "faults-after-drop", RESYNC_SECONDS)
        assert system.server.metric(WATCH_FAILURES) > failures_before

        # 2. kube-apiserver down: the last good state keeps serving.
        assert plane.apiserver is not None
        plane.apiserver.stop()
        down_at = time.monotonic()
        try:
            time.sleep(OUTAGE_SECONDS)
            refused = review(system, stranger)
            outage = reviewer.since(down_at)
        finally:
            plane.restart_apiserver(webhook=plane.webhook)
        restarted_at = time.monotonic()
        system.mapping("add-user", after_restart.arn, "--username", "faults-after-restart")
        resync_after_restart = wait_username(
            system, after_restart, "faults-after-restart", RESYNC_SECONDS
        )
        time.sleep(1.0)
    everything = reviewer.since(dropped_at)

    assert refused.status == 403
    assert refused.error is None
    assert len(outage) >= OUTAGE_SECONDS / REVIEW_INTERVAL / 4
    # Every review of the mapped user, through the drop, the outage and the restart: served.
    assert [(r.status, r.username, r.error) for r in everything if r.status != 200] == []
    assert {r.username for r in everything} == {"faults-kept"}
    # The earlier mapping survived the restart too.
    assert review(system, after_drop).username == "faults-after-drop"
    print(
        f"\nwatch faults: {len(everything)} reviews of a mapped user all 200 "
        f"({len(outage)} while kube-apiserver was down {OUTAGE_SECONDS:g} s); "
        f"{dropped} watch connections reset, a later mapping served after "
        f"{resync_after_drop:.1f} s; after the restart ({restarted_at - down_at:.1f} s down in "
        f"all) a new mapping served after {resync_after_restart:.1f} s"
    )
