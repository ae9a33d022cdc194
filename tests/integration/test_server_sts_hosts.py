"""Issue 9, section 1 through the real HTTPS endpoint: attacker-chosen STS hosts.

A server on 127.0.0.1 against the local AWS (the STS front verifies real signatures). Its STS
client resolves names with the production :class:`BoundedResolver`, whose ``getaddrinfo`` is a
fake that answers NXDOMAIN (or hangs) for every name it is asked: host names in these tests are
made up, and no DNS query may leave the machine. The local STS host is routed by the static
``--sts-resolve`` table, as in every server test.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kubeiam.localaws.environment import LocalAWS
from kubeiam.mapping.backends.mounted_file import MountedFile
from kubeiam.mapping.chain import MappingChain
from kubeiam.partitions import KNOWN_REGIONS, REGION_DIRECTIONS
from kubeiam.server.components import Components
from kubeiam.server.config import ServerConfig
from kubeiam.server.identity_cache import IdentityCache
from kubeiam.server.metrics import ServerMetrics
from kubeiam.server.run import start_server
from kubeiam.token.encoding import encode_token
from kubeiam.token.resolver import BoundedResolver
from kubeiam.token.sts import STSClient, parse_resolve_specs, resolver_events
from kubeiam.token.verifier import Verifier
from support.review import ReviewClient
from support.tokens import Creds, minter
from support.waiting import until

CLUSTER = "hosts-cluster"
mint = minter(CLUSTER)
METRICS_LIMIT = 64 * 1024


class NoDNS:
    """Every name is NXDOMAIN; names starting with ``slow`` first hang until released."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int, family: int = 0, type: int = 0) -> list[Any]:
        host.encode("idna")
        with self._lock:
            self.asked.append(host)
        if host.split(".")[1].startswith("s"):
            self.release.wait(10)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def fake_regions(count: int) -> list[str]:
    """Distinct well-formed regions that AWS has not published (``qa-north-1`` ...)."""
    geos = [a + b for a in "qxz" for b in "abcdefghijklmnopqrstuvwxyz"]
    regions = [
        f"{geo}-{direction}-{n}"
        for n in range(1, 100)
        for direction in sorted(REGION_DIRECTIONS)
        for geo in geos
    ]
    chosen = [r for r in regions if r not in KNOWN_REGIONS][:count]
    assert len(chosen) == count
    return chosen


@pytest.fixture(scope="module")
def alice(local_aws: LocalAWS) -> Creds:
    return Creds(*local_aws.create_user("hosts-alice"))


@pytest.fixture
async def served(
    local_aws: LocalAWS, alice: Creds, tmp_path: Path
) -> AsyncIterator[tuple[ReviewClient, NoDNS, BoundedResolver]]:
    config = ServerConfig(
        cluster_id=CLUSTER,
        port=0,
        state_dir=tmp_path / "state",
        map_users=(
            {"userarn": local_aws.user_arn("hosts-alice"), "username": "alice", "groups": []},
        ),
        sts_resolve=(local_aws.sts_resolve(),),
        sts_ca_bundle=local_aws.ca_bundle,
        sts_timeout=5.0,
    )
    dns = NoDNS()
    metrics = ServerMetrics()
    resolver = BoundedResolver(
        static=parse_resolve_specs(config.sts_resolve, partition="aws"),
        getaddrinfo=dns,
        pool_size=4,
        timeout=2.0,
        on_event=resolver_events(metrics.sts_observer),
    )
    sts = STSClient(
        ca_bundle=str(local_aws.ca_bundle),
        observer=metrics.sts_observer,
        resolver=resolver,
        timeout=5.0,
    )
    components = Components(
        verifier=Verifier(CLUSTER, sts=sts),
        chain=MappingChain([MountedFile(config.map_roles, config.map_users)]),
        metrics=metrics,
        cache=IdentityCache(),
        closers=[sts.close],
    )
    server = await start_server(config, components=components)
    client = ReviewClient(server, limit=64)
    yield client, dns, resolver
    dns.release.set()
    await client.session.close()
    await server.stop()


