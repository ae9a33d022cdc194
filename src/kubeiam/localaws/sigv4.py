"""SigV4 *query* signature checking, as STS does it for a presigned GetCallerIdentity (pure).

Written independently of :mod:`kubeiam.token.presign` on purpose: the STS front checks tokens
with this code, so a mistake in either side of the protocol shows up as a refused signature
instead of two copies of one bug agreeing with each other. Nothing here imports the presigner.

The functions return values, never raise: a refusal is a :class:`Refusal` carrying the STS error
code, HTTP status and message the front puts in its error document.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
#: The scope terminator every SigV4 credential ends with.
TERMINATOR = "aws4_request"
SERVICE = "sts"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
#: STS honours a presigned GetCallerIdentity this long after X-Amz-Date, whatever X-Amz-Expires
#: says (protocol.md section 1); the same bound applies to dates in the future (clock skew).
VALIDITY = timedelta(minutes=15)
#: RFC 3986 unreserved characters besides alphanumerics: SigV4 never percent-encodes these.
_UNRESERVED = "-_.~"
#: Query keys that carry the signature itself rather than being signed.
SIGNATURE_KEY = "X-Amz-Signature"
#: The query keys a presigned request must carry (exact case, as STS reads them).
_REQUIRED_AUTH_KEYS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders")


class ErrorCode(StrEnum):
    """STS error codes the front answers with (the ``Code`` of an ErrorResponse)."""

    # Error code names, not secrets (ruff S105 sees "TOKEN" in them).

    SIGNATURE_DOES_NOT_MATCH = "SignatureDoesNotMatch"
    INCOMPLETE_SIGNATURE = "IncompleteSignature"
    MISSING_AUTHENTICATION_TOKEN = "MissingAuthenticationToken"  # noqa: S105
    INVALID_CLIENT_TOKEN_ID = "InvalidClientTokenId"  # noqa: S105
    EXPIRED_TOKEN = "ExpiredToken"  # noqa: S105
    INVALID_ACTION = "InvalidAction"
    MALFORMED_QUERY_STRING = "MalformedQueryString"
    THROTTLING = "Throttling"
    INTERNAL_FAILURE = "InternalFailure"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused, in STS's terms. The message never contains a secret."""

    status: int
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class QueryAuth:
    """The authentication parameters of a presigned request, parsed but not yet verified."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    terminator: str
    amz_date: str
    signed_at: datetime
    signed_headers: tuple[str, ...]
    signature: str
    session_token: str | None
    #: Every query parameter except the signature, decoded, in arrival order.
    params: tuple[tuple[str, str], ...]

    @property
    def scope(self) -> str:
        return f"{self.scope_date}/{self.region}/{self.service}/{self.terminator}"


def parse_query(raw_query: str) -> tuple[tuple[str, str], ...] | Refusal:
    """Split a raw query string on ``&`` and percent-decode each key and value strictly."""
    pairs: list[tuple[str, str]] = []
    if not raw_query:
        return ()
    for part in raw_query.split("&"):
        key, _, value = part.partition("=")
        try:
            pairs.append((unquote(key, errors="strict"), unquote(value, errors="strict")))
        except UnicodeDecodeError:
            return Refusal(400, ErrorCode.MALFORMED_QUERY_STRING, "query is not valid UTF-8")
    return tuple(pairs)


def parse_query_auth(params: Sequence[tuple[str, str]]) -> QueryAuth | Refusal:
    """Read the X-Amz-* parameters of a presigned request (no secret needed yet)."""
    values: dict[str, str] = {}
    for key, value in params:
        if key in values:
            return Refusal(
                400, ErrorCode.MALFORMED_QUERY_STRING, f"query parameter {key} appears twice"
            )
        values[key] = value
    present = [k for k in (*_REQUIRED_AUTH_KEYS, SIGNATURE_KEY) if k in values]
    if not present:
        return Refusal(
            403, ErrorCode.MISSING_AUTHENTICATION_TOKEN, "Request is missing Authentication Token"
        )
    missing = [k for k in (*_REQUIRED_AUTH_KEYS, SIGNATURE_KEY) if k not in values]
    if missing:
        return Refusal(
            400,
            ErrorCode.INCOMPLETE_SIGNATURE,
            f"presigned request is missing query parameters: {', '.join(missing)}",
        )
    if values["X-Amz-Algorithm"] != ALGORITHM:
        return Refusal(
            400, ErrorCode.INCOMPLETE_SIGNATURE, f"X-Amz-Algorithm only supports {ALGORITHM}"
        )
    credential = values["X-Amz-Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        return Refusal(
            400,
            ErrorCode.INCOMPLETE_SIGNATURE,
            "X-Amz-Credential must be AKID/yyyymmdd/region/service/aws4_request",
        )
    try:
        signed_at = datetime.strptime(values["X-Amz-Date"], AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return Refusal(
            400, ErrorCode.INCOMPLETE_SIGNATURE, "X-Amz-Date must have the form yyyymmddTHHMMSSZ"
        )
    signed_headers = tuple(values["X-Amz-SignedHeaders"].split(";"))
    return QueryAuth(
        access_key_id=credential[0],
        scope_date=credential[1],
        region=credential[2],
        service=credential[3],
        terminator=credential[4],
        amz_date=values["X-Amz-Date"],
        signed_at=signed_at,
        signed_headers=signed_headers,
        signature=values[SIGNATURE_KEY],
        session_token=values.get("X-Amz-Security-Token"),
        params=tuple((k, v) for k, v in params if k != SIGNATURE_KEY),
    )


def check_scope(auth: QueryAuth, *, region: str) -> Refusal | None:
    """The credential scope must name this region, ``sts``, ``aws4_request`` and the signing day."""
    if auth.service != SERVICE:
        return _mismatch(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if auth.terminator != TERMINATOR:
        return _mismatch(f"Credential should be scoped with a valid terminator: '{TERMINATOR}'.")
    if auth.region != region:
        return _mismatch(
            f"Credential should be scoped to a valid region, not '{auth.region}' "
            f"(this endpoint is in '{region}')."
        )
    if auth.scope_date != auth.amz_date[:8]:
        return _mismatch(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date."
        )
    if "host" not in auth.signed_headers:
        return _mismatch("the host header must be signed (X-Amz-SignedHeaders lacks host).")
    return None


def check_window(auth: QueryAuth, *, now: datetime) -> Refusal | None:
    """STS's 15-minute window on either side of X-Amz-Date."""
    stamp = now.astimezone(UTC).strftime(AMZ_DATE_FORMAT)
    if now > auth.signed_at + VALIDITY:
        return _mismatch(
            f"Signature expired: {auth.amz_date} is now earlier than the window start "
            f"({stamp} - 15 min.)"
        )
    if auth.signed_at > now + VALIDITY:
        return _mismatch(
            f"Signature not yet current: {auth.amz_date} is still later than the window end "
            f"({stamp} + 15 min.)"
        )
    return None


