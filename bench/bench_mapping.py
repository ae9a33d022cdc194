"""Benchmark: load and index an aws-auth ConfigMap of 10,000 entries, then look callers up.

Builds aws-auth ``data`` with a mix of role entries (a fifth with IAM paths, most with templates),
user entries and a few accounts, then measures:

* ``load``: :func:`kubeiam.mapping.aws_auth.read_aws_auth` (parse the YAML strings, validate every
  entry, index by canonical ARN), median of several runs; goal (issue 3): under 1 s;
* the comparison it made: PyYAML's own C-accelerated ``yaml.load`` of the same text, which
  only parses (no validation, no index), showing what the event-stream reader saves;
* ``lookup``: :meth:`MappingSet.lookup` for known roles, known users and unmapped callers, each
  call timed on its own; median and p99;
* ``map``: the whole :meth:`MappingChain.map` (lookup + template rendering + reserved prefixes).

Run: ``.venv/bin/python bench/bench_mapping.py [--entries N] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable

import yaml

from kubeiam.identity import Identity, identity_from_caller
from kubeiam.kube.watch import EventType, WatchEvent
from kubeiam.mapping.aws_auth import read_aws_auth
from kubeiam.mapping.backends.configmap import EKSConfigMap
from kubeiam.mapping.chain import MappingChain

ACCOUNT = "111122223333"
LOAD_GOAL_S = 1.0


def build_data(entries: int) -> dict[str, str]:
    roles: list[str] = []
    users: list[str] = []
    for i in range(entries):
        if i % 2 == 0:
            path = "team/" if i % 10 == 0 else ""
            roles.append(
                f"- rolearn: arn:aws:iam::{ACCOUNT}:role/{path}Role{i}\n"
                f"  username: role{i}:{{{{SessionName}}}}\n"
                "  groups:\n"
                f"    - team-{i % 50}\n"
                "    - system:authenticated\n"
            )
        else:
            users.append(
                f"- userarn: arn:aws:iam::{ACCOUNT}:user/user{i}\n"
                f"  username: user{i}\n"
                f"  groups: [team-{i % 50}]\n"
            )
    accounts = "".join(f'- "{400000000000 + i}"\n' for i in range(10))
    return {"mapRoles": "".join(roles), "mapUsers": "".join(users), "mapAccounts": accounts}


def role(i: int) -> Identity:
    return identity_from_caller(
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/Role{i}/alice@example.com",
        account=ACCOUNT,
        user_id=f"AROAEXAMPLE{i:08d}:alice@example.com",
        access_key_id="ASIAEXAMPLE",
        partition="aws",
    )


def user(i: int) -> Identity:
    return identity_from_caller(
        arn=f"arn:aws:iam::{ACCOUNT}:user/user{i}",
        account=ACCOUNT,
        user_id=f"AIDAEXAMPLE{i:08d}",
        access_key_id="AKIAEXAMPLE",
        partition="aws",
    )


def timed(fn: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of ``runs`` calls (CPU time shows the cost on a busy machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="fewer runs and lookups")
    args = parser.parse_args(argv)
    # The generated entries carry IAM paths on purpose; their load warnings are not the output.
    logging.getLogger("kubeiam").setLevel(logging.ERROR)
    runs = 3 if args.quick else 7
    lookups = 2_000 if args.quick else 20_000
    rng = random.Random(42)

    data = build_data(args.entries)
    size_kib = sum(len(v) for v in data.values()) / 1024
    load_times, load_cpu = timed(lambda: read_aws_auth(data), runs)
    result = read_aws_auth(data)
    mappings = result.mappings
    assert result.ok, "the generated aws-auth must load"
    assert len(mappings) == args.entries + 10, "every generated entry must load"
    pyyaml_times, pyyaml_cpu = timed(
        lambda: [yaml.load(v, Loader=yaml.CSafeLoader) for v in data.values()], runs
    )

    half = args.entries // 2
    known_roles = [role(2 * rng.randrange(half)) for _ in range(lookups)]
    known_users = [user(2 * rng.randrange(half) + 1) for _ in range(lookups)]
    unmapped = [user(args.entries + rng.randrange(10**6)) for _ in range(lookups)]

    def lookup_times(identities: list[Identity], *, mapped: bool) -> list[float]:
        out = []
        found = []
        lookup = mappings.lookup
        for identity in identities:
            start = time.perf_counter()
            found.append(lookup(identity))
            out.append(time.perf_counter() - start)
        assert all((f is not None) is mapped for f in found), "lookups must find what was loaded"
        return out

    backend = EKSConfigMap()
    backend.apply(
        WatchEvent(
            EventType.ADDED,
            {"metadata": {"name": "aws-auth", "resourceVersion": "1"}, "data": data},
        )
    )
    chain = MappingChain([backend], reserved_prefixes={})

    async def map_times() -> list[float]:
        out = []
        for identity in known_roles[: lookups // 4]:
            start = time.perf_counter()
            mapped = await chain.map(identity)
            out.append(time.perf_counter() - start)
            assert mapped is not None
        return out

    rows = [
        ("load + index (read_aws_auth), wall", load_times),
        ("load + index (read_aws_auth), CPU", load_cpu),
        ("  comparison: yaml.load CSafeLoader parse, wall", pyyaml_times),
        ("  comparison: yaml.load CSafeLoader parse, CPU", pyyaml_cpu),
    ]
    lookup_rows = [
        ("lookup, mapped role (path-less STS ARN)", lookup_times(known_roles, mapped=True)),
        ("lookup, mapped user", lookup_times(known_users, mapped=True)),
        ("lookup, unmapped caller", lookup_times(unmapped, mapped=False)),
        ("chain.map, role (lookup + render)", asyncio.run(map_times())),
    ]

    print(
        f"aws-auth with {args.entries:,} entries ({args.entries // 2:,} roles, "
        f"{args.entries - args.entries // 2:,} users, 10 accounts), {size_kib:,.0f} KiB of YAML; "
        f"{len(result.warnings):,} path warnings"
    )
    print(f"{'measure':<48} {'median':>12} {'p99 / max':>12} {'runs':>8}")
    for name, values in rows:
        print(
            f"{name:<48} {statistics.median(values) * 1e3:>10.1f}ms "
            f"{max(values) * 1e3:>10.1f}ms {len(values):>8}"
        )
    for name, values in lookup_rows:
        print(
            f"{name:<48} {statistics.median(values) * 1e6:>10.2f}us "
            f"{percentile(values, 0.99) * 1e6:>10.2f}us {len(values):>8}"
        )
    load_median = statistics.median(load_times)
    verdict = "meets" if load_median < LOAD_GOAL_S else "MISSES"
    print(f"goal: load under {LOAD_GOAL_S:.0f} s -> {load_median:.3f} s, {verdict} the goal")
    return 0 if load_median < LOAD_GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
