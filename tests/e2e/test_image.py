"""`make image`: the OCI archive is valid, reproducible, minimal, and its server runs as the chart
runs it (UID 10000, read-only root, no capabilities).

Slow the first time (mmdebstrap, ~3 minutes on 2 cores); the Debian root is cached under
~/.cache/kubeiam/image/ (docs/deploy.md), so later runs take about a minute per build. Needs root
(mmdebstrap, chroot) and umoci, the independent OCI reader (`make image` installs both).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"
#: A fixed time, so that two builds made while the shared tree gains commits compare equal.
EPOCH = "1796600000"
#: Two builds, the first one cold on a new machine (mmdebstrap, ~3 min on 2 cores): the module's
#: fixture needs more than the suite's per-test limit.
pytestmark = pytest.mark.timeout(1800)


def build(source: Path, out: Path) -> str:
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    result = subprocess.run(
        [sys.executable, source / "packaging/image/build.py", "--out", out],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Piped: one line, the result.
    assert result.stdout.count("\n") == 1, result.stdout
    assert result.stderr == "", result.stderr
    return result.stdout


def layers_of(packages_txt: Path) -> list[str]:
    return re.findall(
        r"^# (?:layer|manifest) (sha256:[0-9a-f]{64})", packages_txt.read_text(), re.M
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if os.geteuid() != 0:
        pytest.fail("the image build needs root (mmdebstrap, chroot); run the e2e suite as root")
    for tool in ("mmdebstrap", "umoci"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: `make image` installs it (apt-get)")
    # Both builds from one clone of HEAD: the shared working tree may change between them.
    source = tmp_path_factory.mktemp("source") / "kubeiam"
    subprocess.run(["git", "clone", "-q", "--shared", REPO, source], check=True, timeout=120)
    first = tmp_path_factory.mktemp("image1")
    second = tmp_path_factory.mktemp("image2")
    build(source, first)
    build(source, second)
    return first, second


def test_two_builds_are_identical(images: tuple[Path, Path]) -> None:
    first, second = images
    name = f"kubeiam-{VERSION}"
    digests = layers_of(first / f"{name}.packages.txt")
    assert len(digests) == 4  # the manifest and three layers
    assert digests == layers_of(second / f"{name}.packages.txt")
    assert (first / f"{name}.oci.tar").read_bytes() == (second / f"{name}.oci.tar").read_bytes()


@pytest.fixture(scope="module")
def bundle(images: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = tmp_path_factory.mktemp("layout")
    with tarfile.open(images[0] / f"kubeiam-{VERSION}.oci.tar") as archive:
        archive.extractall(layout, filter="data")
    target = tmp_path_factory.mktemp("bundle") / "b"
    result = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{VERSION}", target],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return target


def test_config_user_entrypoint_labels(bundle: Path) -> None:
    runtime = json.loads((bundle / "config.json").read_text())
    assert runtime["process"]["user"]["uid"] == 10000
    assert runtime["process"]["user"]["gid"] == 10000
    assert runtime["process"]["args"] == ["/usr/local/bin/kubeiam"]
    labels = runtime["annotations"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert re.fullmatch(r"[0-9a-f]{40}", labels["org.opencontainers.image.revision"])


def test_no_shell_no_package_manager(bundle: Path) -> None:
    root = bundle / "rootfs"
    programs = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and os.access(path, os.X_OK)
        and (path.parent.name in ("bin", "sbin"))
    )  # fmt: skip
    assert programs == ["usr/bin/python3.11", "usr/local/bin/kubeiam"]
    for absent in ("bin/sh", "usr/bin/dpkg", "usr/bin/apt", "usr/bin/perl", "var/lib/dpkg"):
        assert not os.path.lexists(root / absent), absent
    assert (root / "usr/share/doc/kubeiam/copyright").read_text().lstrip().startswith("Apache")


def test_package_list_names_what_is_inside(images: tuple[Path, Path]) -> None:
    text = (images[0] / f"kubeiam-{VERSION}.packages.txt").read_text()
    assert re.search(r"^deb python3\.11-minimal 3\.11\.\S+$", text, re.M)
    assert re.search(r"^deb libssl3 \S+$", text, re.M)
    assert re.search(rf"^pypi kubeiam {VERSION}$", text, re.M)
    assert re.search(r"^pypi botocore \d", text, re.M)
    for build_tool in ("pip", "hatchling", "editables"):
        assert not re.search(rf"^pypi {build_tool} ", text, re.M), build_tool
    assert not re.search(r"^deb (bash|dash|dpkg|perl-base|coreutils) ", text, re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_runs_as_the_chart_runs_it(bundle: Path, tmp_path: Path) -> None:
    """UID 10000, no capabilities, no new privileges, the image's root read-only (a read-only
    bind mount in a private mount namespace): the server makes its key in the state directory
    and answers /healthz over TLS."""
    root = bundle / "rootfs"
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 10000, 10000)
    port = free_port()
    # `chroot --userspec` changes to 10000 after entering the root: the UID change from 0 clears
    # every capability (no keep-caps), so the server holds none.
    script = (
        f"mount --bind {root} {root} && mount -o remount,bind,ro {root} && "
        f"mount --bind {state} {root}/tmp && "
        f"exec chroot --userspec=10000:10000 {root} /usr/local/bin/kubeiam server "
        f"-i image-test --state-dir=/tmp/state --port={port}"
    )
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation=private", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + 30
        answer = b""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                    context.wrap_socket(raw) as tls,
                ):
                    tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answer = tls.recv(4096)
                break
            except OSError:
                time.sleep(0.3)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        status = Path(f"/proc/{proc.pid}/status").read_text()
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert (state / "state/key.pem").stat().st_uid == 10000, output
    assert re.search(r"^Uid:\s+10000\s+10000\s+10000\s+10000$", status, re.M), status
    assert re.search(r"^CapEff:\s+0+$", status, re.M), status
    assert re.search(r"^CapPrm:\s+0+$", status, re.M), status


def test_python_in_the_image_trusts_the_system_cas(bundle: Path) -> None:
    """STS is called over HTTPS with ssl's default context: the CA bundle and OpenSSL's default
    paths (usr/lib/ssl, from the openssl package left out) must be in the image."""
    probe = "import ssl; print(len(ssl.create_default_context().get_ca_certs()))"
    result = subprocess.run(
        ["chroot", "--userspec=10000:10000", bundle / "rootfs", "/usr/bin/python3.11", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 100
