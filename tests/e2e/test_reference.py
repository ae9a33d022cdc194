"""The reference aws-iam-authenticator side by side with kubeiam, inside a network namespace.

The reference (client and server) calls `https://sts.<region>.amazonaws.com` with the system trust
store and cannot be pointed elsewhere, so everything here runs in a network namespace of its own
(tests/e2e/netns.py) whose hosts file maps the STS host names to 127.0.0.1, where
`kubeiam localaws --sts-port 443 --relay-sts-calls` serves the STS front: presigned
GetCallerIdentity is verified there, other STS calls (the clients' AssumeRole) are relayed to moto.
The test CA is trusted through `SSL_CERT_FILE` (Go's crypto/x509 and Python's ssl read it);
botocore ignores `SSL_CERT_FILE` and uses its own bundle, so `kubeiam token -r` (AssumeRole
through botocore) is given `AWS_CA_BUNDLE`, the AWS SDKs' setting for this.

The reference server and `kubeiam server` read the same configuration file (a user mapping, a role
mapping with templates, an account mapping) and review the same tokens, minted by both clients;
their TokenReview users are compared field by field. kubeiam's server runs with no STS override
at all (no --sts-resolve, no --sts-ca-bundle): the namespace's hosts file and `SSL_CERT_FILE`
are all it gets.

Needs root and iproute2 (`ip netns`): off CI a machine without them skips this module with one
line; with CI=true that is a failure (the suite's convention).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.binaries import Binaries, is_ci
from netns import NetNamespace, namespace_problem, network_namespace, start_localaws_inside

from kubeiam.localaws.certificates import sts_host_names
from support.cli import KUBEIAM

CLUSTER_ID = "kubeiam-e2e-reference"
REGION = "us-east-1"
STS_HOST = f"sts.{REGION}.amazonaws.com"
START_TIMEOUT = 60.0
SESSION = "alice@example.com"
#: Fields of TokenReview status.user the two servers must agree on.
USER_FIELDS = ("username", "uid", "groups", "extra")


# --- the namespace and the local AWS environment inside it ---------------------------------------


@pytest.fixture(scope="module")
def namespace() -> Iterator[NetNamespace]:
    problem = namespace_problem()
    if problem is not None:
        if is_ci(os.environ):
            pytest.fail(f"e2e reference: {problem}", pytrace=False)
        pytest.skip(f"e2e reference: {problem}")
    with network_namespace(hosts=sts_host_names()) as ns:
        yield ns


def base_env(home: Path, ca_bundle: Path | None = None) -> dict[str, str]:
    """A scrubbed environment: no developer AWS settings, no metadata service, one region.

    Session fixtures start before the per-test scrubbing, so nothing is inherited but PATH.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    }
    if ca_bundle is not None:
        env["SSL_CERT_FILE"] = str(ca_bundle)
    return env


