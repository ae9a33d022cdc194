"""SigV4 query presigner for STS GetCallerIdentity, and the product's SigV4 URI encoder (pure).

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
``re``; the RFC 3986 encoder below is a few lines). The wire constants come from
:mod:`kubeiam.token.protocol`, the host to sign for from :func:`kubeiam.partitions.sts_endpoint`.
"""

import time

from kubeiam.token.protocol import (
    ACTION,
    ACTION_KEY,
    ALGORITHM,
    ALGORITHM_KEY,
    AMZ_DATE_FORMAT,
    API_VERSION,
    CLUSTER_ID_HEADER,
    CREDENTIAL_KEY,
    DATE_KEY,
    DEFAULT_EXPIRES_SECONDS,
    EXPIRES_KEY,
    HOST_HEADER,
    SCOPE_TERMINATOR,
    SECURITY_TOKEN_KEY,
    SERVICE,
    SIGNATURE_KEY,
    SIGNED_HEADERS,
    SIGNED_HEADERS_KEY,
    VERSION_KEY,
)

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

#: RFC 3986 unreserved characters: never percent-encoded (the SigV4 rule, and botocore's).
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
#: Every byte's encoded spelling: itself if unreserved, else ``%XX`` in upper-case hex.
_ENCODED_BYTES = tuple(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256))


def uri_encode(value: str) -> str:
    """SigV4's UriEncode: everything but RFC 3986 unreserved characters (``A-Za-z0-9-_.~``) as
    upper-case ``%XX`` of its UTF-8 bytes.

    The product's one encoder: the presigner builds its query with it, and the verifier
    re-serialises a checked token's query with it, so STS receives exactly what was checked. An
    all-unreserved value is returned as is, others are mapped through a table in C: both several
    times faster than formatting byte by byte, which was most of a review's validation.
    """
    raw = value.encode("utf-8")
    if not raw.rstrip(_UNRESERVED):
        return value
    return "".join(map(_ENCODED_BYTES.__getitem__, raw))


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
    return _hmac(_hmac(_hmac(k_date, region), SERVICE), SCOPE_TERMINATOR)


def amz_date(now: "datetime | float") -> str:
    """``yyyymmddTHHMMSSZ`` in UTC of a datetime (naive means UTC) or of unix seconds.

    Unix seconds let the plugin sign without importing ``datetime`` (~2 ms of start-up).
    """
    if isinstance(now, int | float):
        return time.strftime(AMZ_DATE_FORMAT, time.gmtime(int(now)))
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
    now: "datetime | float",
    expires: int = DEFAULT_EXPIRES_SECONDS,
) -> str:
    """The presigned GetCallerIdentity URL, signed at ``now`` for ``region`` and ``host``.

    ``now`` is a datetime (naive means UTC) or unix seconds; fractions of a second are dropped.

    The cluster id goes into the signed ``x-k8s-aws-id`` header, never into the query. Its value
    is canonicalised the SigV4 way (outer whitespace removed, inner runs collapsed to one space).
    """
    stamp = amz_date(now)
    date = stamp[:8]
    scope = f"{date}/{region}/{SERVICE}/{SCOPE_TERMINATOR}"
    # Final URL order: operation parameters, then auth parameters in the order botocore adds
    # them (the security token after the signed headers), then the signature.
    params = [
        (ACTION_KEY, ACTION),
        (VERSION_KEY, API_VERSION),
        (ALGORITHM_KEY, ALGORITHM),
        (CREDENTIAL_KEY, f"{access_key_id}/{scope}"),
        (DATE_KEY, stamp),
        (EXPIRES_KEY, str(expires)),
        (SIGNED_HEADERS_KEY, SIGNED_HEADERS),
    ]
    if session_token is not None:
        params.append((SECURITY_TOKEN_KEY, session_token))
    encoded = [(uri_encode(k), uri_encode(v)) for k, v in params]
    query = "&".join(f"{k}={v}" for k, v in encoded)
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(encoded))
    header_value = " ".join(cluster_id.split())
    canonical_request = (
        f"GET\n/\n{canonical_query}\n"
        f"{HOST_HEADER}:{host}\n{CLUSTER_ID_HEADER}:{header_value}\n\n"
        f"{SIGNED_HEADERS}\n{_EMPTY_SHA256}"
    )
    string_to_sign = (
        f"{ALGORITHM}\n{stamp}\n{scope}\n" + sha256(canonical_request.encode("utf-8")).hexdigest()
    )
    signature = _hmac(signing_key(secret_access_key, date, region), string_to_sign).hex()
    return f"https://{host}/?{query}&{SIGNATURE_KEY}={signature}"
