"""`kubeiam mapping ...`: the same commands for aws-auth, IAMIdentityMapping objects, a file and
EKS access entries.

A thin click layer over :mod:`kubeiam.admin.editing`. Machine output (lists, diffs, lint
findings, explanations, backups) goes to stdout; what happened goes to stderr.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kubeiam.cli.app import report_errors, say
from kubeiam.cli.options import option_group, split_values
from kubeiam.errors import ConfigError

if TYPE_CHECKING:
    from kubeiam.admin.editing.document import MappingDocument
    from kubeiam.admin.editing.editor import EditResult, MappingEditor
    from kubeiam.admin.editing.store import MappingStore
    from kubeiam.admin.editing.writer import MappingWriter
    from kubeiam.mapping.aws_auth import Change

T = TypeVar("T")

STORES = ("aws-auth", "crd", "file", "access-entries")


def _now() -> datetime:
    return datetime.now(UTC)


def open_store(
    store: str | None,
    kubeconfig: Path | None,
    context: str | None,
    file: Path | None,
    *,
    cluster: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> MappingStore:
    """The store the flags name (``--file`` alone means the file store; default aws-auth)."""
    kind = store or ("file" if file is not None else "aws-auth")
    if kind == "access-entries":
        return open_access_entries(cluster, region, profile, kubeconfig, context, file)
    if cluster is not None or region is not None or profile is not None:
        raise ConfigError(
            f"--cluster, --region and --profile are for --store access-entries, not --store {kind}",
            hint="pass --store access-entries, or --context to choose the cluster's kubeconfig "
            "context",
        )
    if kind == "file":
        if file is None:
            raise ConfigError("--store file needs --file PATH", hint="pass --file PATH")
        from kubeiam.admin.editing.file_store import FileStore

        return FileStore(file)
    if file is not None:
        raise ConfigError(f"--file is for --store file, not --store {kind}")
    from kubeiam.admin.editing.kube_stores import AwsAuthStore, CrdStore
    from kubeiam.kube.client import make_async_client

    # No --kubeconfig: kubectl's defaults ($KUBECONFIG merged, ~/.kube/config, in-cluster).
    client = make_async_client(kubeconfig, context=context, use_kubectl_defaults=True)
    return AwsAuthStore(client) if kind == "aws-auth" else CrdStore(client)


def open_access_entries(
    cluster: str | None,
    region: str | None,
    profile: str | None,
    kubeconfig: Path | None = None,
    context: str | None = None,
    file: Path | None = None,
) -> MappingStore:
    """``--store access-entries --cluster NAME [--region R] [--profile P]``."""
    if cluster is None:
        raise ConfigError(
            "--store access-entries needs --cluster NAME", hint="pass the EKS cluster's name"
        )
    if kubeconfig is not None or context is not None or file is not None:
        raise ConfigError(
            "--kubeconfig, --context and --file are not for --store access-entries: it talks "
            "to the EKS API with AWS credentials",
            hint="pass --cluster NAME [--region R] [--profile P]",
        )
    from kubeiam.admin.editing.access_entries_store import AccessEntriesStore
    from kubeiam.aws.clients import AWSClients
    from kubeiam.eks.entries_client import EntriesClient

    clients = AWSClients(profile=profile, region=region)
    return AccessEntriesStore(EntriesClient(clients.eks, cluster, iam=clients.iam))


def mapping_writer_for(
    store: str,
    kubeconfig: Path | None,
    context: str | None,
    file: Path | None = None,
    *,
    cluster: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    policies: tuple[str, ...] = (),
) -> MappingWriter:
    """The :class:`MappingWriter` `kubeiam iam` writes through for ``--store``/``--file``."""
    from kubeiam.admin.editing.store_writer import StoreMappingWriter

    if store == "access-entries":
        from kubeiam.admin.editing.access_entries_store import AccessEntriesWriter

        return AccessEntriesWriter(
            lambda: open_access_entries(cluster, region, profile),
            policies=policies,
            now=_now,
            by=_who(),
            target=f"access entries of EKS cluster {cluster}",
        )

    target = {"aws-auth": "ConfigMap kube-system/aws-auth", "crd": "IAMIdentityMapping objects"}
    where = f" (context {context})" if context else ""
    return StoreMappingWriter(
        lambda: open_store(store, kubeconfig, context, file),
        now=_now,
        by=_who(),
        target=target.get(store, f"file {file}") + where,
    )


#: --store / --kubeconfig / --context / --file, on every subcommand.
store_options = option_group(
    click.option(
        "--store",
        type=click.Choice(STORES),
        help="Where the mappings live (default: file with --file, else aws-auth).",
    ),
    click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False, path_type=Path),
        help="kubeconfig for aws-auth/crd (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
    ),
    click.option("--context", help="kubeconfig context (default: its current context)."),
    click.option(
        "--file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Mapping file for --store file (server config YAML, or DynamicFile .json).",
    ),
    click.option("--cluster", help="EKS cluster name, for --store access-entries."),
    click.option("--region", help="AWS region of the cluster, for --store access-entries."),
    click.option("--profile", help="AWS profile, for --store access-entries."),
)

change_options = option_group(
    click.option("--dry-run", is_flag=True, help="Print the unified diff; write nothing."),
    click.option(
        "--force", is_flag=True, help="Allow changes to node entries and the last system:masters."
    ),
)


def _run_with_store(kwargs: dict[str, Any], body: Callable[[MappingStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = open_store(
            kwargs.pop("store"),
            kwargs.pop("kubeconfig"),
            kwargs.pop("context"),
            kwargs.pop("file"),
            cluster=kwargs.pop("cluster"),
            region=kwargs.pop("region"),
            profile=kwargs.pop("profile"),
        )
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _editor(store: MappingStore) -> MappingEditor:
    from kubeiam.admin.editing.editor import MappingEditor

    argv = sys.argv[1:]
    return MappingEditor(store, now=_now, by=_who(), command=" ".join(["kubeiam", *argv])[:500])


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _report(result: EditResult, what: str) -> None:
    from kubeiam.mapping.aws_auth import Change

    if result.diff and not result.written:
        click.echo(result.diff, nl=False)
    for overridden in result.forced:
        say(f"--force: {overridden}")
    for note in result.notes:
        say(f"note: {note}")
    if result.created and result.change is not Change.UNCHANGED:
        would = "would create" if not result.written else "created"
        say(f"{result.target} did not exist: {would} it")
    if result.change is Change.UNCHANGED:
        say(f"{what}: unchanged in {result.target}")
    elif not result.written:
        say(f"dry run: would have {result.change.value} {what} in {result.target}; nothing written")
    else:
        retried = f" after {result.attempts - 1} conflict(s)" if result.attempts > 1 else ""
        say(f"{result.change.value} {what} in {result.target}{retried}")


def _edit(
    kwargs: dict[str, Any],
    operation: Callable[[MappingDocument], Change],
    what: str,
    *,
    creates: bool = False,
    must_exist: str | None = None,
    principal: str | None = None,
) -> EditResult:
    """Run one edit. ``creates``: an add-* edit, which may create a missing file (and says so);
    ``must_exist``: a removal, for which finding nothing is an error (exit 1); ``principal``:
    the IAM ARN an add maps, checked to exist first where the store needs it (access entries)."""
    dry_run, force = kwargs.pop("dry_run"), kwargs.pop("force")

    async def body(store: MappingStore) -> EditResult:
        check = getattr(store, "check_principal", None)
        if principal is not None and check is not None:
            await check(principal)
        return await _editor(store).edit(
            operation, dry_run=dry_run, force=force, creates=creates, must_exist=must_exist
        )

    result = _run_with_store(kwargs, body)
    _report(result, what)
    return result


def _path_note(arn: str) -> None:
    from kubeiam.arn import canonicalize_mapping_arn

    mapped = canonicalize_mapping_arn(arn)
    if mapped.had_path:
        say(
            f"warning: {arn} has an IAM path; STS reports the role's sessions without it, so "
            f"kubeiam matches it as {mapped.canonical} (kept as written)"
        )


@click.group("mapping")
def mapping_group() -> None:
    """Edit IAM-to-Kubernetes mappings safely: aws-auth, IAMIdentityMapping objects or a file.

    Every change reads, edits and writes with the object's resourceVersion (retried on
    conflict), saves the previous state first (`restore` rolls back), keeps what it does not
    touch, never writes what the server would refuse, and refuses to remove node entries or the
    last system:masters without --force. Only the add-* commands create a missing --file.
    """


_identity_options = option_group(
    click.option(
        "--username",
        help="Kubernetes username (templates allowed). Required, except for --store "
        "access-entries, where EKS assigns one when it is omitted.",
    ),
    click.option("--group", "groups", multiple=True, help="Kubernetes group (repeatable, or a,b)."),
    click.option("--replace", is_flag=True, help="Overwrite a different mapping of the same ARN."),
)


#: --access-policy, on the add commands of --store access-entries.
_policy_option = click.option(
    "--access-policy",
    "access_policies",
    multiple=True,
    metavar="POLICY[:NS,...]",
    help="EKS access policy (short name or ARN) for --store access-entries, repeatable; "
    "namespaces after ':' give a namespace scope, none the whole cluster.",
)


def _need_username(username: str | None) -> str:
    if username is None:
        raise click.UsageError("Missing option '--username'.")
    return username


def _add_principal(kind: str, arn: str, kw: dict[str, Any]) -> None:
    """add-user / add-role: map ``arn`` to --username and --group, with access policies for
    --store access-entries; ``kw`` the command's other options."""
    username, replace = kw.pop("username"), kw.pop("replace")
    groups, policies = split_values(kw.pop("groups")), kw.pop("access_policies")
    if kw.get("store") == "access-entries":
        from kubeiam.admin.editing.access_entries_document import AccessEntriesMappings
        from kubeiam.eks.access_entries import merge_policies, parse_policy_option

        partition = arn.split(":")[1] if arn.count(":") >= 5 else "aws"
        grants = merge_policies(parse_policy_option(p, partition) for p in policies)

        def operation(d: MappingDocument) -> Change:
            assert isinstance(d, AccessEntriesMappings)
            return d.upsert_entry(kind, arn, username, groups, grants, replace=replace)

    else:
        if kind == "role":
            _path_note(arn)  # an access entry names the role WITH its path
        if policies:
            raise ConfigError(
                "--access-policy is for --store access-entries",
                hint="aws-auth, CRD and file mappings grant through --group and RBAC",
            )
        name = _need_username(username)

        def operation(d: MappingDocument) -> Change:
            upsert = d.upsert_user if kind == "user" else d.upsert_role
            return upsert(arn, name, groups, replace=replace)

    _edit(kw, operation, f"{kind} {arn}", creates=True, principal=arn)


