"""Entry point of the ``kubeiam`` command.

``kubeiam token`` is started by kubectl on every run, often twice, so its start-up time is what
users feel. It is therefore dispatched before click is imported (click alone costs ~40 ms here):
:mod:`kubeiam.cli.token` parses its own arguments with a table it shares with the click command
that documents it. Every other command goes through the click group in :mod:`kubeiam.cli.app`.

:func:`launched` is the second door, for the launcher ``kubeiam kubeconfig update`` writes into
kubeconfig exec entries (:mod:`kubeiam.token.launcher`): the interpreter is started isolated and
without :mod:`site` (``python -I -S``), which saves the site-packages set-up and the ``.pth``
files (most of a bare interpreter's start), and the package's own directory is put on
``sys.path`` by the launcher. The fast path needs nothing else: it imports only the standard
library. Whatever needs more (botocore for a profile, click for ``--help`` or an error) finds it
through :class:`_SiteOnDemand`, which runs the site set-up the first time an import is not found.
"""

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import NoReturn


def main(argv: list[str] | None = None) -> None:
    """Run kubeiam with ``argv`` (default ``sys.argv[1:]``) and exit with its status."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "token":
        from kubeiam.cli.token import fast_main

        code = fast_main(args[1:])
        if code is not None:
            if argv is None:  # the process's own entry: nothing after us needs finalizing
                exit_now(code)
            sys.exit(code)
    from kubeiam.cli.app import cli

    cli.main(args=args, prog_name="kubeiam")


def exit_now(code: int) -> "NoReturn":
    """End the process with ``code`` once stdout and stderr are flushed, skipping the
    interpreter's finalization: tearing down every module and object costs a bare ``python -IS``
    about 2 ms of CPU, a fifth of the token plugin's start-up. Safe on the token path, which
    has written and closed its files (the cache is renamed into place), starts no threads and
    registers no ``atexit`` handlers. A failed flush (stdout closed early) exits the ordinary
    way, which reports it as before."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        sys.exit(code)
    from kubeiam.token.system import exit_now  # posix's _exit: importing os costs ~2 ms

    exit_now(code)


class _SiteOnDemand:
    """A last-resort finder: on the first top-level import nothing else finds, it runs the site
    set-up that ``python -S`` skipped (site-packages, ``.pth`` files, editable installs) and
    looks again. Meta path finders are consulted in order, so standard-library and kubeiam
    modules never reach it; it removes itself once used."""

    @staticmethod
    def find_spec(
        name: str, path: "Sequence[str] | None" = None, target: "ModuleType | None" = None
    ) -> "ModuleSpec | None":
        if path is not None:  # a submodule: its package was found, site cannot help
            return None
        enable_site()
        from importlib.util import find_spec

        return find_spec(name)


def enable_site() -> None:
    """Run the site set-up now if the interpreter started without it (idempotent), and give
    back the garbage collector :func:`launched` turned off."""
    import gc

    gc.enable()
    if _SiteOnDemand in sys.meta_path:
        sys.meta_path.remove(_SiteOnDemand)
    if sys.flags.no_site and "site" not in sys.modules:
        import site

        site.main()


def launched() -> None:
    """Entry of the isolated launcher (``python -I -S``, package directory on ``sys.path``).

    The cyclic garbage collector is off for the fast path: the imports allocate enough to run
    it several times and a process this short has no cycles worth freeing (~1 ms of CPU of a
    fresh token); :func:`enable_site`, which the heavier paths (botocore, click) go through,
    turns it back on."""
    import gc

    gc.disable()
    sys.meta_path.append(_SiteOnDemand)
    main()
