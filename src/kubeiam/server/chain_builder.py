"""Build the mapping chain ``kubeiam server`` serves from its :class:`ServerConfig`.

The backends themselves live in :mod:`kubeiam.mapping.backends`; this module only chooses them
in ``backendMode`` order, hands each its settings and metric hooks, and starts them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubeiam.mapping.chain import Backend, GroupResolver, MappingChain
from kubeiam.mapping.templates import EC2Resolver, InstanceRoleCheck
from kubeiam.server.config import BackendMode, ServerConfig
from kubeiam.server.metrics import ServerMetrics

log = logging.getLogger(__name__)


def build_backends(config: ServerConfig, metrics: ServerMetrics) -> list[Backend]:
    """One backend per ``backendMode`` entry, in order (not started)."""
    kubeconfig = str(config.kubeconfig) if config.kubeconfig is not None else None
    if config.master:
        log.warning(
            "server.master is ignored: the API server address comes from the kubeconfig",
            extra={"key": "server.master"},
        )
    backends: list[Backend] = []
    for mode in config.backend_mode:
        name = mode.value
        hooks: dict[str, Any] = {
            "on_failure": metrics.backend_failure_hook(name),
            "on_skipped": metrics.skipped_hook(name),
        }
        backend: Backend
        if mode is BackendMode.MOUNTED_FILE:
            from kubeiam.mapping.backends.mounted_file import MountedFile

            backend = MountedFile(
                config.map_roles, config.map_users, config.map_accounts, config.map_groups
            )
        elif mode is BackendMode.DYNAMIC_FILE:
            from kubeiam.mapping.backends.dynamic_file import DynamicFile

            assert config.dynamic_file_path is not None  # validate() guarantees it
            backend = DynamicFile(
                config.dynamic_file_path,
                user_id_strict=config.dynamic_file_user_id_strict,
                **hooks,
            )
        elif mode is BackendMode.EKS_CONFIG_MAP:
            from kubeiam.mapping.backends.configmap import EKSConfigMap

            backend = EKSConfigMap(kubeconfig=kubeconfig, **hooks)
        else:
            from kubeiam.mapping.backends.crd import CRD

            backend = CRD(kubeconfig=kubeconfig, **hooks)
        backends.append(backend)
    return backends


def _ready_of(backend: Backend) -> Callable[[], bool]:
    return lambda: backend.ready


async def build_chain(
    config: ServerConfig,
    metrics: ServerMetrics,
    ec2_resolver: EC2Resolver | None,
    instance_role_check: InstanceRoleCheck | None = None,
    group_resolver: GroupResolver | None = None,
) -> tuple[MappingChain, Callable[[], Awaitable[None]]]:
    """The started chain and the coroutine function that stops it."""
    backends = build_backends(config, metrics)
    chain = MappingChain(
        backends,
        reserved_prefixes=config.reserved_prefixes,
        ec2_resolver=ec2_resolver,
        instance_role_check=instance_role_check,
        group_resolver=group_resolver,
    )
    for backend in backends:
        metrics.watch_backend(backend.name, _ready_of(backend))
    await chain.start()
    return chain, chain.stop
