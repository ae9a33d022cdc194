"""`kubeiam iam ...`: thin click layer over :mod:`kubeiam.admin.onboarding.iam_admin`.

Progress goes to stderr, machine output (a table, or JSON with ``--output json``) to stdout.
The only command that ever prints a secret is ``onboard-user --print-credentials``, once, on
stdout, as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kubeiam.cli.app import report_errors, say
from kubeiam.cli.options import option_group, split_values
from kubeiam.errors import ConfigError

if TYPE_CHECKING:
    from kubeiam.admin.editing.writer import MappingWriter
    from kubeiam.admin.onboarding.iam_admin import IAMAdmin
    from kubeiam.admin.onboarding.steps import RemovalResult


def _admin(profile: str | None, region: str | None) -> IAMAdmin:
    from kubeiam.admin.onboarding.iam_admin import IAMAdmin
    from kubeiam.aws.clients import AWSClients

    return IAMAdmin(AWSClients(profile=profile, region=region), progress=say)


def _mapping(mapping_file: Path | None) -> MappingWriter | None:
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    store = meta.get("kubeiam.store")
    kubeconfig = meta.get("kubeiam.kubeconfig")
    context = meta.get("kubeiam.context")
    if store is None:
        # The same defaults as `kubeiam mapping`: --file alone means the file store, and a
        # kubeconfig or context names a cluster, whose aws-auth is the default store.
        if mapping_file is not None:
            store = "file"
        elif kubeconfig is not None or context is not None:
            store = "aws-auth"
        else:
            return None
    from kubeiam.cli.mapping import mapping_writer_for

    policies = tuple(meta.get("kubeiam.access_policies") or ())
    if policies and store != "access-entries":
        raise ConfigError(
            "--access-policy is for --store access-entries",
            hint="aws-auth, CRD and file mappings grant through --group and RBAC",
        )
    if store == "access-entries":
        if mapping_file is not None or kubeconfig is not None or context is not None:
            raise ConfigError(
                "--file, --kubeconfig and --context are not for --store access-entries: it "
                "talks to the EKS API of --cluster with the same AWS credentials"
            )
        # The cluster's EKS access entries, through `kubeiam mapping --store access-entries`'s
        # guarded, backed-up editor; each entry gets the --access-policy values.
        params = ctx.params if ctx is not None else {}
        return mapping_writer_for(
            store,
            None,
            None,
            cluster=params.get("cluster") or meta.get("kubeiam.cluster"),
            region=params.get("region"),
            profile=params.get("profile"),
            policies=policies,
        )
    if store == "file":
        if mapping_file is None:
            raise ConfigError("--store file needs --file PATH", hint="pass --file PATH")
        if kubeconfig is not None or context is not None:
            raise ConfigError("--kubeconfig and --context are for --store aws-auth or crd")
        # A local file through the same editor as `kubeiam mapping --store file`: the same
        # guards, and the previous content saved in FILE.kubeiam-backup.json before every write.
        return mapping_writer_for("file", None, None, mapping_file)
    if mapping_file is not None:
        raise ConfigError(f"--file is for --store file, not --store {store}")
    # The cluster's aws-auth or IAMIdentityMapping objects, through `kubeiam mapping`'s
    # guarded, backed-up, conflict-retried editor.
    return mapping_writer_for(store, kubeconfig, context)


def _parse_tags(values: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag {value!r} is not KEY=VALUE", hint="e.g. --tag owner=kubedemy")
        tags[key] = val
    return tags


def _emit(summary: dict[str, Any], output: str, rows: list[tuple[str, str]]) -> None:
    if output == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    Console(highlight=False, soft_wrap=True).print(table)


def _emit_removal(result: RemovalResult, output: str) -> None:
    """What offboard-user or delete-access-role removed, one row each (or "nothing")."""
    rows = [("Removed", r) for r in result.removed] or [("Removed", "nothing")]
    _emit(result.summary(), output, rows)


#: --profile / --region / --output, shared by every `kubeiam iam` command.
aws_options = option_group(
    click.option("--profile", help="AWS profile the admin calls run with."),
    click.option("--region", help="AWS region (default: the profile's or AWS_REGION)."),
    click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Format of the result on stdout.",
    ),
)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"kubeiam.{param.name}"] = value
    return value


#: Where the mapping is written: the same --store / --file / --kubeconfig / --context as
#: `kubeiam mapping` and `kubeiam whoami` (docs/cli.md). Without any of them nothing is written
#: and the command prints the entry to add.
mapping_location_options = option_group(
    click.option(
        "--store",
        type=click.Choice(["aws-auth", "crd", "file", "access-entries"]),
        expose_value=False,
        callback=_remember,
        help="Write the mapping to aws-auth, IAMIdentityMapping objects, a file or the "
        "cluster's EKS access entries (default: file with --file; with --kubeconfig/--context, "
        "aws-auth; else none).",
    ),
    click.option(
        "--file",
        "mapping_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Mapping file for --store file (server config YAML, or DynamicFile .json).",
    ),
    click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember,
        help="kubeconfig for --store aws-auth/crd (default: $KUBECONFIG, ~/.kube/config).",
    ),
    click.option(
        "--context",
        expose_value=False,
        callback=_remember,
        help="kubeconfig context for --store aws-auth/crd (default: its current context).",
    ),
)


#: --access-policy, for the commands that create a mapping in --store access-entries.
access_policy_option = click.option(
    "--access-policy",
    "access_policies",
    multiple=True,
    metavar="POLICY[:NS,...]",
    expose_value=False,
    callback=_remember,
    help="EKS access policy of the access entry (--store access-entries; short name or ARN, "
    "namespaces after ':' for a namespace scope; repeatable).",
)

#: --cluster, for the removals: which EKS cluster's access entries --store access-entries edits.
removal_cluster_option = click.option(
    "--cluster",
    expose_value=False,
    callback=_remember,
    help="EKS cluster name, for --store access-entries (whose entry to remove).",
)

#: --cluster and --group, for the commands that create a mapping.
cluster_options = option_group(
    click.option("--cluster", required=True, help="EKS cluster name (or kubeiam cluster id)."),
    click.option(
        "--group",
        "groups",
        multiple=True,
        required=True,
        help="Kubernetes group (repeatable, or a,b).",
    ),
)

#: --credentials-file, for the commands that write or clean a local credentials profile.
credentials_file_option = click.option(
    "--credentials-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Credentials file (default: $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials).",
)

#: --force, for the commands that remove a mapping.
force_option = click.option(
    "--force",
    is_flag=True,
    help="Remove the mapping even if it is the last system:masters mapping or a node entry.",
)

#: --ignore-not-found, for the removals (kubectl delete's convention).
ignore_not_found_option = click.option(
    "--ignore-not-found",
    is_flag=True,
    help="Succeed when it does not exist (default: exit 1 naming the closest existing names).",
)

#: The options every removal (offboard-user, delete-access-role) takes after its own.
removal_options = option_group(
    mapping_location_options,
    removal_cluster_option,
    force_option,
    ignore_not_found_option,
    aws_options,
)


def _remove(kw: dict[str, Any], remove: Callable[..., RemovalResult]) -> None:
    """Run a removal, ``remove(admin, mapping=..., force=..., ignore_not_found=...)``, with the
    :data:`removal_options` in ``kw``, and print what it removed."""
    admin = _admin(kw["profile"], kw["region"])
    result = remove(
        admin,
        mapping=_mapping(kw["mapping_file"]),
        force=kw["force"],
        ignore_not_found=kw["ignore_not_found"],
    )
    _emit_removal(result, kw["output"])


@click.group("iam")
def iam_group() -> None:
    """Onboard IAM users, and give IAM groups access through a role.

    Every command is idempotent (run it again to repair) and rolls back what a failed run
    created.
    """


@iam_group.command("onboard-user")
@click.argument("name")
@cluster_options
@click.option("--username", help="Kubernetes username (default: NAME).")
@click.option("--tag", "tags", multiple=True, help="IAM tag KEY=VALUE (repeatable).")
@click.option("--credentials-profile", help="Profile to store the key in (default: NAME).")
@credentials_file_option
@click.option(
    "--print-credentials",
    is_flag=True,
    help="Print the new key once as JSON on stdout instead of writing a profile.",
)
@click.option("--new-key", is_flag=True, help="Create a new access key even if one exists.")
@mapping_location_options
@access_policy_option
@aws_options
@report_errors
def onboard_user_command(
    name: str,
    cluster: str,
    groups: tuple[str, ...],
    username: str | None,
    tags: tuple[str, ...],
    credentials_profile: str | None,
    credentials_file: Path | None,
    print_credentials: bool,
    new_key: bool,
    mapping_file: Path | None,
    profile: str | None,
    region: str | None,
    output: str,
) -> None:
    """Onboard an IAM user: create NAME and map it.

    Creates (or repairs) IAM user NAME with its tags, an inline policy allowing
    eks:DescribeCluster on CLUSTER, an access key (written once to a 0600 credentials profile) and
    the mapping, and prints the kubeconfig command the user runs next.
    """
    from kubeiam.admin.onboarding.credentials_file import default_credentials_file

    creds = (
        None
        if print_credentials
        else (credentials_file or default_credentials_file(os.environ, Path.home()))
    )
    result = _admin(profile, region).onboard_user(
        name,
        cluster=cluster,
        groups=split_values(groups),
        username=username,
        tags=_parse_tags(tags),
        region=region,
        mapping=_mapping(mapping_file),
        credentials_file=creds,
        credentials_profile=credentials_profile,
        print_credentials=print_credentials,
        new_key=new_key,
    )
    if print_credentials:
        summary = result.summary()
        if result.new_key is not None:
            summary["credentials"] = {
                "AccessKeyId": result.new_key.access_key_id,
                "SecretAccessKey": result.new_key.secret_access_key,
            }
        click.echo(json.dumps(summary, indent=2))
        return
    _emit(
        result.summary(),
        output,
        [
            ("IAM Username", result.user_name),
            ("IAM User ARN", result.user_arn),
            ("IAM User Permissions", "Allow=eks:DescribeCluster"),
            ("Mapping", result.mapping_target or "(none: see the note above)"),
            ("Username in Cluster", result.username),
            ("Groups in Cluster", ", ".join(result.groups)),
            ("Access keys", ", ".join(result.access_key_ids)),
            ("Credentials profile", f"{result.credentials_profile} ({result.credentials_file})"),
            ("Kubeconfig", result.kubeconfig_command),
        ],
    )


@iam_group.command("offboard-user")
@click.argument("name")
@click.option("--credentials-profile", help="Local profile to remove if it holds NAME's key.")
@credentials_file_option
@removal_options
@report_errors
def offboard_user_command(
    name: str, credentials_profile: str | None, credentials_file: Path | None, **kw: Any
) -> None:
    """Offboard an IAM user: remove NAME and its mapping.

    Removes the mapping, access keys, policies, group memberships and the user.

    A user that does not exist (and has no mapping left) is an error (exit 1) naming the
    closest user names, unless --ignore-not-found."""
    from kubeiam.admin.onboarding.credentials_file import default_credentials_file

    _remove(
        kw,
        lambda admin, **common: admin.offboard_user(
            name,
            credentials_file=credentials_file or default_credentials_file(os.environ, Path.home()),
            credentials_profile=credentials_profile,
            **common,
        ),
    )


@iam_group.command("create-access-role")
@click.argument("name")
@cluster_options
@click.option("--iam-group", help="IAM group whose members may assume the role (default: NAME).")
@click.option("--username", help="Kubernetes username (default: NAME:{{SessionName}}).")
@mapping_location_options
@access_policy_option
@aws_options
@report_errors
def create_access_role_command(
    name: str,
    cluster: str,
    groups: tuple[str, ...],
    iam_group: str | None,
    username: str | None,
    mapping_file: Path | None,
    profile: str | None,
    region: str | None,
    output: str,
) -> None:
    """Give an IAM group access through role NAME.

    Creates role NAME trusted by the account, an IAM group (--iam-group, default NAME) allowed to
    assume it, and the role's mapping to Kubernetes; `grant` and `revoke` add and remove members.
    """
    result = _admin(profile, region).create_access_role(
        name,
        cluster=cluster,
        k8s_groups=split_values(groups),
        iam_group=iam_group,
        username=username,
        mapping=_mapping(mapping_file),
        region=region,
    )
    _emit(
        result.summary(),
        output,
        [
            ("IAM Role", result.role_arn),
            ("IAM Group", result.group_name),
            ("Group policy", f"{result.policy_name} (Allow=sts:AssumeRole)"),
            ("Mapping", result.mapping_target or "(none: see the note above)"),
            ("Username in Cluster", result.username),
            ("Groups in Cluster", ", ".join(result.k8s_groups)),
            ("Kubeconfig", result.kubeconfig_command),
        ],
    )


def _membership(verb: str) -> Callable[..., None]:
    @click.argument("user")
    @click.option("--access-role", required=True, help="Access role made by create-access-role.")
    @click.option("--iam-group", help="IAM group (default: read from the role's tags).")
    @aws_options
    @report_errors
    def command(
        user: str,
        access_role: str,
        iam_group: str | None,
        profile: str | None,
        region: str | None,
        output: str,
        ignore_not_found: bool = False,
    ) -> None:
        admin = _admin(profile, region)
        if verb == "grant":
            result = admin.grant(user, access_role=access_role, iam_group=iam_group)
        else:
            result = admin.revoke(
                user,
                access_role=access_role,
                iam_group=iam_group,
                ignore_not_found=ignore_not_found,
            )
        _emit(
            result.summary(),
            output,
            [("User", user), ("IAM Group", result.group_name), ("Changed", str(result.changed))],
        )

    return command


iam_group.command("grant", help="Let USER assume the access role (join its IAM group).")(
    _membership("grant")
)
iam_group.command(
    "revoke",
    help="Stop USER assuming the access role (leave its group). A user, role or "
    "membership that does not exist is an error (exit 1) unless --ignore-not-found.",
)(ignore_not_found_option(_membership("revoke")))


@iam_group.command("delete-access-role")
@click.argument("name")
@click.option("--iam-group", help="IAM group (default: read from the role's tags).")
@removal_options
@report_errors
def delete_access_role_command(name: str, iam_group: str | None, **kw: Any) -> None:
    """Remove access role NAME: undo create-access-role.

    Removes the mapping, the group policy, the group (if only ours) and the role.

    A role that does not exist (and left nothing behind) is an error (exit 1) naming the closest
    role names, unless --ignore-not-found."""
    _remove(
        kw, lambda admin, **common: admin.delete_access_role(name, iam_group=iam_group, **common)
    )
