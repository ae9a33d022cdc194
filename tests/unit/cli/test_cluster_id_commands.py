"""One cluster id rule for every command that takes one: the same refusal, exit 2, nothing
written (real processes; no AWS or Kubernetes is reached: the id is refused first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import run_kubeiam

KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

#: command -> its arguments around the id (ID is replaced), and the source the message names.
COMMANDS = {
    "token": (["token", "-i", "ID"], "-i/--cluster-id"),
    "verify": (["verify", "-i", "ID", "-t", "k8s-aws-v1.aGVsbG8"], "-i/--cluster-id"),
    "init": (["init", "-i", "ID", "--state-dir", "state"], "-i/--cluster-id"),
    "server": (
        ["server", "-i", "ID", "--state-dir", "state", "--port", "0"],
        "clusterID or -i/--cluster-id",
    ),
    "kubeconfig-update": (
        [
            "kubeconfig",
            "update",
            "--cluster",
            "ID",
            "--server",
            "https://127.0.0.1:6443",
            "--certificate-authority",
            "ca.pem",
            "--kubeconfig",
            "kubeconfig",
        ],
        "--cluster",
    ),
}
BAD_IDS = {"space": "my cluster", "control": "kube\x1bdemy", "too-long": "x" * 256}


@pytest.mark.parametrize("bad", list(BAD_IDS), ids=list(BAD_IDS))
@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
def test_every_command_refuses_a_bad_cluster_id_the_same_way(
    command: str, bad: str, tmp_path: Path, scrubbed_env: Path
) -> None:
    (tmp_path / "ca.pem").write_text(PEM)
    before = sorted(p.name for p in tmp_path.iterdir())
    template, source = COMMANDS[command]
    args = [BAD_IDS[bad] if a == "ID" else a for a in template]
    env = {"HOME": str(scrubbed_env), "PATH": "/usr/bin:/bin", **KEYS}
    done = run_kubeiam(*args, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("kubeiam: error: the cluster id "), done.stderr
    assert f"({source})" in lines[0]
    assert "1-255 printable ASCII characters without spaces" in lines[0]
    assert lines[1].startswith("  fix: ")
    assert len(lines) == 2
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
