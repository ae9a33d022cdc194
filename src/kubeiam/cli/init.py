"""``kubeiam init``: the webhook's key, self-signed certificate and kube-apiserver kubeconfig."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from kubeiam.cli.app import report_errors
from kubeiam.cluster_id import CLUSTER_ID_ENV, REFERENCE_CLUSTER_ID_ENV, check_cluster_id
from kubeiam.server.config import DEFAULT_ADDRESS, DEFAULT_PORT
from kubeiam.server.tls import ensure_keypair
from kubeiam.server.webhook_kubeconfig import webhook_url, write_webhook_kubeconfig

#: The file name the reference's ``init`` writes in the current directory.
DEFAULT_KUBECONFIG_NAME = "aws-iam-authenticator.kubeconfig"


@click.command(
    "init",
    help="Write the webhook's private key (0600), its self-signed certificate and the kubeconfig "
    "to pass to kube-apiserver's --authentication-token-webhook-config-file.\n\n"
    "Idempotent: an existing key and certificate in the state directory are reused (and the "
    "kubeconfig rewritten for them) unless --force is given.",
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
@report_errors
def init_command(
    cluster_id: str,
    hostname: str | None,
    address: str,
    port: int,
    state_dir: Path,
    kubeconfig_out: Path | None,
    force: bool,
) -> None:
    check_cluster_id(cluster_id)
    pair = ensure_keypair(
        state_dir, hostname=hostname, address=address, now=dt.datetime.now(dt.UTC), force=force
    )
    out = kubeconfig_out or state_dir / DEFAULT_KUBECONFIG_NAME
    url = webhook_url(hostname or address, port)
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
