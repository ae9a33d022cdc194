"""SigV4 query presigner for STS GetCallerIdentity, and the STS host a client signs for (pure).

This is the whole cryptographic job of ``kubeiam token``: a presigned
``GET https://<sts-host>/?Action=GetCallerIdentity&Version=2011-06-15`` with the cluster id in the
signed ``x-k8s-aws-id`` header (protocol.md section 1). botocore's
``generate_presigned_url('get_caller_identity', ExpiresIn=60)`` with a ``before-sign`` hook adding
that header is the oracle: the output here is byte-identical to it, including the order of the
query keys in the final URL (operation parameters first, then the auth parameters in the order
botocore adds them), which the property tests check.

Start-up time matters more than anything else here, so this module imports only ``time`` and
CPython's builtin SHA-256 (``now`` may be unix seconds, so not even ``datetime``). ``hashlib`` and
``hmac`` load OpenSSL (~4 ms), so HMAC is the RFC 2104 construction written out (held to
:func:`hmac.new` and to botocore by the tests), and there is no ``urllib.parse`` (it drags in
``re``; the RFC 3986 encoder below is a few lines).
"""

from __future__ import annotations

import time

from kubeiam.partitions import (
    GLOBAL_STS_HOST,
    GLOBAL_STS_REGION,
    partition_for_region,
    sts_host_for_region,
)

#: The one operation and API version a token may carry (protocol.md section 2, rule 6).
ACTION = "GetCallerIdentity"
API_VERSION = "2011-06-15"
ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sts"
#: The signed header that binds a token to one cluster.
CLUSTER_ID_HEADER = "x-k8s-aws-id"
SIGNED_HEADERS = "host;" + CLUSTER_ID_HEADER
#: STS honours a presigned GetCallerIdentity for 15 minutes whatever this says; 60 is what every
#: client sends (old servers required 0..60).
DEFAULT_EXPIRES = 60
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from hashlib import sha256
else:
    try:  # CPython 3.11's builtin SHA-256: hashlib and hmac would load OpenSSL (~4 ms)
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

#: SHA-256 of the empty payload of a GET.
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#: Regions that botocore still sends to the global endpoint when ``sts_regional_endpoints`` is
#: ``legacy`` (botocore.args.LEGACY_GLOBAL_STS_REGIONS, checked by a test). Opt-in regions never
#: had a global endpoint, so they stay regional even then.
LEGACY_GLOBAL_REGIONS = frozenset(
    {
        "ap-northeast-1",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "aws-global",
        "ca-central-1",
        "eu-central-1",
        "eu-north-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)

#: RFC 3986 unreserved characters: never percent-encoded (the SigV4 rule, and botocore's).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def sts_endpoint(
    region: str | None, *, legacy: bool = False, fips: bool = False, dualstack: bool = False
) -> tuple[str, str]:
    """``(host, signing_region)`` of the STS endpoint a token for ``region`` is signed for.

    Matches botocore's endpoint rules for STS: regional hosts by default; the global
    ``sts.amazonaws.com`` (signed as us-east-1) when no region is known, or with ``legacy`` for
    the regions that had it; GovCloud's plain host when FIPS is asked for without dual-stack
    (its regular endpoints are FIPS endpoints). One deliberate difference: with FIPS or
    dual-stack and no region, botocore builds ``sts-fips.aws-global...``, a host that does not
    exist; kubeiam signs for us-east-1 instead. Raises ``ValueError`` for a partition without a
    dual-stack endpoint.
    """
    if region is None or region == "aws-global":
        if not (fips or dualstack):
            return GLOBAL_STS_HOST, GLOBAL_STS_REGION
        region = GLOBAL_STS_REGION
    if fips or dualstack:
        if fips and not dualstack and partition_for_region(region).name == "aws-us-gov":
            return sts_host_for_region(region), region
        return sts_host_for_region(region, fips=fips, dualstack=dualstack), region
    if legacy and region in LEGACY_GLOBAL_REGIONS:
        return GLOBAL_STS_HOST, GLOBAL_STS_REGION
    return sts_host_for_region(region), region


def uri_encode(value: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters (upper-case hex, UTF-8)."""
    out: list[str] = []
    for byte in value.encode("utf-8"):
        out.append(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}")
    return "".join(out)


#: HMAC's inner and outer pads as byte translation tables (RFC 2104).
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_BLOCK = 64


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104); the tests hold it to :func:`hmac.new`."""
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = sha256(key.translate(_IPAD) + msg).digest()
    return sha256(key.translate(_OPAD) + inner).digest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac_sha256(key, msg.encode("utf-8"))


def signing_key(secret_access_key: str, date: str, region: str) -> bytes:
    """The SigV4 key chain ``"AWS4"+secret -> date -> region -> "sts" -> "aws4_request"``."""
    k_date = _hmac(f"AWS4{secret_access_key}".encode(), date)
    return _hmac(_hmac(_hmac(k_date, region), SERVICE), "aws4_request")


def amz_date(now: datetime | float) -> str:
    """``yyyymmddTHHMMSSZ`` in UTC of a datetime (naive means UTC) or of unix seconds.

    Unix seconds let the plugin sign without importing ``datetime`` (~2 ms of start-up).
    """
    if isinstance(now, int | float):
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(int(now)))
    if now.tzinfo is not None:
        from datetime import UTC  # already imported by whoever built ``now``

        now = now.astimezone(UTC)
    return (
        f"{now.year:04d}{now.month:02d}{now.day:02d}T"
        f"{now.hour:02d}{now.minute:02d}{now.second:02d}Z"
    )


def presign_get_caller_identity(
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str,
    host: str,
    cluster_id: str,
    now: datetime | float,
    expires: int = DEFAULT_EXPIRES,
) -> str:
    """The presigned GetCallerIdentity URL, signed at ``now`` for ``region`` and ``host``.

    ``now`` is a datetime (naive means UTC) or unix seconds; fractions of a second are dropped.

    The cluster id goes into the signed ``x-k8s-aws-id`` header, never into the query. Its value
    is canonicalised the SigV4 way (outer whitespace removed, inner runs collapsed to one space).
    """
    stamp = amz_date(now)
    date = stamp[:8]
    scope = f"{date}/{region}/{SERVICE}/aws4_request"
    # Final URL order: operation parameters, then auth parameters in the order botocore adds
    # them (the security token after the signed headers), then the signature.
    params = [
        ("Action", ACTION),
        ("Version", API_VERSION),
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key_id}/{scope}"),
        ("X-Amz-Date", stamp),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", SIGNED_HEADERS),
    ]
    if session_token is not None:
        params.append(("X-Amz-Security-Token", session_token))
    encoded = [(uri_encode(k), uri_encode(v)) for k, v in params]
    query = "&".join(f"{k}={v}" for k, v in encoded)
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(encoded))
    header_value = " ".join(cluster_id.split())
    canonical_request = (
        f"GET\n/\n{canonical_query}\n"
        f"host:{host}\n{CLUSTER_ID_HEADER}:{header_value}\n\n"
        f"{SIGNED_HEADERS}\n{_EMPTY_SHA256}"
    )
    string_to_sign = (
        f"{ALGORITHM}\n{stamp}\n{scope}\n" + sha256(canonical_request.encode("utf-8")).hexdigest()
    )
    signature = _hmac(signing_key(secret_access_key, date, region), string_to_sign).hex()
    return f"https://{host}/?{query}&X-Amz-Signature={signature}"
