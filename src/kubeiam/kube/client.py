"""An async Kubernetes client from ``--kubeconfig`` or the in-cluster service account."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubeiam.errors import ConfigError

#: Where Kubernetes mounts a pod's service account.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def load_kube_config(
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> Any:
    """lightkube's config: from ``kubeconfig`` when given, else the in-cluster service account.

    Like the reference, no kubeconfig means in-cluster; anything else is a :class:`ConfigError`
    naming the fix.
    """
    from lightkube import ConfigError as LightkubeConfigError
    from lightkube import KubeConfig

    try:
        if kubeconfig is not None:
            config = KubeConfig.from_file(kubeconfig)
            return config.get(context_name=context) if context else config
        if "KUBERNETES_SERVICE_HOST" not in os.environ:
            raise ConfigError(
                "no kubeconfig given and not running inside a cluster",
                hint="pass --kubeconfig (or server.kubeconfig in the config file)",
            )
        return KubeConfig.from_service_account(service_account_dir)
    except (LightkubeConfigError, KeyError, OSError, ValueError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig is not None else "in-cluster config"
        raise ConfigError(
            f"cannot use the {where}: {exc}",
            hint="check the file and its current context, or the pod's service account",
        ) from None


def make_async_client(
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    timeout: float = 30.0,
) -> Any:
    """A ``lightkube.AsyncClient`` for the cluster (see :func:`load_kube_config`)."""
    import httpx2
    from lightkube import AsyncClient

    config = load_kube_config(kubeconfig, context=context)
    return AsyncClient(config=config, timeout=httpx2.Timeout(timeout), field_manager="kubeiam")
