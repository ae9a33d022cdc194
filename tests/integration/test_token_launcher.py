"""The fast launcher ``kubeiam kubeconfig update`` writes into exec entries, run as kubectl runs
it: ``PYTHON -IS -c CODE PACKAGE_DIR token ...`` (kubeiam.token.launcher).

What it must keep: the same output as ``kubeiam token``; a start without the site module and
nothing beyond the standard library on the fast paths; every other path (botocore for a
profile, click for help and usage errors) still working through the on-demand site set-up; the
working directory never on the import path; a clear message, never a silent failure or a
traceback, when the interpreter (kubectl's installHint) or the package it names is gone; and
entries the earlier ``sh`` launcher wrote still running.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kubeiam
from kubeiam.token.exec_credential import KUBECTL_EXEC_INFO
from kubeiam.token.launcher import (
    FIX,
    NOT_FOUND_EXIT,
    PYTHON_CODE,
    PYTHON_FLAGS,
    launcher_command,
    launcher_paths,
    legacy_launcher_command,
)

PYTHON = sys.executable
PACKAGE_DIR = str(Path(kubeiam.__file__).resolve().parent.parent)
KUBEIAM_BIN = str(Path(sys.executable).parent)
TIMEOUT = 60
KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_REGION": "eu-west-1",
}
#: What kubectl sets for a v1 exec entry without a terminal.
EXEC_INFO = json.dumps(
    {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "spec": {"interactive": False},
    }
)
#: Beyond the standard library, or heavy for a start-up path (fcntl: an extension module to
#: load, needed only by the lock a cache miss takes; os: with _collections_abc, stat and
#: posixpath ~2.4 ms of a ~12.6 ms start here, kubeiam.token.system calls posix instead;
#: __future__: 0.38 ms, the fast path's modules quote their annotations instead; _json, an
#: extension module: 0.4 ms, kubectl's exec info, plain strings and token entries need none).
HEAVY = (
    "site",
    "__future__",
    "_json",
    "os",
    "_collections_abc",
    "posixpath",
    "stat",
    "botocore",
    "boto3",
    "click",
    "aiohttp",
    "functools",
    "typing",
    "re",
    "json",
    "fcntl",
)


#: Modules only a token minted, or refused, needs (each ~0.2-0.3 ms of a start here).
MINT_ONLY = (
    "kubeiam.errors",
    "kubeiam.partitions",
    "kubeiam.token.presign",
    "kubeiam.token.encoding",
    "binascii",
)


def launch(
    args: list[str],
    *,
    python: str = PYTHON,
    package_dir: str = PACKAGE_DIR,
    env: dict[str, str] | None = None,
    path: str | None = None,
    cwd: Path | None = None,
    legacy: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The exec entry's command and args, as kubectl starts them (PATH without the venv's bin
    unless `path` says otherwise)."""
    command, entry_args = (legacy_launcher_command if legacy else launcher_command)(
        python, package_dir, args
    )
    full_env = {
        **os.environ,
        "PATH": path if path is not None else "/usr/local/bin:/usr/bin:/bin",
        "KUBERNETES_EXEC_INFO": EXEC_INFO,
        **(env or {}),
    }
    return subprocess.run(
        [command, *entry_args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def credential(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout)
    assert isinstance(parsed, dict)
    assert parsed["kind"] == "ExecCredential"
    assert parsed["apiVersion"] == "client.authentication.k8s.io/v1"
    return parsed


def imported(importtime_stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize("build", [launcher_command, legacy_launcher_command], ids=["direct", "sh"])
def test_the_entry_names_its_parts_as_plain_arguments(build: object) -> None:
    assert callable(build)
    command, args = build("/opt/venv/bin/python", "/opt/venv/lib", ["token", "-i", "c"])
    assert launcher_paths(command, args) == (
        "/opt/venv/bin/python",
        "/opt/venv/lib",
        ["token", "-i", "c"],
    )


def test_the_direct_entry_is_the_interpreter_itself() -> None:
    command, args = launcher_command("/opt/venv/bin/python", "/opt/venv/lib", ["token"])
    assert (command, args[:2]) == ("/opt/venv/bin/python", [PYTHON_FLAGS, "-c"])


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("kubeiam", ["token", "-i", "c"]),
        ("/usr/bin/python3", ["-IS", "-c", "print(1)", "/lib", "token"]),
        ("sh", ["-c", 'exec kubeiam "$@"', "kubeiam", "/py", "/lib", "token"]),
        ("/usr/bin/python3", [PYTHON_FLAGS, "-c", PYTHON_CODE]),
    ],
    ids=["plain-command", "other-python-code", "other-sh-script", "no-package-dir"],
)
def test_other_entries_are_not_taken_for_the_launcher(command: str, args: list[str]) -> None:
    assert launcher_paths(command, args) is None


def test_env_keys_fresh_and_cached_match_kubeiam_token(tmp_path: Path) -> None:
    env = {**KEYS, "KUBEIAM_CACHE_DIR": str(tmp_path / "cache")}
    first = credential(launch(["token", "-i", "demo"], env=env))
    hit = launch(["token", "-i", "demo"], env=env)
    assert credential(hit) == first
    assert hit.stderr == ""
    plain = subprocess.run(
        [str(Path(KUBEIAM_BIN) / "kubeiam"), "token", "-i", "demo"],
        env={**os.environ, **env, "KUBERNETES_EXEC_INFO": EXEC_INFO},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert json.loads(plain.stdout) == first  # the same cache entry, the same answer


@pytest.mark.parametrize("cache", [["--no-cache"], []], ids=["no-cache", "cache-hit"])
def test_fast_paths_start_without_site_and_import_only_the_standard_library(
    cache: list[str], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **KEYS,
        "KUBEIAM_CACHE_DIR": str(tmp_path / "cache"),
        # as kubectl sets it (tests/e2e/test_launcher_kubectl.py holds the text to kubectl's)
        "KUBERNETES_EXEC_INFO": next(iter(KUBECTL_EXEC_INFO)),
    }
    argv = [PYTHON, "-X", "importtime", PYTHON_FLAGS, "-c", PYTHON_CODE, PACKAGE_DIR]
    argv += ["token", "-i", "demo", *cache]
    subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT, check=True)
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "ExecCredential"
    loaded = imported(done.stderr)
    assert "kubeiam.token.produce" in loaded
    assert not {name.split(".")[0] for name in loaded} & set(HEAVY), sorted(loaded)
    # Neither path refuses anything here: the error tree stays unloaded.
    assert "kubeiam.errors" not in loaded
    if not cache:
        # A hit finds and prints: the presigner and the endpoint rules stay unloaded too.
        assert not loaded & set(MINT_ONLY), sorted(loaded & set(MINT_ONLY))


def test_a_profile_brings_botocore_through_the_site_set_up(scrubbed_env: Path) -> None:
    credentials = scrubbed_env / ".aws" / "credentials"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text(
        "[dev]\naws_access_key_id = AKIDPROFILEEXAMPLE12\n"
        "aws_secret_access_key = c2VjcmV0LXByb2ZpbGUtZXhhbXBsZQ\n"
    )
    done = launch(
        ["token", "-i", "demo", "--profile", "dev", "--region", "eu-west-1", "--no-cache"]
    )
    status = credential(done)["status"]
    assert isinstance(status, dict)
    from kubeiam.token.encoding import decode_token

    assert "X-Amz-Credential=AKIDPROFILEEXAMPLE12%2F" in decode_token(str(status["token"]))


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["token", "--help"], 0, "Usage: kubeiam token"),
        (["token", "-i", "demo", "--bogus"], 2, "No such option"),
        (["--version"], 0, "kubeiam"),
    ],
    ids=["token-help", "usage-error", "other-command"],
)
def test_click_paths_work_through_the_launcher(args: list[str], code: int, expected: str) -> None:
    done = launch(args)
    assert done.returncode == code, done.stderr
    assert expected in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_the_working_directory_is_never_imported_from(tmp_path: Path) -> None:
    """-I: a kubeiam package or a stdlib-named module in kubectl's directory is not used."""
    for name in ("kubeiam", "os", "fcntl"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise SystemExit('imported from cwd')\n")
    (tmp_path / "errno.py").write_text("raise SystemExit('imported from cwd')\n")
    done = launch(["token", "-i", "demo", "--no-cache"], env=KEYS, cwd=tmp_path)
    credential(done)


@pytest.mark.parametrize(
    "package_dir",
    ["missing", "empty", "no-cli"],
    ids=["directory-gone", "directory-without-kubeiam", "kubeiam-without-its-cli"],
)
def test_a_gone_package_is_one_error_line_and_the_fix(package_dir: str, tmp_path: Path) -> None:
    """The interpreter is there, the package directory it names holds no kubeiam (uninstalled,
    reinstalled elsewhere): the launcher's own code says so, no traceback."""
    where = tmp_path / "site-packages"
    if package_dir != "missing":
        where.mkdir()
    if package_dir == "no-cli":
        (where / "kubeiam").mkdir()  # a leftover directory: a namespace package without cli
    done = launch(["token", "-i", "demo", "--no-cache"], package_dir=str(where), env=KEYS)
    assert done.returncode == NOT_FOUND_EXIT
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"kubeiam: error: the kubeiam package this kubeconfig entry runs is gone from {where}",
        f"  fix: {FIX}",
    ]