async def test_2000_fake_regions_keep_metrics_small_and_valid_users_in(
    served: tuple[ReviewClient, NoDNS, BoundedResolver], alice: Creds
) -> None:
    client, dns, _ = served
    regions = fake_regions(2000)
    tokens = [mint(alice, region=r) for r in regions]
    statuses: list[int] = []
    valid: list[int] = []
    gate = asyncio.Semaphore(64)

    async def fake(token: str) -> None:
        async with gate:
            statuses.append((await client.review(token))[0])

    async def valid_user() -> None:
        for _ in range(20):
            valid.append((await client.review(mint(alice, region="us-east-1")))[0])
            await asyncio.sleep(0.02)  # kept: spreads the valid user's reviews over the flood

    await asyncio.gather(valid_user(), *(fake(t) for t in tokens))
    assert valid == [200] * 20
    assert len(statuses) == 2000
    assert set(statuses) == {403}  # each refused as STS unavailable, none a 5xx
    text = await client.metrics()
    assert len(text.encode()) < METRICS_LIMIT
    assert not any(r in text for r in regions)
    assert 'sts_connection_failures_total{StsRegion="other"}' in text
    # Names that reached the resolver were the well-formed ones only, each at most once.
    assert len(dns.asked) == len(set(dns.asked))


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("sts." + "a" * 64 + ".amazonaws.com", "us-east-1"),
        ("sts." + "b" * 200 + ".amazonaws.com", "us-east-1"),
        ("sts.not-a-region.amazonaws.com", "not-a-region"),
        ("sts.us-east-1.amazonaws.com.evil.example", "us-east-1"),
        ("sts.us-east-1.example.com", "us-east-1"),
    ],
    ids=["label-64", "label-200", "no-region-shape", "suffix", "other-domain"],
)
async def test_refused_hosts_answer_403_before_any_lookup(
    served: tuple[ReviewClient, NoDNS, BoundedResolver], alice: Creds, host: str, region: str
) -> None:
    client, dns, _ = served
    status, body = await client.review(mint(alice, region=region, host=host))
    assert status == 403
    assert body["status"]["authenticated"] is False
    assert "not a valid host name" in body["status"]["error"] or (
        "is not an STS endpoint" in body["status"]["error"]
    )
    assert dns.asked == []
    assert 'result="invalid_token"' in await client.metrics()


async def test_hanging_names_cost_only_their_own_reviews(
    served: tuple[ReviewClient, NoDNS, BoundedResolver], alice: Creds
) -> None:
    """Names whose lookups hang hold at most pool_size - 1 threads; the rest fail at once; the
    valid user (its host routed statically, as a cached name would be) is never delayed."""
    client, dns, resolver = served
    slow = [f"s{chr(97 + i % 26)}-north-{1 + i // 26}" for i in range(100)]
    pending = [asyncio.ensure_future(client.review(mint(alice, region=r))) for r in slow]
    await until(lambda: len(dns.asked) >= resolver.pool_size - 1, what="the threads held")
    loop = asyncio.get_running_loop()
    for _ in range(5):
        started = loop.time()
        assert (await client.review(mint(alice, region="us-east-1")))[0] == 200
        assert loop.time() - started < 1.5
    dns.release.set()
    answers = await asyncio.gather(*pending)
    assert {status for status, _ in answers} == {403}
    assert resolver.overloaded > 0
    assert len(dns.asked) <= resolver.pool_size - 1 + resolver.max_pending
    text = await client.metrics()
    assert f"kubeiam_sts_name_lookups_refused_total {float(resolver.overloaded)}" in text
    assert f"kubeiam_sts_name_lookups_total {float(resolver.lookups)}" in text


async def test_a_kelvin_sign_key_is_refused_before_sts(
    served: tuple[ReviewClient, NoDNS, BoundedResolver],
    alice: Creds,
    local_aws: LocalAWS,
) -> None:
    """``X-Amz-Security-To\\u212aen`` lower-cases to an allowed key with str.lower()."""
    client, dns, _ = served
    token = mint(alice, region="us-east-1")
    url = base64.urlsafe_b64decode(token.removeprefix("k8s-aws-v1.") + "==").decode()
    forged = url + "&X-Amz-Security-To%E2%84%AAen=FwoG"
    before = local_aws.sts_requests
    status, body = await client.review(encode_token(forged))
    assert status == 403
    assert "is not allowed" in body["status"]["error"]
    assert local_aws.sts_requests == before
    assert dns.asked == []
