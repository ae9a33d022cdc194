"""An async Kubernetes client from a kubeconfig (or the in-cluster service account).

The kubeconfig is read by :mod:`kubeiam.kube.kubeconfig` (kubectl's rules), the connection made
by :class:`~kubeiam.kube.transport.KubeTransport` (TLS, proxy, credentials, refusals); lightkube
only builds requests and decodes answers. lightkube's own kubeconfig support is not used: it
speaks exec v1alpha1/v1beta1 only, and kubeiam writes v1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kubeiam.kube.access import SERVICE_ACCOUNT_DIR, find_access
from kubeiam.kube.kubeconfig import ClusterAccess

__all__ = ["SERVICE_ACCOUNT_DIR", "load_kube_config", "make_async_client"]

KubeconfigArg = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None


def load_kube_config(
    kubeconfig: KubeconfigArg = None,
    *,
    context: str | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
    use_kubectl_defaults: bool = False,
) -> ClusterAccess:
    """The cluster and user to talk to: ``kubeconfig`` (a path, or paths merged as kubectl does)
    when given, else ``$KUBECONFIG`` / ``~/.kube/config`` with ``use_kubectl_defaults``, else the
    in-cluster service account. Problems are a :class:`~kubeiam.errors.ConfigError` naming the
    fix."""
    return find_access(
        kubeconfig,
        context=context,
        environ=environ,
        service_account_dir=service_account_dir,
        use_kubectl_defaults=use_kubectl_defaults,
    )


def make_async_client(
    kubeconfig: KubeconfigArg = None,
    *,
    context: str | None = None,
    timeout: float = 30.0,
    use_kubectl_defaults: bool = False,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> Any:
    """A ``lightkube.AsyncClient`` for the cluster (see :func:`load_kube_config`)."""
    access = load_kube_config(
        kubeconfig,
        context=context,
        environ=environ,
        use_kubectl_defaults=use_kubectl_defaults,
        service_account_dir=service_account_dir,
    )
    return async_client_for(access, timeout=timeout, environ=environ)


def async_client_for(
    access: ClusterAccess,
    *,
    timeout: float = 30.0,
    environ: Mapping[str, str] | None = None,
    **credential_options: Any,
) -> Any:
    """A ``lightkube.AsyncClient`` sending through a :class:`KubeTransport` for ``access``
    (``credential_options``: the clock and terminal test of
    :func:`~kubeiam.kube.credentials.credential_source`)."""
    import httpx2
    from lightkube import AsyncClient
    from lightkube.config.kubeconfig import SingleConfig
    from lightkube.config.models import Cluster, Context, User

    from kubeiam.kube.transport import transport_for

    # lightkube takes the server and namespace from this; TLS and credentials are the
    # transport's (an empty user: lightkube adds no auth of its own). httpx ignores `verify`
    # when a transport is given, so lightkube's own SSL context would go unused: `insecure`
    # only spares building it (~25 ms). Verification is KubeTransport's (tests: wrong CA).
    config = SingleConfig(
        context_name=access.context,
        context=Context(cluster=access.context, namespace=access.namespace),
        cluster=Cluster(server=access.server, insecure=True),
        user=User(),
    )
    return AsyncClient(
        config=config,
        timeout=httpx2.Timeout(timeout),
        field_manager="kubeiam",
        trust_env=False,
        transport=transport_for(access, environ=environ, **credential_options),
    )
