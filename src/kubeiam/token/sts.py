"""The one STS call: GET a checked, re-serialised presigned URL (protocol.md section 2).

:class:`STSClient` is a thin adapter over :mod:`kubeiam.token.sts_http` (a small, strict
HTTPS client for this one GET, pooled keep-alive connections) with the safety rules of the
protocol built in: redirects are never followed (a 3xx is a failure), one deadline for the whole
call, a cap on the answer's size, ``Accept: application/json`` (XML answers are accepted too,
parsed with DTDs and entity declarations refused), and errors that name the STS error *code* but
never the URL.

``--sts-resolve HOST=ADDR:PORT`` (:func:`parse_resolve_specs`) sends requests for an allowed STS
host name to another address, like curl's ``--resolve``: the Host header, SNI and certificate
check still use the STS host name, and the host allowlist still applies. Tests and demos use it
to reach the local STS front over TLS verified with ``--sts-ca-bundle``.

Every other host name is looked up by :class:`~kubeiam.token.resolver.BoundedResolver`: a small
pool of its own with per-host single flight and positive and negative caches, so that tokens
naming hosts that resolve slowly or not at all cannot delay the reviews of anyone else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from xml.parsers import expat

from kubeiam import __version__
from kubeiam.errors import (
    ConfigError,
    STSError,
    STSThrottledError,
    STSUnavailableError,
)
from kubeiam.partitions import sts_host_region
from kubeiam.token.protocol import CLUSTER_ID_HEADER
from kubeiam.token.resolver import BoundedResolver
from kubeiam.token.sts_http import (
    BodyTooLarge,
    ConnectError,
    ConnectionPool,
    HTTPClientError,
    InvalidRequest,
    TLSError,
)
from kubeiam.token.validation import PresignedRequest

if TYPE_CHECKING:
    from types import TracebackType

    from aiohttp.abc import AbstractResolver

log = logging.getLogger(__name__)

#: The reference uses 10 s for connecting and reading.
DEFAULT_TIMEOUT = 10.0
#: A GetCallerIdentity answer is well under 1 KiB; anything near this cap is not STS.
DEFAULT_MAX_BODY = 64 * 1024
#: The environment variable holding comma-separated ``HOST=ADDR:PORT`` entries.
RESOLVE_ENV = "KUBEIAM_STS_RESOLVE"
#: Deepest XML nesting accepted: STS answers are three or four levels deep.
_MAX_XML_DEPTH = 16
#: What an STS error code looks like; anything else is reported as "unknown".
_ERROR_CODE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Values of a success answer: printable ASCII (ARNs, account and user ids).
_ANSWER_VALUE = re.compile(r"[\x21-\x7e]{1,2048}")

#: Hints for the STS error codes an operator meets, by code.
_ERROR_HINTS: Mapping[str, str] = MappingProxyType(
    {
        "SignatureDoesNotMatch": "the token was minted for another cluster id (-i), or it was "
        "altered; mint a new token for this cluster",
        "ExpiredToken": "the session credentials that signed the token have expired; refresh "
        "them and mint a new token",
        "InvalidClientTokenId": "the access key id is unknown to AWS or deactivated, or the "
        "region the token was signed for is not enabled for the account",
        "AccessDenied": "the caller is not allowed to call sts:GetCallerIdentity",
        "IncompleteSignature": "the token's signature is incomplete; mint a new token",
        "RequestExpired": "the token is too old for STS; mint a new token and check clocks",
    }
)

#: ``(event, HTTP status or None, STS region) -> None``; events: "response",
#: "connection_failure", "throttled", and from the name resolver (region ""): "name_lookup",
#: "name_lookup_refused". The server turns them into Prometheus counters.
Observer = Callable[[str, int | None, str], None]


def resolver_events(observer: Observer | None) -> Callable[[str], None] | None:
    """The name resolver's ``on_event`` that reports to ``observer`` (``name_lookup`` and
    ``name_lookup_refused``, region "")."""
    if observer is None:
        return None

    def on_event(event: str) -> None:
        observer("name_lookup" if event == "lookup" else "name_lookup_refused", None, "")

    return on_event


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """The three fields of a GetCallerIdentity answer."""

    arn: str
    account: str
    user_id: str


# --- --sts-resolve ------------------------------------------------------------------------------


def resolve_specs_from_env(value: str | None) -> list[str]:
    """Split ``KUBEIAM_STS_RESOLVE`` (comma-separated ``HOST=ADDR:PORT`` entries)."""
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_resolve_specs(
    specs: Iterable[str],
    *,
    partition: str,
    allowed_hosts: Mapping[str, str] = MappingProxyType({}),
) -> dict[str, tuple[str, int]]:
    """Parse ``HOST=ADDR:PORT`` entries into ``{host: (addr, port)}``.

    ``HOST`` must be an STS host of ``partition`` (or an operator-listed extra host): routing
    never widens what tokens may name. ``ADDR`` is an IP address (IPv6 in brackets).
    Raises :class:`ConfigError`.
    """
    table: dict[str, tuple[str, int]] = {}
    for spec in specs:
        host, sep, target = spec.strip().partition("=")
        if not sep:
            raise ConfigError(
                f"--sts-resolve entry {spec!r} is not HOST=ADDR:PORT",
                hint="write e.g. sts.us-east-1.amazonaws.com=127.0.0.1:8443",
            )
        if sts_host_region(host, partition) is None and host not in allowed_hosts:
            raise ConfigError(
                f"--sts-resolve host {host!r} is not an STS host of partition {partition}",
                hint="only STS host names (sts.<region>.<domain>, sts-fips..., the dual-stack "
                "forms, sts.amazonaws.com) can be routed; check the spelling and --partition",
            )
        table[host] = _parse_address(spec, target)
    return table


def _parse_address(spec: str, target: str) -> tuple[str, int]:
    if target.startswith("["):
        addr, bracket, port_s = target[1:].partition("]")
        if not bracket or not port_s.startswith(":"):
            addr, port_s = "", ""
        port_s = port_s[1:]
    else:
        # An IPv6 address must be bracketed: "::1:443" is itself an address.
        addr, _, port_s = target.rpartition(":")
        addr = "" if ":" in addr else addr
    try:
        ip = ipaddress.ip_address(addr)
        port = int(port_s) if re.fullmatch(r"[0-9]{1,5}", port_s) else -1
    except ValueError:
        port = -1
    if port < 1 or port > 65535:
        raise ConfigError(
            f"--sts-resolve entry {spec!r} does not end in ADDR:PORT with an IP address and a "
            "port between 1 and 65535",
            hint="write e.g. sts.us-east-1.amazonaws.com=127.0.0.1:8443 or ...=[::1]:8443",
        )
    return str(ip), port


# --- answers --------------------------------------------------------------------------------


class _XMLRefused(Exception):
    """An XML answer carried a DTD or entity declaration, which STS never sends."""


def parse_xml_fields(body: bytes) -> dict[str, str]:
    """Text of every leaf element by its path of local names (``A/B/C``), safely.

    DTDs, entity declarations and external entities are refused; nesting is bounded.
    Raises ``ValueError`` for anything that is not plain, small XML.
    """
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[str] = []
    texts: list[list[str]] = []
    fields: dict[str, str] = {}

    def refuse(*_args: Any) -> None:
        raise _XMLRefused

    def refuse_external(*_args: Any) -> int:
        raise _XMLRefused

    def start(name: str, _attrs: dict[str, str]) -> None:
        if len(stack) >= _MAX_XML_DEPTH:
            raise _XMLRefused
        stack.append(name.rpartition(":")[2])
        texts.append([])

    def end(_name: str) -> None:
        path = "/".join(stack)
        fields.setdefault(path, "".join(texts[-1]).strip())
        stack.pop()
        texts.pop()

    def chars(data: str) -> None:
        if texts:
            texts[-1].append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse_external
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except (_XMLRefused, expat.ExpatError) as exc:
        raise ValueError("not plain XML") from exc
    return fields


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def _dig(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def parse_success(body: bytes) -> CallerIdentity:
    """The caller from a 200 answer, JSON or XML; :class:`STSError` if it is not one."""
    result: tuple[Any, Any, Any]
    try:
        if body.lstrip().startswith(b"<"):
            xml = parse_xml_fields(body)
            base = "GetCallerIdentityResponse/GetCallerIdentityResult/"
            result = (xml.get(base + "Arn"), xml.get(base + "Account"), xml.get(base + "UserId"))
        else:
            doc = _dig(_json_object(body), "GetCallerIdentityResponse", "GetCallerIdentityResult")
            result = (_dig(doc, "Arn"), _dig(doc, "Account"), _dig(doc, "UserId"))
    except ValueError:
        raise STSError(
            "STS answered 200 with a body that is neither JSON nor plain XML",
            hint="check that --sts-resolve / the network path reaches the real STS",
        ) from None
    arn, account, user_id = (
        _answer_value(name, value)
        for name, value in zip(("Arn", "Account", "UserId"), result, strict=True)
    )
    return CallerIdentity(arn=arn, account=account, user_id=user_id)


def _answer_value(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _ANSWER_VALUE.fullmatch(value):
        raise STSError(f"STS answered 200 without a usable {name}")
    return value


def parse_error_code(body: bytes) -> str:
    """The ``Code`` of an STS ErrorResponse (JSON or XML), or ``"unknown"``."""
    code: Any = None
    try:
        if body.lstrip().startswith(b"<"):
            xml = parse_xml_fields(body)
            code = xml.get("ErrorResponse/Error/Code") or xml.get("Error/Code")
        else:
            doc = _json_object(body)
            code = (
                _dig(doc, "Error", "Code")
                or _dig(doc, "ErrorResponse", "Error", "Code")
                or doc.get("__type")
            )
    except ValueError:
        return "unknown"
    if isinstance(code, str):
        short: str = code.rpartition("#")[2]
        if _ERROR_CODE.fullmatch(short):
            return short
    return "unknown"


# --- the client -----------------------------------------------------------------------------


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the STS CA bundle {ca_bundle!r}: {exc.strerror or exc}",
            hint="pass a readable PEM file with --sts-ca-bundle",
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class STSClient:
    """Makes the one GetCallerIdentity call per token. Create and close inside an event loop."""

    def __init__(
        self,
        *,
        resolve: Mapping[str, tuple[str, int]] | None = None,
        ca_bundle: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = DEFAULT_MAX_BODY,
        observer: Observer | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``resolver``: the name resolver (default: a :class:`BoundedResolver` answering the
        ``resolve`` table itself); tests pass one whose lookups never leave the machine."""
        if not timeout > 0:
            raise ConfigError("the STS timeout must be a positive number of seconds")
        self._resolver: AbstractResolver = resolver or BoundedResolver(
            static=dict(resolve or {}), on_event=resolver_events(observer)
        )
        self._ssl = _ssl_context(ca_bundle)
        self._timeout = timeout
        self._max_body = max_body
        self._observer = observer
        #: Accept and User-Agent, after the cluster id: the only headers sent besides Host.
        self._headers = (("Accept", "application/json"), ("User-Agent", f"kubeiam/{__version__}"))
        self._pool: ConnectionPool | None = None

    @property
    def resolver(self) -> AbstractResolver:
        """The name resolver every connection goes through (``--sts-resolve`` entries first)."""
        return self._resolver

    def _get_pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = ConnectionPool(ssl_context=self._ssl, resolver=self._resolver)
        return self._pool

    def _notify(self, event: str, status: int | None, region: str) -> None:
        if self._observer is not None:
            self._observer(event, status, region)

    async def close(self) -> None:
        """Close the connection pool and the resolver's threads."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self._resolver.close()

    async def __aenter__(self) -> STSClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def get_caller_identity(
        self, request: PresignedRequest, cluster_id: str
    ) -> CallerIdentity:
        """GET the presigned URL with ``x-k8s-aws-id: cluster_id``; the caller STS reports."""
        pool = self._get_pool()
        started = time.monotonic()
        host, region = request.host, request.region
        origin = f"https://{host}"
        headers = ((CLUSTER_ID_HEADER, cluster_id), *self._headers)
        try:
            if not request.url.startswith(origin + "/"):
                raise InvalidRequest("the checked URL does not start with its host")
            async with asyncio.timeout(self._timeout):
                response = await pool.get(
                    host, request.url[len(origin) :], headers, max_body=self._max_body
                )
            status, body = response.status, response.body
            self._notify("response", status, region)
        except TimeoutError:
            self._notify("connection_failure", None, region)
            raise STSUnavailableError(
                f"STS at {host} did not answer within {self._timeout:g} s",
                hint="check network access to STS from this host (proxy, firewall, VPC "
                "endpoint), or raise the timeout",
            ) from None
        except BodyTooLarge as exc:
            self._notify("response", exc.status, region)
            raise self._too_large(host) from None
        except TLSError:
            self._notify("connection_failure", None, region)
            raise STSUnavailableError(
                f"the TLS connection to STS at {host} failed (certificate not trusted, or "
                "does not match the host)",
                hint="for a local STS pass its CA with --sts-ca-bundle",
            ) from None
        except ConnectError as exc:
            self._notify("connection_failure", None, region)
            raise STSUnavailableError(
                f"cannot connect to STS at {host}: {exc.reason}",
                hint="check DNS and network access to STS (or the --sts-resolve address)",
            ) from None
        except (HTTPClientError, OSError, UnicodeError, ValueError) as exc:
            # The exception's text may contain the URL: report only its kind. OSError and
            # UnicodeError: a lookup or a socket failing outside the client's own error types
            # (the IDNA codec refuses labels over 63 characters) is this token's failure, never
            # an HTTP 500 for the webhook.
            self._notify("connection_failure", None, region)
            raise STSUnavailableError(
                f"the request to STS at {host} failed ({type(exc).__name__})",
                hint="check network access to STS",
            ) from None
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug(
            "sts answer host=%s region=%s status=%d ms=%.1f", host, region, status, elapsed_ms
        )
        return self._interpret(status, body, host, region, request.access_key_id)

    def _too_large(self, host: str) -> STSError:
        return STSError(
            f"STS at {host} sent an answer larger than {self._max_body} bytes; refused",
            hint="a GetCallerIdentity answer is under 1 KiB: check what --sts-resolve or the "
            "network path reaches",
        )

    def _interpret(
        self, status: int, body: bytes, host: str, region: str, access_key_id: str
    ) -> CallerIdentity:
        if status == 200:
            return parse_success(body)
        if 300 <= status < 400:
            raise STSUnavailableError(
                f"STS at {host} answered with a redirect (HTTP {status}); redirects are never "
                "followed",
                hint="something between kubeiam and STS (proxy, DNS, --sts-resolve target) is "
                "not STS",
            )
        if status == 429 or b"Throttling" in body:
            self._notify("throttled", status, region)
            raise STSThrottledError(
                f"STS throttled the request (HTTP {status}, region {region})",
                hint="retry later; an identity cache or regional STS endpoints spread the load",
            )
        code = parse_error_code(body)
        if status >= 500:
            raise STSUnavailableError(
                f"STS at {host} failed (HTTP {status}, {code}); the token was not judged",
                hint="retry later; if it persists, check the AWS health dashboard for STS in "
                f"{region}",
            )
        raise STSError(
            f"STS refused the token (HTTP {status}, {code}; access key {access_key_id})",
            hint=_ERROR_HINTS.get(code),
        )
