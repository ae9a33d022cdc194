"""Every check of a token made before the network call (pure).

:func:`validate_token` runs the rules of protocol.md section 2 in order, each a small function
named for what it checks, and returns a :class:`PresignedRequest`: the presigned URL
*re-serialised from the parsed parts*, so the request STS receives is exactly the one that was
checked (no second parser, ours or the HTTP client's, gets to read the original string).

Nothing here reads the clock (``now`` is a parameter) or touches the network. Error messages
name the failed rule and never contain the token, the URL or the signature; where they quote a
value from the token (a host, a date, an access key id) it is short and not a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from kubeiam.errors import ConfigError, TokenExpiredError, TokenFormatError
from kubeiam.partitions import PARTITIONS, is_region_shape, sts_host_region
from kubeiam.token.encoding import decode_token
from kubeiam.token.presign import uri_encode
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
    EXPIRES_KEY,
    HOST_HEADER,
    MAX_EXPIRES_SECONDS,
    QUERY_KEYS,
    SCOPE_TERMINATOR,
    SECURITY_TOKEN_KEY,
    SERVICE,
    SIGNATURE_KEY,
    SIGNED_HEADERS_KEY,
    TOKEN_LIFETIME_SECONDS,
    VERSION_KEY,
)

#: STS honours a presigned GetCallerIdentity for this long after X-Amz-Date, whatever
#: X-Amz-Expires says (protocol.md section 1).
TOKEN_LIFETIME = timedelta(seconds=TOKEN_LIFETIME_SECONDS)
#: How far in the future X-Amz-Date may be: clocks drift, but a token signed "later" than now by
#: more than this was minted on a broken clock or to outlive the window (stricter than the
#: reference, which has no such bound).
MAX_CLOCK_SKEW = timedelta(minutes=5)

#: The only query keys a token may carry, by their lower-cased name -> canonical spelling.
ALLOWED_KEYS: Mapping[str, str] = MappingProxyType({k.lower(): k for k in QUERY_KEYS})
#: Keys every token must carry (only the session token is optional: static keys have none).
REQUIRED_KEYS = frozenset(ALLOWED_KEYS) - {SECURITY_TOKEN_KEY.lower()}

#: Characters RFC 3986 allows anywhere in a URI. Anything else (spaces, control characters,
#: backslashes, non-ASCII) is refused before parsing: URL parsers disagree about them.
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
#: Host names as STS endpoints spell them: lower-case DNS labels.
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
#: DNS limits (RFC 1035): a label holds at most 63 octets, a name at most 253 characters. The
#: resolver refuses longer ones with an exception of its own (Python's IDNA codec raises
#: UnicodeError), which must never be the first place they are noticed.
MAX_LABEL_LENGTH = 63
MAX_HOST_LENGTH = 253
#: Query keys are compared case-insensitively, but only ASCII letters fold: ``str.lower`` would
#: also turn the Kelvin sign (U+212A) into ``k``, so ``X-Amz-Security-To\u212aen`` would pass
#: as an allowed key that STS itself does not recognise.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
#: Text whose every ``%`` starts two hex digits (the whole of percent_decode's strictness).
_ESCAPED_TEXT = re.compile(r"[^%]*+(?:%[0-9A-Fa-f]{2}[^%]*+)*+")
#: A query already in SigV4's canonical encoding, which every presigner writes: ``key=value``
#: pairs of unreserved characters and upper-case escapes of the bytes that are not unreserved
#: (the ``%XX`` listed are exactly those: 00-2C, 2F, 3A-40, 5B-5E, 60, 7B-7D, 7F-FF). Such a
#: query is what re-encoding its decoded parts gives back, byte for byte, so it is sent as it
#: came instead of being rebuilt (a long session token's re-encoding was a fifth of a review's
#: validation).
_CANONICAL_ESCAPE = r"%(?:[01][0-9A-F]|2[0-9A-CF]|3[A-F]|40|5[B-E]|60|7[B-DF]|[89A-F][0-9A-F])"
_CANONICAL_PART = rf"(?:[A-Za-z0-9\-_.~]++|{_CANONICAL_ESCAPE})++"
_CANONICAL_QUERY = re.compile(
    rf"{_CANONICAL_PART}={_CANONICAL_PART}(?:&{_CANONICAL_PART}={_CANONICAL_PART})*+"
)
_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_EXPIRES = re.compile(r"[0-9]{1,3}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
_HEADER_NAME = re.compile(r"[a-z0-9-]+")
#: Longest host or key quoted in a message: enough to recognise it, short enough for one line.
_QUOTE_MAX = 80


@dataclass(frozen=True, slots=True)
class PresignedRequest:
    """A token that passed every pre-network rule, ready for the one STS call.

    ``url`` is secret (it carries the signature and maybe a session token): it is excluded from
    ``repr`` so that logging this object cannot leak it.
    """

    url: str = field(repr=False)
    host: str
    #: The signing region (``us-east-1`` for the global endpoint).
    region: str
    access_key_id: str
    signed_at: datetime
    #: ``signed_at`` + 15 minutes: the moment STS stops accepting the token.
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _ParsedURL:
    host: str
    query: str


def _quote(text: str) -> str:
    """A short, printable rendering of an attacker-chosen fragment for a message."""
    shown = text if len(text) <= _QUOTE_MAX else text[:_QUOTE_MAX] + "..."
    return repr(shown)


# --- rule 3: the URL ---------------------------------------------------------------------------


def check_url_characters(url: str) -> None:
    """Only RFC 3986 characters: parsers disagree about the rest (whitespace, ``\\``...)."""
    if not _URI_CHARS.fullmatch(url):
        raise TokenFormatError(
            "the token's URL contains characters that are not allowed in a URL "
            "(whitespace, control characters, backslashes or non-ASCII)"
        )


def split_url(url: str) -> _ParsedURL:
    """Scheme ``https``, no userinfo, port or fragment, lower-case host, path exactly ``/``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "https":
        raise TokenFormatError(
            "the token's URL does not start with https://",
            hint="tokens are presigned for https://<sts host>/ only",
        )
    if "#" in rest:
        raise TokenFormatError("the token's URL has a fragment ('#'), which STS URLs never have")
    authority_end = len(rest)
    for delimiter in "/?":
        pos = rest.find(delimiter)
        if pos != -1:
            authority_end = min(authority_end, pos)
    authority, remainder = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        raise TokenFormatError("the token's URL has user information ('user@') before its host")
    if ":" in authority or "[" in authority:
        raise TokenFormatError(
            "the token's URL names a port or an IP literal; STS URLs use the default https port"
        )
    check_host_spelling(authority)
    path, qsep, query = remainder.partition("?")
    if path != "/":
        raise TokenFormatError("the token's URL path is not exactly '/'")
    if not qsep or not query:
        raise TokenFormatError("the token's URL has no query string")
    return _ParsedURL(authority, query)


