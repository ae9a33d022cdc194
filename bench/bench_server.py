"""Benchmark of ``kubeiam server``: reviews per second and latency, against the local STS front.

Starts the local AWS environment (moto + the STS front) in this process and ``kubeiam server``
as a subprocess on 127.0.0.1 (so the load generator and the server do not share an event loop),
then sends TokenReviews over HTTPS with keep-alive connections at concurrency 1, 16 and 64:

* ``distinct``: every review carries a token the server has not seen (one STS call each);
* ``repeated``: one token, reviewed again and again (identity-cache hits after the first).

Client-side latency is the full HTTPS round trip; server-side latency is the handler's own time,
read from the server's per-review log lines (``latency_ms``). ``healthz`` is the same round trip
with no review, the baseline a cache hit is compared with. Goal (issue 3): a cache hit adds at
most 2 ms at p99 at concurrency 16. Counts and time are bounded.

Run: ``.venv/bin/python bench/bench_server.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from kubeiam.localaws.environment import LocalAWS, start_local_aws

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tokens are minted as the tests mint theirs

from tests.support.tokens import Creds, mint  # noqa: E402

CLUSTER = "bench-cluster"
CONCURRENCY = (1, 16, 64)
#: Upper bound of wall time per cell, whatever the count.
CELL_SECONDS = 20.0
GOAL_ADDED_P99_MS = 2.0


@dataclass(frozen=True)
class Cell:
    kind: str
    concurrency: int
    count: int
    seconds: float
    client_ms: list[float]
    statuses: dict[int, int]
    server_ms: list[float]
    #: CPU time the server process used per request in this cell (user + system), in ms.
    server_cpu_ms: float

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def start_server(
    aws: LocalAWS, workdir: Path, users: list[str]
) -> tuple[subprocess.Popen[str], int, Path]:
    config = {
        "clusterID": CLUSTER,
        "server": {
            "port": 0,
            "stateDir": str(workdir / "state"),
            "mapUsers": [
                {"userarn": aws.user_arn(u), "username": u, "groups": ["bench"]} for u in users
            ],
        },
    }
    path = workdir / "server.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = workdir / "server.log"
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubeiam",
            "server",
            "-c",
            str(path),
            "-l",
            "json",
            *aws.verify_flags(),
        ],
        stderr=log_file,
        text=True,
        env={**os.environ, **aws.client_env()},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            doc = json.loads(line)
            if doc.get("msg") == "listening":
                return proc, int(doc["port"]), log_path
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log_path.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start within 30 s")


def server_latencies(log_path: Path, skip_lines: int) -> tuple[list[float], int]:
    lines = log_path.read_text().splitlines()
    out = []
    for line in lines[skip_lines:]:
        doc = json.loads(line)
        if doc.get("logger") == "kubeiam.server.review":
            out.append(float(doc["process_ms"]))
    return out, len(lines)


async def run_cell(
    session: aiohttp.ClientSession,
    base: str,
    kind: str,
    concurrency: int,
    tokens: list[str],
) -> tuple[float, list[float], dict[int, int]]:
    """Send one request per token (or GET /healthz when kind is healthz) with N workers."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(tokens))
    deadline = time.perf_counter() + CELL_SECONDS

    async def worker() -> None:
        while queue and time.perf_counter() < deadline:
            token = queue.pop()
            started = time.perf_counter()
            if kind == "healthz":
                async with session.get(base + "/healthz") as resp:
                    await resp.read()
                    status = resp.status
            else:
                body = {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "spec": {"token": token},
                }
                async with session.post(base + "/authenticate", json=body) as resp:
                    await resp.read()
                    status = resp.status
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, statuses


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc), in seconds.

    Unlike wall-clock latency, this does not grow when other processes take the cores, so it
    is the fairer measure of what one review costs the server on a shared machine.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


async def bench(
    aws: LocalAWS, port: int, pid: int, cert: Path, log_path: Path, plan: dict[str, Any]
) -> list[Cell]:
    ctx = ssl.create_default_context(cafile=str(cert))
    base = f"https://127.0.0.1:{port}"
    cells: list[Cell] = []
    lines_seen = 0
    distinct: list[str] = plan["distinct"]
    repeated_token: str = plan["repeated"]
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ctx, limit=max(CONCURRENCY))
    ) as session:
        # warm up: connections, TLS sessions, the repeated token's one STS call
        await run_cell(session, base, "healthz", max(CONCURRENCY), ["-"] * 200)
        await run_cell(session, base, "repeated", 4, [repeated_token] * 50)
        _, lines_seen = server_latencies(log_path, 0)
        # healthz and repeated side by side at each concurrency, so that the baseline and the
        # cache hits are measured under the same (shared-machine) conditions
        for concurrency in CONCURRENCY:
            for kind in ("healthz", "repeated", "distinct"):
                if kind == "distinct":
                    n = plan["distinct_per_cell"]
                    tokens, distinct = distinct[:n], distinct[n:]
                elif kind == "repeated":
                    tokens = [repeated_token] * plan["repeated_per_cell"]
                else:
                    tokens = ["-"] * plan["repeated_per_cell"]
                sts_before = aws.sts_requests
                cpu_before = process_cpu_seconds(pid)
                seconds, client_ms, statuses = await run_cell(
                    session, base, kind, concurrency, tokens
                )
                cpu_ms = (process_cpu_seconds(pid) - cpu_before) * 1000 / max(1, len(client_ms))
                await asyncio.sleep(0.2)  # let the server flush its log lines
                server_ms, lines_seen = server_latencies(log_path, lines_seen)
                cell = Cell(
                    kind,
                    concurrency,
                    len(client_ms),
                    seconds,
                    client_ms,
                    statuses,
                    server_ms,
                    cpu_ms,
                )
                cells.append(cell)
                sts_calls = aws.sts_requests - sts_before
                if kind == "repeated" and sts_calls:
                    print(f"warning: repeated tokens made {sts_calls} STS calls", file=sys.stderr)
                if kind == "distinct" and sts_calls != cell.count:
                    print(
                        f"warning: {cell.count} distinct reviews made {sts_calls} STS calls",
                        file=sys.stderr,
                    )
    return cells


