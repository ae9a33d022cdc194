"""Benchmark: one `kubeiam mapping` edit of a 10,000-entry mapping, per store.

Each row is one whole :meth:`MappingEditor.edit`, as `kubeiam mapping add-user` / `remove` runs it:
read the store, load it as the server would, apply the change, validate the result by the
server's rules, check the guards, save the backup, write. Stores:

* ``aws-auth``: the aws-auth ``data`` of ``bench_mapping.build_data`` (5,000 roles, 5,000 users),
  held by an in-memory stand-in for the Kubernetes API (what is measured is kubeiam's work, not a
  round trip to an API server);
* ``file yaml``: a server config file with the same entries under ``server:`` (MountedFile), a
  real file with its lock, backup file and atomic rename;
* ``file json``: the same entries as a DynamicFile JSON file.

Goal (issue 8): each edit under 1 s (before: ~1 ms per entry through a full ruamel round trip,
10 s and more). Prints the median of several runs and PASS/MISS per row.

Run: ``.venv/bin/python bench/bench_editor.py [--entries N] [--runs N] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_mapping import ACCOUNT, build_data
from kubeiam.admin.editing.aws_auth_document import AwsAuthMappings
from kubeiam.admin.editing.backups import BackupRecord
from kubeiam.admin.editing.document import MappingDocument
from kubeiam.admin.editing.editor import MappingEditor
from kubeiam.admin.editing.file_store import FileStore
from kubeiam.admin.editing.store import Snapshot, StoreKind
from kubeiam.mapping.aws_auth import Change
from kubeiam.mapping.backends import EKS_CONFIG_MAP

GOAL_S = 1.0
NEW_USER = f"arn:aws:iam::{ACCOUNT}:user/bench-new"
#: A user in the middle of the list (build_data maps odd indexes as users).
OLD_USER = f"arn:aws:iam::{ACCOUNT}:user/user5001"


class MemoryAwsAuth:
    """The aws-auth store's contract over a dict (no API server): read, conditional write,
    backups."""

    kind = StoreKind.AWS_AUTH
    backend = EKS_CONFIG_MAP
    target = "ConfigMap kube-system/aws-auth (in memory)"

    def __init__(self, data: dict[str, str]) -> None:
        self.data = data
        self.version = 1
        self.history: list[BackupRecord] = []
        self.backup_notes: list[str] = []

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        return Snapshot(AwsAuthMappings(self.data), self.version, True)

    def open(self, state: Any) -> MappingDocument:
        return AwsAuthMappings(state)

    async def write(self, snapshot: Snapshot, document: MappingDocument) -> None:
        assert isinstance(document, AwsAuthMappings)
        assert snapshot.version == self.version
        self.data = document.data
        self.version += 1

    async def backups(self) -> list[BackupRecord]:
        return list(self.history)

    async def save_backup(self, record: BackupRecord) -> list[str]:
        json.dumps(record.to_wire())  # what the real store sends
        self.history = [*self.history, record][-10:]
        return []

    async def count_nodes(self) -> int | None:
        return None

    async def close(self) -> None:
        return None


def _indented(text: str, pad: str) -> str:
    return "".join(pad + line + "\n" for line in text.splitlines())


def config_yaml(data: dict[str, str]) -> str:
    return (
        "# kubeiam server configuration\n"
        "clusterID: bench\n"
        "server:\n"
        "  port: 21362\n"
        "  mapRoles:\n" + _indented(data["mapRoles"], "    ") + "  mapUsers:\n"
        "" + _indented(data["mapUsers"], "    ")
    )


def dynamic_json(data: dict[str, str]) -> str:
    import yaml

    return json.dumps(
        {
            "mapRoles": yaml.safe_load(data["mapRoles"]),
            "mapUsers": yaml.safe_load(data["mapUsers"]),
        },
        indent=2,
    )


def timed(store_factory: Callable[[], Any], operation: Any) -> float:
    async def run() -> float:
        store = store_factory()
        editor = MappingEditor(store, now=lambda: datetime.now(UTC), by="bench", command="bench")
        started = time.perf_counter()
        result = await editor.edit(operation)
        elapsed = time.perf_counter() - started
        assert result.written, result
        assert result.change is not Change.UNCHANGED, result
        return elapsed

    return asyncio.run(run())


def add(doc: MappingDocument) -> Change:
    return doc.upsert_user(NEW_USER, "bench-new", ["team-1"], replace=False)


def remove_new(doc: MappingDocument) -> Change:
    return doc.remove(NEW_USER)


def remove_old(doc: MappingDocument) -> Change:
    return doc.remove(OLD_USER)


def re_add_old(doc: MappingDocument) -> Change:
    return doc.upsert_user(OLD_USER, "user5001", ["team-1"], replace=False)


def measure(name: str, factory: Callable[[], Any], runs: int) -> list[tuple[str, float]]:
    times: dict[str, list[float]] = {"add": [], "remove": []}
    timed(factory, add)  # warm up: imports, regex and template caches
    timed(factory, remove_new)
    for _ in range(runs):
        times["add"].append(timed(factory, add))
        times["remove"].append(timed(factory, remove_new))
    return [(f"{name} {op}", statistics.median(values)) for op, values in times.items()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else args.runs
    data = build_data(args.entries)
    data.pop("mapAccounts", None)
    rows: list[tuple[str, float]] = []

    memory = MemoryAwsAuth(dict(data))
    rows += measure("aws-auth", lambda: memory, runs)
    with tempfile.TemporaryDirectory() as tmp:
        yaml_path = Path(tmp) / "config.yaml"
        yaml_path.write_text(config_yaml(data))
        rows += measure("file yaml", lambda: FileStore(yaml_path), runs)
        json_path = Path(tmp) / "mappings.json"
        json_path.write_text(dynamic_json(data))
        rows += measure("file json", lambda: FileStore(json_path), runs)

    load = os.getloadavg()[0]
    print(
        f"one edit of a {args.entries:,}-entry mapping, median of {runs} runs "
        f"(load average {load:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"{'store / edit':<22}{'median':>10}{'goal':>10}  result")
    missed = 0
    for name, seconds in rows:
        ok = seconds < GOAL_S
        missed += not ok
        print(f"{name:<22}{seconds:>9.3f}s{GOAL_S:>9.1f}s  {'PASS' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
