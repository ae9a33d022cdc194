"""`kubeiam whoami`: who AWS says you are, and what that makes you in a cluster.

The caller comes from STS GetCallerIdentity through botocore (so ``--profile``, SSO, assumed
roles and ``AWS_ENDPOINT_URL_STS`` work as for any AWS tool). With ``--cluster``/``--context`` (or
a ``--store``), the identity is explained against each store in the order the server consults
them: aws-auth, then IAMIdentityMapping objects (when the CRD is installed), or the one store
named. Nothing secret is printed: the access key id is used only to render ``{{AccessKeyID}}``.

With ``--cluster`` naming an EKS cluster, the answer follows the cluster's authentication mode
(:mod:`kubeiam.eks.modes`): its access entries (``API``, ``API_AND_CONFIG_MAP``, where an entry
wins over an aws-auth row) and aws-auth (``CONFIG_MAP``, ``API_AND_CONFIG_MAP``), with the access
policies that apply and which source decided. A cluster EKS does not know (a cluster kubeiam's
own server serves) is explained from the kubeconfig's stores as before.

For an IAM user, the caller's own IAM groups are listed (iam:ListGroupsForUser, with the same
credentials) so ``mapGroups`` entries are explained as the server would match them; when that
call is not allowed, explain lists the group entries that would match for a member instead.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from kubeiam.cli.app import report_errors
from kubeiam.errors import ConfigError, KubeAPIError

#: Where GetCallerIdentity goes when neither --region, the environment nor the profile names one.
DEFAULT_STS_REGION = "us-east-1"


def caller_identity(profile: str | None, region: str | None) -> dict[str, str]:
    """STS GetCallerIdentity: ``Arn``, ``Account`` and ``UserId``."""
    from kubeiam.aws.clients import AWSClients, translate_errors

    with translate_errors("sts:GetCallerIdentity"):
        if region is None:
            # The profile's or the environment's region, else STS's home region.
            import botocore.session

            region = botocore.session.Session(profile=profile).get_config_variable("region")
        sts = AWSClients(profile=profile, region=region or DEFAULT_STS_REGION).sts
        answer = sts.get_caller_identity()
    return {
        "Arn": str(answer["Arn"]),
        "Account": str(answer["Account"]),
        "UserId": str(answer["UserId"]),
    }


def caller_iam_groups(
    profile: str | None, region: str | None, user_name: str
) -> frozenset[str] | None:
    """The ARNs of the caller's IAM groups, or None when IAM does not say (no permission)."""
    from kubeiam.aws.clients import AWSClients

    try:
        iam = AWSClients(profile=profile, region=region or DEFAULT_STS_REGION).iam
        pages = iam.get_paginator("list_groups_for_user").paginate(UserName=user_name)
        arns: set[str] = set()
        for page in itertools.islice(pages, 20):  # bounded: IAM allows at most 10 groups per user
            arns.update(str(g["Arn"]) for g in page.get("Groups", []))
    except Exception:  # any refusal (AccessDenied, no network): explain without memberships
        return None
    return frozenset(arns)


def _context_for(kubeconfig: Path | None, cluster: str) -> str:
    """The kubeconfig context whose cluster is EKS cluster ``cluster``: a cluster entry named by
    its ARN (``...:cluster/<cluster>``, as `aws eks update-kubeconfig` and `kubeiam kubeconfig
    update` write it) or by the bare name (`kubeconfig update --server`). A context is named with
    ``--context``, never ``--cluster`` (docs/cli.md). The files are kubectl's: ``--kubeconfig``,
    else every file of ``$KUBECONFIG`` merged by kubectl's rules, else ``~/.kube/config``."""
    from kubeiam.kube.access import kubeconfig_files
    from kubeiam.kube.kubeconfig import load_kubeconfigs

    files = kubeconfig_files(kubeconfig, os.environ)
    if not files:
        raise ConfigError(
            "--cluster needs a kubeconfig to find the cluster's context in",
            hint="pass --kubeconfig or --context, set KUBECONFIG, or run"
            " `kubeiam kubeconfig update`",
        )
    merged = load_kubeconfigs(files)
    where = ", ".join(str(f) for f in files)
    from kubeiam.suggestions import quote_name

    for name, body in merged.contexts.items():
        target = str(body.get("cluster", "")) if isinstance(body, Mapping) else ""
        if target == cluster or target.endswith(f":cluster/{cluster}"):
            return name
    names = list(merged.contexts)
    if cluster in names:
        raise ConfigError(
            f"--cluster is the EKS cluster name; {quote_name(cluster)} is a kubeconfig context",
            hint=f"pass --context {quote_name(cluster)}",
        )
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    shown = ", ".join(quote_name(n) for n in names[:5]) + more or "none"
    raise ConfigError(
        f"no context for EKS cluster {quote_name(cluster)} in {where} (contexts: {shown})",
        hint=f"run `kubeiam kubeconfig update --cluster {quote_name(cluster)}` or pass --context",
    )


