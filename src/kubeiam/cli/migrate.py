"""`kubeiam migrate ...`: move an EKS cluster from aws-auth to access entries.

`migrate plan` gathers what the pure planner (:mod:`kubeiam.eks.migration`) needs: the cluster's
mode and existing access entries (EKS), aws-auth (the cluster through the kubeconfig, or
``--aws-auth-file``), the account's roles and users (IAM: whether each principal still exists,
and a role's full ARN with its path) and the cluster's RBAC bindings (to copy to the groups that
replace ``system:`` groups). It changes nothing. ``apply``, ``verify``, ``finish`` and
``rollback`` carry the plan out, prove it, finish it and undo it
(:mod:`kubeiam.admin.migration`); apply keeps a record of what it did (a local file, see
:mod:`kubeiam.admin.migration.record`) that the other three read. Every subcommand names its
cluster with the same options and reaches it through one :class:`_Target`.

Exit codes: 0 done; 1 a step failed (apply: after undoing this run's changes), verify found a
principal whose identity differs; 2 bad flags or files; 5 refused (a plan that leaves no cluster
admin, finish before verify passes or without a break-glass admin, rollback after finish).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kubeiam.admin.editing.terminal import terminal_text
from kubeiam.cli.app import report_errors, say
from kubeiam.cli.options import option_group
from kubeiam.errors import ConfigError, KubeIAMError

if TYPE_CHECKING:
    from kubeiam.admin.migration.cluster_side import ClusterSide
    from kubeiam.admin.migration.record import MigrationRecord
    from kubeiam.admin.migration.verify import Verification
    from kubeiam.eks.migration import Binding, Plan, Principals

#: Pages of IAM ListRoles / ListUsers read at most (1,000 names a page).
_MAX_IAM_PAGES = 100


def _cluster_options(*, kubeconfig_use: str, aws_auth_file_help: str) -> Callable[[Any], Any]:
    """--cluster, --region, --profile, --kubeconfig, --context, --aws-auth-file (the keyword
    arguments of :class:`_Target`); ``kubeconfig_use``: what the command reads or changes with
    the kubeconfig."""
    return option_group(
        click.option("--cluster", required=True, help="EKS cluster name."),
        click.option("--region", help="AWS region of the cluster."),
        click.option("--profile", help="AWS profile."),
        click.option(
            "--kubeconfig",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"kubeconfig to {kubeconfig_use} with (default: $KUBECONFIG, ~/.kube/config).",
        ),
        click.option(
            "--context", help="kubeconfig context (default: the one whose cluster it is)."
        ),
        click.option(
            "--aws-auth-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help=aws_auth_file_help,
        ),
    )


_OUTPUT_OPTION = click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@click.group("migrate")
def migrate_group() -> None:
    """Move an EKS cluster from the aws-auth ConfigMap to access entries: plan, apply, verify,
    finish, rollback."""


@migrate_group.command("plan")
@_cluster_options(
    kubeconfig_use="read aws-auth and RBAC bindings",
    aws_auth_file_help="Plan from this aws-auth ConfigMap (YAML or JSON, as `kubectl get -o yaml` "
    "writes it) instead of the cluster's; RBAC bindings are then not read.",
)
@_OUTPUT_OPTION
@report_errors
def plan_command(output: str, **cluster_options: Any) -> None:
    """What each aws-auth row becomes as an access entry, with a verdict (exact, equivalent,
    needs-rbac, cannot-migrate, ignored) and the reason. Changes nothing. Exit 1 when the result
    would leave no cluster admin."""
    target = _Target(**cluster_options)
    plan = target.plan(None, *target.aws_auth())
    if output == "json":
        mode = target.info.mode.value
        body = {"cluster": target.cluster, "authenticationMode": mode, **plan.to_json()}
        click.echo(json.dumps(body, indent=2))
    else:
        _print_plan(target.cluster, target.info.mode.value, plan)
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
    open_client: Callable[[], Any],
) -> tuple[dict[str, str], list[Binding] | None]:
    """aws-auth's ``data`` and the RBAC bindings (None when they may not be listed)."""
    from kubeiam.kube.objects import get_object
    from kubeiam.kube.resources import config_map
    from kubeiam.mapping.aws_auth import AWS_AUTH_NAME, AWS_AUTH_NAMESPACE

    client = open_client()

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


