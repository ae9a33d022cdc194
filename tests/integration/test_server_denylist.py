"""The deny list over real HTTPS with real tokens (local AWS: moto and the STS front), and
``denyListFile`` changed under a running server: refusals apply without a restart, also to
identities already in the identity cache."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kubeiam.localaws.environment import LocalAWS
from kubeiam.partitions import sts_host_for_region
from kubeiam.server.config import ServerConfig
from kubeiam.server.denylist import parse_deny_list
from kubeiam.server.run import RunningServer, start_server
from kubeiam.token.encoding import encode_token
from kubeiam.token.presign import presign_get_caller_identity

CLUSTER = "deny-cluster"


@dataclass(frozen=True)
class Creds:
    key_id: str
    secret: str
    session_token: str | None = None


def mint(creds: Creds, *, now: datetime | None = None) -> str:
    url = presign_get_caller_identity(
        access_key_id=creds.key_id,
        secret_access_key=creds.secret,
        session_token=creds.session_token,
        region="us-east-1",
        host=sts_host_for_region("us-east-1"),
        cluster_id=CLUSTER,
        now=now or datetime.now(UTC),
    )
    return encode_token(url)


def assume(aws: LocalAWS, user: Creds, role_arn: str, session: str) -> Creds:
    sts = aws.boto3_client("sts", credentials=(user.key_id, user.secret))
    c = sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
    return Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


class Client:
    def __init__(self, server: RunningServer) -> None:
        ctx = ssl.create_default_context(cafile=str(server.keypair.cert_path))
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
        self.base = server.url.removesuffix("/authenticate")

    async def review(self, token: str) -> tuple[int, dict[str, Any]]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        async with self.session.post(self.base + "/authenticate", json=body) as resp:
            return resp.status, await resp.json()

    async def metrics(self) -> str:
        async with self.session.get(self.base + "/metrics") as resp:
            return await resp.text()

    async def close(self) -> None:
        await self.session.close()


def metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


class People:
    def __init__(self, aws: LocalAWS) -> None:
        self.aws = aws
        self.alice = Creds(*aws.create_user("deny-alice"))
        carol = Creds(*aws.create_user("deny-carol"))
        self.role_arn = aws.create_role(
            "DenyAdmin",
            trusted=aws.user_arn("deny-carol"),
            path="/ops/",
            grant_to_user="deny-carol",
        )
        self.jane = assume(aws, carol, self.role_arn, "jane")
        self.joe = assume(aws, carol, self.role_arn, "joe")


@pytest.fixture(scope="module")
def people(local_aws: LocalAWS) -> People:
    return People(local_aws)


def config(people: People, state_dir: Path, **changes: object) -> ServerConfig:
    aws = people.aws
    return ServerConfig(
        cluster_id=CLUSTER,
        port=0,
        state_dir=state_dir,
        map_roles=({"rolearn": people.role_arn, "username": "ops:{{SessionName}}"},),
        map_users=(
            {"userarn": f"arn:aws:iam::{aws.account_id}:user/deny-alice", "username": "alice"},
        ),
        sts_resolve=(aws.sts_resolve(),),
        sts_ca_bundle=aws.ca_bundle,
        sts_timeout=2.0,
        shutdown_timeout=2.0,
    ).replace(**changes)


@pytest.fixture
async def served(
    people: People, tmp_path: Path
) -> AsyncIterator[tuple[RunningServer, Client, Path]]:
    deny_file = tmp_path / "deny.yaml"
    server = await start_server(config(people, tmp_path / "state", deny_list_file=deny_file))
    server.deny_list.poll_interval = 0.1
    client = Client(server)
    yield server, client, deny_file
    await client.close()
    await server.stop()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_file_updates_refuse_and_release_without_restart(
    served: tuple[RunningServer, Client, Path], people: People, caplog: pytest.LogCaptureFixture
) -> None:
    _, client, deny_file = served
    jane, joe, alice = mint(people.jane), mint(people.joe), mint(people.alice)
    for token in (jane, joe, alice):  # all in, and now in the identity cache
        assert (await client.review(token))[0] == 200

    # incident: every session of the role, by its ARN as written in IAM (with its path)
    deny_file.write_text(f"roleARNs: [{people.role_arn}]\n")

    async def role_refused() -> bool:
        return (await client.review(jane))[0] == 403

    caplog.set_level(logging.INFO, logger="kubeiam.server.review")
    await until(role_refused)
    status, body = await client.review(joe)
    assert status == 403
    assert body["status"]["error"] == "this AWS principal is refused by the webhook's deny list"
    assert (await client.review(alice))[0] == 200
    lines = [r.review for r in caplog.records if getattr(r, "review", {}).get("deny_rule")]  # type: ignore[attr-defined]
    assert lines
    assert lines[-1]["deny_rule"] == f"roleARNs {people.role_arn}"
    assert lines[-1]["status"] == 403

    # narrower: only jane's stolen session credentials, by access key id
    deny_file.write_text(f"accessKeyIDs: [{people.jane.key_id}]\n")

    async def joe_back() -> bool:
        return (await client.review(joe))[0] == 200

    await until(joe_back)
    assert (await client.review(jane))[0] == 403

    deny_file.unlink()  # incident over

    async def jane_back() -> bool:
        return (await client.review(mint(people.jane)))[0] == 200

    await until(jane_back)
    text = await client.metrics()
    assert metric(text, 'kubeiam_deny_list_refusals_total{list="roleARNs"}') >= 2
    assert metric(text, 'kubeiam_deny_list_refusals_total{list="accessKeyIDs"}') >= 1
    assert metric(text, "kubeiam_deny_list_entries") == 0


async def test_signed_before_refuses_older_tokens_only(people: People, tmp_path: Path) -> None:
    cutoff = datetime.now(UTC) - timedelta(minutes=5)
    deny = parse_deny_list({"sessionNames": [{"name": "jane", "signedBefore": cutoff.isoformat()}]})
    server = await start_server(config(people, tmp_path / "state", deny_list=deny))
    client = Client(server)
    try:
        old = mint(people.jane, now=cutoff - timedelta(minutes=2))  # still valid: 7 min old
        assert (await client.review(old))[0] == 403
        assert (await client.review(mint(people.jane)))[0] == 200
        assert (await client.review(mint(people.joe, now=cutoff - timedelta(minutes=2))))[0] == 200
    finally:
        await client.close()
        await server.stop()
