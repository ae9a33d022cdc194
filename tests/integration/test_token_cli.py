"""``kubeiam token`` as kubectl runs it: a real process, its stdout, stderr and exit code.

Covers the fast path's import hygiene (no botocore, boto3 or click on the hot paths), the cache
as seen from outside, racing processes, error exits, and the AssumeRole paths against moto
(kubeiam.localaws) that test_token_verify.py does not already cover.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from kubeiam.localaws import LocalAWS
from kubeiam.token.encoding import decode_token
from support.cli import KUBEIAM
from support.tokens import wait_for_next_signing_second

TIMEOUT = 60
KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE/session+token=="
#: Modules whose import would cost the hot path tens or hundreds of milliseconds.
HEAVY = (
    "botocore",
    "boto3",
    "click",
    "aiohttp",
    "dataclasses",
    "inspect",
    "logging",
    "typing",
    "re",
    "json",
    "datetime",
)


def run(
    *args: str, env: dict[str, str] | None = None, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, *python_flags, KUBEIAM, "token", *args]
        if python_flags
        else [
            KUBEIAM,
            "token",
            *args,
        ]
    )
    return subprocess.run(
        command,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def credential_of(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout)
    assert isinstance(parsed, dict)
    return parsed


def token_of(done: subprocess.CompletedProcess[str]) -> str:
    status = credential_of(done)["status"]
    assert isinstance(status, dict)
    token = status["token"]
    assert isinstance(token, str)
    return token


def query_of(token: str) -> dict[str, str]:
    url = decode_token(token)
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def imported_modules(importtime_stderr: str) -> set[str]:
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


# -- output --------------------------------------------------------------------------------------


def test_env_keys_print_an_exec_credential() -> None:
    before = int(time.time())
    done = run("-i", "demo", "--region", "eu-west-1", env=KEYS)
    credential = credential_of(done)
    assert credential["kind"] == "ExecCredential"
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert credential["spec"] == {}
    status = credential["status"]
    assert isinstance(status, dict)
    url = decode_token(status["token"])
    assert url.startswith("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&")
    query = query_of(status["token"])
    assert query["X-Amz-Credential"].startswith("AKIAIOSFODNN7EXAMPLE/")
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    expires = time.mktime(time.strptime(status["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    expires -= time.timezone
    assert before + 14 * 60 - 1 <= expires <= time.time() + 14 * 60
    assert done.stderr == ""
    assert done.stdout.endswith("\n")
    assert done.stdout.count("\n") == 1


@pytest.mark.parametrize(
    ("exec_info", "version", "warns"),
    [
        (
            '{"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}',
            "v1",
            False,
        ),
        ('{"apiVersion":"client.authentication.k8s.io/v1beta1"}', "v1beta1", False),
        ('{"apiVersion":"client.authentication.k8s.io/v1alpha1"}', "v1beta1", True),
        ("not json", "v1beta1", True),
    ],
    ids=["v1", "v1beta1", "v1alpha1", "garbage"],
)
def test_api_version_follows_kubernetes_exec_info(
    exec_info: str, version: str, warns: bool
) -> None:
    done = run("-i", "demo", env={**KEYS, "KUBERNETES_EXEC_INFO": exec_info})
    assert credential_of(done)["apiVersion"] == f"client.authentication.k8s.io/{version}"
    assert (done.stderr.startswith("kubeiam: warning:")) is warns


def test_token_only_prints_the_bare_token() -> None:
    done = run("-i", "demo", "--token-only", "--no-cache", env=KEYS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("k8s-aws-v1.")
    assert done.stdout.strip().count("\n") == 0
    assert decode_token(done.stdout.strip()).startswith("https://sts.amazonaws.com/")


def test_cluster_id_from_the_environment_and_flag_forms() -> None:
    env = {**KEYS, "KUBEIAM_CLUSTER_ID": "from-env"}
    assert token_of(run("--no-cache", env=env))
    for args in (["--cluster-id=demo"], ["-idemo"], ["--cluster-id", "demo"]):
        assert token_of(run(*args, "--no-cache", env=KEYS))


def test_session_token_and_expiry_clamp() -> None:
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300))
    env = {**KEYS, "AWS_SESSION_TOKEN": SESSION_TOKEN, "AWS_CREDENTIAL_EXPIRATION": soon}
    done = run("-i", "demo", "--no-cache", env=env)
    status = credential_of(done)["status"]
    assert isinstance(status, dict)
    # Never later than the signing credentials' own expiry.
    assert status["expirationTimestamp"] == soon
    assert query_of(status["token"])["X-Amz-Security-Token"] == SESSION_TOKEN


# -- errors --------------------------------------------------------------------------------------


def assert_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("kubeiam: error:")
    assert "fix:" in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr
    for secret in (KEYS["AWS_SECRET_ACCESS_KEY"], SESSION_TOKEN):
        assert secret not in done.stderr


def test_missing_cluster_id() -> None:
    assert_error(run(env=KEYS), 2, "no cluster id", "KUBEIAM_CLUSTER_ID")


def test_missing_credentials_without_network() -> None:
    # conftest: empty HOME, no config files, AWS_EC2_METADATA_DISABLED=true.
    assert_error(run("-i", "demo", "--no-cache"), 3, "no AWS credentials")


def test_credentials_about_to_expire_are_refused() -> None:
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 20))
    env = {**KEYS, "AWS_SESSION_TOKEN": SESSION_TOKEN, "AWS_CREDENTIAL_EXPIRATION": soon}
    assert_error(run("-i", "demo", "--no-cache", env=env), 3, "expire in")


@pytest.mark.parametrize(
    ("args", "env", "code", "fragment"),
    [
        (["-i", "demo", "--profile", "nope"], {}, 2, "'nope'"),
        (["-i", "demo", "--region", "US_WEST"], KEYS, 2, "not a region"),
        (["-i", "demo", "-s", "alice"], KEYS, 2, "need -r"),
        (
            ["-i", "demo", "-r", "arn:aws:iam::111122223333:role/x", "--duration", "5m"],
            KEYS,
            2,
            "duration",
        ),
        (["-i", "demo"], {"AWS_ACCESS_KEY_ID": "AKIAONLY"}, 3, "AWS_SECRET_ACCESS_KEY"),
        (["-i", "demo"], {**KEYS, "AWS_CREDENTIAL_EXPIRATION": "soon"}, 2, "ISO 8601"),
    ],
    ids=[
        "unknown-profile",
        "bad-region",
        "flag-needs-role",
        "short-duration",
        "partial-keys",
        "bad-expiry",
    ],
)
def test_error_exits(args: list[str], env: dict[str, str], code: int, fragment: str) -> None:
    assert_error(run(*args, env=env), code, fragment)


@pytest.mark.parametrize(
    "args",
    [
        ["-i", "demo", "--region", "US_WEST"],
        ["-i", "bad id"],
        ["-i", "demo", "-s", "alice"],
        ["-i", "demo", "-r", "arn:aws:iam::111122223333:role/x", "--duration", "5m"],
    ],
    ids=["bad-region", "bad-cluster-id", "flag-needs-role", "short-duration"],
)
def test_a_refused_request_creates_nothing_in_the_cache(args: list[str], tmp_path: Path) -> None:
    """The request's rules are checked before the cache is created or locked, whether they run
    before the lookup or, like the region's, only on a miss (a hit skips them)."""
    cache_dir = tmp_path / "cache"
    done = run(*args, env={**KEYS, "KUBEIAM_CACHE_DIR": str(cache_dir)})
    assert done.returncode == 2, done.stderr
    assert not cache_dir.exists()


