"""What ``kubeiam server`` builds from its :class:`ServerConfig` besides the listener: the token
verifier and its STS client, the EC2 and IAM-group resolvers, the mapping chain (started), the
metrics and the identity cache, held as :class:`Components` and closed in reverse order.

:mod:`kubeiam.server.run` starts the listener around them; tests may build
their own :class:`Components` and hand them to :func:`kubeiam.server.run.start_server`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeiam.server.app import TokenVerifier, UserMapper
from kubeiam.server.config import ServerConfig
from kubeiam.server.identity_cache import IdentityCache
from kubeiam.server.metrics import ServerMetrics

log = logging.getLogger("kubeiam.server")


@dataclass(slots=True)
class Components:
    """What a running server holds besides the HTTP listener; closed in reverse order."""

    verifier: TokenVerifier
    chain: UserMapper
    metrics: ServerMetrics
    cache: IdentityCache
    closers: list[Callable[[], Any]] = field(default_factory=list)

    async def close(self) -> None:
        await close_all(self.closers)


async def close_all(closers: list[Callable[[], Any]]) -> None:
    """Call each closer (awaiting coroutines) in reverse order; a failure does not stop the rest."""
    for closer in reversed(closers):
        try:
            result = closer()
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:  # shutdown must go on; say what failed
            log.warning("error while stopping", extra={"error": type(exc).__name__})


def build_verifier(config: ServerConfig, metrics: ServerMetrics) -> tuple[TokenVerifier, Any]:
    """The token verifier for ``config`` and its STS client (to close at shutdown)."""
    from kubeiam.token.sts import STSClient, parse_resolve_specs
    from kubeiam.token.validation import parse_allowed_hosts
    from kubeiam.token.verifier import Verifier

    allowed = parse_allowed_hosts(config.sts_allowed_hosts)
    resolve = parse_resolve_specs(
        config.sts_resolve, partition=config.partition, allowed_hosts=allowed
    )
    sts = STSClient(
        resolve=resolve or None,
        ca_bundle=str(config.sts_ca_bundle) if config.sts_ca_bundle else None,
        timeout=config.sts_timeout,
        observer=metrics.sts_observer,
    )
    verifier = Verifier(
        config.cluster_id, partition=config.partition, sts=sts, allowed_hosts=allowed
    )
    return verifier, sts


def _aws_region(config: ServerConfig) -> str:
    import os

    return (
        config.ec2_region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


def build_group_resolver(config: ServerConfig, metrics: ServerMetrics) -> Any:
    """The ``mapGroups`` resolver (iam:ListGroupsForUser), or None without
    ``iamGroupMapping`` (boto3 is loaded on the first lookup)."""
    if not config.iam_group_mapping:
        return None
    from kubeiam.aws.sessions import client_factory, session_factory
    from kubeiam.server.iam_groups import IAMGroupResolver

    session = session_factory(
        region=_aws_region(config),
        role_arn=config.iam_group_role_arn,
        source_arn=config.source_arn,
        session_name="kubeiam-iam-groups",
    )
    return IAMGroupResolver(
        client_factory(session, "iam"),
        ttl=config.iam_group_ttl,
        qps=config.iam_group_qps,
        burst=config.iam_group_burst,
        on_call=metrics.iam_group_calls.inc,
        on_failure=metrics.iam_group_failures.inc,
    )


def build_ec2_resolver(config: ServerConfig, metrics: ServerMetrics) -> tuple[Any, Any]:
    """The ``{{EC2PrivateDNSName}}`` resolver and, with ``ec2InstanceRoleCheck``, the
    instance-role check (boto3 is loaded on the first lookup)."""
    from kubeiam.aws.sessions import client_factory, session_factory
    from kubeiam.server.ec2 import EC2PrivateDNSResolver, InstanceRoleChecker

    session = session_factory(
        region=_aws_region(config), role_arn=config.ec2_role_arn, source_arn=config.source_arn
    )
    resolver = EC2PrivateDNSResolver(
        client_factory(session, "ec2"),
        qps=config.ec2_qps,
        burst=config.ec2_burst,
        on_call=metrics.ec2_describe_instances_calls.inc,
    )
    checker = (
        InstanceRoleChecker(
            resolver, client_factory(session, "iam"), ttl=config.ec2_instance_profile_ttl
        )
        if config.ec2_instance_role_check
        else None
    )
    return resolver, checker


async def build_components(config: ServerConfig) -> Components:
    """Verifier, mapping chain (backends started), metrics and identity cache for ``config``."""
    from kubeiam.server.chain_builder import build_chain

    metrics = ServerMetrics()
    verifier, sts = build_verifier(config, metrics)
    closers: list[Callable[[], Any]] = [sts.close]
    try:
        resolver, checker = build_ec2_resolver(config, metrics)
        closers.append(resolver.close)
        groups = build_group_resolver(config, metrics)
        if groups is not None:
            closers.append(groups.close)
        chain, stop = await build_chain(config, metrics, resolver, checker, groups)
        closers.append(stop)
    except BaseException:
        await close_all(closers)
        raise
    return Components(
        verifier=verifier,
        chain=chain,
        metrics=metrics,
        cache=IdentityCache(max_entries=config.identity_cache_size, ttl=config.identity_cache_ttl),
        closers=closers,
    )