def _print_caller(me: dict[str, str], canonical_arn: str) -> None:
    click.echo(f"ARN:           {me['Arn']}")
    click.echo(f"Canonical ARN: {canonical_arn}")
    click.echo(f"Account:       {me['Account']}")
    click.echo(f"UserId:        {me['UserId']}")


def identity_summary(
    me: dict[str, str],
    canonical_arn: str,
    session: str,
    iam_groups: frozenset[str] | None,
    explanations: list[Any],
) -> dict[str, Any]:
    """What ``whoami -o json`` prints (camelCase keys, as every kubeiam JSON output)."""
    summary: dict[str, Any] = {
        "arn": me["Arn"],
        "canonicalArn": canonical_arn,
        "account": me["Account"],
        "userId": me["UserId"],
        "sessionName": session or None,
        "iamGroups": sorted(iam_groups) if iam_groups is not None else None,
        "mappings": [e.to_json() for e in explanations],
    }
    matched = next((e for e in explanations if e.matched), None)
    if matched is not None:
        summary["username"] = matched.username
        summary["groups"] = list(matched.groups)
    return summary


def print_decision(cluster: str, decision: Any) -> None:
    """The EKS answer of whoami --cluster / mapping explain --store access-entries as text."""
    from kubeiam.admin.editing.terminal import terminal_text
    from kubeiam.cli.mapping import policy_text

    source = decision.source.value if decision.source is not None else "nothing: no access"
    lines = [
        f"EKS cluster {cluster} (authentication mode {decision.mode.value}):",
        f"  decided by: {source}",
    ]
    if decision.matched:
        policies = [policy_text(p.to_json()) for p in decision.policies]
        lines += [
            f"  entry:    {decision.entry}",
            f"  username: {decision.username}",
            f"  groups:   {', '.join(decision.groups) if decision.groups else '(none)'}",
            f"  access policies: {' '.join(policies) if policies else '(none)'}",
        ]
    lines += [f"  note: {note}" for note in decision.notes]
    for line in lines:
        click.echo(terminal_text(line))


def _eks_answer(
    cluster: str,
    profile: str | None,
    region: str | None,
    kubeconfig: Path | None,
    context: str | None,
    arn: str,
    session: str,
    iam_groups: frozenset[str] | None,
) -> Any:
    """The cluster's answer under its authentication mode, or None (with a note) when EKS does
    not know the cluster or may not be asked: then the kubeconfig's stores are explained."""
    from kubeiam.admin.editing.access_entries_store import AccessEntriesStore
    from kubeiam.admin.editing.cluster_explain import explain_in_cluster
    from kubeiam.cli.app import say
    from kubeiam.cli.mapping import open_access_entries, open_store
    from kubeiam.errors import AWSAdminError, NotFoundError

    store = open_access_entries(cluster, region, profile)
    assert isinstance(store, AccessEntriesStore)
    try:
        store.info()
    except (NotFoundError, AWSAdminError, ConfigError) as exc:
        # Not an EKS cluster (a cluster kubeiam's own server serves), no region, no permission
        # for eks:DescribeCluster: the kubeconfig's stores are what can be explained.
        say(f"note: {exc.message}; explaining the kubeconfig's mappings instead")
        return None

    def aws_auth() -> Any:
        return open_store(
            "aws-auth", kubeconfig, context or _context_for(kubeconfig, cluster), None
        )

    try:
        return asyncio.run(
            explain_in_cluster(arn, store, aws_auth, session_name=session, iam_groups=iam_groups)
        )
    except AWSAdminError as exc:
        if exc.code not in ("AccessDenied", "AccessDeniedException"):
            raise
        raise AWSAdminError(
            exc.message,
            hint="whoami reads the cluster's access entries with your own credentials: it "
            "needs eks:ListAccessEntries, eks:DescribeAccessEntry and "
            "eks:ListAssociatedAccessPolicies on the cluster; or an admin runs `kubeiam mapping "
            f"explain {arn} --store access-entries --cluster {cluster}`",
            code=exc.code,
        ) from None


