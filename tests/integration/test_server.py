"""``kubeiam server`` over real HTTPS on loopback, against the local AWS environment.

Tokens are minted with the real presigner for IAM users and assumed roles held by moto; the STS
front verifies their signatures. Nothing on the review path is faked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from kubeiam.localaws.environment import LocalAWS
from kubeiam.mapping.backends.mounted_file import MountedFile
from kubeiam.mapping.chain import MappingChain
from kubeiam.partitions import sts_host_for_region
from kubeiam.server.components import Components
from kubeiam.server.config import ServerConfig
from kubeiam.server.identity_cache import IdentityCache
from kubeiam.server.metrics import ServerMetrics
from kubeiam.server.run import start_server
from kubeiam.token.encoding import encode_token
from kubeiam.token.sts import STSClient, parse_resolve_specs
from kubeiam.token.verifier import Verifier
from support.metrics import sample_sum
from support.review import ReviewClient
from support.tokens import Creds, assume, minter
from support.waiting import until

CLUSTER = "demo-cluster"
mint = minter(CLUSTER)
ATTACKS = Path(__file__).resolve().parents[1] / "fixtures" / "tokens" / "attacks.json"


@dataclass(frozen=True)
class World:
    aws: LocalAWS
    alice: Creds  # mapped IAM user
    bob: Creds  # IAM user with no mapping
    admin_session: Creds  # assumed role/team/Admin, session jane@example.com
    node_session: Creds  # assumed NodeRole, session = an instance id (no instance profile)
    real_node_session: Creds  # assumed NodeRole, session = an instance whose profile holds it
    eks_session: Creds  # assumed DevRole with a session name in a reserved prefix
    instance_id: str
    private_dns: str
    real_node_dns: str
    admin_arn: str
    node_arn: str
    dev_arn: str


@pytest.fixture(scope="module")
def world(local_aws: LocalAWS) -> World:
    aws = local_aws
    alice = Creds(*aws.create_user("srv-alice"))
    bob = Creds(*aws.create_user("srv-bob"))
    carol = Creds(*aws.create_user("srv-carol"))
    carol_arn = aws.user_arn("srv-carol")
    admin_arn = aws.create_role(
        "SrvAdmin", trusted=carol_arn, path="/team/", grant_to_user="srv-carol"
    )
    node_arn = aws.create_role("SrvNodeRole", trusted=carol_arn, grant_to_user="srv-carol")
    dev_arn = aws.create_role("SrvDevRole", trusted=carol_arn, grant_to_user="srv-carol")
    ec2 = aws.boto3_client("ec2")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    iam = aws.boto3_client("iam")
    iam.create_instance_profile(InstanceProfileName="SrvNodeProfile", Path="/nodes/")
    iam.add_role_to_instance_profile(InstanceProfileName="SrvNodeProfile", RoleName="SrvNodeRole")
    real_node = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        IamInstanceProfile={"Name": "SrvNodeProfile"},
    )["Instances"][0]
    return World(
        aws=aws,
        alice=alice,
        bob=bob,
        admin_session=assume(aws, carol, admin_arn, "jane@example.com"),
        node_session=assume(aws, carol, node_arn, instance["InstanceId"]),
        real_node_session=assume(aws, carol, node_arn, real_node["InstanceId"]),
        eks_session=assume(aws, carol, dev_arn, "eks-admin"),
        instance_id=instance["InstanceId"],
        private_dns=instance["PrivateDnsName"],
        real_node_dns=real_node["PrivateDnsName"],
        admin_arn=admin_arn,
        node_arn=node_arn,
        dev_arn=dev_arn,
    )


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


def base_config(world: World, state_dir: Path, **changes: Any) -> ServerConfig:
    account = world.aws.account_id
    config = ServerConfig(
        cluster_id=CLUSTER,
        port=0,
        state_dir=state_dir,
        map_roles=(
            # written with the role's IAM path: STS reports the role without it
            {"rolearn": world.admin_arn, "username": "admin:{{SessionName}}", "groups": ["ops"]},
            {
                "rolearn": world.node_arn,
                "username": "system:node:{{EC2PrivateDNSName}}",
                "groups": ["system:bootstrappers", "system:nodes"],
            },
            {"rolearn": world.dev_arn, "username": "{{SessionName}}", "groups": ["devs"]},
        ),
        map_users=(
            {
                "userarn": f"arn:aws:iam::{account}:user/srv-alice",
                "username": "alice",
                "groups": ["devs", "acct-{{AccountID}}"],
            },
        ),
        reserved_prefixes={"MountedFile": ("eks-",)},
        sts_resolve=(world.aws.sts_resolve(),),
        sts_ca_bundle=world.aws.ca_bundle,
        sts_timeout=2.0,
        shutdown_timeout=5.0,
    )
    return config.replace(**changes)


@pytest.fixture
async def served(
    world: World, state_dir: Path, server_aws_env: None
) -> AsyncIterator[ReviewClient]:
    server = await start_server(base_config(world, state_dir))
    client = ReviewClient(server)
    yield client
    await client.close()
    await server.stop()


# --- who gets in, as whom ---------------------------------------------------------------------


async def test_mapped_user(served: ReviewClient, world: World) -> None:
    status, body = await served.review(mint(world.alice))
    assert status == 200
    user = body["status"]["user"]
    assert user["username"] == "alice"
    assert user["groups"] == ["devs", f"acct-{world.aws.account_id}"]
    user_id = user["extra"]["principalId"][0]
    assert user["uid"] == f"aws-iam-authenticator:{world.aws.account_id}:{user_id}"
    assert user["extra"]["accessKeyId"] == [world.alice.key_id]
    assert user["extra"]["sessionName"] == [""]


@pytest.mark.parametrize(
    "api_version",
    ["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"],
    ids=["v1", "v1beta1"],
)
async def test_assumed_role_with_path_and_template(
    served: ReviewClient, world: World, api_version: str
) -> None:
    status, body = await served.review(mint(world.admin_session), api_version)
    assert status == 200
    assert body["apiVersion"] == api_version
    assert body["kind"] == "TokenReview"
    user = body["status"]["user"]
    assert user["username"] == "admin:jane-example.com"
    assert user["groups"] == ["ops"]
    extra = user["extra"]
    role_id = user["uid"].rsplit(":", 1)[1]
    assert role_id
    assert user["uid"] == f"aws-iam-authenticator:{world.aws.account_id}:{role_id}"
    assert extra["canonicalArn"] == [f"arn:aws:iam::{world.aws.account_id}:role/SrvAdmin"]
    assert extra["arn"] == [
        f"arn:aws:sts::{world.aws.account_id}:assumed-role/SrvAdmin/jane@example.com"
    ]
    assert extra["sessionName"] == ["jane@example.com"]
    assert extra["principalId"] == [role_id]
    assert extra["sigs.k8s.io/aws-iam-authenticator/principalId"] == [role_id]


async def test_node_role_resolves_private_dns_name(served: ReviewClient, world: World) -> None:
    status, body = await served.review(mint(world.node_session))
    assert status == 200, body
    assert body["status"]["user"]["username"] == f"system:node:{world.private_dns}"
    assert body["status"]["user"]["groups"] == ["system:bootstrappers", "system:nodes"]
    _, metrics = await served.get("/metrics")
    assert sample_sum(metrics, "aws_iam_authenticator_ec2_describe_instances_calls_total") == 1


async def test_node_impersonation_refused_with_instance_role_check(
    world: World, state_dir: Path, server_aws_env: None
) -> None:
    server = await start_server(base_config(world, state_dir, ec2_instance_role_check=True))
    client = ReviewClient(server)
    try:
        # a session named after an instance whose profile does not hold the node role
        status, body = await client.review(mint(world.node_session))
        assert status == 403
        assert "instance profile does not hold" in body["status"]["error"]
        # the instance whose profile holds the role (path /nodes/ on the profile is fine)
        status, body = await client.review(mint(world.real_node_session))
        assert status == 200, body
        assert body["status"]["user"]["username"] == f"system:node:{world.real_node_dns}"
    finally:
        await client.close()
        await server.stop()


async def test_unmapped_user_is_denied(served: ReviewClient, world: World) -> None:
    status, body = await served.review(mint(world.bob))
    assert status == 403
    assert body["status"]["authenticated"] is False
    assert "not mapped" in body["status"]["error"]


async def test_reserved_prefix_checked_after_rendering(served: ReviewClient, world: World) -> None:
    status, body = await served.review(mint(world.eks_session))
    assert status == 403
    assert "eks-" in body["status"]["error"]


async def test_account_mapping(world: World, state_dir: Path, server_aws_env: None) -> None:
    config = base_config(world, state_dir, map_accounts=(world.aws.account_id,))
    server = await start_server(config)
    client = ReviewClient(server)
    try:
        status, body = await client.review(mint(world.bob))
        assert status == 200
        user = body["status"]["user"]
        assert user["username"] == f"arn:aws:iam::{world.aws.account_id}:user/srv-bob"
        assert user["groups"] == []
    finally:
        await client.close()
        await server.stop()


async def test_token_for_another_cluster_is_refused_by_sts(
    served: ReviewClient, world: World
) -> None:
    status, body = await served.review(mint(world.alice, cluster="other-cluster"))
    assert status == 403
    assert body["status"]["authenticated"] is False
    _, metrics = await served.get("/metrics")
    assert 'result="sts_error"' in metrics
    assert 'sts_responses_total{ResponseCode="403",StsRegion="us-east-1"}' in metrics


# --- protocol.md section 5 through the HTTP endpoint -------------------------------------------


def attack_cases() -> list[dict[str, Any]]:
    return list(json.loads(ATTACKS.read_text())["cases"])


@pytest.fixture
async def attack_server(world: World, state_dir: Path) -> AsyncIterator[ReviewClient]:
    """A server whose verifier clock is the attack vectors' fixed "now" (all else real)."""
    doc = json.loads(ATTACKS.read_text())
    now = datetime.fromisoformat(doc["now"].replace("Z", "+00:00"))
    config = base_config(world, state_dir)
    metrics = ServerMetrics()
    sts = STSClient(
        resolve=parse_resolve_specs(config.sts_resolve, partition="aws"),
        ca_bundle=str(world.aws.ca_bundle),
        observer=metrics.sts_observer,
    )
    chain = MappingChain([MountedFile(config.map_roles, config.map_users)])
    components = Components(
        verifier=Verifier(CLUSTER, sts=sts, clock=lambda: now),
        chain=chain,
        metrics=metrics,
        cache=IdentityCache(),
        closers=[sts.close],
    )
    server = await start_server(config, components=components)
    client = ReviewClient(server)
    yield client
    await client.close()
    await server.stop()


