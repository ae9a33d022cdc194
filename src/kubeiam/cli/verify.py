"""``kubeiam verify``: check a token the way the webhook does and print who it belongs to."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from kubeiam.cli.app import report_errors
from kubeiam.cli.options import sts_options
from kubeiam.cluster_id import CLUSTER_ID_ENV
from kubeiam.errors import ConfigError
from kubeiam.identity import Identity
from kubeiam.token.sts import RESOLVE_ENV, parse_resolve_specs, resolve_specs_from_env
from kubeiam.token.validation import parse_allowed_hosts
from kubeiam.token.verifier import verify_token_sync


def identity_document(identity: Identity) -> dict[str, str | float]:
    """What ``-o json`` prints: the TokenReview extras' names, plus uid, kind and expiry."""
    return {
        "arn": identity.arn,
        "canonicalArn": identity.canonical_arn,
        "accountId": identity.account_id,
        "userId": identity.user_id,
        "sessionName": identity.session_name,
        "accessKeyId": identity.access_key_id,
        "principalId": identity.principal_id,
        "kind": identity.kind.value,
        "partition": identity.partition,
        "uid": identity.uid,
        "expiresAt": datetime.fromtimestamp(identity.expires_at, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
    }


#: ``-t -`` reads the token from standard input.
_STDIN = "-"
#: How to hand verify a token from the plugin: the bare token, not the document around it.
BARE_VALUE_HINT = (
    "pass the token alone: `kubeiam token -i ID --token-only | kubeiam verify -i ID -t -` "
    "(or the ExecCredential's status.token)"
)


def check_not_a_document(text: str, source: str) -> None:
    """Refuse a JSON document where a token belongs, saying what it is and how to pass the
    token. Decided on the text's shape without parsing it (the input may be huge or deeply
    nested), and the message never quotes it: an ExecCredential holds a live token."""
    if not text.startswith("{"):
        return
    if "ExecCredential" in text or '"token"' in text:
        raise ConfigError(
            f"{source} is a whole ExecCredential (what `kubeiam token` prints for kubectl), "
            "not a token",
            hint=BARE_VALUE_HINT,
        )
    raise ConfigError(
        f"{source} is a JSON document, not a token (k8s-aws-v1....)", hint=BARE_VALUE_HINT
    )


def _read_token(token: str) -> str:
    if token != _STDIN:
        text = token.strip()
        check_not_a_document(text, "--token")
        return text
    # A token is at most 4 KiB; read a little more so an oversized one is still refused.
    data = sys.stdin.read(64 * 1024).strip()
    if not data:
        raise ConfigError(
            "no token on standard input", hint="pipe one in, e.g. from `kubeiam token --token-only`"
        )
    check_not_a_document(data, "standard input")
    return data


@click.command(
    "verify",
    help="Verify a token with STS, as the webhook would, and print the identity behind it.\n\n"
    "Every format rule is checked before STS is called. The token itself is never printed.",
)
@click.option(
    "-i",
    "--cluster-id",
    required=True,
    envvar=CLUSTER_ID_ENV,
    help=f"The cluster id the token must be bound to (env {CLUSTER_ID_ENV}).",
)
@click.option(
    "-t",
    "--token",
    required=True,
    help="The token (k8s-aws-v1....), or '-' to read it from standard input. The bare token, "
    "not the ExecCredential around it: `kubeiam token --token-only` prints one.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@sts_options(overrides_config=False)
@report_errors
def verify_command(
    cluster_id: str,
    token: str,
    partition: str,
    output: str,
    sts_resolve: tuple[str, ...],
    sts_ca_bundle: Path | None,
    sts_timeout: float,
    sts_allowed_hosts: tuple[str, ...],
) -> None:
    allowed = parse_allowed_hosts(sts_allowed_hosts)
    specs = [*resolve_specs_from_env(os.environ.get(RESOLVE_ENV)), *sts_resolve]
    resolve = parse_resolve_specs(specs, partition=partition, allowed_hosts=allowed)
    identity = verify_token_sync(
        _read_token(token),
        cluster_id=cluster_id,
        partition=partition,
        resolve=resolve,
        ca_bundle=str(sts_ca_bundle) if sts_ca_bundle else None,
        timeout=sts_timeout,
        allowed_hosts=allowed,
    )
    document = identity_document(identity)
    if output == "json":
        click.echo(json.dumps(document, indent=2))
    else:
        width = max(len(k) for k in document) + 1
        for key, value in document.items():
            click.echo(f"{key + ':':<{width}} {value}")