@dataclass(frozen=True)
class InsideAWS:
    """`kubeiam localaws` running inside the namespace; admin calls go through `ns.call`."""

    ns: NetNamespace
    moto_url: str
    ca_bundle: Path
    admin_keys: tuple[str, str] = field(repr=False)
    home: Path

    def admin(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.moto_url,
            region_name=REGION,
            aws_access_key_id=self.admin_keys[0],
            aws_secret_access_key=self.admin_keys[1],
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    def iam(self, action: str, **params: Any) -> Any:
        """One IAM call as the admin, made from inside the namespace."""
        return self.ns.call(lambda: getattr(self.admin("iam"), action)(**params))

    def create_user(self, name: str) -> tuple[str, str]:
        self.iam("create_user", UserName=name)
        key = self.iam("create_access_key", UserName=name)["AccessKey"]
        return str(key["AccessKeyId"]), str(key["SecretAccessKey"])

    def env(self) -> dict[str, str]:
        """Environment of a process inside: the test CA trusted, no endpoint override."""
        return base_env(self.home, self.ca_bundle)


@pytest.fixture(scope="module")
def inside_aws(
    namespace: NetNamespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InsideAWS]:
    home = tmp_path_factory.mktemp("reference-home")
    started = start_localaws_inside(
        namespace, Path(KUBEIAM), env=base_env(home), log=home / "localaws.log"
    )
    yield InsideAWS(
        ns=namespace,
        moto_url=started.moto_url,
        ca_bundle=started.ca_bundle,
        admin_keys=started.admin_keys,
        home=home,
    )
    started.process.terminate()
    started.process.wait(timeout=30)


# --- identities and the two servers --------------------------------------------------------------


@dataclass(frozen=True)
class Identities:
    account: str
    alice: tuple[str, str]  # mapped IAM user (mapUsers); may assume `role_arn`
    bob: tuple[str, str]  # unmapped IAM user of a mapped account (mapAccounts)
    role_arn: str  # mapped role (mapRoles, templates)
    alice_user_id: str
    bob_user_id: str
    role_id: str


@pytest.fixture(scope="module")
def identities(inside_aws: InsideAWS) -> Identities:
    alice = inside_aws.create_user("ref-alice")
    bob = inside_aws.create_user("ref-bob")
    alice_arn = inside_aws.iam("get_user", UserName="ref-alice")["User"]["Arn"]
    account = alice_arn.split(":")[4]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": alice_arn}, "Action": "sts:AssumeRole"}
        ],
    }
    role = inside_aws.iam(
        "create_role", RoleName="ref-dev", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]
    allow = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role["Arn"]}
    inside_aws.iam(
        "put_user_policy",
        UserName="ref-alice",
        PolicyName="assume-ref-dev",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow]}),
    )
    return Identities(
        account=account,
        alice=alice,
        bob=bob,
        role_arn=str(role["Arn"]),
        alice_user_id=str(inside_aws.iam("get_user", UserName="ref-alice")["User"]["UserId"]),
        bob_user_id=str(inside_aws.iam("get_user", UserName="ref-bob")["User"]["UserId"]),
        role_id=str(role["RoleId"]),
    )


def server_config(ids: Identities) -> dict[str, Any]:
    """The reference's configuration format; both servers read this very file."""
    return {
        "clusterID": CLUSTER_ID,
        "server": {
            "address": "127.0.0.1",
            "port": 0,
            "backendMode": ["MountedFile"],
            "mapUsers": [
                {
                    "userarn": f"arn:aws:iam::{ids.account}:user/ref-alice",
                    "username": "alice",
                    "groups": ["devs", "viewers"],
                }
            ],
            "mapRoles": [
                {
                    "rolearn": ids.role_arn,
                    "username": "dev:{{SessionName}}",
                    "groups": [
                        "system:masters",
                        "account:{{AccountID}}",
                        "session:{{SessionNameRaw}}",
                        "key:{{AccessKeyID}}",
                    ],
                }
            ],
            "mapAccounts": [ids.account],
        },
    }


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    cert: Path
    log: Path


def _wait_listening(proc: Any, log: Path, pattern: re.Pattern[str]) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = pattern.search(log.read_text())
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"{log.name}: the server did not start listening:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def servers(
    inside_aws: InsideAWS,
    identities: Identities,
    e2e_binaries: Binaries,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Server]:
    work = tmp_path_factory.mktemp("reference-servers")
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(server_config(identities)))
    (work / "reference-state").mkdir()  # the reference writes its pair there but does not mkdir
    started: dict[str, Server] = {}
    commands: dict[str, list[str | Path]] = {
        "reference": [
            e2e_binaries.aws_iam_authenticator,
            "server",
            "-c",
            config,
            "--state-dir",
            work / "reference-state",
            "--generate-kubeconfig",
            work / "reference-kubeconfig.yaml",
        ],
        # No --sts-resolve and no --sts-ca-bundle: only the hosts file and SSL_CERT_FILE.
        "kubeiam": [
            KUBEIAM,
            "server",
            "-c",
            config,
            "--state-dir",
            work / "kubeiam-state",
            "--generate-kubeconfig",
            work / "kubeiam-kubeconfig.yaml",
            "-l",
            "json",
        ],
    }
    patterns = {
        "reference": re.compile(r"listening on 127\.0\.0\.1:(\d+)"),
        "kubeiam": re.compile(r'"msg":"listening".*?"port":(\d+)'),
    }
    for name, argv in commands.items():
        log = work / f"{name}.log"
        with log.open("w") as handle:
            proc = inside_aws.ns.popen(argv, env=inside_aws.env(), stdout=handle, stderr=handle)
        port = _wait_listening(proc, log, patterns[name])
        started[name] = Server(name, port, work / f"{name}-state" / "cert.pem", log)
    return started