@pytest.mark.parametrize("case", attack_cases(), ids=lambda c: c["id"])
async def test_attack_vectors_are_refused_before_sts(
    attack_server: ReviewClient, world: World, case: dict[str, Any]
) -> None:
    before = world.aws.sts_requests
    status, body = await attack_server.review(encode_token(case["url"]))
    assert status == 403
    assert body["status"]["authenticated"] is False
    assert world.aws.sts_requests == before
    _, metrics = await attack_server.get("/metrics")
    assert 'authenticate_latency_seconds_count{result="invalid_token"} 1.0' in metrics


async def test_redirecting_sts_is_not_followed(served: ReviewClient, world: World) -> None:
    world.aws.set_sts_fault("redirect")
    status, _ = await served.review(mint(world.alice))
    assert status == 403
    assert world.aws.redirect_hits == 0


async def test_oversized_token_is_refused(served: ReviewClient, world: World) -> None:
    status, body = await served.review("k8s-aws-v1." + "A" * 5000)
    assert status == 403
    assert body["status"]["authenticated"] is False


async def test_replayed_old_token_is_refused(served: ReviewClient, world: World) -> None:
    old = mint(world.alice, now=datetime.now(UTC) - timedelta(minutes=16))
    before = world.aws.sts_requests
    status, _ = await served.review(old)
    assert status == 403
    assert world.aws.sts_requests == before


