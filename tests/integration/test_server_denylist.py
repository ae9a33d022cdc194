"""The deny list over real HTTPS with real tokens (local AWS: moto and the STS front), and
``denyListFile`` changed under a running server: refusals apply without a restart, also to
identities already in the identity cache."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubeiam.localaws.environment import LocalAWS
from kubeiam.server.config import ServerConfig
from kubeiam.server.denylist import parse_deny_list
from kubeiam.server.run import RunningServer, start_server
from support.metrics import sample_sum
from support.review import ReviewClient
from support.tokens import Creds, assume, minter
from support.waiting import until

CLUSTER = "deny-cluster"
mint = minter(CLUSTER)


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
) -> AsyncIterator[tuple[RunningServer, ReviewClient, Path]]:
    deny_file = tmp_path / "deny.yaml"
    server = await start_server(config(people, tmp_path / "state", deny_list_file=deny_file))
    server.deny_list.poll_interval = 0.1
    client = ReviewClient(server)
    yield server, client, deny_file
    await client.close()
    await server.stop()


async def test_file_updates_refuse_and_release_without_restart(
    served: tuple[RunningServer, ReviewClient, Path],
    people: People,
    caplog: pytest.LogCaptureFixture,
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
    await until(role_refused, interval=0.05)
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

    await until(joe_back, interval=0.05)
    assert (await client.review(jane))[0] == 403

    deny_file.unlink()  # incident over

    async def jane_back() -> bool:
        return (await client.review(mint(people.jane)))[0] == 200

    await until(jane_back, interval=0.05)
    text = await client.metrics()
    assert sample_sum(text, "kubeiam_deny_list_refusals_total", list="roleARNs") >= 2
    assert sample_sum(text, "kubeiam_deny_list_refusals_total", list="accessKeyIDs") >= 1
    assert sample_sum(text, "kubeiam_deny_list_entries") == 0


async def test_signed_before_refuses_older_tokens_only(people: People, tmp_path: Path) -> None:
    cutoff = datetime.now(UTC) - timedelta(minutes=5)
    deny = parse_deny_list({"sessionNames": [{"name": "jane", "signedBefore": cutoff.isoformat()}]})
    server = await start_server(config(people, tmp_path / "state", deny_list=deny))
    client = ReviewClient(server)
    try:
        old = mint(people.jane, now=cutoff - timedelta(minutes=2))  # still valid: 7 min old
        assert (await client.review(old))[0] == 403
        assert (await client.review(mint(people.jane)))[0] == 200
        assert (await client.review(mint(people.joe, now=cutoff - timedelta(minutes=2))))[0] == 200
    finally:
        await client.close()
        await server.stop()