# -- apply, verify, finish, rollback --


class _Target:
    """One cluster: its EKS client and description, its aws-auth (the cluster's or a file), its
    Kubernetes API and its migration record file. Built from the :func:`_cluster_options`."""

    def __init__(
        self,
        *,
        cluster: str,
        region: str | None,
        profile: str | None,
        kubeconfig: Path | None,
        context: str | None,
        aws_auth_file: Path | None,
        record_file: Path | None = None,
    ) -> None:
        from kubeiam.admin.editing.access_entries_store import state_dir
        from kubeiam.admin.migration.record import record_path
        from kubeiam.aws.clients import AWSClients
        from kubeiam.eks.entries_client import EntriesClient

        if aws_auth_file is not None and (kubeconfig is not None or context is not None):
            raise ConfigError(
                "--aws-auth-file replaces --kubeconfig/--context: pass one or the other"
            )
        # A file is read before AWS or the cluster is asked anything: bad input fails at once.
        self.from_file = _aws_auth_from_file(aws_auth_file) if aws_auth_file is not None else None
        self.source = str(aws_auth_file) if aws_auth_file is not None else "the cluster"
        self.cluster, self.kubeconfig, self.context = cluster, kubeconfig, context
        self.clients = AWSClients(profile=profile, region=region)
        self.entries = EntriesClient(self.clients.eks, cluster, iam=self.clients.iam)
        self.info = self.entries.describe_cluster()
        self.record_file = record_file or record_path(state_dir(os.environ), self.info)

    def _kube(self) -> Callable[[], Any]:
        """Opens a client of the cluster's Kubernetes API (by default through the kubeconfig
        context whose cluster it is)."""
        from kubeiam.cli.whoami import _context_for
        from kubeiam.kube.client import make_async_client

        kubeconfig = self.kubeconfig
        context = self.context or _context_for(kubeconfig, self.cluster)
        return lambda: make_async_client(kubeconfig, context=context, use_kubectl_defaults=True)

    def aws_auth(self) -> tuple[dict[str, str], list[Binding] | None]:
        if self.from_file is not None:
            return self.from_file, None
        return _from_cluster(self._kube())

    def side(self) -> ClusterSide | None:
        if self.from_file is not None:
            return None
        from kubeiam.admin.migration.cluster_side import ClusterSide

        return ClusterSide(self._kube())

    def plan(self, plan_file: Path | None, data: dict[str, str], bindings: Any) -> Plan:
        from kubeiam.admin.migration.plan import plan_from_json
        from kubeiam.documents import load_json
        from kubeiam.eks.access_policies import AuthenticationMode
        from kubeiam.eks.migration import plan_migration
        from kubeiam.fileio import read_document_text

        if plan_file is not None:
            text = read_document_text(plan_file) or ""
            cluster, plan = plan_from_json(
                load_json(text, source=str(plan_file)), source=str(plan_file)
            )
            if cluster != self.cluster:
                raise ConfigError(
                    f"{plan_file} is the plan of cluster {cluster}, not {self.cluster}",
                    hint=f"kubeiam migrate plan --cluster {self.cluster} -o json > plan.json",
                )
            return plan
        mode = self.info.mode
        existing = self.entries.read_entries() if mode is not AuthenticationMode.CONFIG_MAP else []
        return plan_migration(
            data,
            _principals(self.clients.iam),
            partition=self.info.partition,
            existing=existing,
            bindings=bindings,
        )

    def verification(self, plan_file: Path | None) -> tuple[dict[str, str], Verification]:
        """aws-auth, and whether the cluster's access entries give every principal of the plan
        its identity (the entry API must be on)."""
        from kubeiam.admin.migration.verify import verify

        self.entries.require_entry_api(self.info)
        data, bindings = self.aws_auth()
        return data, verify(self.plan(plan_file, data, bindings), self.entries.read_entries())

    def record(self, missing: str, hint: str) -> MigrationRecord:
        """The record apply wrote; none is a ConfigError ("no migration record at FILE: ")."""
        from kubeiam.admin.migration.record import load_record

        record = load_record(self.record_file, self.info)
        if record is None:
            raise ConfigError(f"no migration record at {self.record_file}: {missing}", hint=hint)
        return record


