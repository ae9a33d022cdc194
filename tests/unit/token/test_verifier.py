"""Token -> identity through the Verifier, its sync helper and `kubeiam verify`, against a fake
STS on loopback. The end-to-end runs with real signatures live in tests/integration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import trustme
from click.testing import CliRunner, Result
from fake_sts import (
    CLUSTER_ID,
    HOST,
    FakeSTS,
    answer,
    caller_json,
    fake_sts_in_thread,
    json_error,
)
from token_factory import AKID, NOW, SESSION_TOKEN, SIGNATURE, build_token

from kubeiam.arn import PrincipalKind
from kubeiam.cli.verify import verify_command
from kubeiam.errors import (
    ConfigError,
    STSError,
    STSThrottledError,
    TokenExpiredError,
    TokenFormatError,
)
from kubeiam.identity import Identity
from kubeiam.token.sts import STSClient
from kubeiam.token.verifier import Verifier, verify_token_sync

ACCOUNT = "111122223333"
EXPIRES_AT = (NOW + timedelta(minutes=15)).timestamp()


def verifier_for(sts: STSClient) -> Verifier:
    return Verifier(CLUSTER_ID, sts=sts, clock=lambda: NOW)


# --- the ARN table, end to end ----------------------------------------------------------------

ROWS = [
    pytest.param(
        f"arn:aws:iam::{ACCOUNT}:user/alice", "AIDAEXAMPLEALICE0001",
        (PrincipalKind.USER, f"arn:aws:iam::{ACCOUNT}:user/alice", "AIDAEXAMPLEALICE0001", ""),
        id="user",
    ),
    pytest.param(
        f"arn:aws:iam::{ACCOUNT}:user/team/ops/bob", "AIDAEXAMPLEBOB000001",
        (PrincipalKind.USER, f"arn:aws:iam::{ACCOUNT}:user/team/ops/bob",
         "AIDAEXAMPLEBOB000001", ""),
        id="user-with-path",
    ),
    pytest.param(
        f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT,
        (PrincipalKind.ROOT, f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, ""),
        id="root",
    ),
    pytest.param(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice@example.com",
        "AROAEXAMPLEADMIN0001:alice@example.com",
        (PrincipalKind.ASSUMED_ROLE, f"arn:aws:iam::{ACCOUNT}:role/Admin",
         "AROAEXAMPLEADMIN0001", "alice@example.com"),
        id="assumed-role",
    ),
    pytest.param(
        f"arn:aws:sts::{ACCOUNT}:federated-user/carol", f"{ACCOUNT}:carol",
        (PrincipalKind.FEDERATED_USER, f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
         f"{ACCOUNT}:carol", ""),
        id="federated-user-keeps-account-and-name",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("arn", "user_id", "expected"), ROWS)
async def test_identity_rows(
    fake_sts: FakeSTS,
    ca_bundle: str,
    arn: str,
    user_id: str,
    expected: tuple[PrincipalKind, str, str, str],
) -> None:
    fake_sts.handler = answer(200, caller_json(arn, ACCOUNT, user_id))
    async with STSClient(resolve=fake_sts.resolve(), ca_bundle=ca_bundle) as sts:
        identity = await verifier_for(sts).verify(build_token())
    kind, canonical, uid, session = expected
    assert identity == Identity(
        arn=arn,
        canonical_arn=canonical,
        account_id=ACCOUNT,
        user_id=uid,
        session_name=session,
        access_key_id=AKID,
        kind=kind,
        partition="aws",
        principal_id=user_id,
        expires_at=EXPIRES_AT,
    )
    assert identity.uid == f"aws-iam-authenticator:{ACCOUNT}:{uid}"
    assert fake_sts.requests[0].headers["x-k8s-aws-id"] == CLUSTER_ID


REFUSED = [
    pytest.param(f"arn:aws:sts::{ACCOUNT}:assumed-role/aws:ec2-instance/i-0123456789abcdef0",
                 "AROAEXAMPLE:i-0123456789abcdef0", "does not accept", id="ec2-instance-session"),
    pytest.param(f"arn:aws:sts::{ACCOUNT}:federated-user/carol", ACCOUNT, "Account:Name",
                 id="federated-userid-collapsed-to-account"),
    pytest.param(f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice", "AROAEXAMPLE",
                 "ROLEID:SessionName", id="assumed-role-without-session-in-userid"),
    pytest.param(f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice", "AROAEXAMPLE:mallory",
                 "ROLEID:SessionName", id="assumed-role-other-session"),
    pytest.param(f"arn:aws:iam::{ACCOUNT}:user/alice", ACCOUNT, "equals the account id",
                 id="user-with-roots-userid"),
    pytest.param("arn:aws:iam::999999999999:user/alice", "AIDAEXAMPLE", "differs from Account",
                 id="arn-account-differs"),
    pytest.param(f"arn:aws-cn:iam::{ACCOUNT}:user/alice", "AIDAEXAMPLE", "partition aws-cn",
                 id="other-partition"),
    pytest.param(f"arn:aws:iam::{ACCOUNT}:role/Admin", "AROAEXAMPLE", "does not accept",
                 id="role-arn-not-a-caller"),
]  # fmt: skip


@pytest.mark.parametrize(("arn", "user_id", "fragment"), REFUSED)
async def test_refused_answers(
    fake_sts: FakeSTS, ca_bundle: str, arn: str, user_id: str, fragment: str
) -> None:
    fake_sts.handler = answer(200, caller_json(arn, ACCOUNT, user_id))
    async with STSClient(resolve=fake_sts.resolve(), ca_bundle=ca_bundle) as sts:
        with pytest.raises(STSError, match=fragment):
            await verifier_for(sts).verify(build_token())


# --- nothing reaches STS unless every rule passed ---------------------------------------------

BEFORE_NETWORK = [
    pytest.param(build_token("sts.amazonaws.com.evil"), TokenFormatError, id="host-suffix"),
    pytest.param(build_token(X_Amz_SignedHeaders="host"), TokenFormatError, id="unbound"),
    pytest.param("k8s-aws-v1.", TokenFormatError, id="empty"),
    pytest.param(build_token(date="20261123T140000Z"), TokenExpiredError, id="expired"),
]


@pytest.mark.parametrize(("token", "error"), BEFORE_NETWORK)
async def test_format_errors_make_no_network_call(
    fake_sts: FakeSTS, ca_bundle: str, token: str, error: type[Exception]
) -> None:
    fake_sts.handler = answer(200, caller_json(f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, ACCOUNT))
    async with STSClient(resolve=fake_sts.resolve(), ca_bundle=ca_bundle) as sts:
        with pytest.raises(error):
            await verifier_for(sts).verify(token)
    assert fake_sts.requests == []


async def test_clock_is_read_on_every_verify(fake_sts: FakeSTS, ca_bundle: str) -> None:
    fake_sts.handler = answer(200, caller_json(f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, ACCOUNT))
    times = iter([NOW, NOW + timedelta(minutes=16)])
    async with STSClient(resolve=fake_sts.resolve(), ca_bundle=ca_bundle) as sts:
        verifier = Verifier(CLUSTER_ID, sts=sts, clock=lambda: next(times))
        await verifier.verify(build_token())
        with pytest.raises(TokenExpiredError):
            await verifier.verify(build_token())
    assert len(fake_sts.requests) == 1


@pytest.mark.parametrize(
    "cluster_id",
    ["", " padded", "line\nbreak", "tab\there", "é", "x" * 256],
    ids=["empty", "leading-space", "newline", "tab", "non-ascii", "too-long"],
)
def test_cluster_id_must_be_a_safe_header_value(cluster_id: str) -> None:
    with pytest.raises(ConfigError, match="cluster id"):
        Verifier(cluster_id, sts=STSClient())


def test_unknown_partition_is_refused_at_construction() -> None:
    with pytest.raises(ConfigError, match="partition"):
        Verifier(CLUSTER_ID, partition="aws-moon", sts=STSClient())


# --- the sync helper and the CLI (the fake runs in its own thread) ---------------------------


@pytest.fixture
def threaded_sts(ca: trustme.CA) -> Iterator[FakeSTS]:
    with fake_sts_in_thread(ca) as state:
        yield state


ASSUMED = caller_json(
    f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice", ACCOUNT, "AROAEXAMPLEADMIN0001:alice"
)


def test_verify_token_sync(threaded_sts: FakeSTS, ca_bundle: str) -> None:
    threaded_sts.handler = answer(200, ASSUMED)
    identity = verify_token_sync(
        build_token(session_token=SESSION_TOKEN),
        cluster_id=CLUSTER_ID,
        resolve=threaded_sts.resolve(),
        ca_bundle=ca_bundle,
        clock=lambda: NOW,
    )
    assert (identity.canonical_arn, identity.session_name) == (
        f"arn:aws:iam::{ACCOUNT}:role/Admin",
        "alice",
    )


def fresh_token(**kwargs: str) -> str:
    """A token signed "now" (the CLI reads the real clock)."""
    from datetime import UTC

    date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return build_token(date=date, **kwargs)


def run_cli(
    args: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None
) -> Result:
    return CliRunner(env=env).invoke(verify_command, args, input=stdin, catch_exceptions=False)


def test_cli_json_output(threaded_sts: FakeSTS, ca_bundle: str) -> None:
    threaded_sts.handler = answer(200, ASSUMED)
    token = fresh_token()
    resolve = f"{HOST}=127.0.0.1:{threaded_sts.port}"
    result = run_cli(
        ["-i", CLUSTER_ID, "-t", token, "-o", "json", "--sts-resolve", resolve,
         "--sts-ca-bundle", ca_bundle],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice"
    assert doc["canonicalArn"] == f"arn:aws:iam::{ACCOUNT}:role/Admin"
    assert doc["accountId"] == ACCOUNT
    assert doc["userId"] == "AROAEXAMPLEADMIN0001"
    assert doc["sessionName"] == "alice"
    assert doc["accessKeyId"] == AKID
    assert doc["principalId"] == "AROAEXAMPLEADMIN0001:alice"
    assert doc["kind"] == "assumed-role"
    assert doc["uid"] == f"aws-iam-authenticator:{ACCOUNT}:AROAEXAMPLEADMIN0001"
    assert datetime.strptime(doc["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")
    assert token not in result.output


def test_cli_text_output_token_from_stdin_and_resolve_from_env(
    threaded_sts: FakeSTS, ca_bundle: str
) -> None:
    threaded_sts.handler = answer(200, ASSUMED)
    result = run_cli(
        ["-i", CLUSTER_ID, "-t", "-", "--sts-ca-bundle", ca_bundle],
        stdin=fresh_token() + "\n",
        env={"KUBEIAM_STS_RESOLVE": f"{HOST}=127.0.0.1:{threaded_sts.port}"},
    )
    assert result.exit_code == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert lines["canonicalArn"].strip() == f"arn:aws:iam::{ACCOUNT}:role/Admin"
    assert lines["sessionName"].strip() == "alice"


@pytest.mark.parametrize(
    ("handler_body", "status", "exit_code", "fragment"),
    [
        pytest.param(json_error("SignatureDoesNotMatch"), 403, 1, "SignatureDoesNotMatch",
                     id="signature"),
        pytest.param(json_error("Throttling"), 400, 1, "throttled", id="throttled"),
    ],
)  # fmt: skip
def test_cli_sts_errors_exit_non_zero_without_secrets(
    threaded_sts: FakeSTS,
    ca_bundle: str,
    handler_body: bytes,
    status: int,
    exit_code: int,
    fragment: str,
) -> None:
    threaded_sts.handler = answer(status, handler_body)
    token = fresh_token(session_token=SESSION_TOKEN)
    result = run_cli(
        ["-i", CLUSTER_ID, "-t", token, "--sts-resolve", f"{HOST}=127.0.0.1:{threaded_sts.port}",
         "--sts-ca-bundle", ca_bundle],
    )  # fmt: skip
    assert result.exit_code == exit_code
    assert fragment in result.stderr
    assert result.stdout == ""
    for secret in (token, SIGNATURE, SESSION_TOKEN, "X-Amz-Signature"):
        assert secret not in result.output


def test_sync_helper_raises_throttled_error(threaded_sts: FakeSTS, ca_bundle: str) -> None:
    threaded_sts.handler = answer(429, b"")
    with pytest.raises(STSThrottledError):
        verify_token_sync(
            fresh_token(),
            cluster_id=CLUSTER_ID,
            resolve=threaded_sts.resolve(),
            ca_bundle=ca_bundle,
        )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--sts-resolve", "sts.amazonaws.com.evil=127.0.0.1:1"], "not an STS host"),
        (["--sts-resolve", f"{HOST}=127.0.0.1"], "ADDR:PORT"),
        (["--sts-allowed-host", "not-a-pair"], "HOST=REGION"),
        (["--partition", "aws-cn", "--sts-resolve", f"{HOST}=127.0.0.1:1"], "partition aws-cn"),
    ],
    ids=["resolve-non-sts-host", "resolve-no-port", "allowed-host-malformed", "resolve-partition"],
)
def test_cli_config_errors_exit_2(args: list[str], fragment: str) -> None:
    result = run_cli(["-i", CLUSTER_ID, "-t", build_token(), *args])
    assert result.exit_code == 2
    assert fragment in result.stderr


def test_cli_format_error_exits_1_before_any_network(threaded_sts: FakeSTS) -> None:
    token = build_token("s3.amazonaws.com")
    result = run_cli(["-i", CLUSTER_ID, "-t", token])
    assert result.exit_code == 1
    assert "not an STS endpoint" in result.stderr
    assert token not in result.stderr
    assert threaded_sts.requests == []


def test_cli_empty_stdin_is_a_config_error() -> None:
    result = run_cli(["-i", CLUSTER_ID, "-t", "-"], stdin="")
    assert result.exit_code == 2
    assert "no token on standard input" in result.stderr
