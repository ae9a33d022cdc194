"""`kubeiam access` refuses bad input before any read: one line, a fix, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kubeiam.cli.app import cli


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (("who-can", "get", "po ds"), "RESOURCE 'po ds' is not a Kubernetes resource"),
        (("who-can", "g et", "pods"), "VERB 'g et' is not a Kubernetes verb"),
        (("who-can", "get", "/pods"), "RESOURCE '/pods' is not a resource"),
        (("who-can", "get", "pods//exec"), "RESOURCE 'pods//exec' is not a resource"),
        (("who-can", "get", ""), "RESOURCE '' is not a Kubernetes resource"),
    ],
    ids=["space-in-resource", "space-in-verb", "leading-slash", "empty-subresource", "empty"],
)
def test_bad_request_is_refused_before_reading(args: tuple[str, ...], wanted: str) -> None:
    code, out, err = _run("access", *args)
    assert code == 2
    assert out == ""
    assert f"kubeiam: error: {wanted}" in err
    assert "fix: " in err
    assert "Traceback" not in err


def test_file_and_server_config_together(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("clusterID: c1\n")
    code, out, err = _run("access", "report", "--server-config", str(config), "--file", str(config))
    assert code == 2
    assert out == ""
    assert "--file and --server-config both name mapping files" in err
    assert "fix: pass --server-config alone" in err


@pytest.mark.parametrize(
    "args",
    [
        ("report", "-o", "yaml"),
        ("report", "--fail-on", "severe"),
        ("who-can", "get"),
    ],
    ids=["unknown-format", "unknown-severity", "missing-resource"],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    code, out, err = _run("access", *args)
    assert code == 2
    assert out == ""
    assert "Usage:" in err


def test_listed_in_kubeiam_help() -> None:
    code, out, _ = _run("--help")
    assert code == 0
    assert "access" in out
    assert "who can get into the cluster" in out


@pytest.mark.parametrize(
    ("tty", "elapsed", "shown"),
    [(True, 2.5, True), (True, 0.2, False), (False, 30.0, False)],
    ids=["terminal-slow", "terminal-fast-is-quiet", "piped-is-quiet"],
)
def test_progress_only_on_a_terminal_after_a_moment(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tty: bool,
    elapsed: float,
    shown: bool,
) -> None:
    import kubeiam.cli.access as access

    clock = iter([100.0, 100.0 + elapsed, 100.0 + elapsed])
    monkeypatch.setattr(access.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(access.sys.stderr, "isatty", lambda: tty)
    progress = access._Progress()
    progress("IAM read: 3 users, 2 roles")
    err = capsys.readouterr().err
    assert (f"kubeiam: IAM read: 3 users, 2 roles ({elapsed:.1f} s)" in err) is shown
    assert (err == "") is not shown


@pytest.mark.parametrize(
    ("flag", "name", "content", "wanted"),
    [
        ("--server-config", "server.yaml", "server: [1, 2\n", "server.yaml"),
        ("--server-config", "server.yaml", "server:\n  backendMode: [Nope]\n", "Nope"),
        ("--server-config", "absent.yaml", None, "no such file"),
        ("--file", "mapping.json", '{"mapRoles": {"rolearn": "x"}}', "the server would refuse it"),
        ("--file", "mapping.yaml", "server:\n  mapUsers: nope\n", "mapusers"),
    ],
    ids=[
        "config-not-yaml",
        "config-bad-backend",
        "config-missing",
        "dynamic-refused",
        "yaml-refused",
    ],
)
def test_a_bad_file_is_refused_before_the_cluster_or_aws(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    name: str,
    content: str | None,
    wanted: str,
) -> None:
    """No kubeconfig and no AWS here: the file's own error is what the user sees."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    code, out, err = _run("access", "report", flag, str(path))
    assert code == 2, err
    assert out == ""
    assert wanted in err
    assert "kubeconfig" not in err
    assert "Traceback" not in err
