"""`kubeiam access report` and `kubeiam access who-can`: the effective-access join (issue 13).

A thin click layer over :mod:`kubeiam.access`: :func:`kubeiam.access.collect.collect` reads IAM,
the mapping stores and RBAC at the same time; the pure report builds and renders. The report
(table, JSON or HTML) goes to stdout or ``--output-file``; progress (on a terminal only) and
notes go to stderr.

Exit codes: 0 done; 1 ``--fail-on`` found a finding of that severity or above (the report is
still written), or IAM/Kubernetes/EKS refused or failed a read; 2 a bad flag or file;
3 no usable AWS credentials.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kubeiam.cli.app import report_errors, say
from kubeiam.errors import ConfigError

if TYPE_CHECKING:
    from kubeiam.access.collect import Inputs

T = TypeVar("T")

SEVERITIES = ("low", "medium", "high", "critical")


@click.group("access")
def access_group() -> None:
    """Who can get into the cluster, as whom, and do what.

    Joins IAM (who can become each mapped principal), the mapping stores the cluster's
    authenticator reads, and Kubernetes RBAC. Reads IAM with the AWS credentials of
    --profile (or the environment) and the cluster with the kubeconfig.
    """


def source_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Where to read: the cluster, IAM and the mapping stores (both commands)."""
    options = [
        click.option(
            "--cluster",
            help="Cluster name for the report; an EKS cluster's access entries and "
            "authentication mode are read too.",
        ),
        click.option("--region", help="AWS region (default: the profile's or AWS_REGION)."),
        click.option("--profile", help="AWS profile the IAM and EKS reads run with."),
        click.option(
            "--kubeconfig",
            type=click.Path(dir_okay=False, path_type=Path),
            help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
        ),
        click.option("--context", help="kubeconfig context (default: its current context)."),
        click.option(
            "--server-config",
            type=click.Path(dir_okay=False, path_type=Path),
            help="kubeiam server's config: read the stores its backendMode names, in its order.",
        ),
        click.option(
            "--file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also read this mapping file (server config YAML, or DynamicFile .json).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _check_flags(server_config: Path | None, file: Path | None) -> None:
    if server_config is not None and file is not None:
        raise ConfigError(
            "--file and --server-config both name mapping files",
            hint="pass --server-config alone: it names the files the server reads",
        )


class _Progress:
    """One stderr line per finished read, on a terminal only, once the work has taken a
    moment (quiet when piped, so scripts see only notes and errors)."""

    #: Seconds before progress lines are worth showing.
    AFTER = 1.0

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.enabled = sys.stderr.isatty()

    def __call__(self, message: str) -> None:
        if self.enabled and time.monotonic() - self.started >= self.AFTER:
            say(f"{message} ({time.monotonic() - self.started:.1f} s)")


def _gather(kw: dict[str, Any], progress: Callable[[str], None]) -> Inputs:
    """Read everything the flags point at (see :mod:`kubeiam.access.collect`)."""
    from kubeiam.access.collect import Where, collect, read_account_iam
    from kubeiam.aws.clients import AWSClients
    from kubeiam.kube.client import make_async_client

    _check_flags(kw["server_config"], kw["file"])
    clients = AWSClients(profile=kw["profile"], region=kw["region"])
    entries = None
    if kw["cluster"] and kw["server_config"] is None:
        from kubeiam.eks.entries_client import EntriesClient

        entries = EntriesClient(clients.eks, kw["cluster"], iam=clients.iam)
    where = Where(kw["server_config"], kw["file"], entries, kw["cluster"] or "")

    def open_client() -> Any:
        # No --kubeconfig: kubectl's defaults ($KUBECONFIG merged, ~/.kube/config, in-cluster).
        return make_async_client(kw["kubeconfig"], context=kw["context"], use_kubectl_defaults=True)

    inputs = asyncio.run(
        collect(where, open_client, lambda: read_account_iam(clients), progress=progress)
    )
    for note in inputs.notes:
        say(f"note: {note}")
    return inputs


def _cluster_name(kw: dict[str, Any]) -> str:
    return str(kw["cluster"] or kw["context"] or "current-context")


@access_group.command(
    "report",
    short_help="Every way into the cluster, with its rights and findings.",
    epilog="Exit codes: 0 done; 1 --fail-on found such a finding (the report is still "
    "written), or a read was refused or failed; 2 bad flag or file; 3 no AWS credentials.",
)
@source_options
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "html"]),
    default="table",
    show_default=True,
    help="table for people, json (schemaVersion 1) for CI, html: one self-contained page.",
)
@click.option(
    "--output-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file (atomically, 0600) instead of stdout.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    help="Exit 1 when a finding of this severity or above exists.",
)
@report_errors
def report_command(output: str, output_file: Path | None, fail_on: str | None, **kw: Any) -> None:
    """Every way into the cluster: IAM principal -> roles -> mapping -> Kubernetes identity ->
    RBAC rights, with findings (cluster-admin reach, account-wide trust, dangling and dead
    entries, old access keys)."""
    from kubeiam.access.render_html import render_html
    from kubeiam.access.render_table import render_table
    from kubeiam.access.report import Severity, build_report, report_json

    inputs = _gather(kw, _Progress())
    report = build_report(
        _cluster_name(kw),
        inputs.rows,
        inputs.graph(),
        inputs.rbac,
        now=datetime.now(UTC),
        access_keys=inputs.access_keys,
    )
    if output == "json":
        text = json.dumps(report_json(report), indent=2) + "\n"
    elif output == "html":
        text = render_html(report)
    else:
        text = render_table(report)
    _write(text, output_file)
    if fail_on is not None and report.fails(Severity[fail_on.upper()]):
        worst = report.worst()
        assert worst is not None
        say(f"a {worst.label} finding exists (--fail-on {fail_on})")
        sys.exit(1)


