"""``kubeiam init``: the webhook's key, self-signed certificate and kube-apiserver kubeconfig."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from kubeiam.cli.app import report_errors
from kubeiam.cluster_id import CLUSTER_ID_ENV, REFERENCE_CLUSTER_ID_ENV, check_cluster_id
from kubeiam.errors import ConfigError
from kubeiam.server.config import DEFAULT_ADDRESS, DEFAULT_PORT
from kubeiam.server.tls import (
    CERT_LIFETIME,
    NEXT_CERT_FILE,
    activate_renewal,
    ensure_keypair,
    stage_renewal,
)
from kubeiam.server.webhook_kubeconfig import webhook_url, write_webhook_kubeconfig

#: The file name the reference's ``init`` writes in the current directory.
DEFAULT_KUBECONFIG_NAME = "aws-iam-authenticator.kubeconfig"


@click.command(
    "init",
    help="Write the webhook's private key (0600), its self-signed certificate and the kubeconfig "
    "to pass to kube-apiserver's --authentication-token-webhook-config-file.\n\n"
    "Idempotent: an existing key and certificate in the state directory are reused (and the "
    "kubeconfig rewritten for them) unless --force is given.\n\n"
    "Renewing keeps the key and takes two steps, so that no kube-apiserver ever sees a "
    "certificate it does not trust (docs/server.md): --renew stages a new certificate and writes "
    "a kubeconfig trusting the served and the staged one; once every kube-apiserver runs with "
    "it, --activate makes the staged certificate the served one (a running server picks it up "
    "within 10 s, without a restart). A later plain `kubeiam init` writes a kubeconfig for the "
    "served certificate alone.",
)
@click.option(
    "-i",
    "--cluster-id",
    required=True,
    envvar=[CLUSTER_ID_ENV, REFERENCE_CLUSTER_ID_ENV],
    show_envvar=True,
    help="The cluster id clients pass to `kubeiam token -i`.",
)
@click.option(
    "--hostname",
    help="Name kube-apiserver uses to reach the webhook: put in the certificate and used in the "
    "kubeconfig's server URL (default: the address).",
)
@click.option(
    "--address",
    default=DEFAULT_ADDRESS,
    show_default=True,
    help="IP address the server will listen on (also put in the certificate).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for cert.pem and key.pem (the server's stateDir).",
)
@click.option(
    "--kubeconfig-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Where to write the webhook kubeconfig [default: STATE_DIR/{DEFAULT_KUBECONFIG_NAME}].",
)
@click.option("--force", is_flag=True, help="Replace an existing key and certificate.")
@click.option(
    "--renew",
    is_flag=True,
    help="Stage a renewed certificate for the same key (cert.next.pem; its names: the served "
    "one's plus --hostname and --address); the kubeconfig trusts both.",
)
@click.option(
    "--activate",
    is_flag=True,
    help="Serve the staged certificate (after every kube-apiserver has the --renew kubeconfig).",
)
@click.option(
    "--valid-days",
    type=click.IntRange(1, 36_500),
    default=CERT_LIFETIME.days,
    show_default=True,
    help="Lifetime of a new or renewed certificate, in days.",
)
@report_errors
def init_command(
    cluster_id: str,
    hostname: str | None,
    address: str,
    port: int,
    state_dir: Path,
    kubeconfig_out: Path | None,
    force: bool,
    renew: bool,
    activate: bool,
    valid_days: int,
) -> None:
    check_cluster_id(cluster_id)
    if renew + activate + force > 1:
        raise ConfigError(
            "--renew, --activate and --force are steps of their own",
            hint="give one of them: --renew, then --activate; or --force for a new key",
        )
    now = dt.datetime.now(dt.UTC)
    lifetime = dt.timedelta(days=valid_days)
    out = kubeconfig_out or state_dir / DEFAULT_KUBECONFIG_NAME
    url = webhook_url(hostname or address, port)
    if renew:
        served, staged = stage_renewal(
            state_dir, hostname=hostname, address=address, now=now, lifetime=lifetime
        )
        write_webhook_kubeconfig(out, url, served + staged)
        click.echo(f"staged a renewed certificate {state_dir / NEXT_CERT_FILE}", err=True)
        click.echo(
            f"wrote webhook kubeconfig {out} trusting the served and the staged one", err=True
        )
        click.echo(
            "roll it to every kube-apiserver (--authentication-token-webhook-config-file), then "
            f"run `kubeiam init --activate -i {cluster_id} --state-dir {state_dir}`",
            err=True,
        )
        return
    if activate:
        pair, previous = activate_renewal(state_dir)
        # Still both: a kube-apiserver may talk to a replica that has not reloaded yet.
        write_webhook_kubeconfig(out, url, pair.cert_pem() + previous)
        click.echo(f"activated the renewed certificate {pair.cert_path}", err=True)
        click.echo(f"wrote webhook kubeconfig {out} trusting it and the previous one", err=True)
        return
    pair = ensure_keypair(
        state_dir, hostname=hostname, address=address, now=now, force=force, lifetime=lifetime
    )
    write_webhook_kubeconfig(out, url, pair.cert_pem())
    verb = "wrote" if pair.created else "reused"
    click.echo(f"{verb} certificate {pair.cert_path} and key {pair.key_path}", err=True)
    click.echo(f"wrote webhook kubeconfig {out} (server {url})", err=True)
    click.echo(
        f"start kube-apiserver with --authentication-token-webhook-config-file={out} and "
        f"`kubeiam server -i {cluster_id} --state-dir {state_dir} --address {address} "
        f"--port {port}`",
        err=True,
    )