#: ARN and the options of add-user and add-role.
_add_principal_options = option_group(
    click.argument("arn"), _identity_options, _policy_option, change_options, store_options
)


@mapping_group.command("add-user")
@_add_principal_options
@report_errors
def add_user_command(arn: str, **kw: Any) -> None:
    """Map IAM user ARN to a Kubernetes username and groups (and, for an access entry, access
    policies)."""
    _add_principal("user", arn, kw)


@mapping_group.command("add-role")
@_add_principal_options
@report_errors
def add_role_command(arn: str, **kw: Any) -> None:
    """Map IAM role ARN (every session of it) to a Kubernetes username and groups (and, for an
    access entry, access policies)."""
    _add_principal("role", arn, kw)


@mapping_group.command("add-sso")
@click.argument("permission_set")
@click.option("--account", required=True, help="12-digit account the permission set is in.")
@click.option("--partition", default="aws", show_default=True, help="AWS partition.")
@_identity_options
@change_options
@store_options
@report_errors
def add_sso_command(
    permission_set: str,
    account: str,
    partition: str,
    username: str | None,
    groups: tuple[str, ...],
    replace: bool,
    **kw: Any,
) -> None:
    """Map every role of an IAM Identity Center permission set (AWSReservedSSO_<set>_<suffix>)."""
    name = _need_username(username)
    group_list = split_values(groups)
    _edit(
        kw,
        lambda d: d.upsert_sso(
            permission_set, account, name, group_list, partition=partition, replace=replace
        ),
        f"permission set {permission_set} in account {account}",
        creates=True,
    )


