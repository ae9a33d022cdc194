"""The Go load generator (``bench/loadgen``): built once into the e2e cache, run as a process.

On two shared cores a Python load generator takes CPU from the server it measures; the Go one
spends a small fraction of that per review, and runs in its own process whatever the number of
server workers. Built with the standard library only (no module download) by the Go toolchain on
PATH, into ``<e2e cache>/loadgen-<hash of the sources>/loadgen`` (``tests.e2e.cluster.binaries``'
cache: ``$KUBEIAM_E2E_CACHE`` or ``~/.cache/kubeiam/e2e``), so a changed source is rebuilt and an
unchanged one never is.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.cluster.binaries import cache_root, go_environment  # noqa: E402

SOURCE = Path(__file__).resolve().parent / "loadgen"
#: A build on a busy two-core machine (the toolchain's own start included).
BUILD_TIMEOUT = 600


@dataclass(frozen=True)
class LoadResult:
    """What one run of the load generator measured."""

    count: int
    seconds: float
    statuses: dict[int, int]
    errors: int
    latencies_ms: list[float]
    #: The load generator's own CPU (user + system) during the run.
    cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE.iterdir()):
        if path.suffix in (".go", ".mod"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binary_path() -> Path:
    import os

    return cache_root(os.environ) / f"loadgen-{source_hash()}" / "loadgen"


def build() -> Path | None:
    """The load generator's binary, built if needed; None (said once) without a Go toolchain."""
    import os

    target = binary_path()
    if target.is_file():
        return target
    go = shutil.which("go")
    if go is None:
        print(f"Go toolchain not on PATH: cannot build the load generator into {target}")
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / "loadgen"
        subprocess.run(
            [go, "build", "-trimpath", "-o", str(out), "."],
            cwd=SOURCE,
            env=go_environment(os.environ, None),
            check=True,
            timeout=BUILD_TIMEOUT,
        )
        out.replace(target)
    return target


def run(
    binary: Path, url: str, ca: Path, tokens: list[str], concurrency: int, count: int = 0
) -> LoadResult:
    """Send one review per token (or ``count`` reviews, cycling) at ``concurrency``."""
    argv = [str(binary), "-url", url, "-ca", str(ca), "-c", str(concurrency), "-latencies"]
    if count:
        argv += ["-n", str(count)]
    done = subprocess.run(
        argv,
        input="\n".join(tokens) + "\n",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"load generator failed ({done.returncode}): {done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    return LoadResult(
        count=int(out["count"]),
        seconds=float(out["seconds"]),
        statuses={int(k): int(v) for k, v in out["statuses"].items()},
        errors=int(out["errors"]),
        latencies_ms=[float(x) for x in out["latenciesMs"]],
        cpu_seconds=float(out["cpuSeconds"]),
    )
