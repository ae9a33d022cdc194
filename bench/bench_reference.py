"""kubeiam against the reference aws-iam-authenticator: servers, workers and token start-up.

Same machine, same token set, same STS front, measured in one run, the sides alternating in
every round and the table taking the median of the rounds (the machine is shared: a busy moment
falls on both sides). The table prints the load average before and after, each issue-14 goal
and PASS or MISS.

* **servers** (``--only servers``): ``kubeiam server`` and ``aws-iam-authenticator server`` read
  the same config file and review the same TokenReviews at concurrency 16 over keep-alive HTTPS
  connections (the Python load generator of bench_server.py): ``repeated`` (one token again and
  again) and ``distinct`` (every token new to both servers, signed just before its round). The
  token set alternates IAM-user keys and assumed-role sessions (a session token in the query, as
  most EKS users sign). The reference calls ``https://sts.us-east-1.amazonaws.com`` with the
  system trust store and cannot be pointed elsewhere, so both servers run in a network namespace
  of their own (tests/e2e/netns.py) whose hosts file maps the STS names to 127.0.0.1, where the
  local STS front listens on 443, with ``SSL_CERT_FILE`` naming the test CA. CPU per review of
  the server, the STS front's process and the load generator are shown: on two cores the
  reviews per second of the whole rig follow the sum. ``--variant LABEL:VAR=VALUE,...`` adds a
  kubeiam server with that environment (``ARGS=...``: extra flags) to the same rounds, for A/B
  comparisons (e.g. ``--variant asyncio:KUBEIAM_UVLOOP=0``, or another commit's checkout with
  ``PYTHONPATH=DIR/src``; the harness's own ``PYTHONPATH`` is passed on to its servers).
  ``--profile DIR`` samples kubeiam server with py-spy during the first round and prints where
  its time went. Needs root and
  iproute2; without them this part says so in one line and is skipped.
* **workers** (``--only workers``): the reference, ``kubeiam server`` and ``kubeiam server
  --workers 2`` loaded at concurrency 32 by the Go load generator (bench/loadgen, built once
  into the e2e cache: bench/go_loadgen.py), which does not compete for the cores as a Python
  process; server CPU counts the supervisor and its workers. Prints the 1 -> 2 worker scaling.
* **token start-up** (``--only startup``): whole processes, as kubectl runs them: the exec
  entry ``kubeiam kubeconfig update`` writes (the launcher of kubeiam.token.launcher) with
  ``KUBERNETES_EXEC_INFO`` set, ``--no-cache`` and from a cache hit, against the reference client
  (``aws-iam-authenticator token``, which has no cache); the ``sh`` launcher entry earlier
  versions wrote, ``kubeiam token`` from PATH and ``aws eks get-token`` beside them; inside the
  namespace also a profile with ``role_arn`` (AssumeRole through the local STS front, botocore's
  path) for both clients. Alternated, medians (the
  helpers of bench_token.py; awscli from ``.venv-bench``, installed from
  ``requirements/bench-lock.txt`` before the namespace is entered).

The reference binary comes from the e2e cache (``python -m tests.e2e.cluster.binaries``, Go
needed once); without it, the reference's columns are skipped with one line.

Goals (issue 14): token start-up as kubectl runs it <= 0.8x the reference client with
``--no-cache``, <= 0.7x from a cache hit; distinct tokens: server CPU per review <= 0.8x the
reference's, reviews/s >= the reference's, p99 no worse; repeated tokens: >= 3x the reference's
reviews/s (with the 60 s identity-cache TTL), p99 no worse. Exit 0 whenever the benchmark ran
(``--strict``: exit 1 on a MISS).

Run: ``.venv/bin/python bench/bench_reference.py [--quick] [--strict] [--only PARTS]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.cluster.binaries import binaries, cache_root  # noqa: E402
from tests.e2e.netns import (  # noqa: E402
    LocalAWSInside,
    NetNamespace,
    namespace_problem,
    network_namespace,
    start_localaws_inside,
)
from tests.support.tokens import Creds  # noqa: E402
from tests.support.tokens import mint as mint_token  # noqa: E402

# bench/ is sys.path[0] when this runs as a script: the load generator and the process timer
# are bench_server.py's and bench_token.py's.
import bench_server  # noqa: E402
import bench_token  # noqa: E402
import go_loadgen  # noqa: E402
from kubeiam.localaws.certificates import sts_host_names  # noqa: E402

KUBEIAM = ROOT / ".venv" / "bin" / "kubeiam"
CONCURRENCY = 16
START_TIMEOUT = 60.0
#: moto's account.
ACCOUNT = "123456789012"
#: Rounds of cells per server; the table reports the median of the rounds per kind.
ROUNDS = 5
#: Distinct tokens per cell: a cell of 500 lasted half a second, within the /proc CPU clock's
#: tick and the machine's moments; 2,000 make the per-review CPU and p99 stable run to run.
DISTINCT_PER_CELL = 2000
#: Issue 14's goals: repeated tokens >= 3x the reference's reviews/s (the identity cache);
#: distinct tokens: server CPU per review <= 0.8x the reference's (the primary figure: on two
#: cores the STS front and the load generator share the machine), reviews/s >= the reference's,
#: p99 no worse (both kinds).
GOAL_REPEATED_RATIO = 3.0
GOAL_DISTINCT_CPU_RATIO = 0.8
GOAL_DISTINCT_RATIO = 1.0
#: Issue 14: the plugin as kubectl runs it (the kubeconfig entry), against the reference client.
GOAL_STARTUP_FRESH_RATIO = 0.8
GOAL_STARTUP_CACHED_RATIO = 0.7


@dataclass(frozen=True)
class Measured:
    """One load cell against one server."""

    server: str
    kind: str
    count: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    cpu_ms_per_review: float
    #: CPU the STS front's process (moto + front) and the load generator (this process) used.
    front_cpu_ms_per_review: float
    client_cpu_ms_per_review: float

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @property
    def p99(self) -> float:
        return bench_server.pct(self.latencies_ms, 99)

    @property
    def rig_cpu_ms_per_review(self) -> float:
        """Server, STS front and load generator together: on two shared cores, the reviews
        per second of the whole rig cannot exceed about 2000 / this."""
        return self.cpu_ms_per_review + self.front_cpu_ms_per_review + self.client_cpu_ms_per_review


@dataclass(frozen=True)
class Row:
    measure: str
    kubeiam: str
    reference: str
    ratio: str
    goal: str
    verdict: str


# --- servers -------------------------------------------------------------------------------------


def server_env(home: Path, ca_bundle: Path | None = None) -> dict[str, str]:
    """A server's environment: the test CA trusted, no STS override, no metadata service."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    }
    if ca_bundle is not None:
        env["SSL_CERT_FILE"] = str(ca_bundle)
    if "PYTHONPATH" in os.environ:
        # Another checkout's src on PYTHONPATH is the kubeiam measured (and --variant
        # NAME:PYTHONPATH=DIR adds a third: two commits side by side in one run).
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