@mapping_group.command("add-group")
@click.argument("group_arn")
@_identity_options
@change_options
@store_options
@report_errors
def add_group_command(
    group_arn: str, username: str | None, groups: tuple[str, ...], replace: bool, **kw: Any
) -> None:
    """Map every IAM user who is a member of IAM group GROUP_ARN (kubeiam server only:
    needs server.iamGroupMapping; EKS's own authenticator ignores mapGroups)."""
    name = _need_username(username)
    group_list = split_values(groups)
    _edit(
        kw,
        lambda d: d.upsert_group(group_arn, name, group_list, replace=replace),
        f"IAM group {group_arn}",
        creates=True,
    )


@mapping_group.command("add-account")
@click.argument("account")
@change_options
@store_options
@report_errors
def add_account_command(account: str, **kw: Any) -> None:
    """Accept every IAM principal of ACCOUNT (username = its ARN, no groups)."""
    _edit(kw, lambda d: d.add_account(account), f"account {account}", creates=True)


@mapping_group.command("remove")
@click.argument("arn_or_account")
@click.option(
    "--account",
    "sso_account",
    help="ARN_OR_ACCOUNT is a permission set name: remove its mapping in this 12-digit account.",
)
@click.option("--partition", default="aws", show_default=True, help="Partition (with --account).")
@click.option(
    "--ignore-not-found",
    is_flag=True,
    help="Succeed when nothing maps it (default: exit 1 naming the closest mapped names).",
)
@change_options
@store_options
@report_errors
def remove_command(
    arn_or_account: str,
    sso_account: str | None,
    partition: str,
    ignore_not_found: bool,
    **kw: Any,
) -> None:
    """Remove the mapping of a role, user or IAM group ARN, an account, or (with
    --account) a permission set. Nothing to remove is an error (exit 1) that names the closest
    mapped names, unless --ignore-not-found."""
    from kubeiam.mapping.aws_auth import Change

    must_exist = None if ignore_not_found else arn_or_account
    if sso_account:
        result = _edit(
            kw,
            lambda d: d.remove_sso(arn_or_account, sso_account, partition=partition),
            f"permission set {arn_or_account} in account {sso_account}",
            must_exist=must_exist,
        )
    else:
        result = _edit(
            kw, lambda d: d.remove(arn_or_account), arn_or_account, must_exist=must_exist
        )
    if result.change is Change.UNCHANGED:
        say(f"note: nothing maps {arn_or_account}; nothing removed (--ignore-not-found)")


