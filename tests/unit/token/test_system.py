"""kubeiam.token.system: the token fast path's view of the operating system, held to os's."""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeiam.token import system

SRC = str(Path(system.__file__).resolve().parent.parent.parent)

PARTS = st.lists(st.text(alphabet="ab/.~ ", max_size=6), min_size=1, max_size=5)


@settings(max_examples=300)
@given(PARTS)
def test_join_is_posixpath_join(parts: list[str]) -> None:
    assert system.join(*parts) == posixpath.join(*parts)


#: (path, HOME or None for unset): every case is compared with os.path's own answer.
EXPAND_CASES = {
    "tilde": ("~", "/home/ann"),
    "tilde-slash": ("~/", "/home/ann"),
    "under-home": ("~/.aws/config", "/home/ann"),
    "home-trailing-slash": ("~/.aws/config", "/home/ann/"),
    "home-root": ("~/x", "/"),
    "home-empty": ("~/x", ""),
    "tilde-only-home-root": ("~", "/"),
    "absolute": ("/etc/aws/config", "/home/ann"),
    "relative": ("aws/config", "/home/ann"),
    "tilde-inside": ("/a/~/b", "/home/ann"),
    "named-user": ("~root/.aws/config", "/home/ann"),
    "no-home": ("~/.aws/config", None),
    "variable": ("$HOME/.aws/config", "/home/ann"),
    "braced-variable": ("${HOME}/x", "/home/ann"),
    "unknown-variable": ("$NOPE_KUBEIAM/x", "/home/ann"),
    "variable-then-tilde": ("~/$HOME", "/home/ann"),
}


@pytest.mark.parametrize(("path", "home"), list(EXPAND_CASES.values()), ids=list(EXPAND_CASES))
def test_expand_path_is_expanduser_of_expandvars(
    path: str, home: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if home is None:
        monkeypatch.delenv("HOME", raising=False)
    else:
        monkeypatch.setenv("HOME", home)
    assert system.expand_path(path) == os.path.expanduser(os.path.expandvars(path))


def test_process_environ_is_os_environ_once_os_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEIAM_SYSTEM_TEST", "changed")
    assert system.process_environ() is os.environ
    assert system.process_environ()["KUBEIAM_SYSTEM_TEST"] == "changed"


def run_without_os(code: str, env: dict[str, str]) -> str:
    """``code`` in an interpreter started as the launcher starts it (no site, so no os)."""
    program = f"import sys;sys.path.insert(0,{SRC!r})\n{code}"
    done = subprocess.run(
        [sys.executable, "-IS", "-c", program], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("ascii")


def test_process_environ_without_os_decodes_as_os_environ_does() -> None:
    env = {
        "PLAIN": "value",
        "UTF8": "caf\u00e9",
        "EMPTY": "",
        "NOT_UTF8": os.fsdecode(b"\xff\xfe-raw"),
        "EQUALS": "a=b=c",
    }
    shown = run_without_os(
        "from kubeiam.token.system import process_environ\n"
        "e = process_environ()\n"
        "print(type(e).__name__, 'os' in sys.modules)\n"
        "print(ascii(sorted(e.items())))\n"
        "import os\n"
        "print(ascii(sorted(os.environ.items())))",
        env,
    )
    first, ours, theirs = shown.splitlines()
    assert first == "dict False"
    # The interpreter may add to the environment (PEP 538's LC_CTYPE): compared with os.environ
    # in the same process, and every variable given is there, decoded as os decodes it.
    assert ours == theirs
    assert all(ascii(item) in ours for item in env.items())
