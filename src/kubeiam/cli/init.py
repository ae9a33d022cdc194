"""``kubeiam init``: the webhook's key, self-signed certificate and kube-apiserver kubeconfig."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

import click

from kubeiam import __version__
from kubeiam.cli.app import report_errors
from kubeiam.cluster_id import CLUSTER_ID_ENV, REFERENCE_CLUSTER_ID_ENV, check_cluster_id
from kubeiam.errors import ConfigError
from kubeiam.fileio import write_atomically
from kubeiam.server.config import DEFAULT_ADDRESS, DEFAULT_PORT, DEFAULT_STATE_DIR
from kubeiam.server.tls import (
    CERT_FILE,
    CERT_LIFETIME,
    KEY_FILE,
    NEXT_CERT_FILE,
    PREVIOUS_CERT_FILE,
    activate_renewal,
    ensure_keypair,
    stage_renewal,
)
from kubeiam.server.webhook_kubeconfig import webhook_url, write_webhook_kubeconfig

#: The file name the reference's ``init`` writes in the current directory.
DEFAULT_KUBECONFIG_NAME = "aws-iam-authenticator.kubeconfig"
#: The kubeconfig name the reference's manifests pass to ``server --generate-kubeconfig``.
MANIFEST_KUBECONFIG_NAME = "kubeconfig.yaml"
#: Where the reference's server writes the webhook kubeconfig by default, and its init with
#: the ConfiguredInitDirectories gate.
CONFIGURED_KUBECONFIG = Path("/etc/kubernetes/aws-iam-authenticator") / MANIFEST_KUBECONFIG_NAME
#: The files kubeiam (and the reference) keep in a state or kubeconfig directory: the ones
#: --prepare-dir gives to --owner. Nothing else is touched, and nothing recursively.
PREPARED_FILES = (
    CERT_FILE,
    KEY_FILE,
    NEXT_CERT_FILE,
    PREVIOUS_CERT_FILE,
    DEFAULT_KUBECONFIG_NAME,
    MANIFEST_KUBECONFIG_NAME,
)
#: The UID/GID the reference's manifests run the server as; kubeiam's image and chart use it
#: too, so state directories an aws-iam-authenticator install left keep working.
SERVER_UID = SERVER_GID = 10000
#: Where a kubeadm node keeps the server's config file for the static pod.
STATIC_POD_CONFIG = Path("/etc/kubeiam/config.yaml")
#: The image `make image` builds (dist/kubeiam-<version>.oci.tar), as containerd names it.
DEFAULT_IMAGE = f"kubeiam:{__version__}"


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
    envvar=[CLUSTER_ID_ENV, REFERENCE_CLUSTER_ID_ENV],
    show_envvar=True,
    help="The cluster id clients pass to `kubeiam token -i` (required but with --prepare-dir).",
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
    help="Directory for cert.pem and key.pem (the server's stateDir) [default: the current "
    f"directory; {DEFAULT_STATE_DIR} with --feature-gates=ConfiguredInitDirectories=true].",
)
@click.option(
    "--kubeconfig-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Where to write the webhook kubeconfig [default: STATE_DIR/{DEFAULT_KUBECONFIG_NAME}].",
)
@click.option("--force", is_flag=True, help="Replace an existing key and certificate.")
@click.option(
    "--feature-gates",
    help="The reference's gates (as `kubeiam server --feature-gates`): "
    "ConfiguredInitDirectories=true writes to the server's default places, "
    f"{DEFAULT_STATE_DIR} and {CONFIGURED_KUBECONFIG}, as the reference's init then does.",
)
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
@click.option(
    "--static-pod",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a static-pod manifest running `kubeiam server` with this state directory "
    "(kubeadm: /etc/kubernetes/manifests/kubeiam.yaml; docs/deploy.md).",
)
@click.option(
    "--image",
    default=DEFAULT_IMAGE,
    show_default=True,
    help="The image the static pod runs.",
)
@click.option(
    "--server-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=STATIC_POD_CONFIG,
    show_default=True,
    help="The server config file on the node, mounted into the static pod.",
)
@click.option(
    "--prepare-dir",
    "prepare_dirs",
    multiple=True,
    # Not readable=True: a 0700 directory the server owns already is not, to CAP_CHOWN alone.
    type=click.Path(file_okay=False, readable=False, path_type=Path),
    help="Only give this directory and the kubeiam files in it (cert.pem, key.pem, the "
    "kubeconfig) to --owner, creating it if missing, then exit: what the chart's and the static "
    "pod's init container runs as root with CAP_CHOWN alone. Repeatable.",
)
@click.option(
    "--owner",
    default=f"{SERVER_UID}:{SERVER_GID}",
    show_default=True,
    help="UID:GID that --prepare-dir gives the directories to (the server's user).",
)
@report_errors
def init_command(
    cluster_id: str | None,
    hostname: str | None,
    address: str,
    port: int,
    state_dir: Path | None,
    kubeconfig_out: Path | None,
    force: bool,
    feature_gates: str | None,
    renew: bool,
    activate: bool,
    valid_days: int,
    static_pod: Path | None,
    image: str,
    server_config: Path,
    prepare_dirs: tuple[Path, ...],
    owner: str,
) -> None:
    from kubeiam.cli.server import check_feature_gates

    if check_feature_gates(feature_gates).get("ConfiguredInitDirectories"):
        state_dir = state_dir or DEFAULT_STATE_DIR
        kubeconfig_out = kubeconfig_out or CONFIGURED_KUBECONFIG
    state_dir = state_dir or Path(".")
    if prepare_dirs:
        if renew or activate or force or static_pod is not None:
            raise ConfigError(
                "--prepare-dir is a step of its own",
                hint="run it alone (the init container does), then init or the server",
            )
        uid, gid = parse_owner(owner)
        for directory in prepare_dirs:
            changed = prepare_dir(directory, uid, gid)
            if changed is None:
                click.echo(f"{directory} is {uid}:{gid}'s already", err=True)
                continue
            names = ", ".join(changed) if changed else "no kubeiam files yet"
            click.echo(f"gave {directory} to {uid}:{gid} ({names})", err=True)
        return
    if not cluster_id:
        raise ConfigError(
            "missing --cluster-id",
            hint="give -i CLUSTER_ID (or set KUBEIAM_CLUSTER_ID): the id clients pass to "
            "`kubeiam token -i`",
        )
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
    if static_pod is not None:
        manifest = static_pod_manifest(
            image=image,
            cluster_id=cluster_id,
            state_dir=state_dir.absolute(),
            server_config=server_config,
            address=address,
            port=port,
            hostname=hostname,
        )
        write_static_pod(static_pod, manifest)
        click.echo(f"wrote static pod {static_pod} (image {image})", err=True)
    verb = "wrote" if pair.created else "reused"
    click.echo(f"{verb} certificate {pair.cert_path} and key {pair.key_path}", err=True)
    click.echo(f"wrote webhook kubeconfig {out} (server {url})", err=True)
    click.echo(
        f"start kube-apiserver with --authentication-token-webhook-config-file={out} and "
        f"`kubeiam server -i {cluster_id} --state-dir {state_dir} --address {address} "
        f"--port {port}`",
        err=True,
    )


def parse_owner(text: str) -> tuple[int, int]:
    """``UID:GID`` (numbers: an init container has no user database to look names up in)."""
    uid, sep, gid = text.partition(":")
    if not sep or not uid.isdigit() or not gid.isdigit():
        raise ConfigError(
            f"--owner {text!r} is not UID:GID", hint="give numbers, e.g. --owner 10000:10000"
        )
    return int(uid), int(gid)


def prepare_dir(directory: Path, uid: int, gid: int) -> list[str] | None:
    """Create ``directory`` if missing and give the kubeiam files directly in it, then the
    directory itself, to ``uid:gid``; return the names of the files given, or None when the
    directory was ``uid:gid``'s already (the server made what is in it; root without
    CAP_DAC_READ_SEARCH could not even look inside a 0700 one). Needs CAP_CHOWN only: the files
    go first, while root still owns (and so may search) the directory. Symlinks and anything
    but regular files are left alone (never followed: a hostPath directory may hold a link
    planted to make root chown something else)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(
                f"--prepare-dir {directory} is not a directory", hint="give a directory"
            )
        if (st.st_uid, st.st_gid) == (uid, gid):
            return None
        changed: list[str] = []
        for name in PREPARED_FILES:
            path = directory / name
            try:
                file_st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(file_st.st_mode):
                os.chown(path, uid, gid, follow_symlinks=False)
                changed.append(name)
        os.chown(directory, uid, gid, follow_symlinks=False)
        return changed
    except PermissionError as exc:
        raise ConfigError(
            f"cannot give {directory} to {uid}:{gid}: {exc.strerror}",
            hint="run it as root with CAP_CHOWN (the chart's init container does)",
        ) from None


