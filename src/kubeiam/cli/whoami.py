"""`kubeiam whoami`: who AWS says you are, and what that makes you in a cluster.

The caller comes from STS GetCallerIdentity through botocore (so ``--profile``, SSO, assumed
roles and ``AWS_ENDPOINT_URL_STS`` work as for any AWS tool). With ``--cluster``/``--context`` (or
a ``--store``), the identity is explained against each store in the order the server consults
them: aws-auth, then IAMIdentityMapping objects (when the CRD is installed), or the one store
named. Nothing secret is printed: the access key id is used only to render ``{{AccessKeyID}}``.

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


@click.command("whoami")
@click.option(
    "--cluster", help="EKS cluster name: explain in the kubeconfig context whose cluster it is."
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
@click.option("--region", help="AWS region for STS (default: us-east-1 / the profile's).")
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
    from kubeiam.admin.editing.explain import Explanation, explain
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
    if cluster is not None and context is None:
        context = _context_for(kubeconfig, cluster)
    iam_groups: frozenset[str] | None = None
    if stores and principal.kind is PrincipalKind.USER:
        iam_groups = caller_iam_groups(profile, region, me["Arn"].rsplit("/", 1)[-1])

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
            found.append(
                explain(
                    snapshot.document.load().mappings,
                    principal.canonical_arn if session else me["Arn"],
                    backend=opened.backend,
                    target=opened.target,
                    session_name=session,
                    iam_groups=iam_groups,
                )
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
        click.echo(f"ARN:           {me['Arn']}")
        click.echo(f"Canonical ARN: {principal.canonical_arn}")
        click.echo(f"Account:       {me['Account']}")
        click.echo(f"UserId:        {me['UserId']}")
        for found in explanations:
            print_explanation(found, "text")
    if stores and matched is None:
        raise SystemExit(1)