def test_help_and_usage_errors_come_from_click() -> None:
    done = run("--help")
    assert done.returncode == 0
    for flag in (
        "--cluster-id",
        "--role",
        "--external-id",
        "--session-name",
        "--forward-session-name",
        "--region",
        "--profile",
        "--token-only",
        "--no-cache",
        "--duration",
    ):
        assert flag in done.stdout
    usage = run("-i", "demo", "--no-such-flag", env=KEYS)
    assert usage.returncode == 2
    assert "No such option" in usage.stderr
    assert usage.stdout == ""
    listing = subprocess.run(
        [KUBEIAM, "--help"], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert "token" in listing.stdout


# -- start-up hygiene ----------------------------------------------------------------------------


def test_fresh_token_from_env_keys_imports_nothing_heavy() -> None:
    done = run("-i", "demo", "--no-cache", env=KEYS, python_flags=("-X", "importtime"))
    assert done.returncode == 0
    loaded = imported_modules(done.stderr)
    assert "kubeiam" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_cache_hit_imports_nothing_heavy(tmp_path: Path) -> None:
    env = {**KEYS, "KUBEIAM_CACHE_DIR": str(tmp_path / "cache")}
    first = run("-i", "demo", env=env)
    assert first.returncode == 0
    done = run("-i", "demo", env=env, python_flags=("-X", "importtime"))
    assert done.returncode == 0
    loaded = imported_modules(done.stderr)
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    # A hit does not even load the presigner.
    assert "kubeiam.token.presign" not in done.stderr
    assert json.loads(done.stdout) == json.loads(first.stdout)


# -- the cache from outside ----------------------------------------------------------------------


def test_cache_hit_and_private_files(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**KEYS, "KUBEIAM_CACHE_DIR": str(cache)}
    first = token_of(run("-i", "demo", env=env))
    wait_for_next_signing_second()  # so that a new signature would carry a new X-Amz-Date
    assert token_of(run("-i", "demo", env=env)) == first
    assert token_of(run("-i", "other", env=env)) != first  # the cluster id is part of the key
    assert token_of(run("-i", "demo", "--no-cache", env=env)) != first
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    entries = sorted(p for p in cache.iterdir() if p.suffix == ".json")
    assert len(entries) == 2
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in entries)


