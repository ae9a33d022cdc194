"""``{{EC2PrivateDNSName}}``: an instance id -> its private DNS name, through ec2:DescribeInstances.

Nodes authenticate with their instance role; the session name of that role is the instance id,
and the node's Kubernetes name is the instance's private DNS name. The resolver:

* accepts only session names that are instance ids (``i-`` + 8 or 17 hex digits);
* caches answers in the one :class:`~kubeiam.expiring_cache.ExpiringCache` type (bounded LRU):
  an instance keeps its private DNS name for its whole life, so the name is kept for
  ``instance_ttl`` (hours), while the instance-role check asks for answers younger than its own
  ``ttl`` (``ec2InstanceProfileTTL``, minutes): a changed or detached instance profile applies;
* batches: requests arriving within ``batch_window`` seconds share one DescribeInstances call of
  up to 100 ids, and concurrent requests for one id share one lookup;
* rate-limits calls with a token bucket (the reference's ``ec2DescribeInstancesQps`` / ``Burst``);
* runs boto3 in a small thread pool of its own (not the event loop's default executor, which
  other work shares), so the event loop never blocks on AWS and nothing else can starve the AWS
  calls (their DNS lookups happen in these threads too);
* optionally calls EC2 through an assumed role (``ec2DescribeInstancesRoleARN``, with the
  reference's ``sourceARN`` confused-deputy headers on AssumeRole).

It filters by ``instance-id`` instead of passing ``InstanceIds``: EC2 fails a whole
``InstanceIds`` call when one id does not exist, which would let one bad session name deny a
whole batch of nodes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubeiam.arn import canonicalize_mapping_arn
from kubeiam.aws.calls import AWSCallPool, TokenBucket, call_failed
from kubeiam.errors import KubeIAMError, MappingDeniedError, MappingError
from kubeiam.expiring_cache import ExpiringCache

log = logging.getLogger(__name__)

#: Instance ids: ``i-`` and 8 (old) or 17 hex digits.
INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
#: DescribeInstances accepts at most 1000 filter values; the reference batches 100.
MAX_BATCH = 100
#: DescribeInstances pages read per batch at most: 100 ids never need more than a handful.
MAX_PAGES = 50
DEFAULT_BATCH_WINDOW = 0.005
DEFAULT_CACHE_ENTRIES = 8000
#: How long an instance's private DNS name is reused: EC2 never changes it during the instance's
#: life and never reuses an instance id, so hours are safe; the bound only retires stale entries.
DEFAULT_INSTANCE_TTL = 12 * 3600.0
#: How long the instance-role check trusts an instance's profile link and a profile's roles
#: (``ec2InstanceProfileTTL``): long enough to spare EC2 and IAM, short enough that a detached
#: or changed profile takes effect within minutes.
DEFAULT_PROFILE_TTL = 300.0


class EC2Client(Protocol):
    """The one boto3 EC2 method the resolver uses: the DescribeInstances paginator."""

    def get_paginator(self, operation_name: str) -> Any: ...


class IAMClient(Protocol):
    """The boto3 IAM methods the server uses (instance-role check, IAM group mapping)."""

    def get_instance_profile(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def get_paginator(self, operation_name: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class EC2Instance:
    """What DescribeInstances told us about one instance."""

    instance_id: str
    private_dns_name: str
    #: ``arn:aws:iam::ACCOUNT:instance-profile/[path/]NAME``, or None without a profile.
    instance_profile_arn: str | None


class EC2PrivateDNSResolver:
    """``await resolver(instance_id) -> private DNS name``; batched, cached, rate-limited."""

    def __init__(
        self,
        client: Callable[[], EC2Client],
        *,
        qps: float = 15,
        burst: int = 5,
        batch_window: float = DEFAULT_BATCH_WINDOW,
        max_batch: int = MAX_BATCH,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        instance_ttl: float = DEFAULT_INSTANCE_TTL,
        on_call: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        pool: AWSCallPool | None = None,
    ) -> None:
        #: Called in the worker thread before each call: a factory, so boto3 loads lazily.
        self._client = client
        self._bucket = TokenBucket(qps, burst, clock=clock)
        self._window = batch_window
        self._max_batch = max(1, min(max_batch, MAX_BATCH))
        self._cache: ExpiringCache[str, EC2Instance] = ExpiringCache(
            max_entries=cache_entries, clock=clock
        )
        self._instance_ttl = instance_ttl
        #: The thread pool for boto3 calls; the instance-role check's IAM calls share it.
        self.pool = pool if pool is not None else AWSCallPool(name="kubeiam-ec2")
        self._on_call = on_call
        self._waiting: dict[str, asyncio.Future[EC2Instance]] = {}
        self._queue: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, instance_id: str) -> str:
        return await self.resolve(instance_id)

    async def resolve(self, instance_id: str) -> str:
        """The private DNS name of ``instance_id`` (the ``{{EC2PrivateDNSName}}`` value)."""
        instance = await self.lookup(instance_id)
        if not instance.private_dns_name:
            raise MappingDeniedError(f"EC2 instance {instance_id} has no private DNS name")
        return instance.private_dns_name

    async def lookup(self, instance_id: str, *, max_age: float | None = None) -> EC2Instance:
        """What EC2 says about ``instance_id``: batched, cached, rate-limited.

        ``max_age``: refuse a cached answer older than this many seconds and ask EC2 again (the
        instance-role check's view of the instance profile expires sooner than the DNS name).
        """
        if not INSTANCE_ID.fullmatch(instance_id):
            raise MappingDeniedError(
                "the session name is not an EC2 instance id, so {{EC2PrivateDNSName}} "
                "cannot be resolved"
            )
        instance, _ = await self._cache.get_or_load(
            instance_id,
            lambda: self._enqueue(instance_id),
            ttl=self._instance_ttl,
            max_age=max_age,
        )
        return instance

    def _enqueue(self, instance_id: str) -> asyncio.Future[EC2Instance]:
        """Add ``instance_id`` to the next batch (the cache lets one lookup per id through)."""
        fut = self._waiting.get(instance_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._waiting[instance_id] = fut
            self._queue.append(instance_id)
            if len(self._queue) >= self._max_batch:
                self._flush()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._window, self._flush)
        return fut

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            task = asyncio.ensure_future(self._describe(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _describe(self, ids: list[str]) -> None:
        try:
            await self._bucket.acquire()
            if self._on_call is not None:
                self._on_call()
            found = await self.pool.run(self._call, ids)
        except BaseException as exc:
            error = (
                exc
                if isinstance(exc, KubeIAMError)
                else KubeIAMError(f"ec2:DescribeInstances failed: {type(exc).__name__}")
            )
            for instance_id in ids:
                fut = self._waiting.pop(instance_id, None)
                if fut is not None and not fut.done():
                    fut.set_exception(error)
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("ec2:DescribeInstances failed", extra={"error": str(error)})
            return
        for instance_id in ids:
            fut = self._waiting.pop(instance_id, None)
            instance = found.get(instance_id)
            if instance is not None:
                if fut is not None and not fut.done():
                    fut.set_result(instance)
            elif fut is not None and not fut.done():
                fut.set_exception(MappingDeniedError(f"EC2 instance {instance_id} was not found"))

    def _call(self, ids: list[str]) -> dict[str, EC2Instance]:
        """Runs in a worker thread: one DescribeInstances (every page) for ``ids``."""
        pages = (
            self._client()
            .get_paginator("describe_instances")
            .paginate(Filters=[{"Name": "instance-id", "Values": list(ids)}])
        )
        found: dict[str, EC2Instance] = {}
        try:
            for page in itertools.islice(pages, MAX_PAGES):
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        iid, dns = instance.get("InstanceId"), instance.get("PrivateDnsName")
                        profile = (instance.get("IamInstanceProfile") or {}).get("Arn")
                        if isinstance(iid, str):
                            found[iid] = EC2Instance(
                                iid,
                                dns if isinstance(dns, str) else "",
                                profile if isinstance(profile, str) else None,
                            )
        except Exception as exc:
            raise call_failed(
                "ec2:DescribeInstances",
                exc,
                hint="check the server's EC2 permissions (ec2:DescribeInstances) and "
                "ec2DescribeInstancesRoleARN",
            ) from None
        return found

    async def close(self) -> None:
        """Cancel pending lookups (their callers get an error) and wait for calls in flight."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for instance_id in self._queue:
            fut = self._waiting.pop(instance_id, None)
            if fut is not None and not fut.done():
                fut.set_exception(KubeIAMError("the server is shutting down"))
        self._queue.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.pool.shutdown()


class InstanceRoleChecker:
    """``await check(instance_id, role_arn)``: does the instance's instance profile hold the role?

    The defence against node impersonation (``ec2InstanceRoleCheck``): a session name is chosen
    by whoever assumes the role, so without this check anyone allowed to assume a node role can
    become any node by naming their session after its instance id. The instance's profile comes
    from the resolver's DescribeInstances answer, used only while younger than ``ttl`` seconds
    (``ec2InstanceProfileTTL``: the DNS name may be older, the profile link may not); the
    profile's roles from iam:GetInstanceProfile, cached for ``ttl`` seconds too. So a detached or
    changed profile, or a role removed from it, applies within ``ttl``.
    """

    def __init__(
        self,
        resolver: EC2PrivateDNSResolver,
        iam_client: Callable[[], IAMClient],
        *,
        ttl: float = DEFAULT_PROFILE_TTL,
        cache_entries: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ValueError("ttl must be > 0")
        self._resolver = resolver
        self._iam = iam_client
        self.ttl = ttl
        self._roles: ExpiringCache[str, frozenset[str]] = ExpiringCache(
            max_entries=cache_entries, clock=clock
        )

    async def __call__(self, instance_id: str, role_arn: str) -> bool:
        instance = await self._resolver.lookup(instance_id, max_age=self.ttl)
        if instance.instance_profile_arn is None:
            return False
        roles = await self._profile_roles(instance.instance_profile_arn)
        return role_arn.lower() in roles

    async def _profile_roles(self, profile_arn: str) -> frozenset[str]:
        name = profile_arn.rsplit("/", 1)[-1]
        roles, _ = await self._roles.get_or_load(
            profile_arn, lambda: self._resolver.pool.run(self._get_roles, name), ttl=self.ttl
        )
        return roles

    def _get_roles(self, profile_name: str) -> frozenset[str]:
        """Runs in a worker thread: the path-less, lower-cased role ARNs of the profile."""
        try:
            answer = self._iam().get_instance_profile(InstanceProfileName=profile_name)
        except Exception as exc:
            raise call_failed(
                "iam:GetInstanceProfile",
                exc,
                hint="ec2InstanceRoleCheck needs iam:GetInstanceProfile besides "
                "ec2:DescribeInstances",
            ) from None
        arns: set[str] = set()
        for role in answer.get("InstanceProfile", {}).get("Roles", []):
            arn = role.get("Arn")
            if not isinstance(arn, str):
                continue
            try:
                arns.add(canonicalize_mapping_arn(arn).canonical.lower())
            except MappingError:
                continue
        return frozenset(arns)
