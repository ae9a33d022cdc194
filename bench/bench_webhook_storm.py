"""The webhook under attack and in a storm: flood, storm and slow clients (issue 9, section 7).

Everything runs in a network namespace of its own (bench/netns_dns.py) whose only interface is
loopback and whose resolver is a DNS server this benchmark controls: the STS host names resolve
to 127.0.0.1, where the local STS front listens on 443 (``kubeiam localaws --sts-port 443``, a
process of its own), and every other name is answered slowly (NXDOMAIN after ``DNS_DELAY``) or
not at all, half each. The server under test gets no STS override: it resolves STS through that
DNS server like a server in a cluster does. No query and no packet leaves the machine.

* **flood**: 2,000 tokens naming 2,000 distinct STS hosts at concurrency 64, while a paced
  client keeps sending valid (distinct) tokens. Half the hosts are well-formed regions that do
  not exist (``sts.us-west-77.amazonaws.com``): they pass the host shape check and reach the
  resolver; half are malformed (a 64+ character label, no region shape, an extra label) and must
  be refused before any lookup. Goals: zero valid reviews fail, their p99 at most 2x the quiet
  p99 (the same client before the flood), ``/metrics`` under 64 KiB after it, RSS growth under
  20 MB. The DNS server's log says how many of each half reached it.
* **storm** (a kube-apiserver restart makes every client re-authenticate at once): 5,000
  distinct valid tokens at concurrency 256: every answer 200 or 429 (no 5xx, nothing dropped),
  the server's peak RSS under 100 MB, and a probe client's latency back to quiet levels (the
  median of its last 10 reviews within 1.5x its quiet median) within 10 s of the storm's end.
* **slow clients**: 200 TLS connections that send half a request header and then one byte a
  second, held open while the paced client sends valid reviews: their p99 at most 2x quiet, and
  every slow connection closed by the server's header timeout (``SLOW_HEADER_TIMEOUT`` for the
  bench) within that timeout plus 2 s.

The paced client (and the storm's probe) runs in a process of its own (:class:`PacedClient`),
so that its latencies are not the attack generator's own event-loop backlog; the two still share
the machine's two cores with the servers, the STS front and moto.

Where the reference aws-iam-authenticator is built (tests/e2e's cache) the same scenarios run
against it, in the same namespace, with the same config file and tokens (``--no-reference``
skips it); v0.7.10's http.Server sets no timeout at all, so its slow-client rows report what it
closed within the bench's hold (``SLOW_HOLD_SECONDS``).

Every loop is bounded in count and time. The table says PASS or MISS per goal; exit 0 whenever
the benchmark ran (``--strict``: exit 1 on a MISS). Needs root and iproute2; without them it says
so in one line and exits 0.

``--workers N`` runs ``kubeiam server --workers N``: the RSS goals then hold for each process
(the largest is shown), and the storm adds the sum over the supervisor, multiprocessing's
resource tracker and the workers (RSS counts shared library pages once per process).

Run: ``.venv/bin/python bench/bench_webhook_storm.py [--quick] [--only flood,storm,slow]
[--workers N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import queue
import random
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.cluster.binaries import binaries, cache_root  # noqa: E402
from tests.e2e.netns import (  # noqa: E402
    LocalAWSInside,
    NetNamespace,
    namespace_problem,
    start_localaws_inside,
)
from tests.support.tokens import Creds  # noqa: E402
from tests.support.tokens import mint as mint_token  # noqa: E402

# bench/ is sys.path[0] when this runs as a script.
import bench_reference  # noqa: E402
import bench_server  # noqa: E402
from kubeiam.localaws.certificates import REGIONS, sts_host_names  # noqa: E402
from netns_dns import dns_namespace  # noqa: E402

KUBEIAM = ROOT / ".venv" / "bin" / "kubeiam"
SERVER_ENV = "KUBEIAM_BENCH_SERVER_ENV"
CLUSTER = bench_server.CLUSTER
#: Seconds the DNS server waits before a slow NXDOMAIN (the other half of unknown names: never).
DNS_DELAY = 3.0
#: The paced client that stands for everyone else's logins: workers, pause between reviews.
PACED_WORKERS = 2
PACED_PAUSE = 0.05
QUIET_SECONDS = 6.0
#: Reviews the paced client sends first, unmeasured (connections, TLS, the STS pool).
WARM_UP = 10
#: Flood: tokens, concurrency, and the most it may take (the rest is counted as unsent).
FLOOD_TOKENS = 2000
FLOOD_CONCURRENCY = 64
FLOOD_SECONDS = 45.0
#: Storm: tokens, concurrency, bound, and how long the probe keeps going after it.
STORM_TOKENS = 5000
STORM_CONCURRENCY = 256
STORM_SECONDS = 60.0
STORM_AFTER_SECONDS = 12.0
#: Slow clients: how many, the header timeout the bench gives the server, the probe's hold.
SLOW_CONNECTIONS = 200
SLOW_HEADER_TIMEOUT = 3.0
SLOW_HOLD_SECONDS = SLOW_HEADER_TIMEOUT + 8.0
#: A client gives up on one request after this long (then it counts as failed / dropped).
REQUEST_TIMEOUT = 30.0
START_TIMEOUT = 60.0
#: Signers: IAM users (each also signs through a role session): 2 signers per user.
SIGNER_USERS = 8
GOAL_P99_RATIO = 2.0
GOAL_METRICS_BYTES = 64 * 1024
GOAL_FLOOD_RSS_GROWTH_MB = 20.0
GOAL_STORM_RSS_MB = 100.0
GOAL_RECOVERY_SECONDS = 10.0
RECOVERY_WINDOW = 10
RECOVERY_SLACK = 1.5
#: Region-shaped labels that do not exist: prefixes and directions of real regions, numbers no
#: region has (real ones stop at single digits).
#: Real regions of the aws partition (the STS front's certificate covers them), and how many
#: consecutive reviews of the paced client name one region before it moves to the next.
VALID_REGIONS = REGIONS["aws"]
REGION_RUN = 60
FAKE_PREFIXES = ("us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx")
FAKE_DIRECTIONS = ("north", "south", "east", "west", "central", "northeast", "southeast")


# --- tokens ---------------------------------------------------------------------------------


def mint(keys: bench_reference.Keys, now: datetime, *, host: str) -> str:
    """A token for `host`, signed for the region its first label names (else us-east-1)."""
    label = host.split(".")[1] if host.count(".") >= 3 else ""
    region = label if re.fullmatch(r"[a-z]{2}-[a-z]+-[0-9]{1,3}", label) else "us-east-1"
    return mint_token(Creds(*keys), cluster=CLUSTER, region=region, host=host, now=now)


def valid_tokens(
    signers: list[bench_reference.Keys],
    count: int,
    regions: tuple[str, ...] = ("us-east-1",),
    *,
    start: int = 0,
    per_region: int = 1,
) -> list[str]:
    """`count` distinct valid tokens: distinct signers and signing seconds, all within the last
    ``(start + count) / len(signers)`` seconds (the 15-minute window leaves room). Runs of
    `per_region` consecutive tokens are signed for the same region, cycling through `regions`."""
    now = datetime.now(UTC)
    n = len(signers)
    return [
        mint(
            signers[(start + i) % n],
            now - timedelta(seconds=(start + i) // n),
            host=f"sts.{regions[(i // per_region) % len(regions)]}.amazonaws.com",
        )
        for i in range(count)
    ]


def flood_hosts(count: int, seed: int) -> tuple[list[str], list[str]]:
    """(well-formed hosts of regions that do not exist, malformed hosts), `count // 2` each."""
    rng = random.Random(seed)
    real = set(sts_host_names())
    shaped: list[str] = []
    for prefix, direction, number in rng.sample(
        list(itertools.product(FAKE_PREFIXES, FAKE_DIRECTIONS, range(10, 100))), k=count
    ):
        host = f"sts.{prefix}-{direction}-{number}.amazonaws.com"
        if host not in real:
            shaped.append(host)
        if len(shaped) == count // 2:
            break
    kinds: list[Callable[[int], str]] = [
        lambda i: f"sts.{'x' * 60}{i:06d}.amazonaws.com",  # a label over 63 characters
        lambda i: f"sts.notaregion{i}x{rng.randrange(1 << 30):x}.amazonaws.com",  # no shape
        lambda i: f"sts.us-east-1.b{i}.amazonaws.com",  # an extra label
        lambda i: f"sts.us-east-{i + 100}-z{rng.randrange(1 << 20):x}.amazonaws.com",  # 4 parts
    ]
    malformed = [kinds[i % len(kinds)](i) for i in range(count - len(shaped))]
    return shaped, malformed


# --- the servers ----------------------------------------------------------------------------


@dataclass
class Target:
    """A server under test inside the namespace."""

    name: str
    proc: subprocess.Popen[str]
    port: int
    cert: Path
    log: Path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def cpu_seconds(self) -> float:
        """User + system CPU the server and its workers used so far (bench_server's /proc
        reading); a worker that ends on the way is left out, NaN when none could be read."""
        readings = []
        for pid in process_tree(self.proc.pid):
            with contextlib.suppress(OSError):
                readings.append(bench_server.process_cpu_seconds(pid))
        return sum(readings) if readings else float("nan")

    def rss_mb(self) -> float:
        """RSS of the server's largest process (the server itself, unless it runs workers)."""
        return self.rss_largest_and_total_mb()[0]

    def rss_largest_and_total_mb(self) -> tuple[float, float]:
        """One reading of the server's process tree: its largest process's RSS and the sum over
        all of them (the supervisor and its workers); NaN for both when none could be read."""
        values = process_tree_rss_mb(self.proc.pid)
        return (max(values), sum(values)) if values else (float("nan"), float("nan"))


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the supervisor and its workers), those gone left out."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        found.append(current)
    return found


