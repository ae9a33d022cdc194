"""`kubeiam init --prepare-dir` (the init container) and `kubeiam init --static-pod` (kubeadm)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from deploy_helpers import StartServer, relocate

from kubeiam.cli.app import cli
from kubeiam.cli.init import SERVER_GID, SERVER_UID

IS_ROOT = os.geteuid() == 0


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["init", *args])
    return result.exit_code, result.output


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def target_owner() -> tuple[int, int]:
    """The server's UID/GID as root; without root only one's own ids can be given."""
    return (SERVER_UID, SERVER_GID) if IS_ROOT else (os.getuid(), os.getgid())


def make_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for name in ("cert.pem", "key.pem", "kubeconfig.yaml"):
        (state / name).write_text(name)
    os.chmod(state / "key.pem", 0o600)
    (state / "unrelated.txt").write_text("not kubeiam's")
    return state


def test_prepare_dir_gives_the_directory_and_kubeiam_files(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    uid, gid = target_owner()
    code, output = invoke(f"--prepare-dir={state}", f"--owner={uid}:{gid}")
    assert code == 0, output
    for name in (".", "cert.pem", "key.pem", "kubeconfig.yaml"):
        assert owner(state / name) == (uid, gid), name
    assert "cert.pem, key.pem, kubeconfig.yaml" in output
    if IS_ROOT:
        assert owner(state / "unrelated.txt") == (0, 0)
    # The key keeps its mode: only the owner changes.
    assert (state / "key.pem").stat().st_mode & 0o777 == 0o600


def test_prepare_dir_creates_a_missing_directory(tmp_path: Path) -> None:
    uid, gid = target_owner()
    missing = tmp_path / "a/b"
    code, output = invoke(f"--prepare-dir={missing}", f"--owner={uid}:{gid}")
    assert code == 0, output
    assert missing.is_dir()
    assert owner(missing) == (uid, gid)
    if IS_ROOT:
        assert "no kubeiam files yet" in output


@pytest.mark.skipif(not IS_ROOT, reason="root planting a link for root to follow: needs root")
def test_prepare_dir_never_follows_a_planted_link(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("root's")
    (state / "cert.pem").unlink()
    (state / "cert.pem").symlink_to(victim)
    code, output = invoke(f"--prepare-dir={state}", f"--owner={SERVER_UID}:{SERVER_GID}")
    assert code == 0, output
    assert owner(victim) == (0, 0)
    assert owner(state / "key.pem") == (SERVER_UID, SERVER_GID)


@pytest.mark.skipif(not IS_ROOT, reason="dropping to CAP_CHOWN alone needs root")
def test_prepare_dir_needs_cap_chown_alone(tmp_path: Path) -> None:
    """As the chart's init container runs it: UID 0, every capability but CHOWN dropped, on a
    root-owned 0700 directory holding a 0600 key."""
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is part of every Debian system"
    state = make_state(tmp_path)
    command = [
        setpriv, "--bounding-set=-all,+chown", "--inh-caps=-all", "--",
        sys.executable, "-m", "kubeiam", "init", f"--prepare-dir={state}",
        f"--owner={SERVER_UID}:{SERVER_GID}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert owner(state / "key.pem") == (SERVER_UID, SERVER_GID)
    assert owner(state) == (SERVER_UID, SERVER_GID)
    # The pod's next start: the directory (0700) is the server's now, and root without
    # CAP_DAC_READ_SEARCH cannot look inside; it is left as is instead of failing the pod.
    os.chmod(state, 0o700)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "already" in result.stderr
    # Without CAP_CHOWN the same command is refused in one line, not a traceback.
    (tmp_path / "again").mkdir()
    again = make_state(tmp_path / "again")
    command[1] = "--bounding-set=-all"
    command[-2] = f"--prepare-dir={again}"
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "kubeiam: error: cannot give" in result.stderr
    assert "Traceback" not in result.stderr
    assert owner(again) == (0, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--owner=10000"], "is not UID:GID", id="owner-no-gid"),
        pytest.param(["--owner=kubeiam:kubeiam"], "is not UID:GID", id="owner-names"),
        pytest.param(["--renew"], "a step of its own", id="with-renew"),
        pytest.param(["--static-pod=/tmp/x.yaml"], "a step of its own", id="with-static-pod"),
    ],
)
def test_prepare_dir_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = invoke(f"--prepare-dir={tmp_path}", *args)
    assert code == 2
    assert message in output
    assert "Traceback" not in output


def test_init_without_cluster_id_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEIAM_CLUSTER_ID", raising=False)
    monkeypatch.delenv("KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID", raising=False)
    code, output = invoke(f"--state-dir={tmp_path}")
    assert code == 2
    assert "missing --cluster-id" in output
    assert not list(tmp_path.iterdir())


def test_static_pod_runs_the_server_with_inits_state(
    tmp_path: Path, start_server: StartServer
) -> None:
    state = tmp_path / "state"
    pod_file = tmp_path / "manifests/kubeiam.yaml"
    code, output = invoke(
        "-i", "c1", f"--state-dir={state}", f"--static-pod={pod_file}",
        "--image=reg.example/kubeiam:0.1.0", "--server-config=/etc/kubeiam/config.yaml",
    )  # fmt: skip
    assert code == 0, output
    assert pod_file.stat().st_mode & 0o777 == 0o600
    text = pod_file.read_text()
    # No YAML anchors and aliases for people editing the manifest to puzzle over.
    assert "&id" not in text
    assert "*id" not in text
    pod = yaml.safe_load(text)
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["namespace"] == "kube-system"
    spec = pod["spec"]
    assert spec["hostNetwork"] is True
    (server,) = spec["containers"]
    (init,) = spec["initContainers"]
    assert server["image"] == init["image"] == "reg.example/kubeiam:0.1.0"
    assert init["args"] == [
        "init",
        f"--prepare-dir={state}",
        f"--owner={SERVER_UID}:{SERVER_GID}",
    ]
    volumes = {v["name"]: v["hostPath"] for v in spec["volumes"]}
    assert volumes["state"] == {"path": str(state), "type": "DirectoryOrCreate"}
    assert volumes["config"] == {"path": "/etc/kubeiam/config.yaml", "type": "File"}
    # The server, started with the manifest's arguments, uses the key and certificate init wrote.
    config_file = tmp_path / "config.yaml"
    config_file.write_text("clusterID: c1\n")
    started = start_server(relocate(server["args"], {"/etc/kubeiam/config.yaml": config_file}))
    assert started.workers == 1
    config = started.config
    assert config.cluster_id == "c1"
    assert config.state_dir == state
    assert config.generate_kubeconfig is None
    assert (state / "cert.pem").exists()
    assert (state / "key.pem").exists()


def test_static_pod_unwritable_path_is_one_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, output = invoke(
        "-i", "c1", f"--state-dir={tmp_path / 'state'}", f"--static-pod={blocker / 'pod.yaml'}"
    )
    assert code == 2
    assert "cannot write the static pod" in output
    assert "Traceback" not in output
