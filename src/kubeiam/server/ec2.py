"""``{{EC2PrivateDNSName}}``: an instance id -> its private DNS name, through ec2:DescribeInstances.

Nodes authenticate with their instance role; the session name of that role is the instance id,
and the node's Kubernetes name is the instance's private DNS name. The resolver:

* accepts only session names that are instance ids (``i-`` + 8 or 17 hex digits);
* caches answers (an instance keeps its private DNS name for its whole life; bounded LRU);
* batches: requests arriving within ``batch_window`` seconds share one DescribeInstances call of
  up to 100 ids, and concurrent requests for one id share one lookup;
* rate-limits calls with a token bucket (the reference's ``ec2DescribeInstancesQps`` / ``Burst``);
* runs boto3 in a thread executor, so the event loop never blocks on AWS;
* optionally calls EC2 through an assumed role (``ec2DescribeInstancesRoleARN``, with the
  reference's ``sourceARN`` confused-deputy headers on AssumeRole).

It filters by ``instance-id`` instead of passing ``InstanceIds``: EC2 fails a whole
``InstanceIds`` call when one id does not exist, which would let one bad session name deny a
whole batch of nodes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kubeiam.arn import canonicalize_mapping_arn
from kubeiam.errors import KubeIAMError, MappingDeniedError, MappingError

log = logging.getLogger(__name__)
_K = TypeVar("_K")
_V = TypeVar("_V")

#: Instance ids: ``i-`` and 8 (old) or 17 hex digits.
INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
#: DescribeInstances accepts at most 1000 filter values; the reference batches 100.
MAX_BATCH = 100
DEFAULT_BATCH_WINDOW = 0.005
DEFAULT_CACHE_ENTRIES = 8000


class EC2Client(Protocol):
    """The one boto3 EC2 method the resolver uses."""

    def describe_instances(self, **kwargs: Any) -> Mapping[str, Any]: ...


class IAMClient(Protocol):
    """The boto3 IAM methods the server uses (instance-role check, IAM group mapping)."""

    def get_instance_profile(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def list_groups_for_user(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class EC2Instance:
    """What DescribeInstances told us about one instance."""

    instance_id: str
    private_dns_name: str
    #: ``arn:aws:iam::ACCOUNT:instance-profile/[path/]NAME``, or None without a profile.
    instance_profile_arn: str | None


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up. Clock injected."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def reserve(self) -> float:
        """Take one token; the seconds the caller must wait before using it (0 if available)."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


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
        on_call: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: Called in the worker thread before each call: a factory, so boto3 loads lazily.
        self._client = client
        self._bucket = TokenBucket(qps, burst, clock=clock)
        self._window = batch_window
        self._max_batch = max(1, min(max_batch, MAX_BATCH))
        self._cache: OrderedDict[str, EC2Instance] = OrderedDict()
        self._cache_entries = cache_entries
        self._on_call = on_call
        self._waiting: dict[str, asyncio.Future[EC2Instance]] = {}
        self._queue: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: DescribeInstances calls made (also counted by ``on_call``).
        self.calls = 0

    async def __call__(self, instance_id: str) -> str:
        return await self.resolve(instance_id)

    async def resolve(self, instance_id: str) -> str:
        """The private DNS name of ``instance_id`` (the ``{{EC2PrivateDNSName}}`` value)."""
        instance = await self.lookup(instance_id)
        if not instance.private_dns_name:
            raise MappingDeniedError(f"EC2 instance {instance_id} has no private DNS name")
        return instance.private_dns_name

    async def lookup(self, instance_id: str) -> EC2Instance:
        """What EC2 says about ``instance_id``: batched, cached, rate-limited."""
        if not INSTANCE_ID.fullmatch(instance_id):
            raise MappingDeniedError(
                "the session name is not an EC2 instance id, so {{EC2PrivateDNSName}} "
                "cannot be resolved"
            )
        cached = self._cache.get(instance_id)
        if cached is not None:
            self._cache.move_to_end(instance_id)
            return cached
        fut = self._waiting.get(instance_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._waiting[instance_id] = fut
            self._queue.append(instance_id)
            if len(self._queue) >= self._max_batch:
                self._flush()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._window, self._flush)
        return await asyncio.shield(fut)

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
            self.calls += 1
            if self._on_call is not None:
                self._on_call()
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(None, self._call, ids)
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
                self._remember(instance)
                if fut is not None and not fut.done():
                    fut.set_result(instance)
            elif fut is not None and not fut.done():
                fut.set_exception(MappingDeniedError(f"EC2 instance {instance_id} was not found"))

    def _call(self, ids: list[str]) -> dict[str, EC2Instance]:
        """Runs in a worker thread: one DescribeInstances (paginated) for ``ids``."""
        client = self._client()
        found: dict[str, EC2Instance] = {}
        kwargs: dict[str, Any] = {"Filters": [{"Name": "instance-id", "Values": list(ids)}]}
        for _ in range(50):  # bounded: 100 ids never need more than a handful of pages
            try:
                page = client.describe_instances(**kwargs)
            except Exception as exc:
                raise _call_failed(
                    "ec2:DescribeInstances",
                    exc,
                    hint="check the server's EC2 permissions (ec2:DescribeInstances) and "
                    "ec2DescribeInstancesRoleARN",
                ) from None
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
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        return found

    def _remember(self, instance: EC2Instance) -> None:
        _put_bounded(self._cache, instance.instance_id, instance, self._cache_entries)

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


