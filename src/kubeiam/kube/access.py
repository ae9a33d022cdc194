"""Where a cluster's access comes from: kubectl's kubeconfig files, else the pod's service account.

* **Which files** (:func:`kubeconfig_files`): ``--kubeconfig`` alone when given; else every file
  of ``$KUBECONFIG`` (``os.pathsep``-separated; missing files skipped, repeats ignored); else
  ``~/.kube/config`` when it exists; else none, which means in-cluster.
* **In-cluster** (:func:`in_cluster_access`): client-go's InClusterConfig: the service host and
  port from the environment, the mounted token (re-read as it rotates), CA and namespace.
* :func:`find_access` chooses; the files are read and merged by :mod:`kubeiam.kube.kubeconfig`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubeiam.errors import ConfigError
from kubeiam.kube.kubeconfig import (
    DEFAULT_NAMESPACE,
    ClusterAccess,
    check_ca_pem,
    check_server_url,
    load_kubeconfigs,
    read_file_bytes,
    resolve_access,
)

#: Where Kubernetes mounts a pod's service account.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def kubeconfig_files(
    explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> tuple[Path, ...]:
    """The kubeconfig files kubectl would read (empty: in-cluster)."""
    if explicit is not None:
        return (Path(explicit),)
    files: list[Path] = []
    for item in environ.get("KUBECONFIG", "").split(os.pathsep):
        if item and Path(item).is_file() and Path(item) not in files:
            files.append(Path(item))
    if files or environ.get("KUBECONFIG"):
        return tuple(files)
    home = Path(environ.get("HOME") or Path.home())
    default = home / ".kube" / "config"
    return (default,) if default.is_file() else ()


def in_cluster_access(
    environ: Mapping[str, str], service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> ClusterAccess:
    """The pod's service account (client-go's InClusterConfig): its token file is re-read."""
    host = environ.get("KUBERNETES_SERVICE_HOST")
    port = environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError(
            "no kubeconfig found and not running inside a cluster",
            hint="pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config",
        )
    token_file = service_account_dir / "token"
    if not token_file.is_file():
        raise ConfigError(
            f"in-cluster config: no service account token at {token_file}",
            hint="mount the service account token (automountServiceAccountToken: true)",
        )
    ca_path = service_account_dir / "ca.crt"
    what = f"in-cluster config: {ca_path}"
    ca = check_ca_pem(read_file_bytes(ca_path, "certificate-authority"), what)
    try:
        namespace = (service_account_dir / "namespace").read_text().strip() or DEFAULT_NAMESPACE
    except OSError:
        namespace = DEFAULT_NAMESPACE
    bracketed = f"[{host}]" if ":" in host else host
    server = check_server_url(
        f"https://{bracketed}:{port}", "in-cluster config (KUBERNETES_SERVICE_HOST/PORT)"
    )
    return ClusterAccess(
        origin="in-cluster config",
        context="in-cluster",
        server=server,
        namespace=namespace,
        user="serviceaccount",
        ca_pem=ca,
        token_file=token_file,
    )


def find_access(
    kubeconfig: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    use_kubectl_defaults: bool = False,
) -> ClusterAccess:
    """The :class:`ClusterAccess` for a path (or paths, merged), else in-cluster.

    With ``use_kubectl_defaults`` and no path, ``$KUBECONFIG`` and ``~/.kube/config`` are tried
    first, as kubectl does; without it (the server, like the reference) no path means in-cluster.
    """
    env = os.environ if environ is None else environ
    if kubeconfig is None:
        files = kubeconfig_files(None, env) if use_kubectl_defaults else ()
    elif isinstance(kubeconfig, (str, os.PathLike)):
        files = (Path(kubeconfig),)
    else:
        files = tuple(Path(p) for p in kubeconfig)
    if not files:
        listed = env.get("KUBECONFIG", "") if use_kubectl_defaults else ""
        if listed and not env.get("KUBERNETES_SERVICE_HOST"):
            raise ConfigError(
                f"none of the files in KUBECONFIG exist ({listed})",
                hint="fix KUBECONFIG, pass --kubeconfig, or run `kubeiam kubeconfig update`",
            )
        return in_cluster_access(env, service_account_dir)
    for path in files:
        if not path.exists():
            raise ConfigError(
                f"kubeconfig {path} does not exist",
                hint="pass an existing --kubeconfig, or run `kubeiam kubeconfig update`",
            )
    return resolve_access(load_kubeconfigs(files), context)
