"""A corpus of bad files fed to every command that reads one: a guard against the next traceback.

Each command runs as a real process. Where the input cannot be used, the command must fail at
once with a documented exit code and ``kubeiam: error:`` on stderr; whatever the input, stderr
never holds a ``Traceback``, no command hangs (a FIFO is never opened in a blocking way), and the
file is left exactly as it was. A new command that reads a file belongs in ``FILE_COMMANDS``.

The unreadable-file case (mode 000) runs its command as the unprivileged user ``nobody`` when the
tests run as root (root reads any file whatever its mode, so only another user can be refused),
in a directory made for the case that ``nobody`` can reach.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubeiam.localaws.environment import LocalAWS
from support.cli import KUBEIAM

#: A command that reads a bad file fails in well under a second; a hang is a bug.
TIMEOUT = 30
#: Exit codes documented in kubeiam.errors and click (2: usage).
DOCUMENTED_EXIT_CODES = {1, 2, 3, 4, 5}
KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def _billion_laughs() -> bytes:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        name, prev = chr(97 + i), chr(96 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return ("\n".join(lines) + "\n").encode()


#: Bad contents that are also JSON-shaped where it matters, so that YAML and JSON readers both
#: meet the class itself rather than a syntax error.
BAD_CONTENT: dict[str, bytes] = {
    "non-utf8": b"apiVersion: v1\nkind: \xff\xfeConfig\n",
    "lone-surrogate-escape": b'{"mapRoles": [{"rolearn": "\\ud800", "username": "x"}]}\n',
    "control-chars": b"apiVersion: v1\nkind: Con\x07fig\n",
    "deep-nesting-100k": b"[" * 100_000 + b"]" * 100_000,
    "huge-int": b'{"port": ' + b"9" * 5000 + b"}\n",
    "billion-laughs": _billion_laughs(),
    "duplicate-keys": b'{"mapRoles": [], "mapRoles": []}\n',
    "wrong-shape": b'["a", "list"]\n',
    "empty": b"",
}


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _symlink_loop(path: Path) -> None:
    other = path.with_name(path.name + ".loop")
    path.symlink_to(other)
    other.symlink_to(path)


def _unreadable(path: Path) -> None:
    path.write_text("apiVersion: v1\n")
    path.chmod(0)


#: Who runs the mode-000 case when the tests run as root: root's CAP_DAC_OVERRIDE reads any
#: file, so the refusal is only real for another user (nobody/nogroup, no supplementary groups).
NOBODY = 65534
#: util-linux's setpriv switches ids before it runs kubeiam (see :func:`run`).
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


def _runs_as_nobody(case: str) -> bool:
    return case == "unreadable-000" and os.geteuid() == 0


@contextlib.contextmanager
def _nobody_workdir(ca_file: Path) -> Iterator[Path]:
    """A directory under /tmp owned by ``nobody`` holding what the commands read besides the
    bad file (the CA, HOME): pytest's own tmp_path sits under a 0700 root directory that
    nobody cannot traverse, which would refuse the path for the wrong reason."""
    workdir = Path(tempfile.mkdtemp(prefix="kubeiam-000-", dir="/tmp"))
    try:
        shutil.copy(ca_file, workdir / "ca.pem")
        (workdir / "home").mkdir()
        for path in (workdir, workdir / "ca.pem", workdir / "home"):
            os.chown(path, NOBODY, NOBODY)
        workdir.chmod(0o711)
        (workdir / "ca.pem").chmod(0o644)
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _listening_socket(path: Path) -> Iterator[None]:
    # AF_UNIX paths are limited to ~108 bytes: bind in a short directory, link to it.
    short = Path(tempfile.mkdtemp(prefix="kc", dir="/tmp"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(short / "s"))
        sock.listen(1)
        os.rename(short / "s", path)
        yield
    finally:
        sock.close()
        shutil.rmtree(short, ignore_errors=True)


SPECIAL: dict[str, Callable[[Path], None]] = {
    "fifo": _fifo,
    "directory": _directory,
    "symlink-loop": _symlink_loop,
    "unreadable-000": _unreadable,
}
ALL_CASES = [*BAD_CONTENT, *SPECIAL, "socket"]


@contextlib.contextmanager
def bad_file(path: Path, case: str) -> Iterator[None]:
    """Put the bad input ``case`` at ``path`` for the duration of the block."""
    if case in BAD_CONTENT:
        path.write_bytes(BAD_CONTENT[case])
        yield
    elif case == "socket":
        with _listening_socket(path):
            yield
    else:
        SPECIAL[case](path)
        yield


def snapshot(path: Path) -> tuple[int, bytes | None]:
    """What must not change: the file type and, for a regular file, its bytes."""
    st = os.lstat(path)
    content = None
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o400:
        content = path.read_bytes()
    return stat.S_IFMT(st.st_mode), content


def run(
    args: list[str],
    env: dict[str, str],
    stdin: bytes | None = None,
    timeout: float = TIMEOUT,
    *,
    user: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``kubeiam args``; with ``user``, as that uid and gid with no supplementary groups.

    Through setpriv(1), not ``subprocess.run(user=...)``: on this machine the interpreter the
    venv links to lies under root's 0700 home, and a child that switched ids itself before
    exec cannot reach it, while one started through setpriv runs (and is still refused
    everything root alone may read, which the mode-000 case asserts)."""
    as_user = [] if user is None else [SETPRIV, f"--reuid={user}", f"--regid={user}"]
    try:
        return subprocess.run(
            [*as_user, *(["--clear-groups"] if as_user else []), KUBEIAM, *args],
            env=env,
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"kubeiam {' '.join(args[:3])} ... hung (over {timeout} s)")