def _entry_row(entry: Any) -> dict[str, Any]:
    from kubeiam.mapping.model import AccountMapping, GroupMapping, RoleMapping, SSOMapping

    row: dict[str, Any] = {"kind": entry.kind.value, "key": entry.display_name}
    if isinstance(entry, RoleMapping):
        row["canonicalArn"] = entry.canonical_arn
    if isinstance(entry, SSOMapping):
        row["permissionSet"] = entry.permission_set_name
        row["account"] = entry.account_id
    if isinstance(entry, GroupMapping):
        row["account"] = entry.account_id
    if not isinstance(entry, AccountMapping):
        row["username"] = entry.username
        row["groups"] = list(entry.groups)
    row["location"] = str(entry.location) if entry.location is not None else ""
    if hasattr(entry, "entry_type"):  # an EKS access entry
        from kubeiam.admin.editing.access_entries_document import entry_policies

        row["type"] = entry.entry_type
        row["accessPolicies"] = [p.to_json() for p in entry_policies(entry)]
    return row


@mapping_group.command("list")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
)
@store_options
@report_errors
def list_command(output: str, **kw: Any) -> None:
    """List the mappings (access entries with their type and access policies)."""
    kw_store = kw.get("store")

    async def body(store: MappingStore) -> tuple[list[dict[str, Any]], bool]:
        snapshot = await store.read()
        result = snapshot.document.load()
        for issue in result.issues:
            say(f"{issue.severity.value}: {_safe(str(issue))}")
        return [_entry_row(e) for e in result.mappings.entries], result.ok

    rows, ok = _run_with_store(kw, body)
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    elif output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(rows, sort_keys=False), nl=False)
    elif kw_store == "access-entries":
        _table(
            ["KIND", "PRINCIPAL ARN", "TYPE", "USERNAME", "GROUPS", "ACCESS POLICIES"],
            [
                [
                    r["kind"],
                    r["key"],
                    r["type"],
                    r["username"],
                    ",".join(r["groups"]),
                    " ".join(policy_text(p) for p in r["accessPolicies"]),
                ]
                for r in rows
            ],
        )
    else:
        _table(
            ["KIND", "ARN / KEY", "USERNAME", "GROUPS"],
            [
                [r["kind"], r["key"], r.get("username", "(its ARN)"), ",".join(r.get("groups", []))]
                for r in rows
            ],
        )
    if not ok:  # the errors above: the server would refuse this version
        sys.exit(1)