def check_host_spelling(host: str) -> None:
    """Lower case, no trailing dot, well-formed DNS labels: a host has exactly one spelling."""
    if not host:
        raise TokenFormatError("the token's URL has no host")
    if host.endswith("."):
        raise TokenFormatError(
            f"the token's host {_quote(host)} ends with a dot; STS hosts are written without one"
        )
    if host != host.lower():
        raise TokenFormatError(
            f"the token's host {_quote(host)} is not lower case; STS hosts are written in "
            "lower case"
        )
    if not _HOST_NAME.fullmatch(host):
        raise TokenFormatError(f"the token's host {_quote(host)} is not a valid host name")
    check_host_length(host)


def check_host_length(host: str) -> None:
    """At most 253 characters, each label at most 63 (RFC 1035)."""
    if len(host) > MAX_HOST_LENGTH or any(len(lb) > MAX_LABEL_LENGTH for lb in host.split(".")):
        raise TokenFormatError(
            f"the token's host {_quote(host)} is not a valid host name (a DNS label is at most "
            f"{MAX_LABEL_LENGTH} characters, a name at most {MAX_HOST_LENGTH})"
        )


# --- rule 4: the host --------------------------------------------------------------------------


def parse_allowed_hosts(entries: Iterable[str]) -> dict[str, str]:
    """Parse operator-listed extra STS hosts (``HOST=REGION``, e.g. VPC endpoints, FIPS).

    Raises :class:`ConfigError` for an entry that is not a lower-case host name (within DNS's
    length limits) and a region of some partition.
    """
    hosts: dict[str, str] = {}
    for entry in entries:
        host, sep, region = entry.strip().partition("=")
        host, region = host.strip(), region.strip()
        valid_host = bool(_HOST_NAME.fullmatch(host)) and _within_dns_limits(host)
        if not sep or not valid_host or not _any_region_shape(region):
            raise ConfigError(
                f"allowed STS host entry {_quote(entry)} is not HOST=REGION",
                hint="write e.g. vpce-0abc-xyz.sts.us-east-1.vpce.amazonaws.com=us-east-1 "
                "(lower case host, its signing region)",
            )
        hosts[host] = region
    return hosts


