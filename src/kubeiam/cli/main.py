"""Entry point of the ``kubeiam`` command.

``kubeiam token`` is started by kubectl on every run, often twice, so its start-up time is what
users feel. It is therefore dispatched before click is imported (click alone costs ~40 ms here):
:mod:`kubeiam.cli.token` parses its own arguments with a table it shares with the click command
that documents it. Every other command goes through the click group in :mod:`kubeiam.cli.app`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run kubeiam with ``argv`` (default ``sys.argv[1:]``) and exit with its status."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "token":
        from kubeiam.cli.token import fast_main

        code = fast_main(args[1:])
        if code is not None:
            sys.exit(code)
    from kubeiam.cli.app import cli

    cli.main(args=args, prog_name="kubeiam")
