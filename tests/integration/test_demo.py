"""`make demo` (demo/run.py) in server-only mode, as a real process: what it shows and leaves.

The full mode (real kube-apiserver) runs in tests/e2e/test_demo_cluster.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

DEMO = Path(__file__).resolve().parents[2] / "demo" / "run.py"
#: A 40-character run of secret-key characters (moto's and AWS's secret access key shape) or
#: longer (session tokens), not part of a path, ARN or key id.
SECRET_SHAPE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40,}(?![A-Za-z0-9/+=])")


def demo_env(tmpdir: Path) -> dict[str, str]:
    tmpdir.mkdir()
    env = dict(os.environ)
    env.update(
        {
            "TMPDIR": str(tmpdir),  # every directory the demo and localaws create lands here
            "KUBEIAM_DEMO_MODE": "server",
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",
        }
    )
    return env


def processes_under(path: Path) -> list[str]:
    """Processes whose command line or working directory names ``path``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue  # gone, or not ours to read
        if str(path) in cmdline or cwd.startswith(str(path)):
            found.append(f"{proc.name}: {cmdline.strip()} (cwd {cwd})")
    return found


def assert_no_leftovers(tmpdir: Path) -> None:
    assert list(tmpdir.iterdir()) == [], "temporary files left behind"
    assert processes_under(tmpdir) == []


def test_server_only_demo_runs_both_seeds_and_leaves_nothing(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    done = subprocess.run(
        [sys.executable, str(DEMO)],
        env=demo_env(tmpdir),
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "server-only mode requested: showing the webhook's answers" in out
    # every command is shown as typed
    for command in (
        "$ kubeiam iam onboard-user kubedemy --cluster kubedemy --group system:masters",
        "$ kubeiam token -i kubedemy --profile kubedemy --token-only",
        "$ kubeiam iam create-access-role K8sAdmins --cluster kubedemy --group system:masters",
        "$ kubeiam iam grant alice --access-role K8sAdmins",
        "$ kubeiam iam revoke alice --access-role K8sAdmins",
    ):
        assert command in out
    # seed 1: the results table, from IAM and the webhook's answer
    assert re.search(r"IAM User ARN\s*│\s*arn:aws:iam::123456789012:user/kubedemy", out), out
    assert re.search(r"IAM User Permissions\s*│\s*Allow=eks:DescribeCluster", out)
    assert re.search(r"Username in Cluster\s*│\s*kubedemy\s", out)
    assert re.search(r"Groups in Cluster\s*│\s*system:masters\s", out)
    # seed 2: through the role while granted, refused after revocation
    assert re.search(r"granted: alice reaches the cluster as K8sAdmins:kubeiam-\d+ in groups", out)
    assert "is not authorized to perform: sts:AssumeRole" in out
    assert "alice: access refused after revocation" in out
    assert "demo finished" in out
    # secrets: no key, token or signature, although two secret keys and tokens were made
    assert re.search(r"k8s-aws-v1\.[A-Za-z0-9_-]{10}", out) is None
    assert "X-Amz-Signature=" not in out.replace("X-Amz-Signature=****", "")
    assert SECRET_SHAPE.search(out) is None, SECRET_SHAPE.search(out)
    assert "aws_secret_access_key" not in out
    assert_no_leftovers(tmpdir)


def test_ctrl_c_stops_everything_and_removes_the_files(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    proc = subprocess.Popen(
        [sys.executable, str(DEMO)],
        env=demo_env(tmpdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "kubeiam server is up" in line:
                break
        assert any("kubeiam server is up" in line for line in seen), "".join(seen)
        assert processes_under(tmpdir) != []  # the webhook is running now
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + rest
    assert "demo interrupted" in rest
    assert_no_leftovers(tmpdir)


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO), "--mode", "bogus"],
        env=demo_env(tmp_path / "tmp"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "invalid choice: 'bogus'" in done.stderr


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """demo/run.py imported as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("kubeiam_demo_run", DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    monkeypatch.setattr(sys, "path", list(sys.path))  # it adds the repository root
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("mode", "with_go", "outcome"),
    [
        ("auto", False, "no kube-apiserver binaries (Go not found): showing the webhook's answers"),
        ("auto", True, "run `make demo DEMO_BUILD=1` once to build them with Go"),
        ("server", True, "server-only mode requested"),
        ("cluster", False, "error: Go not found; install Go 1.25+ and run `make demo DEMO_BUILD"),
        ("cluster", True, "error: run `make demo DEMO_BUILD=1` once to build them with Go"),
    ],
    ids=["no-go", "go-but-not-asked-to-build", "server-asked", "cluster-no-go", "cluster-go"],
)
def test_without_cached_binaries_the_demo_says_what_it_shows_and_how_to_get_more(
    demo: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    with_go: bool,
    outcome: str,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if with_go:  # only looked up on PATH, never run without --build
        go = bin_dir / "go"
        go.write_text("#!/bin/sh\nexit 1\n")
        go.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("KUBEIAM_E2E_CACHE", str(tmp_path / "empty-cache"))
    said: list[str] = []
    if outcome.startswith("error: "):
        with pytest.raises(demo.DemoError, match=re.escape(outcome.removeprefix("error: "))):
            demo.choose_plan(mode, False, said.append)
    else:
        plan = demo.choose_plan(mode, False, said.append)
        assert plan.binaries is None
        assert outcome in plan.line
    assert said == []  # nothing is built unless asked
    assert not (tmp_path / "empty-cache").exists()
