"""The click command group. Subcommands are imported only when invoked (:class:`LazyGroup`)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import click

from kubeiam import __version__
from kubeiam.errors import KubeIAMError

#: name -> (module, attribute, hidden). Kept in one table so `kubeiam --help` lists every command
#: without importing any of them.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "token": ("kubeiam.cli.token", "token_command", False),
    "verify": ("kubeiam.cli.verify", "verify_command", False),
    "server": ("kubeiam.cli.server", "server_command", False),
    "init": ("kubeiam.cli.init", "init_command", False),
    "mapping": ("kubeiam.cli.mapping", "mapping_group", False),
    "kubeconfig": ("kubeiam.cli.kubeconfig", "kubeconfig_group", False),
    "iam": ("kubeiam.cli.iam", "iam_group", False),
    "whoami": ("kubeiam.cli.whoami", "whoami_command", False),
    "access": ("kubeiam.cli.access", "access_group", False),
    "migrate": ("kubeiam.cli.migrate", "migrate_group", False),
    "localaws": ("kubeiam.cli.localaws", "localaws_command", True),
}

#: One-line help per command, shown by `kubeiam --help` without importing the command.
SHORT_HELP: dict[str, str] = {
    "token": "Print an ExecCredential for kubectl (exec credential plugin).",
    "verify": "Verify a token with STS and print the identity behind it.",
    "server": "Run the TokenReview webhook that kube-apiserver calls.",
    "init": "Write the webhook's key, certificate and kube-apiserver webhook kubeconfig.",
    "mapping": "Add, remove, list, lint and explain IAM-to-Kubernetes mappings.",
    "kubeconfig": "Add or update a kubeconfig entry that runs `kubeiam token`.",
    "iam": "Onboard IAM users; give IAM groups access through a role.",
    "whoami": "Show your AWS identity and what it maps to in a cluster.",
    "access": "Report who can get into the cluster, as whom, and do what.",
    "migrate": "Move an EKS cluster from aws-auth to access entries: plan, apply, verify, finish.",
    "localaws": "Developer tool: run the local AWS environment (moto + STS front).",
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n, (_, _, hidden) in COMMANDS.items() if not hidden)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, _ = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def say(message: str) -> None:
    """Tell the user what happened, on stderr (stdout carries only machine output)."""
    click.echo(f"kubeiam: {message}", err=True)


def report_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for command callbacks: the one place domain errors become exit codes."""

    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KubeIAMError as exc:
            click.echo(f"kubeiam: error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubeiam")
def cli() -> None:
    """kubeiam: AWS IAM authentication for Kubernetes.

    A kubectl credential plugin (`token`), the TokenReview webhook kube-apiserver calls
    (`server`), and safe editing of the IAM-to-Kubernetes mappings (`mapping`, `iam`,
    `kubeconfig`).
    """
