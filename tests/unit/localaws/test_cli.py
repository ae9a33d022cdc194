"""`kubeiam localaws` as a real process: prints env and flags, serves, stops on SIGTERM."""

from __future__ import annotations

import queue
import shlex
import signal
import subprocess
import threading
from pathlib import Path

import boto3
import pytest

from kubeiam.localaws.environment import ADMIN_PROFILE
from support.cli import KUBEIAM, run_kubeiam


def _exports(lines: list[str]) -> dict[str, str]:
    env = {}
    for line in lines:
        assert line.startswith("export "), line
        name, _, value = line[len("export ") :].partition("=")
        env[name] = shlex.split(value)[0]
    return env


def test_localaws_command_serves_until_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = subprocess.Popen(
        [KUBEIAM, "localaws", "--print-env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True)
    reader.start()
    try:
        printed: list[str] = []
        while not any(line.startswith("export KUBEIAM_STS_RESOLVE=") for line in printed):
            printed.append(lines.get(timeout=60).rstrip("\n"))
        env = _exports(printed)
        assert env["AWS_PROFILE"] == ADMIN_PROFILE
        assert env["AWS_ENDPOINT_URL_STS"].startswith("http://127.0.0.1:")
        assert env["KUBEIAM_STS_RESOLVE"].startswith("sts.us-east-1.amazonaws.com=127.0.0.1:")
        credentials = Path(env["AWS_SHARED_CREDENTIALS_FILE"])
        secret = credentials.read_text().split("aws_secret_access_key = ")[1].strip()
        # The printed environment is enough for an SDK client to reach moto as the admin.
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
        session = boto3.Session(profile_name=ADMIN_PROFILE)
        sts = session.client(
            "sts", endpoint_url=env["AWS_ENDPOINT_URL_STS"], region_name=env["AWS_DEFAULT_REGION"]
        )
        assert sts.get_caller_identity()["Arn"].endswith(":user/localaws-admin")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        reader.join(5)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0
    assert "--sts-ca-bundle" in stderr
    assert "stopping" in stderr
    assert not credentials.exists()
    assert not credentials.parent.exists()
    assert secret not in stderr
    assert all(secret not in line for line in printed)


def test_localaws_is_hidden_from_help() -> None:
    done = run_kubeiam("--help", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "localaws" not in done.stdout
    shown = run_kubeiam("localaws", "--help", timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert "--print-env" in shown.stdout