# --- STS faults -------------------------------------------------------------------------------


async def test_sts_throttling_is_429(served: ReviewClient, world: World) -> None:
    world.aws.set_sts_fault("throttle")
    status, body = await served.review(mint(world.alice))
    assert status == 429
    assert body["status"]["authenticated"] is False
    world.aws.set_sts_fault(None)
    _, metrics = await served.get("/metrics")
    assert 'sts_throttling_total{StsRegion="us-east-1"} 1.0' in metrics
    assert 'authenticate_latency_seconds_count{result="sts_throttling"} 1.0' in metrics
    # the throttled answer was not cached: the same token works once STS recovers
    token = mint(world.alice)
    assert (await served.review(token))[0] == 200


@pytest.mark.parametrize("fault", ["error500", "hang"], ids=["sts-500", "sts-hangs"])
async def test_sts_failures_deny(served: ReviewClient, world: World, fault: str) -> None:
    world.aws.set_sts_fault(fault)
    started = time.monotonic()
    status, _ = await served.review(mint(world.alice))
    assert status == 403
    assert time.monotonic() - started < 8


async def test_sts_down_is_a_connection_failure(
    world: World, state_dir: Path, server_aws_env: None, unused_tcp_port: int
) -> None:
    host = sts_host_for_region("us-east-1")
    config = base_config(world, state_dir, sts_resolve=(f"{host}=127.0.0.1:{unused_tcp_port}",))
    server = await start_server(config)
    client = ReviewClient(server)
    try:
        status, body = await client.review(mint(world.alice))
        assert status == 403
        assert body["status"]["authenticated"] is False
        _, metrics = await client.get("/metrics")
        assert 'sts_connection_failures_total{StsRegion="us-east-1"} 1.0' in metrics
    finally:
        await client.close()
        await server.stop()