def assert_clean(done: subprocess.CompletedProcess[bytes], *, must_fail: bool) -> str:
    stderr = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    if must_fail:
        assert done.returncode in DOCUMENTED_EXIT_CODES, (done.returncode, stderr)
        # click refuses some paths itself (a directory for a FILE option): its usage error.
        assert "kubeiam: error:" in stderr or "Error: Invalid value" in stderr, stderr
        assert len(stderr.strip().splitlines()) <= 4, stderr
    else:
        assert done.returncode in {0, *DOCUMENTED_EXIT_CODES}, (done.returncode, stderr)
        if done.returncode:
            assert "kubeiam: error:" in stderr, stderr
    return stderr


# -- the commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileCommand:
    """A command reading the file at {F}; ``empty_ok``: an empty file is a valid input."""

    args: tuple[str, ...]
    suffix: str = ".yaml"
    empty_ok: bool = False
    needs_aws: bool = False
    #: A linter: a bad file is a finding ("error: [...]" on stdout) and exit 1.
    reports_findings: bool = False

    def argv(self, path: Path, tmp_path: Path) -> list[str]:
        return [a.format(F=path, T=tmp_path) for a in self.args]


FILE_COMMANDS = {
    "server": FileCommand(
        ("server", "--config", "{F}", "--port", "0", "--state-dir", "{T}/state"),
    ),
    "mapping-list": FileCommand(
        ("mapping", "list", "--store", "file", "--file", "{F}"), empty_ok=True
    ),
    "mapping-list-json": FileCommand(
        ("mapping", "list", "--store", "file", "--file", "{F}"), suffix=".json", empty_ok=True
    ),
    "mapping-lint": FileCommand(
        ("mapping", "lint", "--no-nodes", "--store", "file", "--file", "{F}"),
        empty_ok=True,
        reports_findings=True,
    ),
    "kubeconfig-update": FileCommand(
        (
            "kubeconfig",
            "update",
            "--kubeconfig",
            "{F}",
            "--dry-run",
            "--cluster",
            "demo",
            "--server",
            "https://127.0.0.1:6443",
            "--certificate-authority",
            "{T}/ca.pem",
        ),
        empty_ok=True,
    ),
    "whoami": FileCommand(("whoami", "--cluster", "demo", "--kubeconfig", "{F}"), needs_aws=True),
    "migrate-plan": FileCommand(
        ("migrate", "plan", "--cluster", "demo", "--aws-auth-file", "{F}"), needs_aws=True
    ),
    # Files are read before the cluster or AWS is asked anything (no kubeconfig exists here).
    "access-report-server-config": FileCommand(
        ("access", "report", "--server-config", "{F}", "--kubeconfig", "{T}/absent.kubeconfig")
    ),
    "access-report-file-json": FileCommand(
        ("access", "report", "--file", "{F}", "--kubeconfig", "{T}/absent.kubeconfig"),
        suffix=".json",
    ),
}


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    import trustme

    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(tmp_path / "home")
    return env