def process_tree_rss_mb(pid: int) -> list[float]:
    """RSS in MB of `pid` and of each of its descendants."""
    found: list[float] = []
    for current in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found.append(int(line.split()[1]) / 1024)
    return found


def server_help() -> str:
    done = subprocess.run(
        [str(KUBEIAM), "server", "--help"], capture_output=True, text=True, check=False
    )
    return done.stdout


def kubeiam_timeout_flags(help_text: str, header_timeout: float) -> list[str]:
    """The header timeout flag for the slow-client scenario, if this kubeiam has one."""
    found = re.search(r"(--[a-z-]*header[a-z-]*timeout[a-z-]*)", help_text)
    return [found.group(1), f"{header_timeout:g}"] if found else []


def write_config(work: Path, users: list[str]) -> Path:
    """One config file both servers read (bench_reference's mappings)."""
    account, role = bench_reference.ACCOUNT, bench_reference.ROLE
    config = {
        "clusterID": CLUSTER,
        "server": {
            "address": "127.0.0.1",
            "port": 0,
            "backendMode": ["MountedFile"],
            "mapUsers": [
                {"userarn": f"arn:aws:iam::{account}:user/{u}", "username": u, "groups": ["bench"]}
                for u in users
            ],
            "mapRoles": [
                {
                    "rolearn": f"arn:aws:iam::{account}:role/{role}",
                    "username": "bench:{{SessionName}}",
                    "groups": ["bench"],
                }
            ],
        },
    }
    path = work / "server.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_target(
    name: str,
    ns: NetNamespace,
    aws: LocalAWSInside,
    work: Path,
    config: Path,
    reference: Path | None,
    extra: list[str],
    tag: str,
) -> Target:
    state = work / f"{name}-{tag}-state"
    state.mkdir()
    log = work / f"{name}-{tag}.log"
    if name == "reference":
        assert reference is not None
        argv: list[str | Path] = [
            reference,
            "server",
            "-c",
            config,
            "--state-dir",
            state,
            "--generate-kubeconfig",
            work / f"reference-{tag}.kubeconfig",
        ]
        pattern = r"listening on 127\.0\.0\.1:(\d+)"
    else:
        argv = [KUBEIAM, "server", "-c", config, "--state-dir", state, "-l", "json", *extra]
        pattern = r'"msg":"listening".*?"port":(\d+)'
    env = bench_reference.server_env(work, aws.ca_bundle)
    # KUBEIAM_BENCH_SERVER_ENV="NAME=VALUE ...": extra environment for the servers (experiments,
    # e.g. MALLOC_ARENA_MAX=2); the table's header says when it was set.
    env.update(item.split("=", 1) for item in os.environ.get(SERVER_ENV, "").split() if "=" in item)
    with log.open("w") as handle:
        proc = ns.popen(argv, env=env, stdout=handle, stderr=handle)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        found = re.search(pattern, log.read_text())
        if found:
            return Target(name, proc, int(found.group(1)), state / "cert.pem", log)
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