def test_a_broken_installation_keeps_its_traceback(tmp_path: Path) -> None:
    """Only kubeiam's own entry modules missing means "gone"; a module missing deeper (a broken
    install) is not dressed up as a moved one."""
    where = tmp_path / "site-packages"
    (where / "kubeiam" / "cli").mkdir(parents=True)
    (where / "kubeiam" / "cli" / "main.py").write_text("import kubeiam_missing_dependency\n")
    done = launch(["token", "-i", "demo"], package_dir=str(where), env=KEYS)
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'kubeiam_missing_dependency'" in done.stderr


@pytest.mark.parametrize("cache", [["--no-cache"], []], ids=["no-cache", "cache-hit"])
def test_entries_the_sh_launcher_wrote_keep_working(cache: list[str], tmp_path: Path) -> None:
    env = {**KEYS, "KUBEIAM_CACHE_DIR": str(tmp_path / "cache")}
    old = launch(["token", "-i", "demo", *cache], env=env, legacy=True)
    assert old.stderr == ""
    new = credential(launch(["token", "-i", "demo", *cache], env=env))
    if not cache:  # the direct entry reads the cache entry the sh one wrote
        assert credential(old) == new
    else:
        assert credential(old)["apiVersion"] == new["apiVersion"]


@pytest.mark.parametrize("moved", ["python", "package"], ids=["interpreter-gone", "package-gone"])
def test_an_sh_entry_whose_installation_moved_runs_kubeiam_from_path(
    moved: str, tmp_path: Path
) -> None:
    python = str(tmp_path / "gone" / "bin" / "python") if moved == "python" else PYTHON
    package_dir = str(tmp_path / "gone" / "lib") if moved == "package" else PACKAGE_DIR
    done = launch(
        ["token", "-i", "demo", "--no-cache"],
        python=python,
        package_dir=package_dir,
        env=KEYS,
        path=f"{KUBEIAM_BIN}:/usr/bin:/bin",
        legacy=True,
    )
    credential(done)
    assert done.stderr.startswith("kubeiam: warning: ")
    assert "kubeiam kubeconfig update" in done.stderr


