"""`make demo` (demo/run.py) in server-only mode, as a real process: what it shows and leaves.

The full mode (real kube-apiserver) runs in tests/e2e/test_demo_cluster.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from support.cli import KUBEIAM

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


def test_server_only_demo_runs_both_workflows_and_leaves_nothing(tmp_path: Path) -> None:
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
    # the workflows are named by what they do, never by internal document names
    assert "1. Onboard an IAM user: kubedemy gets into the cluster" in out
    assert "2. Give an IAM group access through a role: K8sAdmins" in out
    assert re.search(r"\b[Ss]eeds?\b", out) is None, re.search(r".*\b[Ss]eeds?\b.*", out)
    # onboarding: the results table, from IAM and the webhook's answer
    assert re.search(r"IAM User ARN\s*│\s*arn:aws:iam::123456789012:user/kubedemy", out), out
    assert re.search(r"IAM User Permissions\s*│\s*Allow=eks:DescribeCluster", out)
    assert re.search(r"Username in Cluster\s*│\s*kubedemy\s", out)
    assert re.search(r"Groups in Cluster\s*│\s*system:masters\s", out)
    # access through the role while granted; after revocation the refusal is the outcome shown,
    # as expected, never as an error with a fix to apply
    assert re.search(r"granted: alice reaches the cluster as K8sAdmins:kubeiam-\d+ in groups", out)
    assert (
        "\N{CHECK MARK} refused, as it should be: AssumeRole of "
        "arn:aws:iam::123456789012:role/K8sAdmins was refused: AccessDenied: User: "
        "arn:aws:iam::123456789012:user/alice is not authorized to perform: sts:AssumeRole "
        "(exit 3)"
    ) in out
    assert "alice: access refused after revocation" in out
    assert "error:" not in out
    assert "fix:" not in out
    # it ends with what to try next, after everything was stopped
    finished = out.index("demo finished")
    what_next = out.index("What to try next")
    assert finished < what_next
    tail = out[what_next:]
    assert (
        "$ kubeiam iam onboard-user NAME --cluster CLUSTER --group GROUP --store aws-auth" in tail
    )
    assert "$ kubeiam iam create-access-role ROLE --cluster CLUSTER" in tail
    assert "$ .venv/bin/kubeiam localaws --print-env > localaws.env &" in tail
    assert "make demo DEMO_BUILD=1" not in tail  # server-only was asked for: nothing to build
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


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        (
            "kubeiam: error: AssumeRole of R was refused: AccessDenied\n"
            "    fix: check the role's trust policy\n",
            "AssumeRole of R was refused: AccessDenied",
        ),
        (
            "kubeiam: error: AssumeRole of R was refused\n  fix: check it\n"
            "Unable to connect to the server: getting credentials: exec: executable kubeiam "
            "failed with exit code 3\n",
            "AssumeRole of R was refused; Unable to connect to the server: getting credentials: "
            "exec: executable kubeiam failed with exit code 3",
        ),
        (
            "error: You must be logged in to the server (Unauthorized)\n",
            "You must be logged in to the server (Unauthorized)",
        ),
        ("kubeiam: error: same\nkubeiam: error: same\n", "same"),
        ("", "no message"),
    ],
    ids=["kubeiam-error-and-fix", "kubectl-exec-plugin", "kubectl-error", "repeated", "silent"],
)
def test_an_expected_refusal_is_told_as_its_reason_without_error_prefix_or_fix(
    demo: ModuleType, stderr: str, reason: str
) -> None:
    assert demo.refusal_reason(stderr) == reason


def _words(line: str) -> list[str]:
    """The words of a shell line up to its first operator (``>``, ``&``, ``;``, ``|``)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    cut = next((i for i, w in enumerate(words) if w and w[0] in "<>&;|"), len(words))
    return words[:cut]


def _parse(args: list[str]) -> str:
    """Parse ``kubeiam ARGS`` with the real click tree, as the shell would hand them over (no
    command runs; an unknown flag or a missing required one raises). The command's path."""
    import click

    from kubeiam.cli.app import cli

    command: click.Command = cli
    path = ["kubeiam"]
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"no command {name!r} in {' '.join(path)}"
        command = found
        path.append(name)
    command.make_context(" ".join(path), list(args))
    return " ".join(path)


def test_every_suggested_kubeiam_command_parses_with_todays_cli(demo: ModuleType) -> None:
    commands = [_words(step.text) for step in demo.next_steps(None) if step.is_command]
    paths = {_parse(argv[1:]) for argv in commands if argv[0].endswith("kubeiam")}
    assert paths == {
        "kubeiam iam onboard-user",
        "kubeiam iam create-access-role",
        "kubeiam iam grant",
        "kubeiam kubeconfig update",
        "kubeiam whoami",
        "kubeiam localaws",
    }


@pytest.mark.parametrize(
    ("missing", "build_hint"), [(True, True), (False, False)], ids=["missing", "present"]
)
def test_the_build_hint_follows_only_a_demo_that_lacked_the_api_server(
    demo: ModuleType, missing: bool, build_hint: bool
) -> None:
    plan = demo.Plan(None, "why", missing)
    assert (demo.BUILD_STEP in demo.next_steps(plan)) is build_hint


def test_the_suggested_local_commands_work_as_typed(demo: ModuleType, tmp_path: Path) -> None:
    """The no-account lines, run as a reader would: localaws in the background, its env file
    sourced, then the onboarding and whoami commands exactly as printed."""
    steps = [s.text for s in demo.NEXT_STEPS if s.is_command]
    start = next(i for i, text in enumerate(steps) if "localaws --print-env" in text)
    assert steps[start + 1] == ". ./localaws.env"
    typed = [_words(text) for text in steps[start + 2 :]]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBE"))}
    env.update(HOME=str(home), TMPDIR=str(tmp_path))
    env_file = tmp_path / "localaws.env"
    with env_file.open("w") as out:
        server = subprocess.Popen(
            [KUBEIAM, "localaws", "--print-env"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        # The export lines come in one write that ends with a newline: wait for all of it.
        while not (
            "export AWS_PROFILE=" in (printed := env_file.read_text()) and printed.endswith("\n")
        ):
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "localaws printed no environment in 60 s"
            time.sleep(0.2)  # polling interval
        for line in printed.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0] if value else ""
        outputs = []
        for argv in typed:
            assert argv[0] == "kubeiam"
            done = subprocess.run(
                [KUBEIAM, *argv[1:]],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert re.search(r"username:\s+jane\n\s+groups:\s+developers", outputs[-1]), outputs[-1]
