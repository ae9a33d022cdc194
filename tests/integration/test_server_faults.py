"""``kubeiam server`` under load while things fail around it (issue 9, section 7).

The server runs as a real process (``python -m kubeiam server``) on loopback, verifying tokens
against the local STS front (``--sts-resolve``: no name is looked up, nothing leaves the
machine). A load of distinct, valid tokens keeps going while the STS front is switched through
its fault switches: answering 500s, then hanging, then healthy again; and while the server is
sent SIGTERM. The faults are the front's own (real HTTP behaviour on a real socket, not mocks).
The DNS test runs the server in a network namespace of its own whose resolver is a loopback DNS
server the test switches (bench/netns_dns.py; root needed, skipped without).

Each test prints one line of figures (``pytest -s``) for the issue's closing note.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from kubeiam.localaws.environment import LocalAWS
from kubeiam.partitions import sts_host_for_region
from support.cli import KUBEIAM
from support.tokens import Creds, minter
from support.waiting import until

CLUSTER = "faults-cluster"
mint = minter(CLUSTER)
#: The server's STS timeout in these tests: a hung STS costs a review this long.
STS_TIMEOUT = 2.0
#: Slack on top of STS_TIMEOUT for a review's whole round trip on a busy 2-core machine.
ROUND_TRIP_SLACK = 3.0
#: Concurrent workers of the load, and each one's pause between reviews (bounds the count).
WORKERS = 8
PAUSE = 0.01
#: IAM users signing the tokens.
SIGNERS = 8
START_SECONDS = 30.0
#: Statuses a review may get while STS fails: refused (403, as the reference) or unavailable.
FAILED_STS_STATUSES = {403, 503}


class Tokens:
    """Distinct valid tokens (signer x signing second), never one twice: a repeated token would
    be answered from the identity cache and hide what STS is doing."""

    #: Signing seconds used, back from now: the tokens stay inside STS's 15-minute window.
    WINDOW_SECONDS = 800

    def __init__(self, signers: list[Creds], region: str = "us-east-1") -> None:
        self._signers = signers
        self._region = region
        self._next = 0
        self._now = datetime.now(UTC)

    def take(self) -> str:
        i = self._next
        self._next += 1
        n = len(self._signers)
        if i >= n * self.WINDOW_SECONDS:
            raise AssertionError(f"more than {i} reviews: the load is not bounded as meant")
        signer, now = self._signers[i % n], self._now - timedelta(seconds=i // n)
        return mint(signer, now=now, region=self._region)


@dataclass
class Answer:
    """One review as the client saw it."""

    started: float
    ended: float
    status: int | None  # None: no HTTP answer (connection dropped, refused)
    #: The body parsed as a TokenReview (kind and status.authenticated), or why not.
    review: dict[str, Any] | None
    error: str | None = None
    #: The fault in effect when the review was sent and when it was answered.
    fault_at_start: str | None = None
    fault_at_end: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Served:
    proc: subprocess.Popen[str]
    port: int
    cert: Path
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/authenticate"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def signers(local_aws: LocalAWS) -> list[Creds]:
    return [Creds(*local_aws.create_user(f"faults-{i}")) for i in range(SIGNERS)]


@pytest.fixture
def served(local_aws: LocalAWS, signers: list[Creds], tmp_path: Path) -> Iterator[Served]:
    """The server command as a process; its log goes to a file (a pipe could fill and stall it)."""
    config = {
        "clusterID": CLUSTER,
        "server": {
            "port": 0,
            "stateDir": str(tmp_path / "state"),
            "shutdownTimeout": 10,
            "mapUsers": [
                {"userarn": local_aws.user_arn(f"faults-{i}"), "username": f"u{i}", "groups": []}
                for i in range(len(signers))
            ],
        },
    }
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "server.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubeiam",
                "server",
                "--config",
                str(path),
                "--log-format",
                "json",
                *local_aws.verify_flags(),
                "--sts-timeout",
                f"{STS_TIMEOUT:g}",
            ],
            stderr=handle,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **local_aws.client_env()},
        )
    try:
        port = 0
        deadline = time.monotonic() + START_SECONDS
        while not port:
            for line in log.read_text().splitlines():
                doc = json.loads(line)
                if doc.get("msg") == "listening":
                    port = int(doc["port"])
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not listening after {START_SECONDS:g} s"
            time.sleep(0.05)
        yield Served(proc, port, tmp_path / "state" / "cert.pem", log)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


async def send(session: aiohttp.ClientSession, url: str, token: str, aws: LocalAWS) -> Answer:
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    fault = aws.sts_fault
    started = time.monotonic()
    status: int | None = None
    review: dict[str, Any] | None = None
    error: str | None = None
    try:
        async with session.post(url, json=body) as resp:
            status = resp.status
            raw = await resp.read()
        try:
            doc = json.loads(raw)
            review = doc if isinstance(doc, dict) else None
        except ValueError:
            review = None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        error = type(exc).__name__
    return Answer(
        started,
        time.monotonic(),
        status,
        review,
        error,
        fault_at_start=None if fault is None else str(fault),
        fault_at_end=None if aws.sts_fault is None else str(aws.sts_fault),
    )


def is_token_review(answer: Answer) -> bool:
    review = answer.review or {}
    return review.get("kind") == "TokenReview" and isinstance(review.get("status"), dict)


def client_session(served: Served) -> aiohttp.ClientSession:
    ctx = ssl.create_default_context(cafile=str(served.cert))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ctx, limit=WORKERS),
        timeout=aiohttp.ClientTimeout(total=STS_TIMEOUT + 20),
    )


async def load(
    served: Served, aws: LocalAWS, tokens: Tokens, stop: asyncio.Event, answers: list[Answer]
) -> None:
    """WORKERS clients sending distinct valid tokens back to back until `stop`."""
    async with client_session(served) as session:

        async def worker() -> None:
            while not stop.is_set():
                answers.append(await send(session, served.url, tokens.take(), aws))
                await asyncio.sleep(PAUSE)

        await asyncio.gather(*(worker() for _ in range(WORKERS)))


async def test_sts_500s_then_hanging_then_back_during_load(
    served: Served, local_aws: LocalAWS, signers: list[Creds]
) -> None:
    """Reviews keep getting TokenReview answers through STS failures, none a 5xx page, each
    within the STS timeout; once STS is back, reviews succeed again within a few seconds."""
    answers: list[Answer] = []
    stop = asyncio.Event()
    running = asyncio.ensure_future(load(served, local_aws, Tokens(signers), stop, answers))
    phases: list[tuple[str | None, float]] = [
        (None, 2.0),
        ("error500", 3.0),
        ("hang", 2 * STS_TIMEOUT + 1),
    ]
    try:
        for fault, seconds in phases:
            local_aws.set_sts_fault(fault)
            await asyncio.sleep(seconds)
        local_aws.set_sts_fault(None)
        back = time.monotonic()
        # Bounded: the reviews that hung finish within the STS timeout; new ones succeed.
        deadline = back + STS_TIMEOUT + ROUND_TRIP_SLACK + 5
        while time.monotonic() < deadline:
            recent = [a for a in answers if a.started > back and a.status == 200]
            if len(recent) >= 20:
                break
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        local_aws.set_sts_fault(None)
        await asyncio.wait_for(running, timeout=STS_TIMEOUT + 30)

    assert answers
    # Every review got an HTTP answer that is a TokenReview: nothing dropped, no 5xx page.
    assert [a.error for a in answers if a.error] == []
    assert [a.status for a in answers if not is_token_review(a)] == []
    assert {a.status for a in answers} <= {200} | FAILED_STS_STATUSES
    # Each phase as a whole (reviews that started and ended in it).
    by_phase: dict[str | None, list[Answer]] = {}
    for a in answers:
        if a.fault_at_start == a.fault_at_end:
            by_phase.setdefault(a.fault_at_start, []).append(a)
    for fault in ("error500", "hang"):
        during = by_phase.get(fault, [])
        assert during, f"no review started and ended during {fault}"
        assert {a.status for a in during} <= FAILED_STS_STATUSES, fault
        assert all(a.review and a.review["status"]["authenticated"] is False for a in during)
    # A hung STS costs a review the STS timeout, not more.
    slowest = max(a.seconds for a in answers)
    assert slowest <= STS_TIMEOUT + ROUND_TRIP_SLACK
    # Recovery: the first success after STS came back, and then only successes.
    after = sorted((a for a in answers if a.started > back), key=lambda a: a.started)
    first_ok = next((a for a in after if a.status == 200), None)
    assert first_ok is not None, "no review succeeded after STS came back"
    recovery = first_ok.ended - back
    assert recovery <= STS_TIMEOUT + ROUND_TRIP_SLACK
    settled = [a for a in after if a.started > first_ok.ended]
    assert settled
    assert {a.status for a in settled} == {200}
    assert "Traceback" not in served.log_text()

    counts: dict[str, dict[int, int]] = {}
    for fault, group in by_phase.items():
        tally = counts.setdefault(fault or "healthy", {})
        for a in group:
            tally[a.status or 0] = tally.get(a.status or 0, 0) + 1
    hang_seconds = [a.seconds for a in by_phase.get("hang", [])]
    print(
        f"\nfaults during load: {len(answers)} reviews, statuses by phase {counts}, "
        f"slowest {slowest:.2f} s (hang: max {max(hang_seconds):.2f} s), "
        f"first success {recovery:.2f} s after STS came back"
    )


async def test_sigterm_during_load_answers_every_review_in_flight(
    served: Served, local_aws: LocalAWS, signers: list[Creds]
) -> None:
    """SIGTERM with reviews waiting on a slow STS: every one of them is answered (200), the
    server exits 0 after draining, and only then refuses new connections."""
    tokens = Tokens(signers)
    answers: list[Answer] = []
    async with client_session(served) as session:
        # Load first, healthy: the connections are up and the server is busy.
        warm = [send(session, served.url, tokens.take(), local_aws) for _ in range(2 * WORKERS)]
        answers += await asyncio.gather(*warm)
        local_aws.set_sts_fault("slow")  # each STS call now takes a second
        before = local_aws.sts_requests
        in_flight = [
            asyncio.ensure_future(send(session, served.url, tokens.take(), local_aws))
            for _ in range(WORKERS)
        ]
        # The reviews have reached the server and wait on STS when the signal comes.
        await until(lambda: local_aws.sts_requests >= before + WORKERS, what="reviews at STS")
        signalled = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        drained = await asyncio.wait_for(asyncio.gather(*in_flight), timeout=30)
    local_aws.set_sts_fault(None)
    assert {a.status for a in answers} == {200}
    assert [a.error for a in drained if a.error] == []
    assert [a.status for a in drained] == [200] * WORKERS
    assert all(is_token_review(a) and a.review["status"]["authenticated"] for a in drained)  # type: ignore[index]
    assert served.proc.wait(timeout=20) == 0
    exited = time.monotonic()
    log = served.log_text()
    assert "stopped" in log
    assert "Traceback" not in log
    # Once stopped, the port is closed: a new connection is refused, not left hanging.
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", served.port), timeout=5)
    last = max(a.ended for a in drained)
    print(
        f"\nSIGTERM during load: {WORKERS} reviews in flight, all answered 200, the last "
        f"{last - signalled:.2f} s after the signal; process exited 0 after "
        f"{exited - signalled:.2f} s"
    )


# --- name resolution failing, for real ------------------------------------------------------

#: The region whose STS name the server has resolved before the DNS fault, and one it first
#: needs during it.
KNOWN_REGION = "us-east-1"
NEW_REGION = "eu-west-1"
DNS_FAULT_SECONDS = 6.0
#: The server's resolver remembers a failed name for a few seconds (negative cache); after the
#: name resolves again, its reviews must succeed within this long.
DNS_RECOVERY_SECONDS = 20.0


def _namespace_tools() -> Any:
    """bench/netns_dns.py and tests/e2e/netns.py (importable from the repository root)."""
    root = Path(__file__).resolve().parents[2]
    for path in (str(root), str(root / "bench")):
        if path not in sys.path:
            sys.path.insert(0, path)
    import netns_dns

    return netns_dns


def test_sts_names_stop_resolving_during_load(tmp_path: Path) -> None:
    """The server in a network namespace whose resolver is a loopback DNS server we control
    (nothing leaves the machine). While a load runs, the STS names of two regions stop being
    answered at all: reviews for the region already resolved keep succeeding, undelayed; those
    for the region first needed now are refused (TokenReviews) within the STS timeout; once the
    names resolve again, the new region's reviews succeed."""
    netns_dns = _namespace_tools()
    from tests.e2e.netns import namespace_problem, start_localaws_inside

    from kubeiam.localaws.certificates import sts_host_names

    problem = namespace_problem()
    if problem is not None:
        pytest.skip(f"needs a network namespace: {problem}")
    kubeiam = Path(KUBEIAM)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    answers = [*sts_host_names(), "localhost"]
    with netns_dns.dns_namespace(answers=answers, unknown="nxdomain", workdir=tmp_path) as dns:
        ns = dns.ns
        aws = start_localaws_inside(ns, kubeiam, env=env, log=tmp_path / "localaws.log")

        def create_signers() -> list[Creds]:
            import boto3

            iam = boto3.client(
                "iam",
                endpoint_url=aws.moto_url,
                region_name="us-east-1",
                aws_access_key_id=aws.admin_keys[0],
                aws_secret_access_key=aws.admin_keys[1],
            )
            made = []
            for i in range(SIGNERS):
                iam.create_user(UserName=f"dns-{i}")
                key = iam.create_access_key(UserName=f"dns-{i}")["AccessKey"]
                made.append(Creds(key["AccessKeyId"], key["SecretAccessKey"]))
            return made

        signers = ns.call(create_signers)
        config = {
            "clusterID": CLUSTER,
            "server": {
                "address": "127.0.0.1",
                "port": 0,
                "stateDir": str(tmp_path / "state"),
                "mapUsers": [
                    {"userarn": f"arn:aws:iam::123456789012:user/dns-{i}", "username": f"d{i}"}
                    for i in range(SIGNERS)
                ],
            },
        }
        (tmp_path / "server.yaml").write_text(yaml.safe_dump(config))
        log = tmp_path / "server.log"
        with log.open("w") as handle:
            proc = ns.popen(
                [
                    kubeiam,
                    "server",
                    "-c",
                    tmp_path / "server.yaml",
                    "-l",
                    "json",
                    "--sts-timeout",
                    f"{STS_TIMEOUT:g}",
                ],
                # no STS override: the names resolve through the namespace's DNS server
                env={**env, "SSL_CERT_FILE": str(aws.ca_bundle)},
                stderr=handle,
            )
        port = 0
        deadline = time.monotonic() + START_SECONDS
        while not port:
            for line in log.read_text().splitlines():
                if '"msg":"listening"' in line:
                    port = int(json.loads(line)["port"])
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        served = Served(proc, port, tmp_path / "state" / "cert.pem", log)
        known_host, new_host = sts_host_for_region(KNOWN_REGION), sts_host_for_region(NEW_REGION)

        async def scenario() -> dict[str, Any]:
            known, new = Tokens(signers, KNOWN_REGION), Tokens(signers, NEW_REGION)
            out: dict[str, list[Answer]] = {"before": [], "known": [], "new": [], "after": []}
            async with client_session(served) as session:

                async def send_to(region: str) -> Answer:
                    tokens = known if region == KNOWN_REGION else new
                    # the STS front is healthy throughout: no fault to label answers with
                    return await send(session, served.url, tokens.take(), _NoFault())

                for _ in range(20):
                    out["before"].append(await send_to(KNOWN_REGION))
                dns.set_overrides({known_host: "drop", new_host: "drop"})
                began = time.monotonic()

                async def keep(region: str, into: str) -> None:
                    while time.monotonic() - began < DNS_FAULT_SECONDS:
                        out[into].append(await send_to(region))
                        await asyncio.sleep(0.05)

                await asyncio.gather(
                    *(keep(KNOWN_REGION, "known") for _ in range(2)), keep(NEW_REGION, "new")
                )
                dns.set_overrides({})
                restored = time.monotonic()
                recovered = None
                while time.monotonic() - restored < DNS_RECOVERY_SECONDS:
                    answer = await send_to(NEW_REGION)
                    out["after"].append(answer)
                    if answer.status == 200:
                        recovered = answer.ended - restored
                        break
                    await asyncio.sleep(0.2)
            return {"answers": out, "recovered": recovered}

        result = ns.call(lambda: asyncio.run(scenario()), timeout=120)
        stats = dns.stop_dns()

    answers_by = result["answers"]
    assert {a.status for a in answers_by["before"]} == {200}
    # Every answer a TokenReview, nothing dropped.
    everything = [a for group in answers_by.values() for a in group]
    assert [a.error for a in everything if a.error] == []
    assert [a.status for a in everything if not is_token_review(a)] == []
    # The region resolved before: served through the fault, and not slowed by it.
    during_known = answers_by["known"]
    assert during_known
    assert {a.status for a in during_known} == {200}
    assert max(a.seconds for a in during_known) < 1.0
    # The region first needed during the fault: refused, within the STS timeout.
    during_new = answers_by["new"]
    assert during_new
    assert {a.status for a in during_new} <= FAILED_STS_STATUSES
    assert max(a.seconds for a in during_new) <= STS_TIMEOUT + ROUND_TRIP_SLACK
    # And the server really asked our DNS server for it.
    assert new_host in stats["names"]
    assert result["recovered"] is not None, "the new region never succeeded after DNS came back"
    print(
        f"\nDNS fault: {len(during_known)} reviews for a resolved STS host all 200 (max "
        f"{max(a.seconds for a in during_known) * 1000:.0f} ms) while its name went unanswered; "
        f"{len(during_new)} for a host first needed then refused (max "
        f"{max(a.seconds for a in during_new):.2f} s); that host's reviews succeeded "
        f"{result['recovered']:.1f} s after its name resolved again"
    )


class _NoFault:
    """Stands in for LocalAWS in `send` where the STS front runs in another process."""

    sts_fault = None