def review(ns: NetNamespace, server: Server, token: str) -> tuple[int, dict[str, Any]]:
    """POST a TokenReview to `server` from inside the namespace: (HTTP status, answer)."""

    def post() -> tuple[int, dict[str, Any]]:
        context = ssl.create_default_context(cafile=str(server.cert))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", server.port, context=context, timeout=30
        )
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        try:
            connection.request(
                "POST",
                "/authenticate",
                body=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read())
        finally:
            connection.close()

    return ns.call(post)


# --- tokens from both clients --------------------------------------------------------------------

CLIENTS = ("reference", "kubeiam")
#: identity -> (which keys sign, whether the client assumes the role first)
IDENTITIES = {"user": ("alice", False), "role": ("alice", True), "account": ("bob", False)}


def mint(
    client: str,
    inside: InsideAWS,
    binaries: Binaries,
    keys: tuple[str, str],
    *,
    role_arn: str | None = None,
    cluster_id: str = CLUSTER_ID,
    extra_env: dict[str, str] | None = None,
) -> str:
    """A token from `client`'s own command, run inside the namespace with no STS override."""
    env = {
        **inside.env(),
        "AWS_ACCESS_KEY_ID": keys[0],
        "AWS_SECRET_ACCESS_KEY": keys[1],
        **(extra_env or {}),
    }
    role = ["-r", role_arn, "-s", SESSION] if role_arn else []
    if client == "reference":
        argv: list[Any] = [binaries.aws_iam_authenticator, "token", "-i", cluster_id, *role]
    else:
        argv = [KUBEIAM, "token", "-i", cluster_id, "--no-cache", *role]
        if role_arn:
            # botocore (kubeiam's AssumeRole) trusts its own CA bundle, not SSL_CERT_FILE.
            env.setdefault("AWS_CA_BUNDLE", str(inside.ca_bundle))
    done = inside.ns.run(argv, env=env)
    assert done.returncode == 0, f"{client} token: {done.stderr}"
    credential = json.loads(done.stdout)
    assert credential["kind"] == "ExecCredential"
    token = str(credential["status"]["token"])
    assert token.startswith("k8s-aws-v1.")
    assert token not in done.stderr
    return token


@pytest.fixture(scope="module")
def tokens(
    inside_aws: InsideAWS, identities: Identities, e2e_binaries: Binaries
) -> dict[tuple[str, str], str]:
    """(client, identity) -> token, for every client and identity."""
    minted = {}
    for client in CLIENTS:
        for identity, (who, assume) in IDENTITIES.items():
            keys = identities.alice if who == "alice" else identities.bob
            minted[(client, identity)] = mint(
                client,
                inside_aws,
                e2e_binaries,
                keys,
                role_arn=identities.role_arn if assume else None,
            )
    return minted


def presigned_host(token: str) -> str:
    payload = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    return url.split("/")[2]


def expected_user(identity: str, ids: Identities, token: str) -> dict[str, Any]:
    """What both servers must answer for `identity`: the reference's documented mapping rules."""
    key_id = _access_key_id(token)
    if identity == "user":
        arn = f"arn:aws:iam::{ids.account}:user/ref-alice"
        return _user("alice", ["devs", "viewers"], ids, arn, arn, ids.alice_user_id, "", key_id)
    if identity == "account":
        arn = f"arn:aws:iam::{ids.account}:user/ref-bob"
        # An account mapping: the username is the canonical ARN and there are no groups.
        return _user(arn, [], ids, arn, arn, ids.bob_user_id, "", key_id)
    arn = f"arn:aws:sts::{ids.account}:assumed-role/ref-dev/{SESSION}"
    groups = [
        "system:masters",
        f"account:{ids.account}",
        f"session:{SESSION}",
        f"key:{key_id}",
    ]
    username = "dev:" + SESSION.replace("@", "-")
    return _user(username, groups, ids, arn, ids.role_arn, ids.role_id, SESSION, key_id)


