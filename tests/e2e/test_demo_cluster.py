"""`make demo` with the real kube-apiserver: kubectl sees both workflows' identities, and nothing
is left behind (the server-only mode is in tests/integration/test_demo.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "demo" / "run.py"
SECRET_SHAPE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40,}(?![A-Za-z0-9/+=])")


def _processes_under(path: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if str(path) in cmdline or cwd.startswith(str(path)):
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def test_demo_with_the_real_api_server(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, str(DEMO), "--mode", "cluster"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "real etcd + kube-apiserver" in out
    assert "$ kubectl auth whoami" in out
    assert re.search(r"Username\s+kubedemy\n", out), out
    assert re.search(r"Groups\s+\[system:masters system:authenticated\]", out)
    assert re.search(r"Username\s+K8sAdmins:kubeiam-\d+\n", out)
    assert re.search(r"user/kubedemy .*in ConfigMap kube-system/aws-auth", out)  # the mapping
    # after revocation kubectl cannot get a token: the exec plugin exits 3 (AssumeRole refused),
    # shown as the outcome the demo expects, never as an error with a fix to apply
    assert re.search(
        r"\N{CHECK MARK} refused, as it should be: AssumeRole of \S+role/K8sAdmins was refused: "
        r"AccessDenied: .*; Unable to connect to the server: getting credentials: exec: "
        # the kubeconfig entry runs this installation's interpreter (the launcher, docs/admin.md)
        r"executable \S+/bin/python\S* failed with exit code 3 \(exit 1\)",
        out,
    ), out
    assert "alice: access refused after revocation" in out
    assert "error:" not in out
    assert "fix:" not in out
    assert re.search(r"\b[Ss]eeds?\b", out) is None
    assert "What to try next" in out[out.index("demo finished") :]
    assert "make demo DEMO_BUILD=1" not in out  # the API server was there: nothing to build
    assert re.search(r"k8s-aws-v1\.[A-Za-z0-9_-]{10}", out) is None
    assert SECRET_SHAPE.search(out) is None, SECRET_SHAPE.search(out)
    assert list(tmpdir.iterdir()) == []
    assert _processes_under(tmpdir) == []
