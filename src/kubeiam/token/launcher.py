"""The fast launcher kubectl runs for ``kubeiam token`` (used by ``kubeiam kubeconfig update``).

kubectl starts the credential plugin on every command, often twice, and most of a Python
plugin's start-up is the interpreter's own: the ``site`` module, site-packages and ``.pth`` files
(``_distutils_hack``, editable installs), before any kubeiam code runs. The token fast path
imports only the standard library, so the launcher starts the interpreter isolated and without
site (``python -I -S``), with the directory holding the ``kubeiam`` package put on ``sys.path``
explicitly (:func:`kubeiam.cli.main.launched`; anything beyond the standard library, botocore for
a profile or click for ``--help``, brings the site set-up back on demand).

The exec entry stays portable: the command is ``sh``, the interpreter and the package
directory are plain arguments, and the few lines of shell check both before using them. When
either is gone (the virtualenv moved, kubeiam was reinstalled elsewhere, the kubeconfig was
copied to another machine) the launcher says so in one line on stderr, which kubectl shows, and
runs ``kubeiam`` from ``PATH`` instead, as a plain entry would; without one there either, it
fails with ``kubeiam: error:`` and the fix. ``-I`` also keeps the working directory and
``PYTHON*`` variables out of the plugin's imports.
"""

from __future__ import annotations

#: The launcher's interpreter: POSIX sh, looked up on PATH by kubectl like any exec command.
SHELL = "sh"
#: What ``$0`` is in the script (shown in sh's own messages).
SCRIPT_NAME = "kubeiam"
#: Isolated (no cwd, no PYTHON* variables, no user site) and no site module.
PYTHON_FLAGS = "-IS"
#: The Python the interpreter runs: the package directory (argv[1]) first on sys.path.
PYTHON_CODE = (
    "import sys;sys.path.insert(0,sys.argv.pop(1));from kubeiam.cli.main import launched;launched()"
)
#: Exit status when no kubeiam can be found (kubeiam.errors.ConfigError's).
NOT_FOUND_EXIT = 2
#: $1 is the interpreter, $2 the directory holding the kubeiam package; the rest is for kubeiam.
SCRIPT = (
    'py=$1 pkg=$2; shift 2; if [ -x "$py" ] && [ -d "$pkg/kubeiam" ]; then '
    f'exec "$py" {PYTHON_FLAGS} -c "{PYTHON_CODE}" "$pkg" "$@"; fi; '
    "if command -v kubeiam >/dev/null 2>&1; then "
    'echo "kubeiam: warning: $py or $pkg/kubeiam is gone; running kubeiam from PATH '
    '(rerun kubeiam kubeconfig update to restore the fast launcher)" >&2; exec kubeiam "$@"; fi; '
    'echo "kubeiam: error: the kubeiam this kubeconfig entry runs ($py, $pkg) is gone and '
    'there is no kubeiam on PATH" >&2; '
    'echo "  fix: install kubeiam, then rerun kubeiam kubeconfig update" >&2; '
    f"exit {NOT_FOUND_EXIT}"
)


def launcher_command(python: str, package_dir: str, args: list[str]) -> tuple[str, list[str]]:
    """``(command, args)`` of an exec entry that runs ``kubeiam ARGS`` through the launcher.

    ``python`` is the interpreter kubeiam is installed for; ``package_dir`` the directory that
    holds the ``kubeiam`` package (site-packages, or ``src`` of an editable install).
    """
    return SHELL, ["-c", SCRIPT, SCRIPT_NAME, python, package_dir, *args]


def launcher_paths(command: str, args: list[str]) -> tuple[str, str, list[str]] | None:
    """``(python, package_dir, kubeiam args)`` if the entry is this launcher, else ``None``."""
    if command != SHELL or len(args) < 5 or args[:3] != ["-c", SCRIPT, SCRIPT_NAME]:
        return None
    return args[3], args[4], args[5:]


def this_installation() -> tuple[str, str] | None:
    """``(python, package_dir)`` of the running kubeiam, for :func:`launcher_command`; None
    where the launcher cannot run (no POSIX sh, or no known interpreter path)."""
    import os
    import sys

    import kubeiam

    if os.name != "posix" or not sys.executable or kubeiam.__file__ is None:
        return None
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(kubeiam.__file__)))
    return sys.executable, package_dir