def _user(
    username: str,
    groups: list[str],
    ids: Identities,
    arn: str,
    canonical: str,
    principal: str,
    session: str,
    key_id: str,
) -> dict[str, Any]:
    return {
        "username": username,
        "uid": f"aws-iam-authenticator:{ids.account}:{principal}",
        "groups": groups,
        "extra": {
            "arn": [arn],
            "canonicalArn": [canonical],
            "sessionName": [session],
            "accessKeyId": [key_id],
            "principalId": [principal],
            "sigs.k8s.io/aws-iam-authenticator/principalId": [principal],
        },
    }


def _access_key_id(token: str) -> str:
    payload = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    found = re.search(r"X-Amz-Credential=([A-Z0-9]+)%2F", url)
    assert found is not None
    return found.group(1)


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("identity", ["user", "role"], ids=["iam-user", "assumed-role"])
@pytest.mark.parametrize("override", [False, True], ids=["no-override", "sts-resolve"])
def test_reference_client_tokens_pass_kubeiam_verify(
    inside_aws: InsideAWS,
    identities: Identities,
    tokens: dict[tuple[str, str], str],
    identity: str,
    override: bool,
) -> None:
    token = tokens[("reference", identity)]
    assert presigned_host(token) == STS_HOST
    env = inside_aws.env()
    flags: list[str] = []
    if override:
        # The way kubeiam is pointed at the front outside a namespace: no SSL_CERT_FILE needed.
        del env["SSL_CERT_FILE"]
        flags = [
            "--sts-resolve",
            f"{STS_HOST}=127.0.0.1:443",
            "--sts-ca-bundle",
            str(inside_aws.ca_bundle),
        ]
    done = inside_aws.ns.run(
        [KUBEIAM, "verify", "-i", CLUSTER_ID, "-t", "-", "-o", "json", *flags],
        env=env,
        input=token,
    )
    assert done.returncode == 0, done.stderr
    assert token not in done.stdout + done.stderr
    found = json.loads(done.stdout)
    want = expected_user(identity, identities, token)
    assert found["arn"] == want["extra"]["arn"][0]
    assert found["uid"] == want["uid"]
    assert found["sessionName"] == want["extra"]["sessionName"][0]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("identity", list(IDENTITIES))
def test_both_servers_return_the_same_user(
    inside_aws: InsideAWS,
    identities: Identities,
    servers: dict[str, Server],
    tokens: dict[tuple[str, str], str],
    client: str,
    identity: str,
) -> None:
    """Reference tokens pass kubeiam's server, kubeiam's tokens pass the reference server, and
    both servers answer the same user, field by field, as the mapping rules say."""
    token = tokens[(client, identity)]
    answers = {name: review(inside_aws.ns, server, token) for name, server in servers.items()}
    for name, (status, answer) in answers.items():
        assert status == 200, f"{name} server: {answer}"
        assert answer["status"]["authenticated"] is True, f"{name} server: {answer}"
    reference = answers["reference"][1]["status"]["user"]
    kubeiam = answers["kubeiam"][1]["status"]["user"]
    for key in USER_FIELDS:
        assert as_read(kubeiam, key) == as_read(reference, key), key
    assert kubeiam == expected_user(identity, identities, token)
    # The one difference in the JSON itself: Go's `omitempty` drops an empty group list, kubeiam
    # writes `[]`. UserInfo.groups is optional, so kube-apiserver reads both as no groups.
    if kubeiam["groups"]:
        assert set(kubeiam) == set(reference)
    else:
        assert "groups" not in reference
        assert set(kubeiam) - set(reference) == {"groups"}


