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
from typing import Any, Protocol

from kubeiam.errors import KubeIAMError, MappingDeniedError

log = logging.getLogger(__name__)

#: Instance ids: ``i-`` and 8 (old) or 17 hex digits.
INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
#: DescribeInstances accepts at most 1000 filter values; the reference batches 100.
MAX_BATCH = 100
DEFAULT_BATCH_WINDOW = 0.005
DEFAULT_CACHE_ENTRIES = 8000


class EC2Client(Protocol):
    """The one boto3 EC2 method the resolver uses."""

    def describe_instances(self, **kwargs: Any) -> Mapping[str, Any]: ...


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
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_entries = cache_entries
        self._on_call = on_call
        self._waiting: dict[str, asyncio.Future[str]] = {}
        self._queue: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: DescribeInstances calls made (also counted by ``on_call``).
        self.calls = 0

    async def __call__(self, instance_id: str) -> str:
        return await self.resolve(instance_id)

    async def resolve(self, instance_id: str) -> str:
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
            name = found.get(instance_id)
            if name:
                self._remember(instance_id, name)
                if fut is not None and not fut.done():
                    fut.set_result(name)
            elif fut is not None and not fut.done():
                fut.set_exception(
                    MappingDeniedError(
                        f"EC2 instance {instance_id} was not found or has no private DNS name"
                    )
                )

    def _call(self, ids: list[str]) -> dict[str, str]:
        """Runs in a worker thread: one DescribeInstances (paginated) for ``ids``."""
        client = self._client()
        found: dict[str, str] = {}
        kwargs: dict[str, Any] = {"Filters": [{"Name": "instance-id", "Values": list(ids)}]}
        for _ in range(50):  # bounded: 100 ids never need more than a handful of pages
            try:
                page = client.describe_instances(**kwargs)
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                raise KubeIAMError(
                    f"ec2:DescribeInstances failed: {code or type(exc).__name__}",
                    hint="check the server's EC2 permissions (ec2:DescribeInstances) and "
                    "ec2DescribeInstancesRoleARN",
                ) from None
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    iid, dns = instance.get("InstanceId"), instance.get("PrivateDnsName")
                    if isinstance(iid, str) and isinstance(dns, str) and dns:
                        found[iid] = dns
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        return found

    def _remember(self, instance_id: str, name: str) -> None:
        self._cache[instance_id] = name
        self._cache.move_to_end(instance_id)
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)

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


def make_ec2_client(
    *,
    region: str,
    role_arn: str | None = None,
    source_arn: str | None = None,
    endpoint_url: str | None = None,
) -> Callable[[], EC2Client]:
    """A factory of boto3 EC2 clients; with ``role_arn``, through auto-refreshed AssumeRole.

    boto3 is imported here, not at module import, and the client is built on first use (in the
    resolver's worker thread), so a server without node mappings never loads it.
    """
    state: dict[str, EC2Client] = {}

    def factory() -> EC2Client:
        cached = state.get("client")
        if cached is not None:
            return cached
        import boto3
        from botocore.credentials import RefreshableCredentials
        from botocore.session import get_session

        if role_arn is None:
            client: Any = boto3.client("ec2", region_name=region, endpoint_url=endpoint_url)
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
                    RoleArn=role_arn, RoleSessionName="kubeiam-ec2", DurationSeconds=3600
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
            client = session.client("ec2", endpoint_url=endpoint_url)
        state["client"] = client
        return state["client"]

    return factory