def _any_region_shape(region: str) -> bool:
    return any(is_region_shape(region, p) for p in PARTITIONS)


def _within_dns_limits(host: str) -> bool:
    try:
        check_host_length(host)
    except TokenFormatError:
        return False
    return True


def _as_host_map(allowed_hosts: Mapping[str, str] | frozenset[str]) -> Mapping[str, str]:
    if isinstance(allowed_hosts, Mapping):
        return allowed_hosts
    return parse_allowed_hosts(sorted(allowed_hosts))


def host_region(host: str, partition: str, allowed_hosts: Mapping[str, str]) -> str:
    """The signing region of an STS host of ``partition``, or of an operator-listed host."""
    if partition not in PARTITIONS:
        raise ConfigError(
            f"unknown AWS partition {partition!r}",
            hint="use one of: " + ", ".join(sorted(PARTITIONS)),
        )
    region = sts_host_region(host, partition)
    if region is None:
        region = allowed_hosts.get(host)
    if region is None:
        raise TokenFormatError(
            f"the token's host {_quote(host)} is not an STS endpoint of partition {partition}",
            hint="tokens must be presigned for sts.<region>.<domain> of the cluster's partition, "
            "with a region such as us-east-1; an operator may list extra hosts (VPC endpoints) "
            "with --sts-allowed-host",
        )
    return region


# --- rule 5: the query -------------------------------------------------------------------------


def percent_decode(text: str) -> str:
    """Strict RFC 3986 percent-decoding: every ``%`` starts two hex digits; the result is UTF-8.

    ``+`` is a literal plus (not a space): that is how SigV4 canonicalises queries, and the
    re-serialised URL encodes it as ``%2B`` so STS reads the same value.
    """
    if "%" not in text:
        return text
    if not text.isascii():
        raise TokenFormatError("the token's query contains non-ASCII characters")
    if not _ESCAPED_TEXT.fullmatch(text):
        raise TokenFormatError("the token's query has a malformed percent-escape")
    # Checked above, each %XX is now Python's \xXX and every literal backslash is doubled, so the
    # codec (in C) reads nothing else: a session token's hundreds of escapes cost a fifth of
    # decoding them one by one. It yields one character per byte; bytes over 0x7F are UTF-8.
    decoded = text.replace("\\", "\\\\").replace("%", "\\x").encode().decode("unicode_escape")
    if decoded.isascii():
        return decoded
    try:
        return decoded.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        raise TokenFormatError("the token's query decodes to invalid UTF-8") from None


def split_query(query: str) -> list[tuple[str, str]]:
    """``key=value`` pairs split on ``&`` only, strictly decoded; ``;`` and empty parts refused."""
    if ";" in query:
        raise TokenFormatError("the token's query contains ';'; only '&' separates parameters")
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            raise TokenFormatError("the token's query has an empty parameter ('&&' or a stray '&')")
        raw_key, sep, raw_value = part.partition("=")
        if not sep:
            raise TokenFormatError("a parameter in the token's query has no value")
        pairs.append((percent_decode(raw_key), percent_decode(raw_value)))
    return pairs


def fold_key(key: str) -> str:
    """``key`` with ASCII letters lower-cased and nothing else changed (see ``_ASCII_LOWER``)."""
    # For ASCII text str.lower is exactly that, and several times cheaper than the table.
    return key.lower() if key.isascii() else key.translate(_ASCII_LOWER)


def is_visible_ascii(value: str) -> bool:
    """Printable ASCII without spaces (``\\x21``-``\\x7e``), as every parameter of a token is
    (session tokens are base64): checked by str's own tests, cheaper than a pattern per value."""
    return value.isascii() and value.isprintable() and " " not in value