def as_read(user: dict[str, Any], field: str) -> Any:
    """`field` of a TokenReview user as kube-apiserver reads it (absent lists are empty)."""
    empty: Any = {} if field == "extra" else [] if field == "groups" else None
    return user.get(field, empty)


def test_both_servers_refuse_a_token_for_another_cluster(
    inside_aws: InsideAWS,
    identities: Identities,
    servers: dict[str, Server],
    e2e_binaries: Binaries,
) -> None:
    token = mint(
        "reference", inside_aws, e2e_binaries, identities.alice, cluster_id="another-cluster"
    )
    for name, server in servers.items():
        status, answer = review(inside_aws.ns, server, token)
        assert (status, answer["status"].get("authenticated", False)) == (403, False), name


def test_reference_client_presigns_through_aws_endpoint_url_sts(
    inside_aws: InsideAWS, identities: Identities, e2e_binaries: Binaries
) -> None:
    """Why the reference client runs here with no endpoint variable at all.

    It is built on aws-sdk-go-v2, which honours `AWS_ENDPOINT_URL_STS`, and it presigns
    GetCallerIdentity with the same STS client it would use for AssumeRole: pointed at moto,
    its token names moto's address, which no server accepts. kubeiam token presigns for the
    region's STS host whatever the variable says (the variable only routes its AssumeRole).
    """
    moto = {"AWS_ENDPOINT_URL_STS": inside_aws.moto_url}
    reference = mint("reference", inside_aws, e2e_binaries, identities.alice, extra_env=moto)
    assert presigned_host(reference) == inside_aws.moto_url.removeprefix("http://")
    done = inside_aws.ns.run(
        [KUBEIAM, "verify", "-i", CLUSTER_ID, "-t", "-"], env=inside_aws.env(), input=reference
    )
    assert done.returncode != 0
    assert "host" in done.stderr.lower()
    kubeiam = mint(
        "kubeiam",
        inside_aws,
        e2e_binaries,
        identities.alice,
        role_arn=identities.role_arn,
        extra_env=moto,
    )
    assert presigned_host(kubeiam) == STS_HOST


def test_namespace_has_only_loopback_and_is_removed_after_a_failure(
    namespace: NetNamespace, tmp_path: Path
) -> None:
    """The helper's own contract: STS names resolve to loopback, nothing routes out, and a
    failure inside the `with` still removes the processes, the namespace and its hosts file."""

    env = base_env(tmp_path)
    seen: dict[str, Any] = {}

    def fail_inside() -> None:
        with network_namespace(hosts=[STS_HOST]) as ns:
            seen.update(name=ns.name, etc_dir=ns.etc_dir, listed=_listed())
            seen["resolved"] = ns.run(["getent", "hosts", STS_HOST], env=env).stdout
            seen["routes"] = ns.run(["ip", "route", "show", "table", "all"], env=env).stdout
            seen["sleeper"] = ns.popen(["sleep", "300"], env=env)
            raise RuntimeError("a failing test")

    with pytest.raises(RuntimeError, match="a failing test"):
        fail_inside()
    assert seen["resolved"].split()[0] == "127.0.0.1"
    assert seen["routes"].strip()
    assert all(" dev lo " in line for line in seen["routes"].splitlines()), seen["routes"]
    assert seen["name"] in seen["listed"]
    assert seen["sleeper"].poll() is not None
    assert seen["name"] not in _listed()
    assert not seen["etc_dir"].exists()


def _listed() -> list[str]:
    """Names of the network namespaces `ip netns list` shows."""
    done = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=30, check=True
    )
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def test_kubeiam_server_logs_no_token(
    servers: dict[str, Server], tokens: dict[tuple[str, str], str]
) -> None:
    """After every review above, kubeiam's log holds no token and no presigned signature."""
    log = servers["kubeiam"].log.read_text()
    assert '"msg":"token review"' in log
    for token in tokens.values():
        assert token not in log
        payload = token.removeprefix("k8s-aws-v1.")
        url = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        signature = re.search(r"X-Amz-Signature=([0-9a-f]+)", url)
        assert signature is not None
        assert signature.group(1) not in log