@pytest.mark.parametrize(
    ("args", "code", "out", "err"),
    [
        (["token", "-i", "demo", "--no-cache", "--token-only"], 0, "k8s-aws-v1.", ""),
        (["token", "--no-cache"], 2, "", "kubeiam: error: no cluster id"),
    ],
    ids=["token-only", "error-exit-code"],
)
def test_the_skipped_finalization_loses_no_output_and_keeps_the_status(
    args: list[str], code: int, out: str, err: str
) -> None:
    """The token path ends with os._exit after flushing (kubeiam.cli.main.exit_now): whatever
    was written reaches the pipe kubectl reads, and the exit status is the path's own."""
    env = dict(KEYS)
    for door in ("launcher", "console-script"):
        if door == "launcher":
            done = launch(args, env=env)
        else:
            done = subprocess.run(
                [str(Path(KUBEIAM_BIN) / "kubeiam"), *args],
                env={**os.environ, **env, "KUBERNETES_EXEC_INFO": EXEC_INFO},
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
        assert done.returncode == code, (door, done.stderr)
        assert done.stdout.startswith(out), door
        assert done.stderr.startswith(err), door
        if out:  # the whole token: its URL ends with the 64 hex digits of the signature
            from kubeiam.token.encoding import decode_token

            url = decode_token(done.stdout.strip())
            assert re.search(r"X-Amz-Signature=[0-9a-f]{64}$", url), door


def test_the_collector_the_fast_path_turns_off_is_back_for_the_heavier_paths() -> None:
    """launched() turns the cyclic GC off; the first import beyond the standard library (click,
    botocore) runs the site set-up, which turns it back on for those longer runs."""
    code = (
        "import sys;sys.path.insert(0,sys.argv.pop(1));import gc\n"
        "from kubeiam.cli import main as m\n"
        "gc.disable();sys.meta_path.append(m._SiteOnDemand)\n"
        "import click\n"
        "print(gc.isenabled(), 'site' in sys.modules)"
    )
    done = subprocess.run(
        [PYTHON, PYTHON_FLAGS, "-c", code, PACKAGE_DIR],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