#: (access key id, secret, session token or None): what a token is signed with.
Keys = tuple[str, str, str | None]
ROLE = "bench-role"


def create_signers(aws: LocalAWSInside, users: list[str]) -> list[Keys]:
    """Signing keys of two kinds, alternating: each IAM user's own access key, and the same
    user's session in role ROLE (a session token in the query, as most EKS users sign).

    Made in moto as the admin, and through moto's STS (this thread is inside the namespace).
    """
    import boto3

    def client(service: str, keys: tuple[str, str]) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=aws.moto_url,
            region_name="us-east-1",
            aws_access_key_id=keys[0],
            aws_secret_access_key=keys[1],
        )

    iam = client("iam", aws.admin_keys)
    principals = [f"arn:aws:iam::{ACCOUNT}:user/{name}" for name in users]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    allow = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role["Arn"]}
    signers: list[Keys] = []
    for name in users:
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="assume-bench-role",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow]}),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        user_keys = (str(key["AccessKeyId"]), str(key["SecretAccessKey"]))
        session = client("sts", user_keys).assume_role(
            RoleArn=role["Arn"], RoleSessionName=f"{name}@example.com"
        )["Credentials"]
        signers.append((*user_keys, None))
        signers.append(
            (session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"])
        )
    return signers


def mint(keys: Keys, now: datetime) -> str:
    """A token signed at `now` for bench_server's cluster (the presigner kubeiam token uses)."""
    return mint_token(Creds(*keys), cluster=bench_server.CLUSTER, now=now)


#: IAM users signing the benchmark's tokens, each also through a role session: 128 signers, so
#: a cell's 2,000 distinct tokens span 16 s of signing times.
SIGNING_USERS = 64
#: The last signing second each signer list has used for distinct tokens (see distinct_tokens).
_LAST_SIGNED: dict[int, int] = {}


def distinct_tokens(keys: list[Keys], count: int) -> list[str]:
    """``count`` tokens no server has seen: signed now, for the round that starts now.

    X-Amz-Date has one-second resolution: distinct tokens come from distinct signers and
    signing seconds, going back from now (well within the 15-minute window). A round never
    reuses a second an earlier round signed in: if too few new seconds have passed, it waits.
    """
    span = -(-count // len(keys))
    last = _LAST_SIGNED.get(id(keys), 0)
    now = int(time.time())
    if now - span < last:
        time.sleep(last + span - now + 1)
        now = int(time.time())
    _LAST_SIGNED[id(keys)] = now
    return [
        mint(keys[i % len(keys)], datetime.fromtimestamp(now - i // len(keys), UTC))
        for i in range(count)
    ]


def _wait_port(proc: subprocess.Popen[str], log: Path, pattern: str) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"{log.name}: server did not start:\n{log.read_text()[-2000:]}")


def start_servers(
    ns: NetNamespace,
    aws: LocalAWSInside,
    reference: Path,
    work: Path,
    users: list[str],
    variants: dict[str, dict[str, str]] | None = None,
) -> dict[str, tuple[subprocess.Popen[str], int, Path]]:
    """Both servers inside the namespace, from one config file: name -> (process, port, cert)."""
    config = {
        "clusterID": bench_server.CLUSTER,
        "server": {
            "address": "127.0.0.1",
            "port": 0,
            "backendMode": ["MountedFile"],
            "mapUsers": [
                {"userarn": f"arn:aws:iam::{ACCOUNT}:user/{u}", "username": u, "groups": ["bench"]}
                for u in users
            ],
            "mapRoles": [
                {
                    "rolearn": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
                    "username": "bench:{{SessionName}}",
                    "groups": ["bench"],
                }
            ],
        },
    }
    path = work / "server.yaml"
    path.write_text(yaml.safe_dump(config))
    (work / "reference-state").mkdir()
    commands: dict[str, tuple[list[str | Path], str]] = {
        "reference": (
            [
                reference,
                "server",
                "-c",
                path,
                "--state-dir",
                work / "reference-state",
                "--generate-kubeconfig",
                work / "reference.kubeconfig",
            ],
            r"listening on 127\.0\.0\.1:(\d+)",
        ),
        "kubeiam": (
            [KUBEIAM, "server", "-c", path, "--state-dir", work / "kubeiam-state", "-l", "json"],
            r'"msg":"listening".*?"port":(\d+)',
        ),
    }
    kubeiam_argv, kubeiam_pattern = commands["kubeiam"]
    for label in variants or {}:
        argv = [
            a if a != work / "kubeiam-state" else work / f"kubeiam+{label}-state"
            for a in kubeiam_argv
        ]
        argv += (variants or {})[label].get(VARIANT_ARGS, "").split()
        commands[f"kubeiam+{label}"] = (argv, kubeiam_pattern)
    started = {}
    for name, (argv, pattern) in commands.items():
        log = work / f"{name}.log"
        with log.open("w") as handle:
            env = server_env(work, aws.ca_bundle)
            extra = (variants or {}).get(name.partition("+")[2], {})
            env.update((k, v) for k, v in extra.items() if k != VARIANT_ARGS)
            proc = ns.popen(argv, env=env, stdout=handle, stderr=handle)
        port = _wait_port(proc, log, pattern)
        started[name] = (proc, port, work / f"{name}-state" / "cert.pem")
    return started


async def load(
    servers: dict[str, tuple[subprocess.Popen[str], int, Path]],
    plan: dict[str, Any],
    front_pid: int,
    profile_dir: Path | None,
) -> list[Measured]:
    """Rounds of repeated then distinct tokens at concurrency 16, the servers alternating.

    Every round gives each server a cell of each kind, in the other order than the round
    before, so neither always runs on a machine still busy with the other's tail; distinct
    tokens are new in every round. With `profile_dir`, py-spy samples kubeiam server during
    its first round's cells (collapsed stacks); later rounds run unobserved.
    """
    sessions = {}
    for name, (_, port, cert) in servers.items():
        connector = aiohttp.TCPConnector(
            ssl=ssl.create_default_context(cafile=str(cert)), limit=CONCURRENCY
        )
        sessions[name] = (aiohttp.ClientSession(connector=connector), f"https://127.0.0.1:{port}")
    results: list[Measured] = []
    try:
        for session, base in sessions.values():  # warm-up: connections, TLS, first STS calls
            await bench_server.run_cell(session, base, "repeated", CONCURRENCY, [plan["warm"]] * 64)
        for round_no, kind in itertools.product(range(plan["rounds"]), ("repeated", "distinct")):
            tokens = [plan["repeated"]] * plan["repeated_count"]
            if kind == "distinct":
                tokens = plan["distinct"]()
            order = list(sessions)
            if (round_no + (kind == "distinct")) % 2:
                order.reverse()
            for name in order:
                session, base = sessions[name]
                pid = servers[name][0].pid
                profiler = None
                if profile_dir is not None and name == "kubeiam" and round_no == 0:
                    profiler = start_profiler(pid, profile_dir / f"kubeiam-{kind}.folded")
                before = (
                    bench_server.process_cpu_seconds(pid),
                    bench_server.process_cpu_seconds(front_pid),
                    time.process_time(),
                )
                seconds, latencies, statuses = await bench_server.run_cell(
                    session, base, kind, CONCURRENCY, tokens
                )
                after = (
                    bench_server.process_cpu_seconds(pid),
                    bench_server.process_cpu_seconds(front_pid),
                    time.process_time(),
                )
                if profiler is not None:
                    stop_profiler(profiler)
                per_review = [
                    (b - a) * 1000 / max(1, len(latencies))
                    for a, b in zip(before, after, strict=True)
                ]
                results.append(
                    Measured(name, kind, len(latencies), seconds, latencies, statuses, *per_review)
                )
                await asyncio.sleep(0.5)
    finally:
        for session, _ in sessions.values():
            await session.close()
    return results


def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy (from .venv-bench, installed by main before the namespace) sampling `pid`."""
    spy = bench_token.PY_SPY
    output.parent.mkdir(parents=True, exist_ok=True)
    # --gil: only the thread holding the GIL is sampled, i.e. where the server's Python CPU goes
    # (the log writer thread waiting on a write or for the GIL is not counted).
    sampling = ["--rate", "250", "--nonblocking", "--gil", "--format", "raw", "-o", str(output)]
    proc = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), *sampling],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # let it attach before the cell starts
    return proc


def stop_profiler(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def profile_summary(folded: Path, top: int = 12) -> list[str]:
    """Where the sampled time went: per function, on top of the stack (self) and anywhere in
    it below the event loop's callback runner (inclusive)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        runners = [i for i, frame in enumerate(frames) if frame.startswith("Handle._run ")]
        for frame in set(frames[runners[0] + 1 :] if runners else frames[-1:]):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return [f"{folded.name}: no samples"]
    lines = [f"{folded.name}: {total} samples with the GIL held; self time (top {top}):"]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    lines.append(f"{folded.name}: inclusive time below the event loop (top {top}):")
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    return lines


def bench_servers(
    ns: NetNamespace,
    reference: Path,
    quick: bool,
    profile_dir: Path | None = None,
    variants: dict[str, dict[str, str]] | None = None,
) -> list[Measured]:
    """Run the server comparison inside `ns` (this thread has entered it).

    The local AWS environment runs as its own process, so that the STS front both servers
    call does not share an interpreter with the load generator.
    """
    rounds = 1 if quick else ROUNDS
    distinct_count = 300 if quick else DISTINCT_PER_CELL
    repeated_count = 600 if quick else 2500
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        aws = start_localaws_inside(ns, KUBEIAM, env=server_env(work), log=work / "localaws.log")
        users = [f"bench-{i}" for i in range(SIGNING_USERS)]
        keys = create_signers(aws, users)
        now = datetime.now(UTC)
        plan = {
            "rounds": rounds,
            "warm": mint(keys[0], now + timedelta(seconds=2)),
            "repeated": mint(keys[1], now + timedelta(seconds=1)),
            "repeated_count": repeated_count,
            "distinct": lambda: distinct_tokens(keys, distinct_count),
        }
        servers = start_servers(ns, aws, reference, work, users, variants)
        try:
            return asyncio.run(load(servers, plan, aws.process.pid, profile_dir))
        finally:
            ns.stop_processes()


# --- workers, with the Go load generator -----------------------------------------------------

#: In a variant's settings: extra command-line arguments for its server (space-separated).
VARIANT_ARGS = "ARGS"
WORKERS_VARIANT = "2-workers"
#: Connections of the Go load generator: enough to keep two workers busy.
WORKERS_CONCURRENCY = 32


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and every process below it (a supervisor and its workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += bench_server.process_cpu_seconds(current)
        except OSError:
            continue
        todo.extend(children.get(current, []))
    return total


def bench_workers(ns: NetNamespace, reference: Path, loadgen: Path, quick: bool) -> list[Measured]:
    """The reference, kubeiam and kubeiam --workers 2, loaded by the Go load generator.

    Rounds of repeated then distinct tokens at concurrency 32, the servers' order alternating;
    server CPU counts the whole process tree (the supervisor and its workers).
    """
    rounds = 1 if quick else ROUNDS
    distinct_count = 300 if quick else 1000
    repeated_count = 2000 if quick else 6000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        aws = start_localaws_inside(ns, KUBEIAM, env=server_env(work), log=work / "localaws.log")
        users = [f"bench-{i}" for i in range(SIGNING_USERS)]
        keys = create_signers(aws, users)
        repeated = mint(keys[1], datetime.now(UTC) + timedelta(seconds=1))
        variants = {WORKERS_VARIANT: {VARIANT_ARGS: "--workers 2"}}
        servers = start_servers(ns, aws, reference, work, users, variants)
        results: list[Measured] = []
        try:
            for _, port, cert in servers.values():  # warm-up: connections, first STS calls
                url = f"https://127.0.0.1:{port}/authenticate"
                go_loadgen.run(loadgen, url, cert, [repeated], WORKERS_CONCURRENCY, 256)
            for round_no, kind in itertools.product(range(rounds), ("repeated", "distinct")):
                # A new repeated token per round: a slow round on a busy machine must not
                # outlive the token's 15 minutes.
                repeated = mint(keys[1], datetime.now(UTC) + timedelta(seconds=1))
                tokens = [repeated]
                count = repeated_count
                if kind == "distinct":
                    tokens = distinct_tokens(keys, distinct_count)
                    count = 0
                order = list(servers)
                if (round_no + (kind == "distinct")) % 2:
                    order.reverse()
                for name in order:
                    proc, port, cert = servers[name]
                    url = f"https://127.0.0.1:{port}/authenticate"
                    before = (tree_cpu_seconds(proc.pid), tree_cpu_seconds(aws.process.pid))
                    got = go_loadgen.run(loadgen, url, cert, tokens, WORKERS_CONCURRENCY, count)
                    after = (tree_cpu_seconds(proc.pid), tree_cpu_seconds(aws.process.pid))
                    per = [
                        (b - a) * 1000 / max(1, got.count)
                        for a, b in zip(before, after, strict=True)
                    ]
                    client = got.cpu_seconds * 1000 / max(1, got.count)
                    results.append(
                        Measured(
                            name,
                            kind,
                            got.count,
                            got.seconds,
                            got.latencies_ms,
                            got.statuses,
                            per[0],
                            per[1],
                            client,
                        )
                    )
                    time.sleep(0.5)
        finally:
            ns.stop_processes()
    return results


def workers_rows(measured: list[Measured]) -> list[Row]:
    """Reviews/s, p99 and server CPU per review of kubeiam with 1 and 2 workers beside the
    reference (medians of the rounds), and the scaling from 1 to 2 workers."""
    by: dict[tuple[str, str], list[Measured]] = {}
    for m in measured:
        by.setdefault((m.server, m.kind), []).append(m)
    two = f"kubeiam+{WORKERS_VARIANT}"
    rows = []
    for kind in ("repeated", "distinct"):
        theirs = by[("reference", kind)]
        for name, label in (("kubeiam", "1 worker"), (two, "2 workers")):
            ours = by[(name, kind)]
            for attribute, what, digits in (
                ("rps", "reviews/s", 0),
                ("p99", "p99 ms", 1),
                ("cpu_ms_per_review", "server CPU ms/review", 2),
                ("client_cpu_ms_per_review", "Go load generator CPU ms/review", 3),
            ):
                mine, other = median_of(ours, attribute), median_of(theirs, attribute)
                rows.append(
                    Row(
                        f"Go loadgen c={WORKERS_CONCURRENCY}, {kind} tokens, {label}: {what}",
                        f"{mine:.{digits}f}",
                        f"{other:.{digits}f}",
                        f"{mine / other:.2f}x" if other else "-",
                        "(info)",
                        "",
                    )
                )
        one, both = median_of(by[("kubeiam", kind)], "rps"), median_of(by[(two, kind)], "rps")
        rows.append(
            Row(
                f"Go loadgen c={WORKERS_CONCURRENCY}, {kind} tokens: scaling 1 -> 2 workers",
                f"{both / one:.2f}x" if one else "-",
                "",
                "",
                "(info)",
                "",
            )
        )
    return rows


# --- token start-up ------------------------------------------------------------------------------

#: What kubectl sets for an exec entry with apiVersion v1 and no terminal, byte for byte
#: (client-go's compact JSON and its newline; tests/e2e/test_launcher_kubectl.py reads it from
#: the real kubectl).
EXEC_INFO = (
    '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1",'
    '"spec":{"interactive":false}}\n'
)
#: Rounds of the start-up part: whole processes of ~20 ms are cheap, and on the shared machine
#: the medians of 15 rounds moved by 10% between runs, more than the changes measured.
STARTUP_ROUNDS = 41
#: Seed of the start-up part's per-round order.
ORDER_SEED = 14
#: Start-up labels (the table's rows refer to them).
REFERENCE_CLIENT = "reference client"
LAUNCHER_FRESH = "kubeconfig entry, --no-cache"
LAUNCHER_CACHED = "kubeconfig entry, cache hit"
LEGACY_FRESH = "older sh launcher entry, --no-cache"
LEGACY_CACHED = "older sh launcher entry, cache hit"
PATH_FRESH = "kubeiam token from PATH, --no-cache"
PATH_CACHED = "kubeiam token from PATH, cache hit"
AWSCLI = "aws eks get-token"
ROLE_KUBEIAM = "role_arn profile: kubeconfig entry, --no-cache"
ROLE_REFERENCE = "role_arn profile: reference client"
ROLE_PROFILE = "bench-role"
#: Prefix of the CPU-time series bench_startup keeps beside each wall-time series.
CPU_PREFIX = "cpu: "


def kubeconfig_exec(args: list[str], *, legacy: bool = False) -> list[str]:
    """The command kubectl runs for the exec entry ``kubeiam kubeconfig update`` writes (the
    launcher, built by the same function, for this checkout's interpreter and package); with
    ``legacy``, the ``sh`` launcher's entry that earlier versions wrote."""
    import kubeiam
    from kubeiam.token.launcher import launcher_command, legacy_launcher_command

    package_dir = str(Path(kubeiam.__file__).resolve().parent.parent)
    build = legacy_launcher_command if legacy else launcher_command
    command, entry_args = build(str(ROOT / ".venv" / "bin" / "python"), package_dir, args)
    return [command, *entry_args]


def role_profile_env(home: Path, aws: LocalAWSInside) -> dict[str, str]:
    """An environment whose only credentials are a profile with ``role_arn``: the botocore path
    of kubeiam (AssumeRole through the local STS front, relayed to moto) and the SDK's of the
    reference."""
    user = "bench-startup"
    signers = create_signers(aws, [user])
    akid, secret, _ = signers[0]
    (home / "aws-config").write_text(
        f"[profile {ROLE_PROFILE}]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/{ROLE}\n"
        f"source_profile = {user}\nregion = us-east-1\n"
    )
    (home / "aws-credentials").write_text(
        f"[{user}]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n"
    )
    env = server_env(home, aws.ca_bundle)
    env.update(
        AWS_PROFILE=ROLE_PROFILE,
        AWS_SDK_LOAD_CONFIG="1",
        AWS_CA_BUNDLE=str(aws.ca_bundle),
        KUBERNETES_EXEC_INFO=EXEC_INFO,
        KUBEIAM_CACHE_DIR=str(home / "kubeiam-cache"),
    )
    return env


def bench_startup(
    ns: NetNamespace | None, reference: Path | None, rounds: int
) -> dict[str, list[float]]:
    """Median-ready wall times (seconds) of each client, whole processes, in a new order each round.

    Environment keys, ``KUBERNETES_EXEC_INFO`` set as kubectl sets it. kubeiam runs as the
    kubeconfig entry starts it (the launcher) and as ``kubeiam token`` from PATH, each with
    ``--no-cache`` and from a cache hit; the reference client has no token cache. Inside a
    namespace, a profile with ``role_arn`` (AssumeRole against the local STS front) is timed
    too, for both clients.
    """
    home = Path(tempfile.mkdtemp(prefix="kubeiam-bench-reference-"))
    try:
        env = bench_token.bench_env(home)
        env["KUBERNETES_EXEC_INFO"] = EXEC_INFO
        token_args = ["token", "-i", bench_server.CLUSTER]
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            LAUNCHER_FRESH: (kubeconfig_exec([*token_args, "--no-cache"]), env),
            LAUNCHER_CACHED: (kubeconfig_exec(token_args), env),
            LEGACY_FRESH: (kubeconfig_exec([*token_args, "--no-cache"], legacy=True), env),
            LEGACY_CACHED: (kubeconfig_exec(token_args, legacy=True), env),
            PATH_FRESH: ([str(KUBEIAM), *token_args, "--no-cache"], env),
            PATH_CACHED: ([str(KUBEIAM), *token_args], env),
            AWSCLI: (
                [str(bench_token.AWS), "eks", "get-token", "--cluster-name", bench_server.CLUSTER],
                env,
            ),
        }
        if reference is not None:
            commands[REFERENCE_CLIENT] = ([str(reference), *token_args], env)
        if ns is not None:
            work = home / "role"
            work.mkdir()
            aws = start_localaws_inside(ns, KUBEIAM, env=server_env(work), log=work / "aws.log")
            role_env = role_profile_env(work, aws)
            # `ip netns exec` applies the namespace's hosts file (STS names -> the front); it
            # execs the client in place, adding the same few milliseconds to both rows.
            commands[ROLE_KUBEIAM] = (
                ns.command(kubeconfig_exec([*token_args, "--no-cache"])),
                role_env,
            )
            if reference is not None:
                commands[ROLE_REFERENCE] = (ns.command([str(reference), *token_args]), role_env)
        for label, (command, command_env) in commands.items():
            bench_token.check_output(label, command, command_env)
        times: dict[str, list[float]] = {label: [] for label in commands}
        labels = list(commands)
        # A new order every round (seeded: runs are comparable): rotating one fixed order left
        # each client always after the same neighbour, e.g. the kubeconfig entry right after the
        # role_arn reference, whose AssumeRole keeps the Python STS front busy for a moment.
        order = random.Random(ORDER_SEED)
        for _ in range(rounds):
            order.shuffle(labels)
            for label in labels:
                command, command_env = commands[label]
                wall, cpu, _ = bench_token.run_timed(command, command_env)
                times[label].append(wall)
                # CPU (user + system) under a CPU_ label: steadier than wall time on a busy
                # machine, where wall time is mostly waiting for a core.
                times.setdefault(CPU_PREFIX + label, []).append(cpu)
        return times
    finally:
        if ns is not None:
            ns.stop_processes()
        shutil.rmtree(home, ignore_errors=True)


# --- the table -----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def median_of(cells: list[Measured], attribute: str) -> float:
    return statistics.median(getattr(m, attribute) for m in cells)


def server_rows(measured: list[Measured]) -> list[Row]:
    """Goal rows from the medians of each server's rounds per kind (issue 14: the rounds
    alternate the servers, so a busy moment of the shared machine falls on both sides).

    Variants (``--variant``) get info rows of their own, against the reference."""
    by: dict[tuple[str, str], list[Measured]] = {}
    for m in measured:
        by.setdefault((m.server, m.kind), []).append(m)
    names = sorted({m.server for m in measured if m.server.startswith("kubeiam")})
    goals: dict[str, dict[str, tuple[str, float]]] = {
        # attribute -> (comparison, ratio)
        "repeated": {"rps": (">=", GOAL_REPEATED_RATIO), "p99": ("<=", 1.0)},
        "distinct": {
            "cpu_ms_per_review": ("<=", GOAL_DISTINCT_CPU_RATIO),
            "rps": (">=", GOAL_DISTINCT_RATIO),
            "p99": ("<=", 1.0),
        },
    }
    labels = {
        "rps": f"reviews/s, c={CONCURRENCY}",
        "p99": f"p99 ms, c={CONCURRENCY}",
        "cpu_ms_per_review": "server CPU ms/review",
        "front_cpu_ms_per_review": "STS front CPU ms/review",
        "client_cpu_ms_per_review": "load generator CPU ms/review",
        "rig_cpu_ms_per_review": "all three, CPU ms/review",
    }
    rows = []
    for name in names:
        for kind in ("repeated", "distinct"):
            ours, theirs = by[(name, kind)], by[("reference", kind)]
            for attribute, label in labels.items():
                mine, other = median_of(ours, attribute), median_of(theirs, attribute)
                ratio = mine / other if other else float("inf")
                goal = goals[kind].get(attribute) if name == "kubeiam" else None
                if goal is None:
                    goal_text, result = "(info)", ""
                else:
                    comparison, bound = goal
                    goal_text = f"{comparison} {bound}x" if bound != 1.0 else f"{comparison} ref"
                    ok = ratio >= bound if comparison == ">=" else ratio <= bound
                    result = verdict(ok)
                digits = 0 if attribute == "rps" else 1 if attribute == "p99" else 2
                rows.append(
                    Row(
                        f"{'' if name == 'kubeiam' else name + ' '}{kind} tokens: {label}",
                        f"{mine:.{digits}f}",
                        f"{other:.{digits}f}",
                        f"{ratio:.2f}x" if other else "-",
                        goal_text,
                        result,
                    )
                )
    return rows


def startup_rows(times: dict[str, list[float]]) -> list[Row]:
    """Goal rows: the kubeconfig entry against the reference client, medians of alternated
    rounds; kubeiam token from PATH, the role_arn profile and awscli beside them."""
    medians = {label: statistics.median(values) * 1000 for label, values in times.items()}
    theirs = medians.get(REFERENCE_CLIENT)
    rows = []
    for label, goal in (
        (LAUNCHER_FRESH, GOAL_STARTUP_FRESH_RATIO),
        (LAUNCHER_CACHED, GOAL_STARTUP_CACHED_RATIO),
        (LEGACY_FRESH, None),
        (LEGACY_CACHED, None),
        (PATH_FRESH, None),
        (PATH_CACHED, None),
    ):
        ours = medians[label]
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        if goal is None:
            goal_text, result = "(info)", ""
        else:
            goal_text = f"<= {goal}x"
            result = verdict(ours <= goal * theirs) if theirs else "skipped"
        rows.append(
            Row(
                f"token start-up ms: {label}",
                f"{ours:.1f}",
                f"{theirs:.1f}" if theirs else "absent",
                ratio,
                goal_text,
                result,
            )
        )
    if ROLE_KUBEIAM in medians:
        ours = medians[ROLE_KUBEIAM]
        role_theirs = medians.get(ROLE_REFERENCE)
        rows.append(
            Row(
                f"token start-up ms: {ROLE_KUBEIAM} (botocore, AssumeRole)",
                f"{ours:.1f}",
                f"{role_theirs:.1f}" if role_theirs else "absent",
                f"{ours / role_theirs:.2f}x" if role_theirs else "-",
                "(info)",
                "",
            )
        )
    for label in (
        LAUNCHER_FRESH,
        LAUNCHER_CACHED,
        LEGACY_FRESH,
        LEGACY_CACHED,
        PATH_FRESH,
        PATH_CACHED,
    ):
        if CPU_PREFIX + label not in medians:
            continue
        mine = medians[CPU_PREFIX + label]
        other = medians.get(CPU_PREFIX + REFERENCE_CLIENT)
        rows.append(
            Row(
                f"token start-up CPU ms (user+sys): {label}",
                f"{mine:.1f}",
                f"{other:.1f}" if other else "absent",
                f"{mine / other:.2f}x" if other else "-",
                "(info)",
                "",
            )
        )
    aws = medians[AWSCLI]
    ours = medians[LAUNCHER_FRESH]
    rows.append(
        Row(
            f"token start-up ms: {LAUNCHER_FRESH} vs {AWSCLI}",
            f"{ours:.1f}",
            f"{aws:.1f} (awscli)",
            f"{ours / aws:.2f}x",
            "(info)",
            "",
        )
    )
    return rows


def render(rows: list[Row]) -> str:
    head = Row("measure", "kubeiam", "reference", "ratio", "goal", "verdict")
    cells = [head, *rows]
    widths = [max(len(getattr(r, f)) for r in cells) for f in Row.__dataclass_fields__]
    lines = []
    for i, row in enumerate(cells):
        values = [getattr(row, f) for f in Row.__dataclass_fields__]
        lines.append(
            "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"
        )
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


@contextlib.contextmanager
def inside(ns: NetNamespace | None) -> Iterator[None]:
    if ns is None:
        yield
    else:
        with ns.entered():
            yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a goal is missed")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample kubeiam server with py-spy during its cells; collapsed stacks go to DIR",
    )
    parser.add_argument(
        "--only",
        default="servers,workers,startup",
        help="comma-separated parts to run: servers, workers, startup (default: all three)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL:VAR=VALUE[,VAR=VALUE]",
        help="also run a kubeiam server with these environment variables (A/B in one run; "
        "its rows are marked kubeiam+LABEL)",
    )
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    variants: dict[str, dict[str, str]] = {}
    for spec in args.variant:
        label, _, assignments = spec.partition(":")
        variants[label] = dict(a.split("=", 1) for a in assignments.split(",") if a)
    load_before = os.getloadavg()
    # awscli and py-spy: installed here, outside the namespace, which has no route to the
    # package index (a fresh machine used to fail here unless bench_token.py had run first).
    bench_token.ensure_bench_venv()

    built = binaries(cache_root(os.environ)).aws_iam_authenticator
    reference = built if built.is_file() else None
    if reference is None:
        print(
            f"reference aws-iam-authenticator not built ({built}): its columns are skipped "
            "(build it once with Go: python -m tests.e2e.cluster.binaries)"
        )
    problem = namespace_problem()
    if problem is not None:
        print(f"side-by-side servers skipped: {problem}")
    rows: list[Row] = []
    notes: list[str] = []
    ns_context = (
        network_namespace(hosts=sts_host_names())
        if problem is None
        else contextlib.nullcontext(None)
    )
    with ns_context as ns, inside(ns):
        if ns is not None and reference is not None and "servers" in parts:
            measured = bench_servers(ns, reference, args.quick, args.profile, variants)
            rows.extend(server_rows(measured))
            for m in measured:
                notes.append(
                    f"{m.server:<9} {m.kind:<8} {m.count:>5} reviews in {m.seconds:6.2f} s, "
                    f"p50 {bench_server.pct(m.latencies_ms, 50):6.1f} ms, "
                    f"p99 {m.p99:6.1f} ms, statuses {m.statuses}"
                )
        if ns is not None and reference is not None and "workers" in parts:
            loadgen = go_loadgen.build()
            if loadgen is not None:
                measured = bench_workers(ns, reference, loadgen, args.quick)
                rows.extend(workers_rows(measured))
                for m in measured:
                    notes.append(
                        f"{m.server:<17} {m.kind:<8} {m.count:>5} reviews in {m.seconds:6.2f} s "
                        f"(Go loadgen), p50 {bench_server.pct(m.latencies_ms, 50):6.1f} ms, "
                        f"p99 {m.p99:6.1f} ms, statuses {m.statuses}"
                    )
        if "startup" in parts:
            times = bench_startup(ns, reference, 10 if args.quick else STARTUP_ROUNDS)
            rows.extend(startup_rows(times))
    print(
        f"kubeiam vs aws-iam-authenticator {'(reference absent) ' if reference is None else ''}"
        f"on {os.cpu_count()} shared cores, load average (1, 5, 15 min) "
        f"{', '.join(f'{x:.1f}' for x in load_before)} before, "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} after"
    )
    print(render(rows))
    for note in notes:
        print("  " + note)
    if args.profile is not None:
        print("(kubeiam's first-round cells ran under py-spy; the table takes the rounds' medians)")
    if args.profile is not None:
        for folded in sorted(args.profile.glob("kubeiam-*.folded")):
            print("\n".join(profile_summary(folded)))
    missed = any(row.verdict == "MISS" for row in rows)
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    raise SystemExit(main())
