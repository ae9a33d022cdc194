"""Run every ``bench/bench_*.py`` in turn (``make bench``).

Usage: ``python bench/run.py [NAME ...] [--quick]``. With names (``token``, ``server``...) only
those benchmarks run; ``--quick`` is passed on to each script. Each script prints its own figures
and the comparison it made; this runner adds a header per script and a closing summary, and exits
non-zero if any script failed to run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("-")]
    names = [a for a in argv if not a.startswith("-")]
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
        if not scripts:
            print(f"no benchmark called {' or '.join(names)} in {BENCH_DIR}", file=sys.stderr)
            return 2
    results: list[tuple[str, int, float]] = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.run([sys.executable, str(script), *flags], check=False).returncode
        results.append((script.name, code, time.perf_counter() - started))
    print("\n=== summary ===")
    for name, code, seconds in results:
        print(f"{name:<24} {'ok' if code == 0 else f'FAILED (exit {code})':<16} {seconds:6.1f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