def _write(text: str, output_file: Path | None) -> None:
    if output_file is None:
        click.echo(text, nl=False)
        return
    from kubeiam.fileio import write_private_file

    write_private_file(output_file, text)
    say(f"wrote {output_file}")


@access_group.command(
    "who-can", short_help="Which IAM principals can do VERB on RESOURCE, and how."
)
@click.argument("verb")
@click.argument("resource")
@click.option(
    "-n", "--namespace", help="The request's namespace (default: a cluster-wide request)."
)
@source_options
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Format on stdout.",
)
@report_errors
def who_can_command(
    verb: str, resource: str, namespace: str | None, output: str, **kw: Any
) -> None:
    """Which IAM principals, and through which path, can do VERB on RESOURCE
    (e.g. `who-can delete secrets -n prod`, `who-can create pods/exec`)."""
    from kubeiam.access.render_table import render_principals
    from kubeiam.access.report import SCHEMA_VERSION, principal_json, who_can

    _check_request(verb, resource)
    inputs = _gather(kw, _Progress())
    found = who_can(inputs.rows, inputs.graph(), inputs.rbac, verb, resource, namespace)
    if output == "json":
        document = {
            "schemaVersion": SCHEMA_VERSION,
            "cluster": _cluster_name(kw),
            "request": {"verb": verb, "resource": resource, "namespace": namespace},
            "principals": [principal_json(e) for e in found],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(render_principals(found), nl=False)


def _check_request(verb: str, resource: str) -> None:
    """A verb and resource as kubectl writes them: no spaces, no empty parts."""
    for what, value in (("VERB", verb), ("RESOURCE", resource)):
        if not value or any(c.isspace() for c in value) or value.startswith("-"):
            raise ConfigError(
                f"{what} {value!r} is not a Kubernetes {what.lower()}",
                hint="e.g. `kubeiam access who-can delete secrets -n prod`",
            )
    if resource.strip("/.") != resource or "//" in resource:
        raise ConfigError(
            f"RESOURCE {resource!r} is not a resource",
            hint="write it as kubectl does: secrets, deployments.apps, pods/exec",
        )