def check_query_keys(pairs: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Only allowed keys, each exactly once compared case-insensitively (CVE-2022-2385).

    Case is folded for ASCII letters only (:func:`fold_key`): a key that becomes an allowed name
    only through Unicode lower-casing is not one. Returns folded key -> (key as spelled, value).
    """
    params: dict[str, tuple[str, str]] = {}
    for key, value in pairs:
        lowered = fold_key(key)
        if lowered not in ALLOWED_KEYS:
            shown = _quote(key) if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", key) else "(unprintable)"
            raise TokenFormatError(
                f"the token's query has parameter {shown}, which is not allowed",
                hint="allowed: " + ", ".join(sorted(ALLOWED_KEYS.values())),
            )
        if lowered in params:
            raise TokenFormatError(
                f"the token's query has {ALLOWED_KEYS[lowered]} more than once "
                "(keys are compared case-insensitively)"
            )
        if not value:
            raise TokenFormatError(f"the token's {ALLOWED_KEYS[lowered]} is empty")
        if not is_visible_ascii(value):
            raise TokenFormatError(
                f"the token's {ALLOWED_KEYS[lowered]} contains spaces, control or non-ASCII "
                "characters"
            )
        params[lowered] = (key, value)
    missing = sorted(ALLOWED_KEYS[k] for k in REQUIRED_KEYS - params.keys())
    if missing:
        raise TokenFormatError(
            "the token's query lacks " + ", ".join(missing),
            hint="the token was not presigned by a GetCallerIdentity presigner",
        )
    return params


# --- rules 6 to 10: the parameters -------------------------------------------------------------


def check_action(action: str, version: str, algorithm: str) -> None:
    """Action exactly GetCallerIdentity; Version 2011-06-15; algorithm AWS4-HMAC-SHA256."""
    if action != ACTION:
        raise TokenFormatError(
            f"the token's Action is not {ACTION}",
            hint="only presigned sts:GetCallerIdentity requests are tokens",
        )
    if version != API_VERSION:
        raise TokenFormatError(f"the token's Version is not {API_VERSION}")
    if algorithm != ALGORITHM:
        raise TokenFormatError(f"the token's X-Amz-Algorithm is not {ALGORITHM}")


def check_signed_headers(signed_headers: str) -> None:
    """SignedHeaders lists ``host`` and ``x-k8s-aws-id``: the token is bound to one cluster."""
    names = signed_headers.split(";")
    if not all(_HEADER_NAME.fullmatch(n) for n in names):
        raise TokenFormatError("the token's X-Amz-SignedHeaders is malformed")
    if CLUSTER_ID_HEADER not in names:
        raise TokenFormatError(
            f"the token does not sign the {CLUSTER_ID_HEADER} header, so it is not bound to a "
            "cluster",
            hint="mint tokens with `kubeiam token -i <cluster id>` or another EKS token client",
        )
    if HOST_HEADER not in names:
        raise TokenFormatError("the token does not sign the host header")


def check_signature_form(signature: str) -> None:
    """X-Amz-Signature is 64 lower-case hex digits (never quoted in messages)."""
    if not _SIGNATURE.fullmatch(signature):
        raise TokenFormatError("the token's X-Amz-Signature is not 64 lower-case hex digits")


def check_expires(expires: str) -> None:
    """X-Amz-Expires is an integer in 0..900."""
    if not _EXPIRES.fullmatch(expires) or int(expires) > MAX_EXPIRES_SECONDS:
        raise TokenFormatError(
            f"the token's X-Amz-Expires is not an integer between 0 and {MAX_EXPIRES_SECONDS}"
        )


def parse_signing_date(date: str) -> datetime:
    """X-Amz-Date as ``yyyymmddTHHMMSSZ`` (UTC)."""
    if not _DATE.fullmatch(date):
        raise TokenFormatError(f"the token's X-Amz-Date is not of the form {AMZ_DATE_FORMAT}")
    try:
        # The pattern above fixed every position to digits: slicing is what strptime would do,
        # without its per-call format parsing (a tenth of a review's validation).
        return datetime(
            int(date[0:4]),
            int(date[4:6]),
            int(date[6:8]),
            int(date[9:11]),
            int(date[11:13]),
            int(date[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        raise TokenFormatError("the token's X-Amz-Date is not a valid date and time") from None


def check_time_window(signed_at: datetime, now: datetime) -> None:
    """``signed_at <= now + 5 min`` and ``now <= signed_at + 15 min``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if now > signed_at + TOKEN_LIFETIME:
        age = int((now - signed_at).total_seconds())
        raise TokenExpiredError(
            f"the token expired: it was signed at {signed_at:%Y-%m-%dT%H:%M:%SZ}, {age} s ago, "
            f"and tokens are valid for {int(TOKEN_LIFETIME.total_seconds())} s",
            hint="get a new token (kubectl does so on its next run); if this keeps happening, "
            "check the clocks of client and server",
        )
    if signed_at > now + MAX_CLOCK_SKEW:
        ahead = int((signed_at - now).total_seconds())
        raise TokenExpiredError(
            f"the token was signed {ahead} s in the future ({signed_at:%Y-%m-%dT%H:%M:%SZ}); "
            f"at most {int(MAX_CLOCK_SKEW.total_seconds())} s of clock skew is accepted",
            hint="synchronise the client's and the server's clocks (NTP)",
        )


def parse_credential(credential: str, date: str, host_region_: str) -> str:
    """``AKID/yyyymmdd/region/sts/aws4_request``, same day as X-Amz-Date, the host's region.

    Returns the access key id.
    """
    parts = credential.split("/")
    if len(parts) != 5:
        raise TokenFormatError(
            "the token's X-Amz-Credential is not AKID/yyyymmdd/region/sts/aws4_request"
        )
    akid, day, region, service, terminator = parts
    if not _ACCESS_KEY_ID.fullmatch(akid):
        raise TokenFormatError("the token's X-Amz-Credential does not start with an access key id")
    if service != SERVICE or terminator != SCOPE_TERMINATOR:
        raise TokenFormatError(
            f"the token's credential (access key {akid}) is not scoped to sts/aws4_request"
        )
    if day != date[:8]:
        raise TokenFormatError(
            f"the token's credential day does not match its X-Amz-Date (access key {akid})"
        )
    if region != host_region_:
        shown = _quote(region) if _any_region_shape(region) else "(malformed)"
        raise TokenFormatError(
            f"the token is signed for region {shown} but its host is the STS endpoint of "
            f"{host_region_} (access key {akid})",
            hint="sign for the region of the STS host (the global sts.amazonaws.com signs as "
            "us-east-1)",
        )
    return akid


# --- the pipeline ------------------------------------------------------------------------------


def serialise_url(host: str, query: str, pairs: list[tuple[str, str]]) -> str:
    """The URL STS receives: the checked parts (``pairs``, decoded from ``query``) in their
    original order, in SigV4's canonical encoding. A query already in that encoding is that
    URL's query as it stands (see ``_CANONICAL_QUERY``); any other is rebuilt from the parts."""
    if not _CANONICAL_QUERY.fullmatch(query):
        query = "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in pairs)
    return f"https://{host}/?{query}"


def validate_token(
    token: str,
    *,
    partition: str,
    now: datetime,
    allowed_hosts: Mapping[str, str] | frozenset[str] = frozenset(),
) -> PresignedRequest:
    """Check every rule of protocol.md section 2 that needs no network call.

    ``allowed_hosts`` lists extra STS hosts (VPC endpoints) with their signing region, as a
    mapping or as ``HOST=REGION`` strings; nothing else widens the partition's host list.
    Raises :class:`TokenFormatError` (or :class:`TokenExpiredError` for the time window).
    """
    url = decode_token(token)  # rules 1 and 2
    check_url_characters(url)  # rule 3
    parsed = split_url(url)
    region = host_region(parsed.host, partition, _as_host_map(allowed_hosts))  # rule 4
    pairs = split_query(parsed.query)  # rule 5
    params = check_query_keys(pairs)

    def value(key: str) -> str:
        return params[key.lower()][1]

    check_action(value(ACTION_KEY), value(VERSION_KEY), value(ALGORITHM_KEY))  # rule 6
    check_signed_headers(value(SIGNED_HEADERS_KEY))  # rule 7
    check_signature_form(value(SIGNATURE_KEY))
    check_expires(value(EXPIRES_KEY))  # rule 8
    date = value(DATE_KEY)
    signed_at = parse_signing_date(date)  # rule 9
    access_key_id = parse_credential(value(CREDENTIAL_KEY), date, region)  # rule 10
    check_time_window(signed_at, now)
    return PresignedRequest(
        url=serialise_url(parsed.host, parsed.query, pairs),
        host=parsed.host,
        region=region,
        access_key_id=access_key_id,
        signed_at=signed_at,
        expires_at=signed_at + TOKEN_LIFETIME,
    )