@click.command("whoami")
@click.option(
    "--cluster",
    help="EKS cluster name: explain as the cluster's authentication mode decides (access "
    "entries, and aws-auth through the kubeconfig context whose cluster it is).",
)
@click.option(
    "--store",
    type=click.Choice(["aws-auth", "crd", "file"]),
    help="Only this store (default: aws-auth then crd with a cluster; file with --file).",
)
@click.option(
    "--file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Mapping file for --store file (server config YAML, or DynamicFile .json).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="kubeconfig for aws-auth/crd (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
)
@click.option("--context", help="kubeconfig context to explain in (default: its current).")
@click.option("--profile", help="AWS profile (wins over access keys in the environment).")
@click.option(
    "--region", help="AWS region for STS and EKS (default: us-east-1 / the profile's for STS)."
)
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text")
@report_errors
def whoami_command(
    cluster: str | None,
    store: str | None,
    file: Path | None,
    kubeconfig: Path | None,
    context: str | None,
    profile: str | None,
    region: str | None,
    output: str,
) -> None:
    """Show your AWS identity and, with a cluster or store, what it maps to there."""
    from kubeiam.admin.editing.explain import Explanation, explain_store
    from kubeiam.arn import PrincipalKind, parse_caller_arn
    from kubeiam.cli.mapping import open_store, print_explanation

    me = caller_identity(profile, region)
    principal = parse_caller_arn(me["Arn"])
    session = principal.session_name
    stores: list[str] = []
    if store is not None:
        stores = [store]
    elif file is not None:
        stores = ["file"]
    elif cluster is not None or context is not None:
        stores = ["aws-auth", "crd"]
    iam_groups: frozenset[str] | None = None
    if stores and principal.kind is PrincipalKind.USER:
        iam_groups = caller_iam_groups(profile, region, me["Arn"].rsplit("/", 1)[-1])
    caller = principal.canonical_arn if session else me["Arn"]
    if cluster is not None and store is None and file is None:
        answer = _eks_answer(
            cluster, profile, region, kubeconfig, context, caller, session, iam_groups
        )
        if answer is not None:
            decision = answer.decision
            summary = identity_summary(
                me, principal.canonical_arn, session, iam_groups, list(answer.explanations)
            )
            summary["eks"] = decision.to_json()
            summary.pop("username", None)
            summary.pop("groups", None)
            if decision.matched:
                summary["username"] = decision.username
                summary["groups"] = list(decision.groups)
            if output == "json":
                click.echo(json.dumps(summary, indent=2))
            else:
                _print_caller(me, principal.canonical_arn)
                print_decision(cluster, decision)
                if not decision.matched:
                    for found in answer.explanations:
                        print_explanation(found, "text")
            if not decision.matched:
                raise SystemExit(1)
            return
    if cluster is not None and context is None:
        context = _context_for(kubeconfig, cluster)

    async def explain_all() -> list[Explanation]:
        found: list[Explanation] = []
        for kind in stores:
            opened = open_store(
                kind,
                kubeconfig,
                context if kind != "file" else None,
                file if kind == "file" else None,
            )
            try:
                snapshot = await opened.read()
            except KubeAPIError as exc:
                if kind == "crd" and store is None:
                    continue  # the CRD is optional
                raise exc
            finally:
                await opened.close()
            mappings = snapshot.document.load().mappings
            found.append(
                explain_store(opened, mappings, caller, session_name=session, iam_groups=iam_groups)
            )
            if found[-1].matched:
                break  # the server stops at the first backend with an entry
        return found

    explanations = asyncio.run(explain_all()) if stores else []
    summary = identity_summary(me, principal.canonical_arn, session, iam_groups, explanations)
    matched = next((e for e in explanations if e.matched), None)
    if output == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_caller(me, principal.canonical_arn)
        for found in explanations:
            print_explanation(found, "text")
    if stores and matched is None:
        raise SystemExit(1)