def stop_target(target: Target) -> None:
    with contextlib.suppress(ProcessLookupError):
        target.proc.terminate()
    try:
        target.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        target.proc.kill()
        target.proc.wait(timeout=10)


# --- load ------------------------------------------------------------------------------------


@dataclass
class Outcomes:
    """Answers of one client: latency (ms) per answered request, statuses, failures by kind."""

    latencies: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # monotonic end time of each answer
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    #: Answers that were not a TokenReview JSON document.
    not_reviews: int = 0

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def count(self, wanted: Callable[[int], bool]) -> int:
        return sum(n for status, n in self.statuses.items() if wanted(status))


def merged(*parts: Outcomes) -> Outcomes:
    """One Outcomes holding every answer of `parts`."""
    out = Outcomes()
    for part in parts:
        out.latencies += part.latencies
        out.times += part.times
        out.not_reviews += part.not_reviews
        for status, n in part.statuses.items():
            out.statuses[status] = out.statuses.get(status, 0) + n
        for kind, n in part.failures.items():
            out.failures[kind] = out.failures.get(kind, 0) + n
    return out


def review_body(token: str) -> dict[str, Any]:
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }


async def review(session: aiohttp.ClientSession, base: str, token: str, out: Outcomes) -> None:
    started = time.monotonic()
    try:
        async with session.post(
            base + "/authenticate",
            json=review_body(token),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        ) as resp:
            body = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        kind = type(exc).__name__
        out.failures[kind] = out.failures.get(kind, 0) + 1
        return
    ended = time.monotonic()
    out.latencies.append((ended - started) * 1000)
    out.times.append(ended)
    out.statuses[status] = out.statuses.get(status, 0) + 1
    try:
        # a TokenReview's status object (the reference leaves out kind and apiVersion)
        if not isinstance(json.loads(body).get("status"), dict):
            out.not_reviews += 1
    except ValueError:
        out.not_reviews += 1


async def run_pool(
    session: aiohttp.ClientSession,
    base: str,
    tokens: list[str],
    concurrency: int,
    out: Outcomes,
    *,
    deadline: float,
    pause: float = 0.0,
    stop: asyncio.Event | None = None,
) -> int:
    """Review `tokens` with `concurrency` workers until done, `deadline` or `stop`; returns how
    many were never sent."""
    queue = list(reversed(tokens))

    async def worker() -> None:
        while queue and time.monotonic() < deadline and not (stop and stop.is_set()):
            await review(session, base, queue.pop(), out)
            if pause:
                await asyncio.sleep(pause)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(queue)


def session_for(target: Target, limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=target.ssl_context(), limit=limit)
    return aiohttp.ClientSession(connector=connector)


class PacedClient:
    """The client that stands for everyone else's logins, in a process of its own.

    It shares no event loop with the attack traffic, so its latencies are the server's and the
    machine's, not the load generator's own backlog. It first reviews `quiet` tokens alone for
    QUIET_SECONDS (the reference levels), then, once the attack starts, `loaded` tokens (tagged
    by kind) until :meth:`finish`. Started by fork from a thread inside the namespace, so its
    sockets live there too.
    """

    def __init__(
        self,
        target: Target,
        quiet: list[str],
        loaded: list[tuple[str, str]],
        *,
        workers: int = PACED_WORKERS,
    ) -> None:
        ctx = multiprocessing.get_context("fork")
        self._quiet_done = ctx.Event()
        self._stop = ctx.Event()
        self._results: multiprocessing.Queue[dict[str, Outcomes]] = ctx.Queue()
        self._proc = ctx.Process(
            target=_paced_main,
            args=(target.base, str(target.cert), quiet, loaded, workers),
            kwargs={"quiet_done": self._quiet_done, "stop": self._stop, "results": self._results},
            daemon=True,
        )

    async def quiet(self) -> None:
        """Start, and return once the quiet phase is over (bounded)."""
        self._proc.start()
        deadline = time.monotonic() + QUIET_SECONDS + 60
        while not self._quiet_done.is_set():
            if not self._proc.is_alive() or time.monotonic() > deadline:
                raise SystemExit("the paced client did not finish its quiet phase")
            await asyncio.sleep(0.05)

    async def finish(self) -> dict[str, Outcomes]:
        """Stop the loaded phase; {"quiet": ..., kind: ...} (bounded)."""
        self._stop.set()
        deadline = time.monotonic() + REQUEST_TIMEOUT + 30
        while True:
            with contextlib.suppress(queue.Empty):
                results = self._results.get_nowait()
                break
            if time.monotonic() > deadline:
                self._proc.kill()
                raise SystemExit("the paced client did not report")
            await asyncio.sleep(0.05)
        self._proc.join(timeout=10)
        return results


