"""The installed ``kubeiam`` command, run as a real process the way kubectl and people run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: The console script of the environment running the tests (.venv/bin/kubeiam).
KUBEIAM = str(Path(sys.executable).with_name("kubeiam"))
#: Generous bound for one CLI process on a busy 2-core machine.
PROCESS_TIMEOUT = 60


def run_kubeiam(
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = PROCESS_TIMEOUT,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``kubeiam ARGS...`` with ``env`` (default: this process's environment); never raises on
    a non-zero exit, the test looks at ``returncode``, ``stdout`` and ``stderr``."""
    return subprocess.run(
        [KUBEIAM, *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def exec_credential_token(done: subprocess.CompletedProcess[str]) -> str:
    """The token inside the ExecCredential a successful ``kubeiam token`` printed."""
    assert done.returncode == 0, done.stderr
    credential = json.loads(done.stdout)
    assert credential["kind"] == "ExecCredential"
    token = credential["status"]["token"]
    assert isinstance(token, str)
    assert token.startswith("k8s-aws-v1.")
    return token