# --- the identity cache -----------------------------------------------------------------------


async def test_flood_of_one_token_makes_one_sts_call(served: ReviewClient, world: World) -> None:
    token = mint(world.admin_session)
    before = world.aws.sts_requests
    results = await asyncio.gather(*(served.review(token) for _ in range(40)))
    assert {status for status, _ in results} == {200}
    assert world.aws.sts_requests - before == 1
    # and later reviews are cache hits
    assert (await served.review(token))[0] == 200
    assert world.aws.sts_requests - before == 1
    _, metrics = await served.get("/metrics")
    assert sample_sum(metrics, "kubeiam_identity_cache_misses_total") == 1
    assert (
        sample_sum(metrics, "kubeiam_identity_cache_hits_total")
        + sample_sum(metrics, "kubeiam_identity_cache_shared_total")
        == 40
    )


# --- the HTTP envelope ------------------------------------------------------------------------


async def test_http_errors(served: ReviewClient) -> None:
    session, base = served.session, served.base
    async with session.get(base + "/authenticate") as resp:
        assert resp.status == 405
    async with session.post(base + "/authenticate", data=b"{not json") as resp:
        assert resp.status == 400
    async with session.post(base + "/authenticate", data=b"x" * (70 * 1024)) as resp:
        assert resp.status == 413
    assert await served.get("/healthz") == (200, "ok")
    assert await served.get("/readyz") == (200, "ok")


async def test_tls_below_1_2_is_refused(served: ReviewClient) -> None:
    ctx = ssl.create_default_context(cafile=str(served.server.keypair.cert_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are, on purpose
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)):
        await asyncio.open_connection("127.0.0.1", served.server.port, ssl=ctx)


async def test_plain_http_is_not_served(served: ReviewClient) -> None:
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(f"http://127.0.0.1:{served.server.port}/healthz") as resp:
                await resp.read()