def _security_context(uid: int, gid: int) -> dict[str, Any]:
    """The server container's security: the chart's kubeiam.serverSecurityContext, the same."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def static_pod_manifest(
    *,
    image: str,
    cluster_id: str,
    state_dir: Path,
    server_config: Path,
    address: str,
    port: int,
    hostname: str | None,
) -> dict[str, Any]:
    """A kube-system Pod for a kubeadm control plane's /etc/kubernetes/manifests: the chart's
    DaemonSet pod without the API objects a static pod cannot use (service account, ConfigMap):
    the server config and the state directory are host paths, the kubeconfig for kube-apiserver
    is the one `kubeiam init` wrote (the server writes none)."""
    # A wildcard listener is probed on loopback.
    probe_host = "127.0.0.1" if address in ("0.0.0.0", "::") else address  # noqa: S104
    probe = {"host": probe_host, "port": port, "scheme": "HTTPS"}
    args = [
        "server",
        f"--config={server_config}",
        f"--cluster-id={cluster_id}",
        f"--state-dir={state_dir}",
        f"--address={address}",
        f"--port={port}",
    ]
    if hostname:
        args.append(f"--hostname={hostname}")
    state_mount = {"name": "state", "mountPath": str(state_dir)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "kubeiam",
            "namespace": "kube-system",
            "labels": {
                "app.kubernetes.io/name": "kubeiam",
                "component": "kubeiam",
                "tier": "control-plane",
            },
        },
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [
                {
                    "name": "prepare-host-paths",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": [
                        "init",
                        f"--prepare-dir={state_dir}",
                        f"--owner={SERVER_UID}:{SERVER_GID}",
                    ],
                    "securityContext": {
                        "runAsNonRoot": False,
                        "runAsUser": 0,
                        "runAsGroup": 0,
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    # A copy each: one shared dict would be dumped as a YAML anchor and alias
                    # (&id001 / *id001), which kubelet reads but people editing the file do not.
                    "volumeMounts": [dict(state_mount)],
                }
            ],
            "containers": [
                {
                    "name": "kubeiam",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": args,
                    "ports": [
                        {
                            "name": "webhook",
                            "containerPort": port,
                            "hostPort": port,
                            "protocol": "TCP",
                        }
                    ],
                    "livenessProbe": {
                        "httpGet": {**probe, "path": "/healthz"},
                        "initialDelaySeconds": 5,
                        "periodSeconds": 10,
                    },
                    # Every 2 s: the API server's webhook is only as available as this answer.
                    "readinessProbe": {"httpGet": {**probe, "path": "/readyz"}, "periodSeconds": 2},
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "64Mi"},
                        "limits": {"memory": "256Mi"},
                    },
                    "securityContext": _security_context(SERVER_UID, SERVER_GID),
                    "volumeMounts": [
                        {"name": "config", "mountPath": str(server_config), "readOnly": True},
                        dict(state_mount),
                    ],
                }
            ],
            "volumes": [
                {"name": "config", "hostPath": {"path": str(server_config), "type": "File"}},
                {
                    "name": "state",
                    "hostPath": {"path": str(state_dir), "type": "DirectoryOrCreate"},
                },
            ],
        },
    }


def write_static_pod(path: Path, manifest: dict[str, Any]) -> None:
    import yaml

    header = "# Written by `kubeiam init --static-pod` (docs/deploy.md). kubelet runs it as is.\n"
    text = header + yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 like kubeadm's own manifests: kubelet reads them as root.
        write_atomically(path, text.encode("utf-8"), 0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the static pod {path}: {exc.strerror}",
            hint="choose a writable path with --static-pod",
        ) from None