def _paced_main(
    base: str,
    cert: str,
    quiet: list[str],
    loaded: list[tuple[str, str]],
    workers: int,
    *,
    quiet_done: Any,
    stop: Any,
    results: Any,
) -> None:
    results.put(asyncio.run(_paced(base, cert, quiet, loaded, workers, quiet_done, stop)))


async def _paced(
    base: str,
    cert: str,
    quiet: list[str],
    loaded: list[tuple[str, str]],
    workers: int,
    quiet_done: Any,
    stop: Any,
) -> dict[str, Outcomes]:
    out: dict[str, Outcomes] = {"quiet": Outcomes()}
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=cert), limit=workers)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up: connections and TLS sessions, the server's STS connection pool.
        warm = time.monotonic() + 20
        await run_pool(session, base, quiet[:WARM_UP], workers, Outcomes(), deadline=warm)
        await run_pool(
            session,
            base,
            quiet[WARM_UP:],
            workers,
            out["quiet"],
            deadline=time.monotonic() + QUIET_SECONDS,
            pause=PACED_PAUSE,
        )
        quiet_done.set()
        pool = list(reversed(loaded))
        # Bounded even if the parent never says stop.
        deadline = time.monotonic() + STORM_SECONDS + STORM_AFTER_SECONDS + FLOOD_SECONDS

        async def worker() -> None:
            while pool and not stop.is_set() and time.monotonic() < deadline:
                kind, token = pool.pop()
                await review(session, base, token, out.setdefault(kind, Outcomes()))
                await asyncio.sleep(PACED_PAUSE)

        await asyncio.gather(*(worker() for _ in range(workers)))
    return out


def server_review_ms(target: Target, lines: tuple[int, int]) -> list[float]:
    """The kubeiam server's own latency (its review log line's ``latency_ms``) of the valid
    reviews (an STS identity, 200) logged in the line range `lines`; [] for the reference."""
    if target.name != "kubeiam":
        return []
    out = []
    for line in target.log.read_text(errors="replace").splitlines()[lines[0] : lines[1]]:
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if doc.get("logger") == "kubeiam.server.review" and doc.get("status") == 200:
                out.append(float(doc["latency_ms"]))
    return out


def log_lines(target: Target) -> int:
    time.sleep(0.05)  # the server's log writer batches lines for 2 ms
    return len(target.log.read_text(errors="replace").splitlines())