def policy_text(policy: dict[str, Any]) -> str:
    """``AmazonEKSViewPolicy`` or ``AmazonEKSEditPolicy:dev,test`` (the --access-policy form)."""
    name = str(policy["policyArn"]).rsplit("/", 1)[-1]
    namespaces = policy["accessScope"].get("namespaces") or []
    return name + (":" + ",".join(namespaces) if namespaces else "")


def _safe(text: str) -> str:
    """Text for the terminal: control and invisible characters escaped."""
    from kubeiam.admin.editing.terminal import terminal_text

    return terminal_text(text)


def _table(header: list[str], rows: list[list[str]]) -> None:
    cells = [[_safe(str(v)) for v in row] for row in [header, *rows]]
    widths = [max(len(x) for x in col) for col in zip(*cells, strict=False)]
    for line in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


@mapping_group.command("lint")
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--no-nodes", is_flag=True, help="Do not list Node objects (no node-role check).")
@store_options
@report_errors
def lint_command(output: str, no_nodes: bool, **kw: Any) -> None:
    """Find mistakes: paths, duplicates, shadowing, invalid ARNs, templates, prefixes, admin
    grants, and a missing node-role entry while nodes exist. Exit 1 on errors."""
    from kubeiam.admin.editing.lint import Finding, Level, lint

    async def body(store: MappingStore) -> list[Finding]:
        from kubeiam.admin.editing.access_entries_document import (
            AccessEntriesMappings,
            lint_entries,
        )

        snapshot = await store.read()
        nodes = None if no_nodes else await store.count_nodes()
        found = lint(snapshot.document.load(), backend=store.backend, node_count=nodes)
        if isinstance(snapshot.document, AccessEntriesMappings):
            # An entry's cluster-admin comes from a policy, not system:masters: said there.
            found = [f for f in found if f.code != "system-masters"]
            found += lint_entries(snapshot.document)
        return found

    findings = _run_with_store(kw, body)
    errors = sum(1 for f in findings if f.level is Level.ERROR)
    if output == "json":
        click.echo(json.dumps([f.to_json() for f in findings], indent=2))
    else:
        for f in findings:
            where = f"{f.location}: " if f.location else ""
            click.echo(_safe(f"{f.level.value}: [{f.code}] {where}{f.message}"))
    say(f"{errors} error(s), {len(findings) - errors} warning(s)")
    if errors:
        sys.exit(1)


@mapping_group.command("explain")
@click.argument("arn")
@click.option("--session-name", default="", help="Role session name, to render {{SessionName}}.")
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@store_options
@report_errors
def explain_command(arn: str, session_name: str, output: str, **kw: Any) -> None:
    """Which entry maps ARN and to what username and groups, or why nothing does. For --store
    access-entries: under the cluster's authentication mode, with the access policies."""
    from kubeiam.admin.editing.explain import Explanation, explain_store

    if kw.get("store") == "access-entries":
        _explain_in_cluster(arn, session_name, output, kw)
        return

    async def body(store: MappingStore) -> tuple[Explanation, bool]:
        snapshot = await store.read()
        result = snapshot.document.load()
        for issue in result.errors:  # the server refuses this version: say so first
            say(f"error: {_safe(str(issue))}")
        found = explain_store(store, result.mappings, arn, session_name=session_name)
        return found, result.ok

    found, ok = _run_with_store(kw, body)
    print_explanation(found, output)
    if not found.matched or not ok:
        sys.exit(1)


def _explain_in_cluster(arn: str, session_name: str, output: str, kw: dict[str, Any]) -> None:
    from kubeiam.admin.editing.access_entries_store import AccessEntriesStore
    from kubeiam.admin.editing.cluster_explain import ClusterAnswer, explain_in_cluster
    from kubeiam.cli.whoami import print_decision

    async def body(store: MappingStore) -> ClusterAnswer:
        assert isinstance(store, AccessEntriesStore)
        return await explain_in_cluster(arn, store, None, session_name=session_name)

    cluster = kw["cluster"]
    answer = _run_with_store(kw, body)
    if output == "json":
        first = answer.explanations[0].to_json() if answer.explanations else {}
        click.echo(json.dumps({**first, "eks": answer.decision.to_json()}, indent=2))
    else:
        for found in answer.explanations:
            print_explanation(found, "text")
        print_decision(cluster, answer.decision)
    if not answer.decision.matched:
        sys.exit(1)