@pytest.mark.parametrize("case", ALL_CASES)
@pytest.mark.parametrize("command", list(FILE_COMMANDS))
def test_every_file_reader_refuses_bad_input_cleanly(
    command: str,
    case: str,
    tmp_path: Path,
    ca_file: Path,
    base_env: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    spec = FILE_COMMANDS[command]
    env = dict(base_env)
    if spec.needs_aws:
        local_aws: LocalAWS = request.getfixturevalue("local_aws")
        name = f"corpus-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        key_id, secret = local_aws.create_user(name)
        env.update(local_aws.client_env())
        env.update({"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret})
    with contextlib.ExitStack() as stack:
        workdir, user = tmp_path, None
        if _runs_as_nobody(case):
            workdir, user = stack.enter_context(_nobody_workdir(ca_file)), NOBODY
            env["HOME"] = str(workdir / "home")
        path = workdir / f"input{spec.suffix}"
        with bad_file(path, case):
            before = snapshot(path)
            done = run(spec.argv(path, workdir), env, timeout=TIMEOUT, user=user)
            after = snapshot(path)
    must_fail = not (case == "empty" and spec.empty_ok)
    if must_fail and spec.reports_findings and done.returncode == 1:
        assert "Traceback" not in done.stderr.decode()
        assert "error: [" in done.stdout.decode(), done.stdout
    else:
        assert_clean(done, must_fail=must_fail)
    if case == "unreadable-000":
        output = (done.stdout + done.stderr).decode("utf-8", "replace").lower()
        # kubeiam's own readers say "permission denied"; click checks a readable FILE first.
        assert "permission denied" in output or "is not readable" in output, output
    assert after == before, "the file was changed"


# -- token: the cache and KUBERNETES_EXEC_INFO ---------------------------------------------------

#: Cache entries kubeiam cannot use: a miss, replaced by a fresh entry (the README's rule).
BAD_CACHE_CONTENT: dict[str, bytes] = {
    **{k: v for k, v in BAD_CONTENT.items() if k not in {"billion-laughs"}},
    "truncated-json": b'{"version": 1, "token": "k8s-aws-v1.abc", "expiresAt": 17',
    "expiry-out-of-range": b'{"version": 1, "token": "k8s-aws-v1.x", "expiresAt": 1e300}',
    "expiry-negative": b'{"version": 1, "token": "k8s-aws-v1.x", "expiresAt": -1e300}',
    "expiry-bool": b'{"version": 1, "token": "k8s-aws-v1.x", "expiresAt": true}',
    "token-not-a-string": b'{"version": 1, "token": ["x"], "expiresAt": 4000000000}',
    "token-surrogate": b'{"version": 1, "token": "k8s-aws-v1.\\udc80", "expiresAt": 4000000000}',
}


def _cache_entry(tmp_path: Path) -> tuple[dict[str, str], Path]:
    cache = tmp_path / "cache"
    env = {**os.environ, **KEYS, "KUBEIAM_CACHE_DIR": str(cache), "HOME": str(tmp_path)}
    done = run(["token", "-i", "demo"], env)
    assert done.returncode == 0, done.stderr
    (entry,) = [p for p in cache.iterdir() if p.suffix == ".json"]
    return env, entry


@pytest.mark.parametrize("case", list(BAD_CACHE_CONTENT))
def test_token_replaces_a_cache_entry_it_cannot_use(tmp_path: Path, case: str) -> None:
    env, entry = _cache_entry(tmp_path)
    entry.write_bytes(BAD_CACHE_CONTENT[case])
    done = run(["token", "-i", "demo"], env)
    assert_clean(done, must_fail=False)
    assert done.returncode == 0, done.stderr
    token = json.loads(done.stdout)["status"]["token"]
    assert token.startswith("k8s-aws-v1.")
    stored = json.loads(entry.read_text())
    assert stored["token"] == token  # the unusable entry was replaced


@pytest.mark.parametrize("case", ["fifo", "directory", "symlink-loop", "socket"])
def test_token_refuses_a_special_file_in_the_cache_at_once(tmp_path: Path, case: str) -> None:
    env, entry = _cache_entry(tmp_path)
    entry.unlink()
    with bad_file(entry, case):
        before = snapshot(entry)
        done = run(["token", "-i", "demo"], env, timeout=10)
        after = snapshot(entry)
    stderr = assert_clean(done, must_fail=True)
    assert done.returncode == 4, stderr  # CacheError
    assert after == before


@pytest.mark.parametrize("case", ["fifo", "directory", "socket"])
def test_token_refuses_a_special_file_at_the_lock_path(tmp_path: Path, case: str) -> None:
    env, entry = _cache_entry(tmp_path)
    entry.unlink()  # a miss: the token is minted under the entry's lock
    lock = entry.with_name(entry.name + ".lock")
    lock.unlink(missing_ok=True)
    with bad_file(lock, case):
        done = run(["token", "-i", "demo"], env, timeout=10)
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr, stderr
    assert done.returncode in {0, 4}, stderr
    if done.returncode:
        assert "kubeiam: error:" in stderr


EXEC_INFOS = {
    "deep-nesting": "[" * 50_000,
    "huge-int": '{"apiVersion": ' + "9" * 5000 + "}",
    "huge-value": '{"apiVersion": "' + "x" * 120_000 + '"}',  # the kernel caps one variable
    "lone-surrogate": '{"apiVersion": "\\ud800"}',
    "control-char": '{"apiVersion": "client.authentication.k8s.io/v1\\u0007"}',
    "truncated": '{"apiVersion": "client.authentication.k8s.io/v1"',
    "wrong-shape": '["client.authentication.k8s.io/v1"]',
}


@pytest.mark.parametrize("case", list(EXEC_INFOS))
def test_token_answers_a_bad_exec_info_with_a_warning(tmp_path: Path, case: str) -> None:
    env = {**os.environ, **KEYS, "HOME": str(tmp_path), "KUBERNETES_EXEC_INFO": EXEC_INFOS[case]}
    done = run(["token", "-i", "demo", "--no-cache"], env)
    stderr = assert_clean(done, must_fail=False)
    assert done.returncode == 0, stderr
    assert json.loads(done.stdout)["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert "KUBERNETES_EXEC_INFO" in stderr
    assert len(stderr) < 1000  # the value is never echoed whole


VERIFY_INPUTS = {
    "non-utf8": b"k8s-aws-v1.\xff\xfe\n",
    "control-chars": b"k8s-aws-v1.abc\x07def\n",
    "deep-json": b"[" * 100_000,
    "huge": b"k8s-aws-v1." + b"A" * (4 * 1024 * 1024),
    "empty": b"",
}


@pytest.mark.parametrize("case", list(VERIFY_INPUTS))
def test_verify_refuses_bad_token_input_cleanly(
    tmp_path: Path, case: str, base_env: dict[str, str]
) -> None:
    done = run(["verify", "-i", "demo", "-t", "-"], base_env, stdin=VERIFY_INPUTS[case])
    assert_clean(done, must_fail=True)


# -- 10,000 valid entries: the checks cost normal input nothing noticeable -----------------------


def _entries(n: int) -> list[dict[str, object]]:
    return [
        {
            "rolearn": f"arn:aws:iam::111122223333:role/team-{i}",
            "username": f"team-{i}:{{{{SessionName}}}}",
            "groups": [f"group-{i % 50}", "viewers"],
        }
        for i in range(n)
    ]


def test_ten_thousand_entries_load_in_every_reader(
    tmp_path: Path, ca_file: Path, base_env: dict[str, str], record_property: Callable[..., None]
) -> None:
    """Figures land in the junit report; the speed goal itself lives in bench/."""
    import yaml

    entries = _entries(10_000)
    config = tmp_path / "big.yaml"
    config.write_text(yaml.safe_dump({"clusterID": "demo", "server": {"mapRoles": entries}}))
    dynamic = tmp_path / "big.json"
    dynamic.write_text(json.dumps({"mapRoles": entries}))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": f"c{i}", "cluster": {"server": f"https://10.0.{i // 250}.{i % 250}"}}
                    for i in range(10_000)
                ],
                "contexts": [],
                "users": [],
            }
        )
    )
    runs = {
        "mapping list (YAML)": ["mapping", "list", "--store", "file", "--file", str(config)],
        "mapping list (JSON)": ["mapping", "list", "--store", "file", "--file", str(dynamic)],
        "mapping lint (YAML)": [
            "mapping", "lint", "--no-nodes", "--store", "file", "--file", str(config),
        ],
        "kubeconfig update --dry-run": [
            "kubeconfig", "update", "--kubeconfig", str(kubeconfig), "--dry-run", "--cluster",
            "demo", "--server", "https://127.0.0.1:6443", "--certificate-authority", str(ca_file),
        ],
    }  # fmt: skip
    record_property("server --config (until listening)", f"{_server_start(config, tmp_path):.2f}s")
    for name, args in runs.items():
        start = time.perf_counter()
        done = run(args, base_env, timeout=120)
        elapsed = time.perf_counter() - start
        stderr = done.stderr.decode()
        assert "Traceback" not in stderr, stderr
        assert done.returncode in {0, 1}, (name, stderr)  # lint: 1 reports findings
        record_property(name, f"{elapsed:.2f}s")
        print(f"{name}: {elapsed:.2f} s")


def _server_start(config: Path, tmp_path: Path) -> float:
    """Seconds from start until ``kubeiam server --config`` logs that it listens."""
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            *(KUBEIAM, "server", "--config", str(config), "--port", "0"),
            *("--log-format", "json", "--state-dir", str(tmp_path / "state")),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if '"listening"' in line:
                elapsed = time.perf_counter() - start
                print(f"server --config (until listening): {elapsed:.2f} s")
                return elapsed
        pytest.fail("".join(lines))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