class RssSampler:
    """Samples the server's RSS every 0.1 s while running: `peak` is the highest seen of its
    largest process, `peak_total` of the sum over its processes."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.peak = 0.0
        self.peak_total = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            largest, total = self.target.rss_largest_and_total_mb()
            if largest == largest:  # not NaN
                self.peak = max(self.peak, largest)
                self.peak_total = max(self.peak_total, total)
            await asyncio.sleep(0.1)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def metrics_bytes(target: Target) -> int | None:
    """Size of the /metrics answer (both servers serve it on the webhook's port)."""
    async with session_for(target, 1) as session:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            timeout = aiohttp.ClientTimeout(total=10)
            async with session.get(target.base + "/metrics", timeout=timeout) as resp:
                if resp.status == 200:
                    return len(await resp.read())
    return None


def pct(values: list[float], q: float) -> float:
    return bench_server.pct(values, q)


# --- scenarios -------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    measure: str
    values: dict[str, str]
    goal: str
    verdicts: dict[str, str]


def server_ms_row(scenario: str, results: dict[str, Any]) -> Row:
    """kubeiam's own p99 for the valid reviews, quiet -> loaded (from its review log)."""

    def text(r: Any) -> str:
        if not r.server_quiet_ms or not r.server_loaded_ms:
            return "-"
        quiet, loaded = pct(r.server_quiet_ms, 99), pct(r.server_loaded_ms, 99)
        return f"{quiet:.1f} -> {loaded:.1f} ({loaded / quiet:.2f}x)"

    return Row(
        scenario,
        "  the server's own p99 ms for them (its log): quiet -> loaded",
        {name: text(r) for name, r in results.items()},
        "(info)",
        {},
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


R = TypeVar("R")


def columns(
    results: dict[str, R],
) -> tuple[
    Callable[[Callable[[R], str]], dict[str, str]], Callable[[Callable[[R], bool]], dict[str, str]]
]:
    """Two row makers over every server's result: ``each`` shows a value, ``judge`` a verdict."""

    def each(fn: Callable[[R], str]) -> dict[str, str]:
        return {name: fn(r) for name, r in results.items()}

    def judge(fn: Callable[[R], bool]) -> dict[str, str]:
        return {name: verdict(fn(r)) for name, r in results.items()}

    return each, judge


def p99_ratio(quiet: Outcomes, valid: Outcomes) -> float:
    """Valid reviews' p99 under load over the same client's quiet p99."""
    base = pct(quiet.latencies, 99)
    return pct(valid.latencies, 99) / base if base else float("inf")


@dataclass
class FloodResult:
    quiet: Outcomes
    #: Valid reviews during the flood: all, and those naming an STS host resolved before the
    #: flood ("known") or one the server first meets during it ("new", a real region).
    valid: Outcomes
    valid_known: Outcomes
    valid_new: Outcomes
    shaped: Outcomes
    malformed: Outcomes
    unsent: int
    seconds: float
    metrics_bytes: int | None
    rss_before: float
    rss_peak: float
    #: CPU seconds the server used during the flood (user + system).
    cpu_seconds: float = 0.0
    #: kubeiam's own time (ms) for the valid reviews: quiet, then during the flood.
    server_quiet_ms: list[float] = field(default_factory=list)
    server_loaded_ms: list[float] = field(default_factory=list)
    dns_shaped: int = 0
    dns_malformed: int = 0


async def flood(
    target: Target, signers: list[bench_reference.Keys], quick: bool, seed: int
) -> FloodResult:
    count = FLOOD_TOKENS // 5 if quick else FLOOD_TOKENS
    shaped_hosts, malformed_hosts = flood_hosts(count, seed)
    now = datetime.now(UTC)
    fake_keys: bench_reference.Keys = ("AKIAFLOODFLOODFLOOD0", "not-a-secret-" + "f" * 27, None)
    flood_tokens = [
        (kind, mint(fake_keys, now, host=host))
        for pair in itertools.zip_longest(shaped_hosts, malformed_hosts)
        for kind, host in zip(("shaped", "malformed"), pair, strict=True)
        if host is not None
    ]
    # The paced client moves to another region's STS host every REGION_RUN reviews. Before the
    # flood it meets half the partition's regions; during it, runs alternate between those
    # ("known": resolved before) and the other half ("new": hosts the server first meets while
    # the flood's hosts crowd its resolver, as when users from another region log in).
    half = len(VALID_REGIONS) // 2
    known_regions, new_regions = VALID_REGIONS[:half], VALID_REGIONS[half:]
    valid_pool: list[tuple[str, str]] = []
    runs = (3400 if not quick else 1000) // REGION_RUN
    for j in range(runs):
        kind, regions = ("known", known_regions) if j % 2 else ("new", new_regions)
        region = regions[(j // 2) % len(regions)]
        minted = valid_tokens(signers, REGION_RUN, (region,), start=600 + j * REGION_RUN)
        valid_pool += [(kind, token) for token in minted]
    paced = PacedClient(
        target, valid_tokens(signers, 600, known_regions, per_region=REGION_RUN), valid_pool
    )
    first_line = log_lines(target)
    await paced.quiet()
    quiet_line = log_lines(target)
    rss_before = target.rss_mb()
    cpu_before = target.cpu_seconds()
    shaped, malformed = Outcomes(), Outcomes()
    started = time.monotonic()
    deadline = started + FLOOD_SECONDS
    async with session_for(target, FLOOD_CONCURRENCY) as attacker:
        with RssSampler(target) as rss:
            pending = list(reversed(flood_tokens))

            async def flooder() -> None:
                while pending and time.monotonic() < deadline:
                    kind, token = pending.pop()
                    await review(
                        attacker, target.base, token, shaped if kind == "shaped" else malformed
                    )

            await asyncio.gather(*(flooder() for _ in range(FLOOD_CONCURRENCY)))
            unsent = len(pending)
            seconds = time.monotonic() - started
            cpu = target.cpu_seconds() - cpu_before
            by_kind = await paced.finish()
            last_line = log_lines(target)
            await asyncio.sleep(1.0)
            size = await metrics_bytes(target)
    known, new = by_kind.get("known", Outcomes()), by_kind.get("new", Outcomes())
    return FloodResult(
        by_kind["quiet"],
        merged(known, new),
        known,
        new,
        shaped,
        malformed,
        unsent,
        seconds,
        size,
        rss_before,
        rss.peak,
        cpu,
        server_review_ms(target, (first_line, quiet_line))[WARM_UP:],
        server_review_ms(target, (quiet_line, last_line)),
    )


def flood_rows(results: dict[str, FloodResult]) -> list[Row]:
    each, judge = columns(results)

    def ratio(r: FloodResult) -> float:
        return p99_ratio(r.quiet, r.valid)

    def bad(o: Outcomes) -> int:
        return o.failed + o.count(lambda s: s != 200)

    return [
        Row(
            "flood",
            "valid reviews during the flood: not 200 / sent",
            each(lambda r: f"{bad(r.valid)} / {r.valid.answered + r.valid.failed}"),
            "0 fail",
            judge(lambda r: bad(r.valid) == 0 and r.valid.answered > 0),
        ),
        Row(
            "flood",
            "  of which STS host resolved before / first met in the flood",
            each(
                lambda r: (
                    f"{bad(r.valid_known)} / {r.valid_known.answered + r.valid_known.failed}"
                    f" ; {bad(r.valid_new)} / {r.valid_new.answered + r.valid_new.failed}"
                )
            ),
            "0 fail",
            judge(lambda r: bad(r.valid_known) == 0 and bad(r.valid_new) == 0),
        ),
        Row(
            "flood",
            "valid p99 ms: quiet -> during flood (ratio)",
            each(
                lambda r: (
                    f"{pct(r.quiet.latencies, 99):.1f} -> {pct(r.valid.latencies, 99):.1f} "
                    f"({ratio(r):.2f}x)"
                )
            ),
            f"<= {GOAL_P99_RATIO:g}x",
            judge(lambda r: ratio(r) <= GOAL_P99_RATIO),
        ),
        server_ms_row("flood", results),
        Row(
            "flood",
            "  valid p99 ratio by STS host: resolved before / first met (DNS + new STS connection)",
            each(
                lambda r: (
                    f"{p99_ratio(r.quiet, r.valid_known):.2f}x / "
                    f"{p99_ratio(r.quiet, r.valid_new):.2f}x"
                )
            ),
            "(info)",
            {},
        ),
        Row(
            "flood",
            "/metrics size after the flood, bytes",
            each(lambda r: "n/a" if r.metrics_bytes is None else str(r.metrics_bytes)),
            f"< {GOAL_METRICS_BYTES}",
            judge(lambda r: r.metrics_bytes is not None and r.metrics_bytes < GOAL_METRICS_BYTES),
        ),
        Row(
            "flood",
            "server RSS MB: before -> peak (growth)",
            each(
                lambda r: (
                    f"{r.rss_before:.1f} -> {r.rss_peak:.1f} (+{r.rss_peak - r.rss_before:.1f})"
                )
            ),
            f"< +{GOAL_FLOOD_RSS_GROWTH_MB:g}",
            judge(lambda r: r.rss_peak - r.rss_before < GOAL_FLOOD_RSS_GROWTH_MB),
        ),
        Row(
            "flood",
            "shaped hosts (region does not exist): statuses; p50/p99 ms",
            each(
                lambda r: (
                    f"{dict(sorted(r.shaped.statuses.items()))} failed {r.shaped.failed}; "
                    f"{pct(r.shaped.latencies, 50):.0f}/{pct(r.shaped.latencies, 99):.0f}"
                )
            ),
            "(info)",
            {},
        ),
        Row(
            "flood",
            "malformed hosts: statuses; p50/p99 ms",
            each(
                lambda r: (
                    f"{dict(sorted(r.malformed.statuses.items()))} failed "
                    f"{r.malformed.failed}; "
                    f"{pct(r.malformed.latencies, 50):.0f}/{pct(r.malformed.latencies, 99):.0f}"
                )
            ),
            "(info)",
            {},
        ),
        Row(
            "flood",
            "flood: seconds; unsent at the deadline; server CPU s (busy share of 2 cores)",
            each(
                lambda r: (
                    f"{r.seconds:.1f} s; {r.unsent} unsent; {r.cpu_seconds:.1f} "
                    f"({r.cpu_seconds / r.seconds / 2:.0%})"
                )
            ),
            f"(bound {FLOOD_SECONDS:g} s)",
            {},
        ),
        Row(
            "flood",
            "distinct hosts that reached DNS: shaped / malformed",
            each(lambda r: f"{r.dns_shaped} / {r.dns_malformed}"),
            "malformed: 0",
            judge(lambda r: r.dns_malformed == 0),
        ),
    ]


@dataclass
class StormResult:
    quiet: Outcomes
    storm: Outcomes
    probe: Outcomes
    unsent: int
    seconds: float
    storm_end: float
    rss_before: float
    rss_peak: float
    #: The sum over the server's processes (more than rss_peak only with --workers).
    rss_before_total: float
    rss_peak_total: float

    @property
    def probe_during_storm(self) -> list[float]:
        pairs = zip(self.probe.times, self.probe.latencies, strict=True)
        return [latency for end, latency in pairs if end <= self.storm_end]

    @property
    def recovery_seconds(self) -> float | None:
        """Seconds from the storm's end until the probe's rolling median of RECOVERY_WINDOW
        reviews is within RECOVERY_SLACK x its quiet median (None: not within the bound)."""
        quiet = statistics.median(self.quiet.latencies) if self.quiet.latencies else 0
        pairs = list(zip(self.probe.times, self.probe.latencies, strict=True))
        for i in range(len(pairs)):
            window = [lat for _, lat in pairs[max(0, i - RECOVERY_WINDOW + 1) : i + 1]]
            end = pairs[i][0]
            if len(window) < RECOVERY_WINDOW or end < self.storm_end:
                continue
            if statistics.median(window) <= RECOVERY_SLACK * quiet:
                first = pairs[i - RECOVERY_WINDOW + 1][0]
                return max(0.0, first - self.storm_end)
        return None


async def storm(target: Target, signers: list[bench_reference.Keys], quick: bool) -> StormResult:
    count = STORM_TOKENS // 5 if quick else STORM_TOKENS
    tokens = valid_tokens(signers, count + 2000)
    storm_tokens, probe_tokens = tokens[:count], tokens[count:]
    probe = PacedClient(
        target, probe_tokens[:300], [("probe", t) for t in probe_tokens[300:]], workers=1
    )
    await probe.quiet()
    rss_before, rss_before_total = target.rss_largest_and_total_mb()
    storm_out = Outcomes()
    started = time.monotonic()
    async with session_for(target, STORM_CONCURRENCY) as crowd:
        with RssSampler(target) as rss:
            unsent = await run_pool(
                crowd,
                target.base,
                storm_tokens,
                STORM_CONCURRENCY,
                storm_out,
                deadline=started + STORM_SECONDS,
            )
            storm_end = time.monotonic()
            await asyncio.sleep(STORM_AFTER_SECONDS)
    probed = await probe.finish()
    return StormResult(
        probed["quiet"],
        storm_out,
        probed.get("probe", Outcomes()),
        unsent,
        storm_end - started,
        storm_end,
        rss_before,
        rss.peak,
        rss_before_total,
        rss.peak_total,
    )


def storm_rows(results: dict[str, StormResult], workers: int) -> list[Row]:
    each, judge = columns(results)
    largest = " (largest process)" if workers > 1 else ""

    def others(r: StormResult) -> int:
        return r.storm.count(lambda s: s not in (200, 429)) + r.storm.failed + r.unsent

    def recovery(r: StormResult) -> str:
        seconds = r.recovery_seconds
        return "not within the bound" if seconds is None else f"{seconds:.1f}"

    return [
        Row(
            "storm",
            "answers: 200 / 429 / other or dropped",
            each(
                lambda r: (
                    f"{r.storm.count(lambda s: s == 200)} / "
                    f"{r.storm.count(lambda s: s == 429)} / {others(r)}"
                )
            ),
            "other 0",
            judge(lambda r: others(r) == 0 and r.storm.not_reviews == 0),
        ),
        Row(
            "storm",
            "reviews/s; p50/p99 ms",
            each(
                lambda r: (
                    f"{r.storm.answered / r.seconds:.0f}; "
                    f"{pct(r.storm.latencies, 50):.0f}/{pct(r.storm.latencies, 99):.0f}"
                )
            ),
            "(info)",
            {},
        ),
        Row(
            "storm",
            f"server RSS MB: before -> peak{largest}",
            each(lambda r: f"{r.rss_before:.1f} -> {r.rss_peak:.1f}"),
            f"< {GOAL_STORM_RSS_MB:g}",
            judge(lambda r: r.rss_peak < GOAL_STORM_RSS_MB),
        ),
        *(
            [
                Row(
                    "storm",
                    f"server RSS MB, all {workers} workers and the supervisor: before -> peak",
                    each(lambda r: f"{r.rss_before_total:.1f} -> {r.rss_peak_total:.1f}"),
                    "(info)",
                    {},
                )
            ]
            if workers > 1
            else []
        ),
        Row(
            "storm",
            "seconds until the probe's latency is back to quiet",
            each(recovery),
            f"<= {GOAL_RECOVERY_SECONDS:g}",
            judge(
                lambda r: (
                    r.recovery_seconds is not None and r.recovery_seconds <= GOAL_RECOVERY_SECONDS
                )
            ),
        ),
        Row(
            "storm",
            "probe p50 ms: quiet / during storm",
            each(
                lambda r: f"{pct(r.quiet.latencies, 50):.1f} / {pct(r.probe_during_storm, 50):.1f}"
            ),
            "(info)",
            {},
        ),
    ]


@dataclass
class SlowResult:
    quiet: Outcomes
    valid: Outcomes
    #: Seconds each slow connection stayed open until the server closed it.
    closed_by_server: list[float]
    #: Slow connections the server had not closed after SLOW_HOLD_SECONDS.
    still_open: int
    errors: dict[str, int]
    header_timeout: float | None
    seconds: float = 0.0
    #: CPU seconds the server used while the slow connections were held.
    cpu_seconds: float = 0.0
    #: kubeiam's own time (ms) for the valid reviews: quiet, then with the slow connections.
    server_quiet_ms: list[float] = field(default_factory=list)
    server_loaded_ms: list[float] = field(default_factory=list)

    @property
    def opened(self) -> int:
        return len(self.closed_by_server) + self.still_open


async def slow_connection(
    target: Target, ctx: ssl.SSLContext, closed: list[float], errors: dict[str, int]
) -> bool | None:
    """Open a TLS connection, send half a header, then a byte a second until the server closes
    it (the seconds it stayed open go to `closed`; True) or SLOW_HOLD_SECONDS pass (False).
    None when the connection could not be opened."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", target.port, ssl=ctx), timeout=20
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        return None
    opened = time.monotonic()
    deadline = opened + SLOW_HOLD_SECONDS
    try:
        writer.write(b"POST /authenticate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(reader.read(4096), timeout=1.0)
            except TimeoutError:
                writer.write(b"a")
                await writer.drain()
                continue
            if not data:
                closed.append(time.monotonic() - opened)
                return True
            # an answer (a 408 or 400 document): read on until the server closes
        return False
    except (OSError, ssl.SSLError):
        closed.append(time.monotonic() - opened)
        return True
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), timeout=2)


async def slow_clients(
    target: Target, signers: list[bench_reference.Keys], quick: bool, header_timeout: float | None
) -> SlowResult:
    """SLOW_CONNECTIONS slots, each keeping one slow connection open (a new one as soon as the
    server closes the last) for SLOW_HOLD_SECONDS, while the paced client reviews."""
    count = SLOW_CONNECTIONS // 4 if quick else SLOW_CONNECTIONS
    tokens = valid_tokens(signers, 1500)
    paced = PacedClient(target, tokens[:400], [("valid", t) for t in tokens[400:]])
    first_line = log_lines(target)
    await paced.quiet()
    quiet_line = log_lines(target)
    ctx = target.ssl_context()
    closed: list[float] = []
    errors: dict[str, int] = {}
    still_open = 0
    cpu_before = target.cpu_seconds()
    started = time.monotonic()
    end = started + SLOW_HOLD_SECONDS

    async def slot() -> None:
        nonlocal still_open
        while time.monotonic() < end:
            result = await slow_connection(target, ctx, closed, errors)
            if result is False:
                still_open += 1
            elif result is None:
                await asyncio.sleep(0.5)

    await asyncio.gather(*(slot() for _ in range(count)))
    seconds = time.monotonic() - started
    cpu = target.cpu_seconds() - cpu_before
    reviewed = await paced.finish()
    last_line = log_lines(target)
    return SlowResult(
        reviewed["quiet"],
        reviewed.get("valid", Outcomes()),
        closed,
        still_open,
        errors,
        header_timeout,
        seconds,
        cpu,
        server_review_ms(target, (first_line, quiet_line))[WARM_UP:],
        server_review_ms(target, (quiet_line, last_line)),
    )


def slow_rows(results: dict[str, SlowResult]) -> list[Row]:
    each, judge = columns(results)

    def ratio(r: SlowResult) -> float:
        return p99_ratio(r.quiet, r.valid)

    def in_time(r: SlowResult) -> int:
        limit = (r.header_timeout or 0) + 2.0
        return sum(1 for s in r.closed_by_server if s <= limit) if r.header_timeout else 0

    def bad_valid(r: SlowResult) -> int:
        return r.valid.failed + r.valid.count(lambda s: s != 200)

    return [
        Row(
            "slow",
            "slow-header connections (200 held): opened / closed by server / open after hold",
            each(
                lambda r: (
                    f"{r.opened} / {len(r.closed_by_server)} / {r.still_open}"
                    + (f" (connect errors {r.errors})" if r.errors else "")
                )
            ),
            "all closed",
            judge(lambda r: r.opened > 0 and r.still_open == 0),
        ),
        Row(
            "slow",
            "closed within the header timeout + 2 s (timeout)",
            each(
                lambda r: (
                    f"{in_time(r)} ("
                    + (f"{r.header_timeout:g} s" if r.header_timeout else "none set")
                    + "); "
                    + (
                        f"max {max(r.closed_by_server):.1f} s"
                        if r.closed_by_server
                        else f"none within {SLOW_HOLD_SECONDS:g} s"
                    )
                )
            ),
            "all",
            judge(lambda r: r.opened > 0 and in_time(r) == r.opened),
        ),
        Row(
            "slow",
            "valid reviews meanwhile: not 200 / sent",
            each(lambda r: f"{bad_valid(r)} / {r.valid.answered + r.valid.failed}"),
            "0 fail",
            judge(lambda r: bad_valid(r) == 0 and r.valid.answered > 0),
        ),
        Row(
            "slow",
            "valid p99 ms: quiet -> with slow clients (ratio)",
            each(
                lambda r: (
                    f"{pct(r.quiet.latencies, 99):.1f} -> {pct(r.valid.latencies, 99):.1f} "
                    f"({ratio(r):.2f}x)"
                )
            ),
            f"<= {GOAL_P99_RATIO:g}x",
            judge(lambda r: ratio(r) <= GOAL_P99_RATIO),
        ),
        server_ms_row("slow", results),
        Row(
            "slow",
            "slow connections (TLS) opened per s; server CPU s (busy share of 2 cores)",
            each(
                lambda r: (
                    f"{r.opened / r.seconds:.0f}/s; {r.cpu_seconds:.1f} "
                    f"({r.cpu_seconds / r.seconds / 2:.0%})"
                )
            ),
            "(info)",
            {},
        ),
    ]


# --- the table ------------------------------------------------------------------------------


def render(rows: list[Row], names: list[str]) -> str:
    head = ["scenario", "measure", *names, "goal", *(f"{n} verdict" for n in names)]
    cells = [head]
    for row in rows:
        cells.append(
            [
                row.scenario,
                row.measure,
                *(row.values.get(n, "-") for n in names),
                row.goal,
                *(row.verdicts.get(n, "") for n in names),
            ]
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = []
    for i, cell in enumerate(cells):
        lines.append(
            "| " + " | ".join(v.ljust(w) for v, w in zip(cell, widths, strict=True)) + " |"
        )
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the load (a smoke run)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a goal is missed")
    parser.add_argument("--no-reference", action="store_true", help="kubeiam only")
    parser.add_argument(
        "--only", default="flood,storm,slow", help="comma-separated scenarios to run"
    )
    parser.add_argument(
        "--workers",
        type=int,
        choices=range(1, 9),
        default=1,
        metavar="N",
        help="run kubeiam server --workers N (1-8; default 1)",
    )
    args = parser.parse_args(argv)
    worker_flags = ["--workers", str(args.workers)] if args.workers > 1 else []
    scenarios = [s.strip() for s in args.only.split(",") if s.strip()]
    problem = namespace_problem()
    if problem is not None:
        print(f"webhook storm benchmark skipped: {problem}")
        return 0
    built = binaries(cache_root(os.environ)).aws_iam_authenticator
    reference = built if built.is_file() and not args.no_reference else None
    if reference is None and not args.no_reference:
        print(f"reference aws-iam-authenticator not built ({built}): its columns are skipped")
    names = ["kubeiam"] + (["reference"] if reference is not None else [])
    help_text = server_help()
    slow_flags = kubeiam_timeout_flags(help_text, SLOW_HEADER_TIMEOUT)
    rows: list[Row] = []
    notes: list[str] = []
    keep = os.environ.get("KUBEIAM_BENCH_KEEP")  # a directory to keep the servers' logs in
    with (
        contextlib.nullcontext(keep)
        if keep
        else tempfile.TemporaryDirectory(prefix="kubeiam-bench-storm-")
    ) as tmp:
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        answers = [*sts_host_names(), "localhost"]
        with (
            dns_namespace(answers=answers, unknown="mixed", delay=DNS_DELAY, workdir=work) as dns,
            dns.ns.entered(),
        ):
            aws = start_localaws_inside(
                dns.ns, KUBEIAM, env=bench_reference.server_env(work), log=work / "localaws.log"
            )
            users = [f"storm-{i}" for i in range(SIGNER_USERS)]
            signers = bench_reference.create_signers(aws, users)
            config = write_config(work, users)

            floods: dict[str, FloodResult] = {}
            storms: dict[str, StormResult] = {}
            slows: dict[str, SlowResult] = {}
            flood_seeds = {}
            for seed, name in enumerate(names):
                own = worker_flags if name == "kubeiam" else []
                if "flood" in scenarios:
                    target = start_target(name, dns.ns, aws, work, config, reference, own, "flood")
                    try:
                        floods[name] = asyncio.run(flood(target, signers, args.quick, seed))
                        flood_seeds[name] = seed
                    finally:
                        stop_target(target)
                if "storm" in scenarios:
                    target = start_target(name, dns.ns, aws, work, config, reference, own, "storm")
                    try:
                        storms[name] = asyncio.run(storm(target, signers, args.quick))
                    finally:
                        stop_target(target)
                if "slow" in scenarios:
                    extra = [*slow_flags, *own] if name == "kubeiam" else []
                    timeout = SLOW_HEADER_TIMEOUT if (name == "kubeiam" and slow_flags) else None
                    target = start_target(name, dns.ns, aws, work, config, reference, extra, "slow")
                    try:
                        slows[name] = asyncio.run(
                            slow_clients(target, signers, args.quick, timeout)
                        )
                    finally:
                        stop_target(target)
            seen = set(dns.stop_dns().get("names", []))
            for name, seed in flood_seeds.items():
                count = FLOOD_TOKENS // 5 if args.quick else FLOOD_TOKENS
                shaped, malformed = flood_hosts(count, seed)
                floods[name].dns_shaped = len(seen & set(shaped))
                floods[name].dns_malformed = len(seen & set(malformed))
    if floods:
        rows += flood_rows(floods)
    if storms:
        rows += storm_rows(storms, args.workers)
    if slows:
        rows += slow_rows(slows)
    if "slow" in scenarios and not slow_flags:
        notes.append(
            "kubeiam server has no header-timeout flag yet: slow clients ran with its defaults"
        )
    print(
        f"webhook under attack and in a storm, on {os.cpu_count()} shared cores, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
        + (" (--quick: a fifth of the load)" if args.quick else "")
        + (f"; kubeiam server --workers {args.workers}" if args.workers > 1 else "")
        + (
            f"; servers' extra environment: {os.environ[SERVER_ENV]}"
            if os.environ.get(SERVER_ENV)
            else ""
        )
    )
    print(render(rows, names))
    for note in notes:
        print("  " + note)
    missed = any("MISS" in row.verdicts.values() for row in rows)
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    raise SystemExit(main())