def print_explanation(found: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(found.to_json(), indent=2))
        return
    lines = [f"{found.backend} ({found.target}):"]
    if found.matched:
        lines.append(f"  matched:  {found.entry}")
        lines.append(f"  username: {found.username}")
        lines.append(f"  groups:   {', '.join(found.groups) if found.groups else '(none)'}")
    else:
        lines.append(f"  no match for {found.arn}")
    lines += [f"  note: {note}" for note in found.notes]
    for line in lines:
        click.echo(_safe(line))


@mapping_group.command("backup")
@click.option(
    "--output-file",
    "output_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the backup to this file (0600; '-' for stdout).",
)
@store_options
@report_errors
def backup_command(output_file: Path | None, **kw: Any) -> None:
    """Save the current state in the store's backup history (and to a file with --output-file)."""
    from kubeiam.admin.editing.backups import BackupRecord

    async def body(store: MappingStore) -> tuple[BackupRecord, str, list[str]]:
        return await _editor(store).backup(), store.target, store.backup_notes

    record, target, notes = _run_with_store(kw, body)
    for note in notes:
        say(f"note: {note}")
    text = json.dumps(record.to_wire(), indent=2, sort_keys=True) + "\n"
    if output_file is not None and str(output_file) == "-":
        click.echo(text, nl=False)
    elif output_file is not None:
        from kubeiam.fileio import ensure_private_dir, write_private_file

        ensure_private_dir(output_file.parent)
        write_private_file(output_file, text)
        say(f"wrote {output_file}")
    say(f"backup revision {record.revision} of {target} saved")


@mapping_group.command("restore")
@click.argument("backup_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--latest", is_flag=True, help="Restore the newest saved revision.")
@click.option("--revision", type=int, help="Restore this saved revision.")
@click.option("--list", "list_only", is_flag=True, help="List the saved revisions; change nothing.")
@change_options
@store_options
@report_errors
def restore_command(
    backup_file: Path | None, latest: bool, revision: int | None, list_only: bool, **kw: Any
) -> None:
    """Roll back to a saved state (the current state is saved first)."""
    from kubeiam.admin.editing.backups import BackupRecord

    chosen = sum([backup_file is not None, latest, revision is not None, list_only])
    if chosen != 1:
        raise ConfigError(
            "say what to restore", hint="pass one of FILE, --latest, --revision N or --list"
        )
    dry_run, force = kw.pop("dry_run"), kw.pop("force")

    async def body(store: MappingStore) -> Any:
        if backup_file is not None:  # the store's own history is not needed (it may be broken)
            from kubeiam.documents import load_json
            from kubeiam.fileio import read_document_text

            text = read_document_text(backup_file)
            record = BackupRecord.from_wire(load_json(text or "", source=str(backup_file)))
        else:
            records = await store.backups()
            for note in store.backup_notes:
                say(f"note: {note}")
            if list_only:
                return records
            wanted = [r for r in records if latest or r.revision == revision]
            if not wanted:
                have = ", ".join(str(r.revision) for r in records) or "none"
                raise ConfigError(
                    f"no saved revision {'' if latest else revision} for {store.target} "
                    f"(saved: {have})",
                    hint="list them with `kubeiam mapping restore --list`",
                )
            record = wanted[-1]
        if record.store != store.kind.value:
            raise ConfigError(
                f"revision {record.revision} is a backup of a {record.store} store, not "
                f"{store.kind.value}",
                hint=f"pass --store {record.store}",
            )
        if record.state is None:
            raise ConfigError(
                f"revision {record.revision} records that {store.target} did not exist",
                hint="remove the entries instead",
            )
        say(f"restoring revision {record.revision} saved {record.time} by {record.by}")
        return await _editor(store).restore(record.state, dry_run=dry_run, force=force)

    outcome = _run_with_store(kw, body)
    if list_only:
        _table(
            ["REVISION", "SAVED", "BY", "REPLACED BY"],
            [[str(r.revision), r.time, r.by, r.command] for r in outcome],
        )
        return
    _report(outcome, "state")
