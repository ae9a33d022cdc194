"""The STS front over real TLS on loopback, with botocore as the client's presigner."""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeiam.localaws import LocalAWS
from kubeiam.localaws.certificates import issue_sts_certificates
from kubeiam.localaws.sts_front import StsFront

Presign = Callable[..., str]
Https = Callable[..., Any]
JSON = {"Accept": "application/json", "x-k8s-aws-id": "cluster-a"}
XMLNS = "{https://sts.amazonaws.com/doc/2011-06-15/}"


@pytest.fixture(scope="module")
def alice(local_aws: LocalAWS) -> tuple[str, str]:
    return local_aws.create_user("front-alice")


@pytest.fixture(scope="module")
def session(local_aws: LocalAWS, alice: tuple[str, str]) -> dict[str, Any]:
    """Temporary credentials of alice's session in role front-dev."""
    role_arn = local_aws.create_role(
        "front-dev", trusted=local_aws.user_arn("front-alice"), grant_to_user="front-alice"
    )
    sts = local_aws.boto3_client("sts", credentials=alice)
    answer = sts.assume_role(RoleArn=role_arn, RoleSessionName="alice@example.com")
    return {"credentials": answer["Credentials"], "user": answer["AssumedRoleUser"]}


def _call(https: Https, aws: LocalAWS, url: str, headers: dict[str, str] = JSON, **kw: Any) -> Any:
    return https(url, port=aws.sts_port, ca_bundle=aws.ca_bundle, headers=headers, **kw)


def _error_code(body: str) -> str:
    try:
        return str(json.loads(body)["Error"]["Code"])
    except json.JSONDecodeError:
        return str(ET.fromstring(body).find(f"{XMLNS}Error/{XMLNS}Code").text)  # type: ignore[union-attr]  # noqa: S314


