"""Token -> identity: the pure checks, the one STS call, and the ARN table (protocol.md 2).

:class:`Verifier` is what the webhook holds; :func:`verify_token_sync` is the one-shot form
``kubeiam verify`` uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from kubeiam.cluster_id import check_cluster_id
from kubeiam.errors import ConfigError
from kubeiam.identity import Identity, identity_from_caller
from kubeiam.partitions import DEFAULT_PARTITION, PARTITIONS
from kubeiam.token.sts import DEFAULT_TIMEOUT, Observer, STSClient
from kubeiam.token.validation import PresignedRequest, validate_token


def utc_now() -> datetime:
    """The default clock of a :class:`Verifier`."""
    return datetime.now(UTC)


class Verifier:
    """Verifies tokens for one cluster: every pre-network rule, then one STS call."""

    def __init__(
        self,
        cluster_id: str,
        *,
        partition: str = DEFAULT_PARTITION,
        sts: STSClient,
        clock: Callable[[], datetime] = utc_now,
        allowed_hosts: Mapping[str, str] | frozenset[str] = frozenset(),
    ) -> None:
        if partition not in PARTITIONS:
            raise ConfigError(
                f"unknown AWS partition {partition!r}",
                hint="use one of: " + ", ".join(sorted(PARTITIONS)),
            )
        self.cluster_id = check_cluster_id(cluster_id)
        self.partition = partition
        self._sts = sts
        self._clock = clock
        self._allowed_hosts = allowed_hosts

    def check(self, token: str) -> PresignedRequest:
        """The pure part alone: raises TokenFormatError / TokenExpiredError, no network."""
        return validate_token(
            token, partition=self.partition, now=self._clock(), allowed_hosts=self._allowed_hosts
        )

    async def verify(self, token: str) -> Identity:
        """The identity behind ``token``; raises a :class:`~kubeiam.errors.TokenError`."""
        request = self.check(token)
        caller = await self._sts.get_caller_identity(request, self.cluster_id)
        return identity_from_caller(
            arn=caller.arn,
            account=caller.account,
            user_id=caller.user_id,
            access_key_id=request.access_key_id,
            partition=self.partition,
            expires_at=request.expires_at.timestamp(),
        )


def verify_token_sync(
    token: str,
    *,
    cluster_id: str,
    partition: str = DEFAULT_PARTITION,
    resolve: Mapping[str, tuple[str, int]] | None = None,
    ca_bundle: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    allowed_hosts: Mapping[str, str] = MappingProxyType({}),
    clock: Callable[[], datetime] = utc_now,
    observer: Observer | None = None,
) -> Identity:
    """Verify one token in a fresh event loop (for the CLI and scripts)."""

    async def run() -> Identity:
        async with STSClient(
            resolve=resolve, ca_bundle=ca_bundle, timeout=timeout, observer=observer
        ) as sts:
            verifier = Verifier(
                cluster_id, partition=partition, sts=sts, clock=clock, allowed_hosts=allowed_hosts
            )
            return await verifier.verify(token)

    return asyncio.run(run())