def _call_failed(action: str, exc: Exception, *, hint: str) -> KubeIAMError:
    """An AWS call's failure, named by its error code (never its message, which may echo
    request details) or, without one, by the exception's type."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return KubeIAMError(f"{action} failed: {code or type(exc).__name__}", hint=hint)


def _put_bounded(cache: OrderedDict[_K, _V], key: _K, value: _V, limit: int) -> None:
    """Store ``key`` as the newest entry of an LRU ``cache``; the oldest go beyond ``limit``."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


class InstanceRoleChecker:
    """``await check(instance_id, role_arn)``: does the instance's instance profile hold the role?

    The defence against node impersonation (``ec2InstanceRoleCheck``): a session name is chosen
    by whoever assumes the role, so without this check anyone allowed to assume a node role can
    become any node by naming their session after its instance id. The instance's profile comes
    from the resolver's (cached) DescribeInstances answer; the profile's roles from
    iam:GetInstanceProfile, cached for ``ttl`` seconds.
    """

    def __init__(
        self,
        resolver: EC2PrivateDNSResolver,
        iam_client: Callable[[], IAMClient],
        *,
        ttl: float = 300.0,
        cache_entries: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._iam = iam_client
        self._ttl = ttl
        self._clock = clock
        self._cache_entries = cache_entries
        self._roles: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()

    async def __call__(self, instance_id: str, role_arn: str) -> bool:
        instance = await self._resolver.lookup(instance_id)
        if instance.instance_profile_arn is None:
            return False
        roles = await self._profile_roles(instance.instance_profile_arn)
        return role_arn.lower() in roles

    async def _profile_roles(self, profile_arn: str) -> frozenset[str]:
        cached = self._roles.get(profile_arn)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        name = profile_arn.rsplit("/", 1)[-1]
        loop = asyncio.get_running_loop()
        roles = await loop.run_in_executor(None, self._get_roles, name)
        _put_bounded(
            self._roles, profile_arn, (self._clock() + self._ttl, roles), self._cache_entries
        )
        return roles

    def _get_roles(self, profile_name: str) -> frozenset[str]:
        """Runs in a worker thread: the path-less, lower-cased role ARNs of the profile."""
        try:
            answer = self._iam().get_instance_profile(InstanceProfileName=profile_name)
        except Exception as exc:
            raise _call_failed(
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


def make_session_factory(
    *,
    region: str,
    role_arn: str | None = None,
    source_arn: str | None = None,
    session_name: str = "kubeiam-ec2",
) -> Callable[[], Any]:
    """A factory of one boto3 Session, built on first use (in a worker thread); with
    ``role_arn``, its credentials come from an auto-refreshed AssumeRole.

    boto3 is imported here, not at module import, so a server that never resolves a node name
    never loads it.
    """
    state: dict[str, Any] = {}

    def factory() -> Any:
        if "session" in state:
            return state["session"]
        import boto3
        from botocore.credentials import RefreshableCredentials
        from botocore.session import get_session

        if role_arn is None:
            session = boto3.Session(region_name=region)
        else:
            sts = boto3.client("sts", region_name=region)
            if source_arn:
                account = source_arn.split(":")[4] if source_arn.count(":") >= 5 else ""

                def add_headers(request: Any, **_: Any) -> None:
                    request.headers["x-amz-source-arn"] = source_arn
                    if account:
                        request.headers["x-amz-source-account"] = account

                sts.meta.events.register("before-sign.sts.AssumeRole", add_headers)

            def refresh() -> dict[str, str]:
                creds = sts.assume_role(
                    RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=3600
                )["Credentials"]
                expiry = creds["Expiration"]
                if isinstance(expiry, dt.datetime):
                    expiry_text = expiry.astimezone(dt.UTC).isoformat()
                else:
                    expiry_text = str(expiry)
                return {
                    "access_key": creds["AccessKeyId"],
                    "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"],
                    "expiry_time": expiry_text,
                }

            credentials = RefreshableCredentials.create_from_metadata(
                metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
            )
            botocore_session = get_session()
            # botocore has no public setter for refreshable credentials; this is the usual seam.
            botocore_session._credentials = credentials  # type: ignore[attr-defined]
            session = boto3.Session(botocore_session=botocore_session, region_name=region)
        state["session"] = session
        return session

    return factory


def make_ec2_client(
    *,
    region: str,
    role_arn: str | None = None,
    source_arn: str | None = None,
    endpoint_url: str | None = None,
    session: Callable[[], Any] | None = None,
) -> Callable[[], EC2Client]:
    """A factory of one boto3 EC2 client (see :func:`make_session_factory`)."""
    sessions = session or make_session_factory(
        region=region, role_arn=role_arn, source_arn=source_arn
    )
    state: dict[str, EC2Client] = {}

    def factory() -> EC2Client:
        if "client" not in state:
            state["client"] = sessions().client("ec2", endpoint_url=endpoint_url)
        return state["client"]

    return factory


def make_iam_client(session: Callable[[], Any]) -> Callable[[], IAMClient]:
    """A factory of one boto3 IAM client from ``session`` (the EC2 client's, or the IAM group
    resolver's own)."""
    state: dict[str, IAMClient] = {}

    def factory() -> IAMClient:
        if "client" not in state:
            state["client"] = session().client("iam")
        return state["client"]

    return factory