def canonical_query(params: Sequence[tuple[str, str]]) -> str:
    """Keys and values RFC 3986 encoded, pairs sorted by encoded key then value."""
    encoded = sorted((quote(k, safe=_UNRESERVED), quote(v, safe=_UNRESERVED)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_headers(
    signed_headers: Sequence[str], headers: Mapping[str, Sequence[str]]
) -> str | Refusal:
    """``name:value\\n`` for each signed header, from the headers the request really carried.

    ``headers`` maps lower-case names to every value received; repeated values are joined with
    commas and inner runs of spaces collapsed, as SigV4 specifies.
    """
    lines = []
    for name in signed_headers:
        received = headers.get(name)
        if not received:
            return _mismatch(f"signed header {name} is missing from the request")
        value = ",".join(" ".join(v.split()) for v in received)
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def canonical_request(
    *, method: str, path: str, auth: QueryAuth, headers: Mapping[str, Sequence[str]], body: bytes
) -> str | Refusal:
    """The SigV4 canonical request of a query-signed request."""
    header_block = canonical_headers(auth.signed_headers, headers)
    if isinstance(header_block, Refusal):
        return header_block
    return "\n".join(
        (
            method,
            quote(path or "/", safe="/" + _UNRESERVED),
            canonical_query(auth.params),
            header_block,
            ";".join(auth.signed_headers),
            hashlib.sha256(body).hexdigest(),
        )
    )


def string_to_sign(auth: QueryAuth, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{auth.amz_date}\n{auth.scope}\n{digest}"


def signing_key(secret_access_key: str, auth: QueryAuth) -> bytes:
    """``"AWS4"+secret -> date -> region -> service -> aws4_request``."""
    key = ("AWS4" + secret_access_key).encode("utf-8")
    for part in (auth.scope_date, auth.region, auth.service, auth.terminator):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def expected_signature(secret_access_key: str, auth: QueryAuth, canonical: str) -> str:
    key = signing_key(secret_access_key, auth)
    message = string_to_sign(auth, canonical).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def check_signature(
    *,
    secret_access_key: str,
    auth: QueryAuth,
    method: str,
    path: str,
    headers: Mapping[str, Sequence[str]],
    body: bytes = b"",
) -> Refusal | None:
    """``None`` when the request's signature is the one ``secret_access_key`` produces."""
    canonical = canonical_request(method=method, path=path, auth=auth, headers=headers, body=body)
    if isinstance(canonical, Refusal):
        return canonical
    wanted = expected_signature(secret_access_key, auth, canonical)
    if hmac.compare_digest(wanted.encode("ascii"), auth.signature.encode("utf-8", "replace")):
        return None
    return _mismatch(
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method."
    )


def _mismatch(message: str) -> Refusal:
    return Refusal(403, ErrorCode.SIGNATURE_DOES_NOT_MATCH, message)
