"""The fast launcher kubectl runs for ``kubeiam token`` (used by ``kubeiam kubeconfig update``).

kubectl starts the credential plugin on every command, often twice, and most of a Python
plugin's start-up is the interpreter's own: the ``site`` module, site-packages and ``.pth`` files
(``_distutils_hack``, editable installs), before any kubeiam code runs. The token fast path
imports only the standard library, so the exec entry starts this installation's interpreter
isolated and without site (``python -I -S``), with the directory holding the ``kubeiam`` package
put on ``sys.path`` explicitly (:func:`kubeiam.cli.main.launched`; anything beyond the standard
library, botocore for a profile or click for ``--help``, brings the site set-up back on demand).
``-I`` also keeps the working directory and ``PYTHON*`` variables out of the plugin's imports.

The entry is the interpreter itself: ``command: /venv/bin/python``, ``args: [-IS, -c, CODE,
PACKAGE_DIR, token, ...]``. An earlier launcher went through ``sh -c SCRIPT`` to check both paths
first; that hop cost a process start on every kubectl run, so the checks moved:

* the interpreter gone (the virtualenv moved or was removed, the kubeconfig was copied to another
  machine): kubectl cannot start the command and says ``getting credentials: exec: fork/exec
  PYTHON: no such file or directory``, naming what moved. client-go prints the entry's
  ``installHint`` only when a command looked up on ``PATH`` is not found (``exec.Error`` in
  ``wrapCmdRunErrorLocked``, ``plugin/pkg/client/auth/exec``, v1.34), never for an absolute
  path, so the fix (:data:`INSTALL_HINT`) is written beside the command in the kubeconfig,
  where a user reading that message looks, and in docs/admin.md;
* the package directory gone (kubeiam uninstalled or reinstalled elsewhere, the interpreter
  kept): :data:`PYTHON_CODE` catches the failed import and prints one ``kubeiam: error:`` line
  and the fix, exit status :data:`NOT_FOUND_EXIT`, no traceback.

Entries the ``sh`` launcher wrote keep working (their script is in the kubeconfig and calls the
same :func:`~kubeiam.cli.main.launched`); :func:`launcher_paths` recognises both forms, and
``kubeiam kubeconfig update`` rewrites an old entry to the direct one.
"""

from __future__ import annotations

#: Isolated (no cwd, no PYTHON* variables, no user site) and no site module.
PYTHON_FLAGS = "-IS"
#: Exit status when the package directory holds no kubeiam (kubeiam.errors.ConfigError's).
NOT_FOUND_EXIT = 2
#: The fix, said wherever the entry's installation is found gone.
FIX = "install kubeiam, then rerun kubeiam kubeconfig update"
#: The Python the interpreter runs: the package directory (argv[1]) first on sys.path. Only a
#: failed import of kubeiam's own entry modules means "the package is gone"; anything missing
#: deeper is a broken installation and keeps its traceback.
PYTHON_CODE = (
    "import sys;p=sys.argv.pop(1);sys.path.insert(0,p)\n"
    "try:from kubeiam.cli.main import launched\n"
    "except ModuleNotFoundError as e:\n"
    " if e.name not in('kubeiam','kubeiam.cli','kubeiam.cli.main'):raise\n"
    " sys.stderr.write('kubeiam: error: the kubeiam package this kubeconfig entry runs is '"
    "f'gone from {p}\\n  fix: " + FIX + "\\n');sys.exit(" + str(NOT_FOUND_EXIT) + ")\n"
    "launched()"
)
#: The entry's installHint: what the command is and the fix when kubectl cannot start it.
INSTALL_HINT = (
    "kubeiam gets the token for this cluster with the Python it was installed for (command). "
    "If kubectl cannot start it (fork/exec ...: no such file or directory), that installation "
    "moved or was removed (a virtualenv moved or deleted, or this kubeconfig came from another "
    f"machine). fix: {FIX} (--exec-command kubeiam writes an entry that runs kubeiam from PATH)"
)

#: The ``sh`` launcher's entry (before the direct one): ``sh -c LEGACY_SCRIPT kubeiam PYTHON
#: PACKAGE_DIR ARGS``. Kept to recognise such entries, which keep working and are rewritten.
LEGACY_SHELL = "sh"
LEGACY_SCRIPT_NAME = "kubeiam"
LEGACY_PYTHON_CODE = (
    "import sys;sys.path.insert(0,sys.argv.pop(1));from kubeiam.cli.main import launched;launched()"
)
LEGACY_SCRIPT = (
    'py=$1 pkg=$2; shift 2; if [ -x "$py" ] && [ -d "$pkg/kubeiam" ]; then '
    f'exec "$py" {PYTHON_FLAGS} -c "{LEGACY_PYTHON_CODE}" "$pkg" "$@"; fi; '
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

    ``python`` is the interpreter kubeiam is installed for (absolute); ``package_dir`` the
    directory that holds the ``kubeiam`` package (site-packages, or ``src`` of an editable
    install).
    """
    return python, [PYTHON_FLAGS, "-c", PYTHON_CODE, package_dir, *args]


def legacy_launcher_command(
    python: str, package_dir: str, args: list[str]
) -> tuple[str, list[str]]:
    """``(command, args)`` of the ``sh`` launcher's entry (for tests and the benchmark)."""
    return LEGACY_SHELL, ["-c", LEGACY_SCRIPT, LEGACY_SCRIPT_NAME, python, package_dir, *args]


def launcher_paths(command: str, args: list[str]) -> tuple[str, str, list[str]] | None:
    """``(python, package_dir, kubeiam args)`` if the entry is a launcher (the direct one or
    the ``sh`` one), else ``None``."""
    if len(args) >= 4 and args[:3] == [PYTHON_FLAGS, "-c", PYTHON_CODE]:
        return command, args[3], args[4:]
    if (
        command == LEGACY_SHELL
        and len(args) >= 5
        and args[:3] == ["-c", LEGACY_SCRIPT, LEGACY_SCRIPT_NAME]
    ):
        return args[3], args[4], args[5:]
    return None


def this_installation() -> tuple[str, str] | None:
    """``(python, package_dir)`` of the running kubeiam, for :func:`launcher_command`; None
    where the launcher cannot run (no known absolute interpreter path)."""
    import os
    import sys

    import kubeiam

    if not sys.executable or not os.path.isabs(sys.executable) or kubeiam.__file__ is None:
        return None
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(kubeiam.__file__)))
    return sys.executable, package_dir
