"""`kubeiam token` then `kubeiam verify`, as real processes, against the local AWS environment.

The token process reaches moto (AssumeRole) through AWS_ENDPOINT_URL_STS and signs for the real
STS host name; the verify process sends that host to the STS front with --sts-resolve and trusts
the test CA with --sts-ca-bundle, so every production check runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubeiam.localaws import LocalAWS
from kubeiam.token.encoding import decode_token, encode_token
from support.cli import exec_credential_token, run_kubeiam
from support.tokens import Creds, mint

CLUSTER = "kubeiam-integration"


def run_token(
    aws: LocalAWS, credentials: dict[str, str], *args: str, cluster: str = CLUSTER
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **aws.client_env(), **credentials}
    return run_kubeiam("token", "-i", cluster, *args, env=env)


def cli_token(
    aws: LocalAWS, credentials: dict[str, str], *args: str, cluster: str = CLUSTER
) -> str:
    """The token inside the ExecCredential `kubeiam token` prints."""
    return exec_credential_token(run_token(aws, credentials, *args, cluster=cluster))


def run_verify(
    aws: LocalAWS, token: str, *extra: str, cluster: str = CLUSTER
) -> subprocess.CompletedProcess[str]:
    return run_kubeiam(
        "verify", "-i", cluster, "-t", token, *aws.verify_flags(), "-o", "json", *extra
    )


def env_keys(keys: tuple[str, str]) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": keys[0], "AWS_SECRET_ACCESS_KEY": keys[1]}


def signature_of(token: str) -> str:
    return decode_token(token).rpartition("X-Amz-Signature=")[2]


def assert_refused(done: subprocess.CompletedProcess[str], token: str, *fragments: str) -> None:
    """Non-zero exit, nothing on stdout, a message naming the problem, no secret echoed."""
    assert done.returncode != 0
    assert done.stdout == ""
    message = done.stderr.lower()
    assert message.startswith("kubeiam: error:")
    for fragment in fragments:
        assert fragment.lower() in message, done.stderr
    assert token not in done.stderr
    assert signature_of(token) not in done.stderr


@pytest.fixture(scope="module")
def carol(local_aws: LocalAWS) -> tuple[str, str]:
    """An IAM user created in moto, with an access key."""
    return local_aws.create_user("it-carol")


@pytest.fixture(scope="module")
def deploy_role(local_aws: LocalAWS, carol: tuple[str, str]) -> str:
    """A role carol may assume only with external id ``it-ext-1``."""
    return local_aws.create_role(
        "it-deploy",
        trusted=local_aws.user_arn("it-carol"),
        external_id="it-ext-1",
        grant_to_user="it-carol",
    )


def test_environment_keys_of_an_iam_user(local_aws: LocalAWS, carol: tuple[str, str]) -> None:
    token = cli_token(local_aws, env_keys(carol))
    before = local_aws.sts_requests
    done = run_verify(local_aws, token)
    assert done.returncode == 0, done.stderr
    identity = json.loads(done.stdout)
    assert identity["arn"] == local_aws.user_arn("it-carol")
    assert identity["canonicalArn"] == local_aws.user_arn("it-carol")
    assert identity["accountId"] == local_aws.account_id
    assert identity["accessKeyId"] == carol[0]
    assert identity["sessionName"] == ""
    user_id = local_aws.boto3_client("iam").get_user(UserName="it-carol")["User"]["UserId"]
    assert identity["userId"] == user_id
    assert local_aws.sts_requests == before + 1  # exactly one STS call per verification
    assert token not in done.stdout + done.stderr


def test_shared_credentials_profile_of_an_iam_user(local_aws: LocalAWS, tmp_path: Path) -> None:
    keys = local_aws.create_user("it-dave")
    credentials = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text(
        f"[it-dave]\naws_access_key_id = {keys[0]}\naws_secret_access_key = {keys[1]}\n"
    )
    token = cli_token(local_aws, {}, "--profile", "it-dave")
    done = run_verify(local_aws, token)
    assert done.returncode == 0, done.stderr
    identity = json.loads(done.stdout)
    assert identity["arn"] == local_aws.user_arn("it-dave")
    assert identity["accessKeyId"] == keys[0]


def test_assumed_role_with_session_name_and_external_id(
    local_aws: LocalAWS, carol: tuple[str, str], deploy_role: str
) -> None:
    token = cli_token(
        local_aws, env_keys(carol), "-r", deploy_role, "-s", "carol-session", "-e", "it-ext-1"
    )
    done = run_verify(local_aws, token)
    assert done.returncode == 0, done.stderr
    identity = json.loads(done.stdout)
    account = local_aws.account_id
    assert identity["arn"] == f"arn:aws:sts::{account}:assumed-role/it-deploy/carol-session"
    assert identity["canonicalArn"] == f"arn:aws:iam::{account}:role/it-deploy"
    assert identity["sessionName"] == "carol-session"
    role_id = local_aws.boto3_client("iam").get_role(RoleName="it-deploy")["Role"]["RoleId"]
    assert identity["userId"] == role_id
    assert identity["principalId"] == f"{role_id}:carol-session"
    assert identity["accessKeyId"].startswith("ASIA")  # signed with the session's keys
    assert identity["accessKeyId"] != carol[0]


def test_external_id_mismatch_is_refused(
    local_aws: LocalAWS, carol: tuple[str, str], deploy_role: str
) -> None:
    done = run_token(local_aws, env_keys(carol), "-r", deploy_role, "-e", "not-the-id")
    assert done.returncode == 3  # CredentialsError
    assert done.stdout == ""
    assert "AccessDenied" in done.stderr
    assert "it-deploy" in done.stderr
    assert carol[1] not in done.stderr


def test_token_from_stdin(local_aws: LocalAWS, carol: tuple[str, str]) -> None:
    done = run_token(local_aws, env_keys(carol), "--token-only")
    assert done.returncode == 0, done.stderr
    verified = run_kubeiam(
        *("verify", "-i", CLUSTER, "-t", "-", *local_aws.verify_flags(), "-o", "json"),
        input=done.stdout,
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["arn"] == local_aws.user_arn("it-carol")


def test_expired_token(local_aws: LocalAWS, carol: tuple[str, str]) -> None:
    # Minted with a fixed clock 20 minutes ago: past STS's 15-minute window.
    token = mint(Creds(*carol), cluster=CLUSTER, now=datetime.now(UTC) - timedelta(minutes=20))
    before = local_aws.sts_requests
    done = run_verify(local_aws, token)
    assert_refused(done, token, "expired")
    assert local_aws.sts_requests == before  # refused before any network call


def test_token_for_another_cluster(local_aws: LocalAWS, carol: tuple[str, str]) -> None:
    token = cli_token(local_aws, env_keys(carol), cluster="some-other-cluster")
    before = local_aws.sts_requests
    done = run_verify(local_aws, token)
    assert_refused(done, token, "SignatureDoesNotMatch", "cluster")
    assert local_aws.sts_requests == before + 1  # STS (the front) judged the signature


def test_tampered_signature(local_aws: LocalAWS, carol: tuple[str, str]) -> None:
    token = cli_token(local_aws, env_keys(carol))
    url = decode_token(token)
    head, _, signature = url.rpartition("X-Amz-Signature=")
    flipped = ("a" if signature[0] != "a" else "b") + signature[1:]
    tampered = encode_token(head + "X-Amz-Signature=" + flipped)
    done = run_verify(local_aws, tampered)
    assert_refused(done, tampered, "SignatureDoesNotMatch")


def test_tampered_body_is_refused_locally(local_aws: LocalAWS, carol: tuple[str, str]) -> None:
    token = cli_token(local_aws, env_keys(carol))
    padded = token + "=="  # base64 padding is outside the strict alphabet
    before = local_aws.sts_requests
    done = run_verify(local_aws, padded)
    assert done.returncode != 0
    assert "base64" in done.stderr.lower() or "padding" in done.stderr.lower(), done.stderr
    assert local_aws.sts_requests == before


FAULTS = [
    ("throttle", ("throttled",)),
    ("error500", ("HTTP 500", "InternalFailure")),
    ("redirect", ("redirect", "never followed")),
]


@pytest.mark.parametrize(("fault", "fragments"), FAULTS, ids=[f[0] for f in FAULTS])
def test_sts_faults(
    local_aws: LocalAWS, carol: tuple[str, str], fault: str, fragments: tuple[str, ...]
) -> None:
    token = cli_token(local_aws, env_keys(carol))
    local_aws.set_sts_fault(fault)
    before, hits = local_aws.sts_requests, local_aws.redirect_hits
    done = run_verify(local_aws, token)
    assert_refused(done, token, *fragments)
    assert local_aws.sts_requests == before + 1  # one attempt, no retry storm
    assert local_aws.redirect_hits == hits  # a redirect is never followed to plain http


def test_throttling_is_its_own_error(local_aws: LocalAWS, carol: tuple[str, str]) -> None:
    """The verifier tells throttling (webhook: 429) from a refusal, through `kubeiam verify`."""
    token = cli_token(local_aws, env_keys(carol))
    with local_aws.sts_fault_active("throttle"):
        throttled = run_verify(local_aws, token)
    refused = run_verify(local_aws, token, cluster="another-cluster")
    assert throttled.returncode != 0
    assert refused.returncode != 0
    assert "throttl" in throttled.stderr.lower()
    assert "throttl" not in refused.stderr.lower()


def test_hanging_sts_times_out(local_aws: LocalAWS, carol: tuple[str, str]) -> None:
    token = cli_token(local_aws, env_keys(carol))
    local_aws.set_sts_fault("hang")
    started = time.monotonic()
    done = run_verify(local_aws, token, "--sts-timeout", "2")
    elapsed = time.monotonic() - started
    assert_refused(done, token, "did not answer within 2 s")
    assert elapsed < 20  # process start-up + the 2 s timeout, far below the front's hang limit


def test_recovers_after_a_fault(local_aws: LocalAWS, carol: tuple[str, str]) -> None:
    token = cli_token(local_aws, env_keys(carol))
    with local_aws.sts_fault_active("error500"):
        assert run_verify(local_aws, token).returncode != 0
    done = run_verify(local_aws, token)
    assert done.returncode == 0, done.stderr
    identity: dict[str, Any] = json.loads(done.stdout)
    assert identity["arn"] == local_aws.user_arn("it-carol")


HOST_FORMS = [
    ("global", {"AWS_STS_REGIONAL_ENDPOINTS": "legacy"}, "sts.amazonaws.com"),
    ("fips", {"AWS_USE_FIPS_ENDPOINT": "true"}, "sts-fips.us-east-1.amazonaws.com"),
    ("dualstack", {"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "sts.us-east-1.api.aws"),
    (
        "regional",
        {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"},
        "sts.eu-west-1.amazonaws.com",
    ),
]


@pytest.mark.parametrize(
    ("settings", "host"), [h[1:] for h in HOST_FORMS], ids=[h[0] for h in HOST_FORMS]
)
def test_sts_host_forms(
    local_aws: LocalAWS, carol: tuple[str, str], settings: dict[str, str], host: str
) -> None:
    token = cli_token(local_aws, {**env_keys(carol), **settings})
    assert decode_token(token).startswith(f"https://{host}/?")
    done = run_kubeiam(
        "verify", "-i", CLUSTER, "-t", token, *local_aws.verify_flags(host), "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["arn"] == local_aws.user_arn("it-carol")