def _progress(message: str) -> None:
    """Progress of long steps, on a terminal only (pipes and CI logs get the result)."""
    if sys.stderr.isatty():
        say(message)


def _who() -> tuple[str, str]:
    import getpass
    from datetime import UTC, datetime

    try:
        by = getpass.getuser()
    except (KeyError, OSError):
        by = "unknown"
    return by, datetime.now(UTC).isoformat(timespec="seconds")


def _run_by(command: str) -> dict[str, Any]:
    """Who runs ``kubeiam migrate COMMAND`` and when, for the record; and where progress goes."""
    by, now = _who()
    return {"by": by, "command": f"kubeiam migrate {command}", "now": now, "progress": _progress}


#: The cluster options of apply, verify, finish and rollback, with --record.
_carry_out_options = option_group(
    _cluster_options(
        kubeconfig_use="read aws-auth and manage RBAC bindings",
        aws_auth_file_help="aws-auth as a file (`kubectl get -o yaml`); the cluster is then not "
        "asked, so no backup ConfigMap and no RBAC bindings.",
    ),
    click.option(
        "--record",
        "record_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The migration record (default: $KUBEIAM_STATE_DIR/migrations/"
        "<account>-<region>-<cluster>.json).",
    ),
)

_PLAN_OPTION = click.option(
    "--plan-file",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Carry out this plan (`kubeiam migrate plan -o json`) instead of planning again.",
)


@migrate_group.command("apply")
@_carry_out_options
@_PLAN_OPTION
@_OUTPUT_OPTION
@report_errors
def apply_command(plan_file: Path | None, output: str, **cluster_options: Any) -> None:
    """Back aws-auth up, switch CONFIG_MAP to API_AND_CONFIG_MAP (one way), create the planned
    entries, policies and RBAC bindings. Idempotent; a failure undoes this run's changes."""
    from kubeiam.admin.migration.apply import apply_plan

    target = _Target(**cluster_options)
    data, bindings = target.aws_auth()
    applied = apply_plan(
        target.plan(plan_file, data, bindings),
        target.entries,
        target.info,
        record_file=target.record_file,
        aws_auth=data,
        aws_auth_source=target.source,
        side=target.side(),
        **_run_by("apply"),
    )
    if output == "json":
        body = {
            "cluster": target.cluster,
            "modeSwitched": applied.mode_switched,
            "steps": list(applied.steps),
            "heldBack": list(applied.skipped),
            "record": str(target.record_file),
            "awsAuthBackup": applied.record.aws_auth_backup or None,
        }
        click.echo(json.dumps(body, indent=2))
        return
    if applied.mode_switched:
        click.echo("authentication mode: CONFIG_MAP -> API_AND_CONFIG_MAP (EKS never moves back)")
    for step in applied.steps:
        click.echo(terminal_text(f"done: {step}"))
    for skipped in applied.skipped:
        click.echo(terminal_text(f"held back: {skipped}"))
    if not applied.steps:
        held = " (but the rows held back)" if applied.skipped else ""
        click.echo(f"nothing to do: the cluster already holds the plan{held}")
    click.echo(f"aws-auth backup: {applied.record.aws_auth_backup or 'none (aws-auth not read)'}")
    click.echo(f"record: {target.record_file} (verify, finish and rollback read it)")