def table(cells: list[Cell]) -> str:
    head = (
        "| tokens   | conc | reviews | req/s  | client p50 ms | client p99 ms "
        "| server p50 ms | server p99 ms | server CPU ms/req | statuses |"
    )
    rows = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for c in cells:
        server50 = f"{pct(c.server_ms, 50):.2f}" if c.server_ms else "-"
        server99 = f"{pct(c.server_ms, 99):.2f}" if c.server_ms else "-"
        rows.append(
            f"| {c.kind:<8} | {c.concurrency:>4} | {c.count:>7} | {c.rps:>6.0f} "
            f"| {pct(c.client_ms, 50):>13.2f} | {pct(c.client_ms, 99):>13.2f} "
            f"| {server50:>13} | {server99:>13} | {c.server_cpu_ms:>17.3f} | {c.statuses} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = parser.parse_args(argv)
    distinct_per_cell = 60 if args.quick else 300
    repeated_per_cell = 300 if args.quick else 3000
    with start_local_aws("us-east-1") as aws, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        users = [f"bench-{i}" for i in range(4)]
        keys = [aws.create_user(u) for u in users]
        now = datetime.now(UTC)
        # X-Amz-Date has one-second resolution: distinct tokens come from distinct signing
        # seconds (within the 15-minute window) and distinct users.
        needed = distinct_per_cell * len(CONCURRENCY)
        distinct = [
            mint(
                Creds(*keys[i % len(keys)]),
                cluster=CLUSTER,
                now=now - timedelta(seconds=i // len(keys)),
            )
            for i in range(needed)
        ]
        repeated = mint(Creds(*keys[0]), cluster=CLUSTER, now=now + timedelta(seconds=1))
        proc, port, log_path = start_server(aws, workdir, users)
        try:
            cells = asyncio.run(
                bench(
                    aws,
                    port,
                    proc.pid,
                    workdir / "state" / "cert.pem",
                    log_path,
                    {
                        "distinct": distinct,
                        "repeated": repeated,
                        "distinct_per_cell": distinct_per_cell,
                        "repeated_per_cell": repeated_per_cell,
                    },
                )
            )
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(table(cells))
    by = {(c.kind, c.concurrency): c for c in cells}
    hit, base = by[("repeated", 16)], by[("healthz", 16)]
    added = pct(hit.client_ms, 99) - pct(base.client_ms, 99)
    handler99 = pct(hit.server_ms, 99)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())

    def verdict(value: float) -> str:
        return "met" if value <= GOAL_ADDED_P99_MS else "MISSED"

    print(
        f"\nGoal: a cache hit adds at most {GOAL_ADDED_P99_MS} ms at p99, concurrency 16.\n"
        f"  review handler (after the body is read): p50 {pct(hit.server_ms, 50):.2f} ms, "
        f"p99 {handler99:.2f} ms: {verdict(handler99)}\n"
        f"  round trip vs /healthz measured alongside: p99 {pct(hit.client_ms, 99):.2f} ms vs "
        f"{pct(base.client_ms, 99):.2f} ms, {added:+.2f} ms: {verdict(added)}\n"
        f"  server CPU per request: cache hit {hit.server_cpu_ms:.3f} ms vs /healthz "
        f"{base.server_cpu_ms:.3f} ms: a hit costs {hit.server_cpu_ms - base.server_cpu_ms:+.3f} "
        "ms of CPU (TLS and HTTP included in both)\n"
        f"  load average during the run: {load} on {os.cpu_count()} cores shared with the load "
        "generator, the STS front and moto; a saturated machine turns round trips into queueing."
    )
    miss = statistics.median(by[("distinct", 1)].client_ms)
    hit1 = statistics.median(by[("repeated", 1)].client_ms)
    print(f"median review at concurrency 1: distinct token {miss:.2f} ms, cache hit {hit1:.2f} ms")
    # Exit 0 whenever the benchmark ran: the verdicts above are the result, and on a shared
    # machine a missed round-trip figure is not a failure to run.
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