async def test_logs_never_contain_token_url_or_signature(
    served: ReviewClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint(world.admin_session)
    bad = mint(world.bob)
    from kubeiam.token.encoding import decode_token

    url = decode_token(token)
    signature = url.rsplit("X-Amz-Signature=", 1)[1]
    with caplog.at_level(logging.DEBUG):
        assert (await served.review(token))[0] == 200
        assert (await served.review(bad))[0] == 403
        world.aws.set_sts_fault("throttle")
        assert (await served.review(mint(world.alice)))[0] == 429
    reviews = [r for r in caplog.records if r.name == "kubeiam.server.review"]
    assert [r.review["outcome"] for r in reviews] == [  # type: ignore[attr-defined]
        "success",
        "uknown_user",
        "sts_throttling",
    ]
    assert reviews[0].review["username"] == "admin:jane-example.com"  # type: ignore[attr-defined]
    dump = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    for secret in (token, token[11:60], url, signature, world.admin_session.session_token or "-"):
        assert secret not in dump


# --- the command, as a process ----------------------------------------------------------------


@pytest.fixture
def server_process(world: World, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    config = {
        "clusterID": CLUSTER,
        "server": {
            "port": 0,
            "stateDir": str(tmp_path / "state"),
            "mapUsers": [
                {
                    "UserARN": f"arn:aws:iam::{world.aws.account_id}:user/srv-alice",
                    "Username": "alice",
                    "Groups": ["devs"],
                }
            ],
            "someFutureKey": True,
        },
    }
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, **world.aws.client_env()}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubeiam",
            "server",
            "--config",
            str(path),
            "--log-format",
            "json",
            "--generate-kubeconfig",
            str(tmp_path / "webhook.kubeconfig"),
            *world.aws.verify_flags(),
            "--sts-timeout",
            "2",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        port = 0
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline() if proc.stderr else ""
            if not line:
                break
            lines.append(line)
            doc = json.loads(line)
            if doc.get("msg") == "listening":
                port = int(doc["port"])
                break
        assert port, "".join(lines)
        assert any("server.somefuturekey" in line for line in lines), lines
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def test_server_command_serves_and_stops_gracefully_on_sigterm(
    server_process: tuple[subprocess.Popen[str], int], world: World, tmp_path: Path
) -> None:
    proc, port = server_process
    kubeconfig = yaml.safe_load((tmp_path / "webhook.kubeconfig").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == (
        f"https://127.0.0.1:{port}/authenticate"
    )
    # trust exactly what kube-apiserver would: the kubeconfig's certificate-authority-data
    ca_data = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(ca_data).decode("ascii"))
    token = mint(world.alice)

    async def slow_review_during_shutdown() -> tuple[int, dict[str, Any]]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
            url = f"https://127.0.0.1:{port}/authenticate"
            async with session.post(url, json=body) as resp:
                assert resp.status == 200
            # a review in flight when SIGTERM arrives still gets its answer
            world.aws.set_sts_fault("hang")
            # a token the server has not cached yet, so the review must call (hung) STS
            fresh = mint(world.alice, now=datetime.now(UTC) - timedelta(seconds=5))
            before = world.aws.sts_requests
            pending = asyncio.ensure_future(
                session.post(url, json={**body, "spec": {"token": fresh}})
            )
            await until(lambda: world.aws.sts_requests > before, what="the review's STS call")
            proc.send_signal(signal.SIGTERM)
            # The hung call stays hung (the front's hang ignores a later switch): no wait needed.
            world.aws.set_sts_fault(None)
            async with await pending as resp:
                return resp.status, await resp.json()

    status, body = asyncio.run(slow_review_during_shutdown())
    assert status == 403  # the hung STS call timed out (2 s), but the answer was delivered
    assert body["status"]["authenticated"] is False
    assert proc.wait(timeout=20) == 0
    rest = proc.stderr.read() if proc.stderr else ""
    assert "stopped" in rest
    assert token not in rest
    assert token[11:60] not in rest


# --- start-up and readiness -------------------------------------------------------------------


async def test_invalid_mapping_stops_start_up(world: World, state_dir: Path) -> None:
    from kubeiam.errors import MappingError

    config = base_config(world, state_dir, map_roles=({"rolearn": "not-an-arn", "username": "x"},))
    with pytest.raises(MappingError, match="not-an-arn"):
        await start_server(config)


async def test_readyz_waits_for_the_dynamic_file(
    world: World, state_dir: Path, server_aws_env: None, tmp_path: Path
) -> None:
    from kubeiam.server.config import BackendMode

    mapping = tmp_path / "mapping.json"
    config = base_config(
        world,
        state_dir,
        backend_mode=(BackendMode.DYNAMIC_FILE, BackendMode.MOUNTED_FILE),
        dynamic_file_path=mapping,
    )
    server = await start_server(config)
    client = ReviewClient(server)
    try:
        assert (await client.get("/readyz"))[0] == 503
        bob = f"arn:aws:iam::{world.aws.account_id}:user/srv-bob"
        mapping.write_text(
            json.dumps({"mapUsers": [{"userarn": bob, "username": "bob", "groups": []}]})
        )
        for _ in range(50):  # the backend polls the file about once a second
            if (await client.get("/readyz"))[0] == 200:
                break
            await asyncio.sleep(0.1)
        assert await client.get("/readyz") == (200, "ok")
        status, body = await client.review(mint(world.bob))
        assert status == 200
        assert body["status"]["user"]["username"] == "bob"
        _, metrics = await client.get("/metrics")
        assert 'kubeiam_backend_ready{backend="DynamicFile"} 1.0' in metrics
    finally:
        await client.close()
        await server.stop()