def test_user_keys_answer_json(
    local_aws: LocalAWS, alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    url = presign(access_key_id=alice[0], secret_access_key=alice[1])
    answer = _call(https, local_aws, url)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/json")
    result = json.loads(answer.body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
    assert result["Arn"] == local_aws.user_arn("front-alice")
    assert result["Account"] == local_aws.account_id
    iam_user = local_aws.boto3_client("iam").get_user(UserName="front-alice")["User"]
    assert result["UserId"] == iam_user["UserId"]


def test_xml_unless_json_is_asked_for(
    local_aws: LocalAWS, alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    url = presign(access_key_id=alice[0], secret_access_key=alice[1])
    answer = _call(https, local_aws, url, headers={"x-k8s-aws-id": "cluster-a"})
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/xml")
    result = ET.fromstring(answer.body).find(f"{XMLNS}GetCallerIdentityResult")  # noqa: S314
    assert result is not None
    assert result.findtext(f"{XMLNS}Arn") == local_aws.user_arn("front-alice")
    assert result.findtext(f"{XMLNS}Account") == local_aws.account_id


def test_assumed_role_session(
    local_aws: LocalAWS, session: dict[str, Any], presign: Presign, https: Https
) -> None:
    creds = session["credentials"]
    url = presign(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )
    answer = _call(https, local_aws, url)
    assert answer.status == 200, answer.body
    result = json.loads(answer.body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
    assert (
        result["Arn"]
        == f"arn:aws:sts::{local_aws.account_id}:assumed-role/front-dev/alice@example.com"
    )
    role_id = local_aws.boto3_client("iam").get_role(RoleName="front-dev")["Role"]["RoleId"]
    assert result["UserId"] == f"{role_id}:alice@example.com"
    assert result["UserId"].startswith("AROA")
    assert result["UserId"] == session["user"]["AssumedRoleId"]


def _session_url(presign: Presign, creds: dict[str, Any], **overrides: Any) -> str:
    kwargs = {
        "access_key_id": creds["AccessKeyId"],
        "secret_access_key": creds["SecretAccessKey"],
        "session_token": creds["SessionToken"],
        **overrides,
    }
    return presign(**kwargs)


SESSION_REFUSALS = [
    ("no-session-token", {"session_token": None}, 403, "InvalidClientTokenId"),
    ("other-session-token", {"session_token": "FwoGZXIvYXdzEXAMPLE"}, 403, "InvalidClientTokenId"),
    ("wrong-secret", {"secret_access_key": "x" * 40}, 403, "SignatureDoesNotMatch"),
]


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [r[1:] for r in SESSION_REFUSALS],
    ids=[r[0] for r in SESSION_REFUSALS],
)
def test_session_refusals(
    local_aws: LocalAWS,
    session: dict[str, Any],
    presign: Presign,
    https: Https,
    overrides: dict[str, Any],
    status: int,
    code: str,
) -> None:
    answer = _call(https, local_aws, _session_url(presign, session["credentials"], **overrides))
    assert (answer.status, _error_code(answer.body)) == (status, code)


def test_user_key_with_a_session_token_is_refused(
    local_aws: LocalAWS, alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    url = presign(access_key_id=alice[0], secret_access_key=alice[1], session_token="abc")
    answer = _call(https, local_aws, url)
    assert (answer.status, _error_code(answer.body)) == (403, "InvalidClientTokenId")


REQUEST_REFUSALS: list[tuple[str, dict[str, Any], dict[str, str], int, str]] = [
    ("other-cluster", {}, {**JSON, "x-k8s-aws-id": "cluster-b"}, 403, "SignatureDoesNotMatch"),
    ("cluster-header-missing", {}, {"Accept": "application/json"}, 403, "SignatureDoesNotMatch"),
    ("wrong-secret", {"secret_access_key": "y" * 40}, JSON, 403, "SignatureDoesNotMatch"),
    ("unknown-key", {"access_key_id": "AKIAUNKNOWNUNKNOWN00"}, JSON, 403, "InvalidClientTokenId"),
    (
        "signed-for-another-region",
        {"region": "eu-west-1", "host": "sts.us-east-1.amazonaws.com"},
        JSON,
        403,
        "SignatureDoesNotMatch",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "headers", "status", "code"),
    [r[1:] for r in REQUEST_REFUSALS],
    ids=[r[0] for r in REQUEST_REFUSALS],
)
def test_request_refusals(
    local_aws: LocalAWS,
    alice: tuple[str, str],
    presign: Presign,
    https: Https,
    overrides: dict[str, Any],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    kwargs = {"access_key_id": alice[0], "secret_access_key": alice[1], **overrides}
    answer = _call(https, local_aws, presign(**kwargs), headers=headers)
    assert (answer.status, _error_code(answer.body)) == (status, code)


def test_tampered_signature(
    local_aws: LocalAWS, alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    url = presign(access_key_id=alice[0], secret_access_key=alice[1])
    head, _, sig = url.rpartition("X-Amz-Signature=")
    tampered = head + "X-Amz-Signature=" + sig[::-1]
    answer = _call(https, local_aws, tampered)
    assert (answer.status, _error_code(answer.body)) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize(
    ("age", "status", "fragment"),
    [
        (timedelta(minutes=14), 200, None),
        (timedelta(minutes=16), 403, "Signature expired"),
        (-timedelta(minutes=16), 403, "not yet current"),
    ],
    ids=["14-minutes-old", "16-minutes-old", "16-minutes-ahead"],
)
def test_window_after_x_amz_date(
    local_aws: LocalAWS,
    alice: tuple[str, str],
    presign: Presign,
    https: Https,
    age: timedelta,
    status: int,
    fragment: str | None,
) -> None:
    at = datetime.now(UTC) - age
    answer = _call(
        https, local_aws, presign(access_key_id=alice[0], secret_access_key=alice[1], at=at)
    )
    assert answer.status == status
    if fragment is not None:
        assert _error_code(answer.body) == "SignatureDoesNotMatch"
        assert fragment in json.loads(answer.body)["Error"]["Message"]


@pytest.mark.parametrize(
    ("status_change", "delete"), [("Inactive", False), (None, True)], ids=["inactive", "deleted"]
)
def test_inactive_and_deleted_keys_fail_like_sts(
    local_aws: LocalAWS,
    presign: Presign,
    https: Https,
    status_change: str | None,
    delete: bool,
) -> None:
    name = f"front-key-{'deleted' if delete else 'inactive'}"
    key_id, secret = local_aws.create_user(name)
    url = presign(access_key_id=key_id, secret_access_key=secret)
    assert _call(https, local_aws, url).status == 200
    iam = local_aws.boto3_client("iam")
    if delete:
        iam.delete_access_key(UserName=name, AccessKeyId=key_id)
    else:
        iam.update_access_key(UserName=name, AccessKeyId=key_id, Status=status_change)
    answer = _call(https, local_aws, url)
    assert (answer.status, _error_code(answer.body)) == (403, "InvalidClientTokenId")


def test_host_and_action_must_be_sts_get_caller_identity(
    local_aws: LocalAWS, alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    url = presign(access_key_id=alice[0], secret_access_key=alice[1])
    not_sts = _call(https, local_aws, url, host_header="example.com")
    assert (not_sts.status, _error_code(not_sts.body)) == (400, "InvalidAction")
    other_action = _call(https, local_aws, url.replace("GetCallerIdentity", "GetSessionToken"))
    assert (other_action.status, _error_code(other_action.body)) == (400, "InvalidAction")
    post = _call(https, local_aws, url, method="POST")
    assert (post.status, _error_code(post.body)) == (400, "InvalidAction")
    bare = _call(https, local_aws, "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity")
    assert (bare.status, _error_code(bare.body)) == (403, "MissingAuthenticationToken")


def test_counts_every_request(
    local_aws: LocalAWS, alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    url = presign(access_key_id=alice[0], secret_access_key=alice[1])
    before = local_aws.sts_requests
    for _ in range(3):
        _call(https, local_aws, url)
    local_aws.set_sts_fault("throttle")
    _call(https, local_aws, url)
    assert local_aws.sts_requests == before + 4


FAULTS = [
    ("throttle", 400, "Throttling"),
    ("error500", 500, "InternalFailure"),
]


@pytest.mark.parametrize(("fault", "status", "code"), FAULTS, ids=[f[0] for f in FAULTS])
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "xml"])
def test_error_faults(
    local_aws: LocalAWS,
    alice: tuple[str, str],
    presign: Presign,
    https: Https,
    fault: str,
    status: int,
    code: str,
    as_json: bool,
) -> None:
    local_aws.set_sts_fault(fault)
    headers = JSON if as_json else {"x-k8s-aws-id": "cluster-a"}
    answer = _call(
        https,
        local_aws,
        presign(access_key_id=alice[0], secret_access_key=alice[1]),
        headers=headers,
    )
    assert answer.status == status
    assert code in answer.body
    assert _error_code(answer.body) == code
    local_aws.set_sts_fault(None)
    assert (
        _call(https, local_aws, presign(access_key_id=alice[0], secret_access_key=alice[1])).status
        == 200
    )


def test_redirect_fault_points_at_plain_http_canary(
    local_aws: LocalAWS, alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    import urllib.request

    local_aws.set_sts_fault("redirect")
    answer = _call(https, local_aws, presign(access_key_id=alice[0], secret_access_key=alice[1]))
    assert answer.status == 302
    location = answer.headers["location"]
    assert location.startswith("http://127.0.0.1:")
    before = local_aws.redirect_hits
    with urllib.request.urlopen(location, timeout=5) as followed:  # what a careless client does
        assert followed.status == 200
    assert local_aws.redirect_hits == before + 1


@pytest.fixture
def own_front(tmp_path: Any) -> Iterator[tuple[StsFront, Any]]:
    """A second front on the same moto state, with a short hang limit."""
    certs = issue_sts_certificates(tmp_path)
    front = StsFront(ssl_context=certs.server_context, hang_limit=1.0)
    front.start()
    try:
        yield front, certs.ca_bundle
    finally:
        front.stop()


def test_hang_fault_is_bounded(
    own_front: tuple[StsFront, Any], alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    front, ca_bundle = own_front
    front.set_fault("hang")
    url = presign(access_key_id=alice[0], secret_access_key=alice[1])
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        https(url, port=front.port, ca_bundle=ca_bundle, headers=JSON, timeout=0.3)
    answer = https(url, port=front.port, ca_bundle=ca_bundle, headers=JSON, timeout=5)
    assert (answer.status, _error_code(answer.body)) == (503, "ServiceUnavailable")
    assert 0.9 < time.monotonic() - started < 5


def test_stop_releases_hanging_requests(
    tmp_path: Any, alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    certs = issue_sts_certificates(tmp_path)
    front = StsFront(ssl_context=certs.server_context, hang_limit=30.0)
    front.start()
    front.set_fault("hang")
    url = presign(access_key_id=alice[0], secret_access_key=alice[1])
    outcome: list[Any] = []

    def client() -> None:
        try:
            outcome.append(https(url, port=front.port, ca_bundle=certs.ca_bundle, headers=JSON))
        except Exception as exc:  # the connection may be closed instead of answered
            outcome.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 5
    while front.sts_requests == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    front.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert outcome


def test_faults_are_validated(local_aws: LocalAWS) -> None:
    with pytest.raises(ValueError, match="teapot"):
        local_aws.set_sts_fault("teapot")
    with local_aws.sts_fault_active("throttle"):
        assert local_aws.sts_fault == "throttle"
    assert local_aws.sts_fault is None


@pytest.mark.parametrize(
    "host",
    [
        "sts.amazonaws.com",
        "sts.us-east-1.amazonaws.com",
        "sts.us-west-2.amazonaws.com",
        "sts.eu-west-1.amazonaws.com",
        "sts.ap-southeast-2.amazonaws.com",
        "sts.us-gov-west-1.amazonaws.com",
        "sts-fips.us-east-1.amazonaws.com",
        "sts-fips.us-gov-west-1.amazonaws.com",
        "sts.us-east-1.api.aws",
        "sts.cn-north-1.amazonaws.com.cn",
    ],
)
def test_certificate_covers_sts_hosts(
    local_aws: LocalAWS, presign: Presign, https: Https, host: str
) -> None:
    assert host in local_aws.sts_hosts
    # A TLS handshake with this SNI, verified against the CA bundle, then a GET for that host.
    answer = _call(https, local_aws, f"https://{host}/?Action=GetCallerIdentity")
    assert answer.status == 403


def test_certificate_refuses_other_names(local_aws: LocalAWS, https: Https) -> None:
    import ssl

    with pytest.raises(ssl.SSLCertVerificationError):
        _call(https, local_aws, "https://sts.amazonaws.com.evil.example/")


def test_nothing_secret_is_logged_or_printed(
    local_aws: LocalAWS,
    session: dict[str, Any],
    presign: Presign,
    https: Https,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    creds = session["credentials"]
    url = _session_url(presign, creds)  # before capturing: botocore logs what it signs
    caplog.set_level("DEBUG")
    signature = url.rpartition("X-Amz-Signature=")[2]
    assert _call(https, local_aws, url).status == 200
    assert _call(https, local_aws, url, headers={**JSON, "x-k8s-aws-id": "other"}).status == 403
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    for secret in (signature, creds["SecretAccessKey"], creds["SessionToken"][:40]):
        assert secret not in logged


def test_counters_start_from_zero_in_each_test_part_one(local_aws: LocalAWS, https: Https) -> None:
    _call(https, local_aws, "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity")
    assert local_aws.sts_requests == 1


def test_counters_start_from_zero_in_each_test_part_two(local_aws: LocalAWS) -> None:
    assert local_aws.sts_requests == 0
    assert local_aws.redirect_hits == 0


@pytest.mark.parametrize(
    ("region", "host", "partition"),
    [
        ("cn-north-1", "sts.cn-north-1.amazonaws.com.cn", "aws-cn"),
        ("us-gov-west-1", "sts.us-gov-west-1.amazonaws.com", "aws-us-gov"),
        ("us-gov-west-1", "sts-fips.us-gov-west-1.amazonaws.com", "aws-us-gov"),
    ],
    ids=["china", "govcloud", "govcloud-fips"],
)
def test_keys_belong_to_their_partition(
    local_aws: LocalAWS, presign: Presign, https: Https, region: str, host: str, partition: str
) -> None:
    name = f"front-{partition}-{host.split('.')[0]}"
    keys = local_aws.create_user(name, region=region)
    url = presign(access_key_id=keys[0], secret_access_key=keys[1], region=region, host=host)
    answer = _call(https, local_aws, url)
    assert answer.status == 200, answer.body
    result = json.loads(answer.body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
    assert result["Arn"] == f"arn:{partition}:iam::{local_aws.account_id}:user/{name}"
    assert result["Arn"] == local_aws.user_arn(name, region=region)
    # The same key signing for a commercial-partition host is unknown there, as in AWS.
    elsewhere = presign(access_key_id=keys[0], secret_access_key=keys[1], region="us-east-1")
    refused = _call(https, local_aws, elsewhere)
    assert (refused.status, _error_code(refused.body)) == (403, "InvalidClientTokenId")


def test_expired_session_credentials(
    tmp_path: Any, session: dict[str, Any], presign: Presign, https: Https
) -> None:
    """Two hours on, alice's one-hour session has expired: ExpiredToken, like STS."""
    later = datetime.now(UTC) + timedelta(hours=2)
    certs = issue_sts_certificates(tmp_path)
    front = StsFront(ssl_context=certs.server_context, clock=lambda: later)
    front.start()
    try:
        url = _session_url(presign, session["credentials"], at=later)
        answer = https(url, port=front.port, ca_bundle=certs.ca_bundle, headers=JSON)
    finally:
        front.stop()
    assert (answer.status, _error_code(answer.body)) == (403, "ExpiredToken")


def test_host_header_is_signed_as_sent(
    local_aws: LocalAWS, alice: tuple[str, str], presign: Presign, https: Https
) -> None:
    url = presign(access_key_id=alice[0], secret_access_key=alice[1])
    with_port = _call(https, local_aws, url, host_header="sts.us-east-1.amazonaws.com:443")
    assert (with_port.status, _error_code(with_port.body)) == (403, "SignatureDoesNotMatch")
    other_region = _call(https, local_aws, url, host_header="sts.eu-west-1.amazonaws.com")
    assert (other_region.status, _error_code(other_region.body)) == (403, "SignatureDoesNotMatch")
