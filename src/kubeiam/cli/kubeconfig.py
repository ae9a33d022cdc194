"""`kubeiam kubeconfig update`: thin click layer over :mod:`kubeiam.admin.kubeconfig.update`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from kubeiam.cli.app import report_errors
from kubeiam.errors import ConfigError


@click.group("kubeconfig")
def kubeconfig_group() -> None:
    """Add or update kubeconfig entries whose user runs `kubeiam token`."""


@kubeconfig_group.command("update")
@click.option(
    "--cluster", "cluster", required=True, help="EKS cluster name (or a name for --server)."
)
@click.option("--region", help="AWS region of the cluster (default: the profile's region).")
@click.option("--role-arn", help="IAM role `kubeiam token` assumes before signing.")
@click.option(
    "--profile", help="AWS profile: used for DescribeCluster and passed to the token command."
)
@click.option(
    "--context",
    "--alias",
    "alias",
    help="Context name to write (default: the cluster ARN, or --cluster). --alias is "
    "`aws eks update-kubeconfig`'s spelling.",
)
@click.option(
    "--user",
    "--user-alias",
    "user_alias",
    help="User entry name to write (default: the cluster ARN, or --cluster). --user-alias is "
    "`aws eks update-kubeconfig`'s spelling.",
)
@click.option(
    "--kubeconfig", "kubeconfig", help="File to write (default: $KUBECONFIG, else ~/.kube/config)."
)
@click.option("--dry-run", is_flag=True, help="Print a unified diff of the change; write nothing.")
@click.option(
    "--switch/--no-switch", default=True, show_default=True, help="Make the context current."
)
@click.option(
    "--api-version",
    type=click.Choice(["v1", "v1beta1"]),
    default="v1",
    show_default=True,
    help="client.authentication.k8s.io version of the exec entry.",
)
@click.option("--server", help="API server URL of a cluster outside EKS (kOps, kubeadm).")
@click.option(
    "--certificate-authority",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM CA file of a cluster outside EKS (with --server).",
)
@click.option(
    "--exec-command",
    default=None,
    help="Executable kubectl runs (`kubeiam` looks it up on PATH; an absolute path pins one). "
    "Default: this installation's Python, started without the site set-up (faster); if that "
    "installation moves, rerun kubeiam kubeconfig update (the entry's installHint says so).",
)
@report_errors
def update_command(
    cluster: str,
    region: str | None,
    role_arn: str | None,
    profile: str | None,
    alias: str | None,
    user_alias: str | None,
    kubeconfig: str | None,
    dry_run: bool,
    switch: bool,
    api_version: str,
    server: str | None,
    certificate_authority: Path | None,
    exec_command: str | None,
) -> None:
    """Add or update the cluster, user and context for CLUSTER, keeping everything else.

    Endpoint and CA come from EKS DescribeCluster, or from --server and --certificate-authority.
    Comments, unknown fields and a context's namespace are kept; the file is written with a lock
    and an atomic rename, mode 0600.
    """
    from kubeiam.admin.kubeconfig import update as kc
    from kubeiam.token.launcher import this_installation

    if (server is None) != (certificate_authority is None):
        raise ConfigError(
            "--server and --certificate-authority go together",
            hint="pass both for a cluster outside EKS, or neither to ask EKS",
        )
    if server is not None and certificate_authority is not None:
        endpoint = kc.endpoint_from_files(cluster, server, certificate_authority, region=region)
    else:
        from kubeiam.aws.clients import AWSClients

        clients = AWSClients(profile=profile, region=region)
        endpoint = kc.describe_eks_cluster(clients.eks, cluster)
    entry = kc.build_entry(
        endpoint,
        role_arn=role_arn,
        profile=profile,
        api_version=kc.ExecAPIVersion.from_flag(api_version),
        alias=alias,
        user_alias=user_alias,
        command=exec_command or kc.DEFAULT_COMMAND,
        launcher=this_installation() if exec_command is None else None,
    )
    paths = kc.kubeconfig_paths(kubeconfig, os.environ, Path.home())
    result = kc.update_kubeconfig(
        entry, paths, switch=switch, dry_run=dry_run, warnings=endpoint.warnings
    )
    for warning in result.warnings:
        click.echo(f"kubeiam: warning: {warning}", err=True)
    if exec_command is not None and shutil.which(exec_command) is None:
        click.echo(
            f"kubeiam: warning: {exec_command!r} is not on PATH; kubectl will not find it "
            "(pass --exec-command with an absolute path)",
            err=True,
        )
    if dry_run:
        click.echo(result.diff, nl=False)
        verb = "would update" if result.changed else "no change to"
        click.echo(f"{verb} context {entry.context_name} in {result.path} (dry run)", err=True)
        return
    if not result.changed:
        click.echo(f"Context {entry.context_name} in {result.path} is up to date", err=True)
        return
    click.echo(f"Updated context {entry.context_name} in {result.path}", err=True)