@migrate_group.command("verify")
@_carry_out_options
@_PLAN_OPTION
@_OUTPUT_OPTION
@report_errors
def verify_command(plan_file: Path | None, output: str, **cluster_options: Any) -> None:
    """For every principal the plan migrates, the identity EKS gives it from its access entry
    (as in mode API) equals the plan's; lists who still depends on aws-auth. Exit 1 if not."""
    target = _Target(**cluster_options)
    _, result = target.verification(plan_file)
    if output == "json":
        click.echo(json.dumps({"cluster": target.cluster, **result.to_json()}, indent=2))
    else:
        _print_verification(result)
    if not result.ok:
        sys.exit(1)


def _print_verification(result: Verification) -> None:
    for check in result.checks:
        detail = f": {check.detail}" if check.detail else ""
        click.echo(terminal_text(f"{check.status:8} {check.source}  {check.principal}{detail}"))
    for dependent in result.dependents:
        click.echo(
            terminal_text(
                f"still depends on aws-auth: {dependent.source} {dependent.written} "
                f"({dependent.reason})"
            )
        )
    click.echo(
        "break-glass admin entries: " + (", ".join(result.admins) or "none (finish is refused)")
    )
    click.echo("verify: " + ("passed" if result.ok else "FAILED"))


@migrate_group.command("finish")
@_carry_out_options
@_PLAN_OPTION
@click.option("--yes", is_flag=True, help="Do not ask: the switch to API cannot be undone.")
@report_errors
def finish_command(plan_file: Path | None, yes: bool, **cluster_options: Any) -> None:
    """Switch the cluster to mode API (aws-auth no longer read), only when verify passes and a
    break-glass admin entry exists. Cannot be undone. Backs aws-auth up; never deletes it."""
    from kubeiam.admin.migration.finish import check_finish, finish
    from kubeiam.errors import GuardError

    target = _Target(**cluster_options)
    record = target.record(
        "`migrate apply` has not run here",
        hint="run `kubeiam migrate apply` first, or pass the --record it wrote",
    )
    data, result = target.verification(plan_file)
    _print_verification(result)
    check_finish(result)
    warning = (
        f"switching {target.cluster} to mode API: EKS stops reading aws-auth and never moves "
        f"back; {len(result.dependents)} aws-auth-only principal(s) lose access"
    )
    if not yes:
        if not sys.stdin.isatty():
            raise GuardError(warning, hint="pass --yes once you have read `migrate verify`")
        if not click.confirm(f"{warning}. Continue?", err=True):
            raise GuardError("not finished", hint="nothing was changed")
    done = finish(
        record,
        result,
        target.entries,
        record_file=target.record_file,
        aws_auth=data,
        side=target.side(),
        **_run_by("finish"),
    )
    click.echo("authentication mode: API (this cannot be undone; aws-auth is no longer read)")
    click.echo(f"aws-auth backup: {done.backup or 'in the record'}; aws-auth was not deleted")
    click.echo(f"to delete it once you are sure: {done.delete_command}")


@migrate_group.command("rollback")
@_carry_out_options
@report_errors
def rollback_command(**cluster_options: Any) -> None:
    """Delete exactly the entries and RBAC bindings apply created and restore the entries it
    changed, from its record. aws-auth is left as it is; the mode stays (EKS never moves it
    back). Refused after finish."""
    from kubeiam.admin.migration.record import save_record
    from kubeiam.admin.migration.rollback import rollback

    target = _Target(**cluster_options)
    record = target.record(
        "nothing to roll back", hint="pass the --record file `kubeiam migrate apply` wrote"
    )
    by, now = _who()
    undone, emptied = rollback(
        record,
        target.entries,
        target.side() if record.bindings else None,
        mode=target.info.mode.value,
        progress=_progress,
    )
    save_record(target.record_file, emptied.with_event(f"{now} {by}: rolled back"))
    for arn in undone.deleted:
        click.echo(terminal_text(f"deleted the access entry of {arn}"))
    for arn in undone.restored:
        click.echo(terminal_text(f"restored the access entry of {arn}"))
    for binding in undone.bindings:
        click.echo(terminal_text(f"deleted {binding}"))
    click.echo("aws-auth was left as it is")
    click.echo(
        f"authentication mode stays {undone.mode}: EKS never moves it back; EKS decides from "
        "aws-auth again for every principal without an access entry"
    )
