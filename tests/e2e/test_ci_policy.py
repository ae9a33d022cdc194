"""CI policy of the end-to-end suite: with CI=true a skipped test fails the run; off CI it is a
skip. Checked by running pytest on one real e2e test with a plugin that marks it skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TARGET = "tests/e2e/test_binaries.py::test_default_cache_root_ignores_a_scrubbed_home"
SKIPPER = """
import pytest

def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.skip(reason="probe: capability missing"))
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "e2e_skipper.py").write_text(SKIPPER)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            TARGET,
            "-p",
            "e2e_skipper",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.mark.parametrize("ci", ["true", "1"], ids=["CI=true", "CI=1"])
def test_a_skip_fails_the_run_on_ci(tmp_path: Path, ci: str) -> None:
    done = _run(tmp_path, ci)
    assert done.returncode == 1, done.stdout + done.stderr
    # A skip at setup becomes an error, in the call a failure: either fails the run.
    assert "1 error" in done.stdout or "1 failed" in done.stdout
    line = next(x for x in done.stdout.splitlines() if "fails the run on CI" in x)
    assert "probe: capability missing" in line


def test_a_skip_is_a_skip_off_ci(tmp_path: Path) -> None:
    done = _run(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "probe: capability missing" in done.stdout