def test_default_cache_location_is_under_home(scrubbed_env: Path) -> None:
    assert token_of(run("-i", "demo", env=KEYS))
    assert (scrubbed_env / ".kube" / "cache" / "kubeiam").is_dir()


def test_world_readable_cache_file_is_refused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**KEYS, "KUBEIAM_CACHE_DIR": str(cache)}
    assert token_of(run("-i", "demo", env=env))
    (entry,) = [p for p in cache.iterdir() if p.suffix == ".json"]
    entry.chmod(0o644)
    assert_error(run("-i", "demo", env=env), 4, f"chmod 600 {entry}")


def test_corrupt_cache_file_is_a_miss(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**KEYS, "KUBEIAM_CACHE_DIR": str(cache)}
    assert token_of(run("-i", "demo", env=env))
    (entry,) = [p for p in cache.iterdir() if p.suffix == ".json"]
    entry.write_text("{garbage")
    assert token_of(run("-i", "demo", env=env))
    assert json.loads(entry.read_text())["version"] == 1


def test_racing_processes_share_one_cache_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, **KEYS, "KUBEIAM_CACHE_DIR": str(cache)}
    racers = [
        subprocess.Popen(
            [KUBEIAM, "token", "-i", "demo"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [racer.communicate(timeout=TIMEOUT) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 6, [err for _, err in results]
    tokens = {json.loads(out)["status"]["token"] for out, _ in results}
    assert len(tokens) <= 2  # at most a second boundary apart; never a broken document
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 2
    assert names[0].endswith(".json")
    assert names[1].endswith(".json.lock")


# -- AssumeRole against moto (kubeiam.localaws) --------------------------------------------------


@pytest.fixture(scope="module")
def erin(local_aws: LocalAWS) -> tuple[str, str]:
    return local_aws.create_user("tc-erin")


@pytest.fixture(scope="module")
def erin_role(local_aws: LocalAWS, erin: tuple[str, str]) -> str:
    return local_aws.create_role(
        "tc-reader", trusted=local_aws.user_arn("tc-erin"), grant_to_user="tc-erin"
    )


def _aws_env(local_aws: LocalAWS, keys: tuple[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **local_aws.client_env(),
        "AWS_ACCESS_KEY_ID": keys[0],
        "AWS_SECRET_ACCESS_KEY": keys[1],
        "KUBEIAM_CACHE_DIR": str(tmp_path / "cache"),
    }


def test_assumed_role_credentials_are_cached(
    local_aws: LocalAWS, erin: tuple[str, str], erin_role: str, tmp_path: Path
) -> None:
    env = _aws_env(local_aws, erin, tmp_path)
    first = token_of(run("-i", "demo", "-r", erin_role, "-s", "erin-1", env=env))
    query = query_of(first)
    assert query["X-Amz-Credential"].startswith("ASIA")
    assert "X-Amz-Security-Token" in query
    # Take away erin's right to assume the role and drop the cached token: the cached role
    # credentials still sign, so AssumeRole (and any MFA prompt) is not repeated...
    local_aws.boto3_client("iam").delete_user_policy(
        UserName="tc-erin", PolicyName="assume-tc-reader"
    )
    try:
        for entry in (tmp_path / "cache").glob("token-*.json"):
            entry.unlink()
        wait_for_next_signing_second()
        again = token_of(run("-i", "demo", "-r", erin_role, "-s", "erin-1", env=env))
        assert again != first
        assert (
            query_of(again)["X-Amz-Credential"].split("/")[0]
            == query["X-Amz-Credential"].split("/")[0]
        )
        # ...while without the cache AssumeRole is asked again, and now refused.
        refused = run("-i", "demo", "-r", erin_role, "-s", "erin-1", "--no-cache", env=env)
        assert refused.returncode == 3
        assert "AccessDenied" in refused.stderr
        assert erin[1] not in refused.stderr
    finally:
        allow = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": erin_role}
        local_aws.boto3_client("iam").put_user_policy(
            UserName="tc-erin",
            PolicyName="assume-tc-reader",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow]}),
        )


def test_forward_session_name(
    local_aws: LocalAWS, erin: tuple[str, str], erin_role: str, tmp_path: Path
) -> None:
    # erin first becomes the role with session "erin-laptop"; that session then assumes a second
    # role and forwards its own session name to it.
    # moto (5.2) does not match an assumed-role caller against a role or account principal in
    # a trust policy, so the second role trusts "*"; its identity policy still has to allow it.
    target = local_aws.create_role("tc-target", trusted="*")
    allow = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": target}
    local_aws.boto3_client("iam").put_role_policy(
        RoleName="tc-reader",
        PolicyName="assume-target",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow]}),
    )
    sts = local_aws.boto3_client("sts", credentials=erin)
    first = sts.assume_role(RoleArn=erin_role, RoleSessionName="erin-laptop")["Credentials"]
    env = {
        **local_aws.client_env(),
        "AWS_ACCESS_KEY_ID": first["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": first["SecretAccessKey"],
        "AWS_SESSION_TOKEN": first["SessionToken"],
        "KUBEIAM_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = run("-i", "demo", "-r", target, "--forward-session-name", env=env)
    token = token_of(done)
    creds_key = query_of(token)["X-Amz-Credential"].split("/")[0]
    assert creds_key != first["AccessKeyId"]
    identity = local_aws.boto3_client(
        "sts", credentials=_keys_from_cache(tmp_path / "cache")
    ).get_caller_identity()
    assert (
        identity["Arn"] == f"arn:aws:sts::{local_aws.account_id}:assumed-role/tc-target/erin-laptop"
    )


def _keys_from_cache(cache: Path) -> tuple[str, str, str]:
    (entry,) = list(cache.glob("credentials-*.json"))
    data = json.loads(entry.read_text())
    return data["accessKeyId"], data["secretAccessKey"], data["sessionToken"]


def test_forward_session_name_needs_an_assumed_role(
    local_aws: LocalAWS, erin: tuple[str, str], erin_role: str, tmp_path: Path
) -> None:
    env = _aws_env(local_aws, erin, tmp_path)
    done = run("-i", "demo", "-r", erin_role, "--forward-session-name", env=env)
    assert_error(done, 2, "needs assumed-role credentials")


def test_unwritable_cache_still_prints_the_token(tmp_path: Path) -> None:
    # `ulimit -f 0` makes every write to a file fail (EFBIG; Python ignores SIGXFSZ), even as
    # root, while stdout (a pipe) still works: the token is printed, caching is only warned about.
    # A shell sets the limit: preexec_fn is unsafe with the local AWS threads in this process.
    env = {**os.environ, **KEYS, "KUBEIAM_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        ["/bin/sh", "-c", f"ulimit -f 0 && exec {KUBEIAM} token -i demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert token_of(done)
    assert done.stderr.startswith("kubeiam: warning: cannot write token cache file")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.suffix in (".json", ".tmp")]


def test_cache_entry_that_is_not_a_file_is_refused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**KEYS, "KUBEIAM_CACHE_DIR": str(cache)}
    assert token_of(run("-i", "demo", env=env))
    (entry,) = [p for p in cache.iterdir() if p.suffix == ".json"]
    entry.unlink()
    entry.mkdir(mode=0o700)
    assert_error(run("-i", "demo", env=env), 4, "not a regular file")


@pytest.mark.parametrize(
    ("env", "host"),
    [
        ({"AWS_REGION": "us-west-2"}, "sts.us-west-2.amazonaws.com"),
        ({"AWS_DEFAULT_REGION": "cn-north-1"}, "sts.cn-north-1.amazonaws.com.cn"),
        ({}, "sts.amazonaws.com"),
        ({"AWS_REGION": "us-west-2", "AWS_STS_REGIONAL_ENDPOINTS": "legacy"}, "sts.amazonaws.com"),
        (
            {"AWS_REGION": "us-east-1", "AWS_USE_FIPS_ENDPOINT": "true"},
            "sts-fips.us-east-1.amazonaws.com",
        ),
        (
            {"AWS_REGION": "eu-west-1", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
            "sts.eu-west-1.api.aws",
        ),
        (
            {"AWS_REGION": "us-gov-west-1", "AWS_USE_FIPS_ENDPOINT": "true"},
            "sts.us-gov-west-1.amazonaws.com",
        ),
    ],
    ids=["regional", "china", "no-region", "legacy", "fips", "dualstack", "govcloud-fips"],
)
def test_sts_host_from_the_environment(env: dict[str, str], host: str) -> None:
    done = run("-i", "demo", "--no-cache", "--token-only", env={**KEYS, **env})
    assert done.returncode == 0, done.stderr
    assert decode_token(done.stdout.strip()).startswith(f"https://{host}/?")


def test_region_from_the_profile_in_the_config_file(scrubbed_env: Path) -> None:
    config = scrubbed_env / ".aws" / "config"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[default]\nregion = ap-southeast-2\n")
    done = run("-i", "demo", "--no-cache", "--token-only", env=KEYS)
    assert done.returncode == 0, done.stderr
    assert decode_token(done.stdout.strip()).startswith("https://sts.ap-southeast-2.amazonaws.com/")


def test_profile_cache_hit_skips_botocore_until_the_files_change(
    scrubbed_env: Path, tmp_path: Path
) -> None:
    credentials = scrubbed_env / ".aws" / "credentials"
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text("[dev]\naws_access_key_id = AKIAPROFILEDEV\naws_secret_access_key = s\n")
    env = {**KEYS, "AWS_PROFILE": "dev", "KUBEIAM_CACHE_DIR": str(tmp_path / "cache")}
    first = run("-i", "demo", env=env, python_flags=("-X", "importtime"))
    assert "botocore" in imported_modules(first.stderr)  # a profile needs botocore once...
    assert query_of(token_of(first))["X-Amz-Credential"].startswith("AKIAPROFILEDEV/")
    hit = run("-i", "demo", env=env, python_flags=("-X", "importtime"))
    assert "botocore" not in imported_modules(hit.stderr)  # ...and not while the token lives
    assert token_of(hit) == token_of(first)
    credentials.write_text(
        "[dev]\naws_access_key_id = AKIAPROFILENEW\naws_secret_access_key = s2\n"
    )
    changed = run("-i", "demo", env=env)
    assert query_of(token_of(changed))["X-Amz-Credential"].startswith("AKIAPROFILENEW/")
