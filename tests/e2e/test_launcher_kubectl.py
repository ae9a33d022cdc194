"""The exec entry `kubeiam kubeconfig update` writes, run by the real kubectl after the
installation moved: kubectl's own message names what is gone, the launcher's error gives the fix.

An end-to-end test because it needs the built kubectl: here a missing binary fails on CI instead
of skipping (it used to live in tests/integration and skip when the e2e cache was empty).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from cluster.binaries import Binaries

from kubeiam.token.exec_credential import KUBECTL_EXEC_INFO, SUPPORTED_API_VERSIONS
from support.cli import KUBEIAM, run_kubeiam


def test_a_moved_installation_is_explained_by_kubectl(
    e2e_binaries: Binaries, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(trustme.CA().cert_pem.bytes())
    target = tmp_path / "kc"
    env = {"HOME": str(tmp_path / "home"), "PATH": f"{Path(KUBEIAM).parent}:/usr/bin:/bin"}
    # Nothing listens on port 1: kubectl runs the plugin before it connects.
    server = ["--server", "https://127.0.0.1:1", "--certificate-authority", str(ca)]
    written = run_kubeiam(
        "kubeconfig", "update", "--cluster", "kops1", *server, "--kubeconfig", str(target), env=env
    )
    assert written.returncode == 0, written.stderr
    exec_ = yaml.safe_load(target.read_text())["users"][0]["user"]["exec"]
    keys = {
        "HOME": env["HOME"],
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    }

    def kubectl_with(**changes: Any) -> subprocess.CompletedProcess[str]:
        doc = yaml.safe_load(target.read_text())
        doc["users"][0]["user"]["exec"].update(changes)
        moved = tmp_path / "moved-kc"
        moved.write_text(yaml.safe_dump(doc))
        return subprocess.run(
            [str(e2e_binaries.kubectl), "--kubeconfig", str(moved), "get", "--raw", "/version"],
            env=keys,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    gone_python = str(tmp_path / "old-venv" / "bin" / "python")
    no_python = kubectl_with(command=gone_python)
    assert no_python.returncode != 0
    # client-go prints installHint only when a PATH lookup fails (exec.Error); for an absolute
    # command that is gone it names the path: what moved. The hint with the fix is beside it in
    # the kubeconfig.
    assert f"exec: fork/exec {gone_python}: no such file or directory" in no_python.stderr
    assert "kubeiam kubeconfig update" in exec_["installHint"]
    assert "Traceback" not in no_python.stderr

    args = list(exec_["args"])
    args[3] = str(tmp_path / "old-venv" / "lib")  # the package directory argument
    no_package = kubectl_with(args=args)
    assert no_package.returncode != 0
    assert (
        f"kubeiam: error: the kubeiam package this kubeconfig entry runs is gone from {args[3]}"
        in no_package.stderr
    )
    assert "  fix: install kubeiam, then rerun kubeiam kubeconfig update" in no_package.stderr
    assert "exit code 2" in no_package.stderr
    assert "Traceback" not in no_package.stderr


@pytest.mark.parametrize("interactive", ["Never", "IfAvailable"])
@pytest.mark.parametrize("api_version", SUPPORTED_API_VERSIONS)
def test_kubectl_writes_exec_info_exactly_as_the_fast_path_knows_it(
    e2e_binaries: Binaries, tmp_path: Path, api_version: str, interactive: str
) -> None:
    """The plugin answers KUBERNETES_EXEC_INFO from a table of kubectl's exact texts without
    loading the JSON scanner: each text the real kubectl writes must be in it (a kubectl that
    wrote another spelling would only cost the parse, never a wrong answer; this says when)."""
    seen = tmp_path / "exec-info"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import os, sys\n"
        f"open({str(seen)!r}, 'w').write(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "sys.exit(1)\n"
    )
    ca = tmp_path / "ca.pem"
    ca.write_bytes(trustme.CA().cert_pem.bytes())
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": "https://127.0.0.1:1", "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": api_version,
                        "command": sys.executable,
                        "args": [str(plugin)],
                        "interactiveMode": interactive,
                    }
                },
            }
        ],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    target = tmp_path / "kc"
    target.write_text(yaml.safe_dump(kubeconfig))
    subprocess.run(
        [str(e2e_binaries.kubectl), "--kubeconfig", str(target), "get", "--raw", "/version"],
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    text = seen.read_text()
    assert KUBECTL_EXEC_INFO.get(text) == api_version, text
