"""``kubeiam server --workers N`` as a real process: one port shared by N workers
(SO_REUSEPORT), /metrics summed over them, SIGTERM stopping all, a dead worker stopping the
server, and worker counts out of range refused."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import KUBEIAM

START_TIMEOUT = 60.0
REVIEWS = 30
MALFORMED_COUNT = re.escape(
    'aws_iam_authenticator_authenticate_latency_seconds_count{result="malformed_request"}'
)


class Workers:
    def __init__(self, proc: subprocess.Popen[str], log: Path, port: int, pids: list[int]) -> None:
        self.proc = proc
        self.log = log
        self.port = port
        self.pids = pids
        self.context = ssl.create_default_context(cafile=str(log.parent / "state" / "cert.pem"))
        self.context.check_hostname = False

    def get(self, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.port}{path}", data=body, method="POST" if body else "GET"
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def start(tmp_path: Path, workers: int) -> Workers:
    config = tmp_path / "server.yaml"
    config.write_text(
        "clusterID: test\nserver:\n  address: 127.0.0.1\n  port: 0\n"
        f"  stateDir: {tmp_path / 'state'}\n"
    )
    log = tmp_path / "server.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [KUBEIAM, "server", "-c", str(config), "--workers", str(workers), "-l", "json"],
            stdout=handle,
            stderr=handle,
            text=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text()
        started = re.search(r'"msg":"workers started".*?"port":(\d+),"pids":\[([\d,]+)\]', text)
        if started and text.count('"msg":"listening"') >= workers:
            pids = [int(p) for p in started.group(2).split(",")]
            return Workers(proc, log, int(started.group(1)), pids)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start:\n{log.read_text()[-2000:]}")


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Workers]:
    server = start(tmp_path, 2)
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(timeout=30)
    for pid in server.pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_workers_share_the_port_and_metrics_sum_over_them(two_workers: Workers) -> None:
    bad_review = json.dumps({"apiVersion": "v0", "kind": "TokenReview"}).encode()
    for _ in range(REVIEWS):  # a new connection each: the kernel spreads them over the workers
        status, body = two_workers.get("/authenticate", bad_review)
        assert status == 400
        assert json.loads(body)["kind"] == "TokenReview"
    text = ""
    for _ in range(4):  # whichever worker answers, the counters are everyone's
        status, page = two_workers.get("/metrics")
        assert status == 200
        text = page.decode()
        count = re.search(rf"^{MALFORMED_COUNT} (\S+)$", text, re.MULTILINE)
        assert count is not None, text[:2000]
        assert float(count.group(1)) == REVIEWS
    gauges = re.findall(r'^kubeiam_identity_cache_entries\{pid="(\d+)"\}', text, re.MULTILINE)
    assert sorted(int(p) for p in gauges) == sorted(two_workers.pids)  # one per worker


def test_sigterm_drains_and_stops_every_worker(two_workers: Workers) -> None:
    two_workers.proc.send_signal(signal.SIGTERM)
    assert two_workers.proc.wait(timeout=60) == 0
    for pid in two_workers.pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert two_workers.log.read_text().count('"msg":"stopped"') == 2


def test_a_worker_that_dies_stops_the_server(two_workers: Workers) -> None:
    os.kill(two_workers.pids[0], signal.SIGKILL)
    assert two_workers.proc.wait(timeout=60) != 0
    with pytest.raises(ProcessLookupError):
        os.kill(two_workers.pids[1], 0)
    assert "a worker exited; stopping the others" in two_workers.log.read_text()


@pytest.mark.parametrize("workers", ["0", "65", "two"], ids=["zero", "too-many", "not-a-number"])
def test_worker_counts_out_of_range_are_refused(workers: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [KUBEIAM, "server", "-i", "test", "--state-dir", str(tmp_path), "--workers", workers],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "cert.pem").exists()
