"""`kubeiam migrate ...`: move an EKS cluster from aws-auth to access entries.

`migrate plan` gathers what the pure planner (:mod:`kubeiam.eks.migration`) needs: the cluster's
mode and existing access entries (EKS), aws-auth (the cluster through the kubeconfig, or
``--aws-auth-file``), the account's roles and users (IAM: whether each principal still exists,
and a role's full ARN with its path) and the cluster's RBAC bindings (to copy to the groups that
replace ``system:`` groups). It changes nothing. ``apply``, ``verify``, ``finish`` and
``rollback`` are not built yet.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kubeiam.cli.app import report_errors, say
from kubeiam.errors import ConfigError, KubeIAMError

if TYPE_CHECKING:
    from kubeiam.eks.migration import Binding, Plan, Principals

#: Pages of IAM ListRoles / ListUsers read at most (1,000 names a page).
_MAX_IAM_PAGES = 100


@click.group("migrate")
def migrate_group() -> None:
    """Move an EKS cluster from the aws-auth ConfigMap to access entries (plan only, so far)."""


@migrate_group.command("plan")
@click.option("--cluster", required=True, help="EKS cluster name.")
@click.option("--region", help="AWS region of the cluster.")
@click.option("--profile", help="AWS profile.")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="kubeconfig to read aws-auth and RBAC bindings with (default: $KUBECONFIG, "
    "~/.kube/config).",
)
@click.option("--context", help="kubeconfig context (default: the one whose cluster it is).")
@click.option(
    "--aws-auth-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Plan from this aws-auth ConfigMap (YAML or JSON, as `kubectl get -o yaml` writes it) "
    "instead of the cluster's; RBAC bindings are then not read.",
)
@click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@report_errors
def plan_command(
    cluster: str,
    region: str | None,
    profile: str | None,
    kubeconfig: Path | None,
    context: str | None,
    aws_auth_file: Path | None,
    output: str,
) -> None:
    """What each aws-auth row becomes as an access entry, with a verdict (exact, equivalent,
    needs-rbac, cannot-migrate, ignored) and the reason. Changes nothing. Exit 1 when the result
    would leave no cluster admin."""
    from kubeiam.aws.clients import AWSClients
    from kubeiam.eks.access_policies import AuthenticationMode
    from kubeiam.eks.entries_client import EntriesClient
    from kubeiam.eks.migration import plan_migration

    if aws_auth_file is not None and (kubeconfig is not None or context is not None):
        raise ConfigError("--aws-auth-file replaces --kubeconfig/--context: pass one or the other")
    # A file is read before AWS or the cluster is asked anything: bad input fails at once.
    from_file = _aws_auth_from_file(aws_auth_file) if aws_auth_file is not None else None
    clients = AWSClients(profile=profile, region=region)
    entries = EntriesClient(clients.eks, cluster, iam=clients.iam)
    info = entries.describe_cluster()
    existing = entries.read_entries() if info.mode is not AuthenticationMode.CONFIG_MAP else []
    if from_file is not None:
        data, bindings = from_file, None
    else:
        data, bindings = _from_cluster(cluster, kubeconfig, context)
    principals = _principals(clients.iam)
    plan = plan_migration(
        data, principals, partition=info.partition, existing=existing, bindings=bindings
    )
    if output == "json":
        body = {"cluster": cluster, "authenticationMode": info.mode.value, **plan.to_json()}
        click.echo(json.dumps(body, indent=2))
    else:
        _print_plan(cluster, info.mode.value, plan)
    if not plan.ok:
        say("error: the plan leaves no cluster admin; nothing should be migrated as it stands")
        sys.exit(1)


def _aws_auth_from_file(path: Path) -> dict[str, str]:
    """aws-auth's ``data`` from a ConfigMap file (or a bare data mapping)."""
    from kubeiam.documents import load_document
    from kubeiam.fileio import read_document_text

    text = read_document_text(path) or ""
    # kubeiam's own loader: bounded depth and sizes, duplicate keys refused, no Python objects.
    raw = load_document(text, source=str(path), json_format=path.suffix.lower() == ".json")
    if isinstance(raw, dict) and raw.get("kind") == "ConfigMap":
        raw = raw.get("data") or {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError(
            f"{path} is not the aws-auth ConfigMap (or its data: mapRoles, mapUsers ... as text)",
            hint="kubectl -n kube-system get configmap aws-auth -o yaml > aws-auth.yaml",
        )
    return {str(k): str(v) for k, v in raw.items()}


def _from_cluster(
    cluster: str, kubeconfig: Path | None, context: str | None
) -> tuple[dict[str, str], list[Binding] | None]:
    from kubeiam.cli.whoami import _context_for
    from kubeiam.kube.client import make_async_client
    from kubeiam.kube.objects import get_object
    from kubeiam.kube.resources import config_map
    from kubeiam.mapping.aws_auth import AWS_AUTH_NAME, AWS_AUTH_NAMESPACE

    client = make_async_client(
        kubeconfig, context=context or _context_for(kubeconfig, cluster), use_kubectl_defaults=True
    )

    async def read() -> tuple[dict[str, str], list[Binding] | None]:
        try:
            obj = await get_object(
                client, config_map(), AWS_AUTH_NAME, namespace=AWS_AUTH_NAMESPACE
            )
            data = {str(k): str(v) for k, v in ((obj or {}).get("data") or {}).items()}
            try:
                bindings: list[Binding] | None = await _bindings(client)
            except KubeIAMError as exc:
                say(f"note: RBAC bindings not read ({exc.message})")
                bindings = None
            return data, bindings
        finally:
            await client.close()

    return asyncio.run(read())


async def _bindings(client: Any) -> list[Binding]:
    from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding

    from kubeiam.eks.migration import Binding
    from kubeiam.errors import KubeAPIError
    from kubeiam.kube.objects import api_errors

    def refused(code: int | None, exc: Exception) -> KubeAPIError:
        return KubeAPIError(f"cannot list RBAC bindings ({code})")

    out: list[Binding] = []
    with api_errors(refused):
        for kind, options in ((ClusterRoleBinding, {}), (RoleBinding, {"namespace": "*"})):
            async for obj in client.list(kind, **options):
                raw = obj.to_dict()
                meta = raw.get("metadata") or {}
                ref = raw.get("roleRef") or {}
                groups = tuple(
                    str(s.get("name"))
                    for s in raw.get("subjects") or ()
                    if s.get("kind") == "Group"
                )
                out.append(
                    Binding(
                        kind.__name__,
                        str(meta.get("name", "")),
                        str(meta.get("namespace") or ""),
                        str(ref.get("kind", "")),
                        str(ref.get("name", "")),
                        groups,
                    )
                )
    return out


def _principals(iam: Any) -> Principals:
    """Every role and user of the account by lower-cased ``role/NAME`` / ``user/NAME``; unknown
    (every principal taken as written, with a note) when IAM may not be listed."""
    from kubeiam.aws.clients import translate_errors
    from kubeiam.eks.migration import Principals
    from kubeiam.errors import AWSAdminError

    arns: dict[str, str] = {}
    try:
        for kind, call, key in (("role", "list_roles", "Roles"), ("user", "list_users", "Users")):
            with translate_errors(f"iam:{call.title().replace('_', '')}"):
                pages = iam.get_paginator(call).paginate()
                for number, page in enumerate(pages):
                    if number >= _MAX_IAM_PAGES:
                        break
                    for item in page.get(key, []):
                        name = str(item["Arn"]).split(f":{kind}/", 1)[1].rsplit("/", 1)[-1]
                        if kind == "user":  # a user's name in aws-auth keeps its path
                            name = str(item["Arn"]).split(":user/", 1)[1]
                        arns[f"{kind}/{name}".lower()] = str(item["Arn"])
    except AWSAdminError as exc:
        say(f"note: IAM not listed ({exc.message}); principals are taken as written")
        return Principals(known=False)
    return Principals(arns)


def _print_plan(cluster: str, mode: str, plan: Plan) -> None:
    from kubeiam.admin.editing.terminal import terminal_text
    from kubeiam.cli.mapping import policy_text

    rows = []
    for row in plan.rows:
        if row.entry is not None:
            entry = row.entry
            becomes = " ".join(
                part
                for part in (
                    entry.entry_type,
                    entry.username,
                    ",".join(entry.groups),
                    " ".join(policy_text(p.to_json()) for p in entry.policies),
                )
                if part
            )
        else:
            becomes = "-"
        rows.append([row.source, row.written, row.verdict.value, becomes])
    header = ["AWS-AUTH ROW", "PRINCIPAL", "VERDICT", "BECOMES (TYPE USERNAME GROUPS POLICIES)"]
    cells = [[terminal_text(str(v)) for v in r] for r in [header, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    click.echo(f"cluster {cluster}, authentication mode {mode}")
    for index, line in enumerate(cells):
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            continue
        row = plan.rows[index - 1]
        for reason in row.reasons:
            click.echo(terminal_text(f"    - {reason}"))
        for binding in row.bindings:
            where = f" in {binding.namespace}" if binding.namespace else ""
            click.echo(
                terminal_text(
                    f"    + {binding.kind} {binding.name}{where}: {binding.role_kind} "
                    f"{binding.role_name} to group {binding.group} (copy of {binding.copy_of})"
                )
            )
        if row.existing:
            click.echo(terminal_text(f"    = existing access entry: {row.existing}"))
    counts = ", ".join(f"{n} {v}" for v, n in plan.counts().items() if n)
    click.echo(f"{len(plan.rows)} row(s): {counts}")
    click.echo("cluster admins after migration: " + (", ".join(plan.admins) or "none"))
    for note in plan.notes:
        click.echo(terminal_text(f"note: {note}"))
