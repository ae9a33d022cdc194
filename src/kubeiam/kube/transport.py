"""The HTTP transport to one Kubernetes API server: TLS, proxy, credentials, refusals.

lightkube's client sends every request through :class:`KubeTransport` (passed as its
``transport``), which does what kubectl's round-trippers do:

* TLS from the kubeconfig: the cluster CA (or the system store), ``insecure-skip-tls-verify``,
  ``tls-server-name`` (SNI and the name checked in the certificate), a client certificate from
  the kubeconfig or from an exec plugin (a new certificate gets a new connection pool);
* ``proxy-url`` (http, https, socks5), else ``HTTPS_PROXY``/``NO_PROXY`` from the environment;
  loopback is never proxied from the environment (Go's ProxyFromEnvironment);
* the credential of :mod:`kubeiam.kube.credentials`; on a 401 a fresh one is fetched (exec
  plugins run again) and the request is sent once more;
* failures become kubeiam errors: an unreachable server or a TLS failure is a
  :class:`KubeAPIError` naming the server and the fix; a 401 or 403 is a
  :class:`~kubeiam.kube.refusals.KubeAccessError` naming the verb and resource.

Nothing is printed or logged with a credential in it.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2

from kubeiam.errors import ConfigError, KubeAPIError
from kubeiam.kube.credentials import Credential, CredentialSource
from kubeiam.kube.kubeconfig import ClusterAccess
from kubeiam.kube.refusals import FORBIDDEN, UNAUTHORIZED, describe_request, refusal, server_message

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def ssl_context(
    access: ClusterAccess, cert_pem: bytes | None = None, key_pem: bytes | None = None
) -> ssl.SSLContext:
    """The client TLS context for ``access`` (and a client certificate, if any)."""
    if access.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif access.ca_pem is not None:
        ctx = ssl.create_default_context()
        try:
            ctx.load_verify_locations(cadata=access.ca_pem.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"{access.origin}: the certificate authority is not a valid PEM certificate "
                f"({getattr(exc, 'reason', None) or exc})",
                hint="write the cluster's CA certificate (PEM) into certificate-authority(-data)",
            ) from None
    else:
        ctx = ssl.create_default_context()
    if cert_pem is not None and key_pem is not None:
        _load_client_certificate(ctx, cert_pem, key_pem, access.origin)
    return ctx


def _load_client_certificate(
    ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes, origin: str
) -> None:
    # The ssl module loads a key pair only from files: a private temporary directory (0700),
    # removed at once.
    with tempfile.TemporaryDirectory(prefix="kubeiam-tls-") as tmp:
        cert_path = os.path.join(tmp, "client.crt")
        key_path = os.path.join(tmp, "client.key")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"{origin}: the client certificate and key cannot be used "
                f"({getattr(exc, 'reason', None) or type(exc).__name__})",
                hint="client-certificate(-data) and client-key(-data) must be a matching PEM "
                "certificate and private key",
            ) from None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def proxy_for(access: ClusterAccess, environ: Mapping[str, str]) -> str | None:
    """``proxy-url``, else the environment's proxy for the server (kubectl's rules)."""
    if access.proxy_url:
        try:
            parts = urlsplit(access.proxy_url)
            parts.port  # noqa: B018 - raises ValueError when out of range
            scheme, valid = parts.scheme, bool(parts.hostname)
        except ValueError:
            scheme, valid = access.proxy_url.split(":", 1)[0].lower(), False
        if scheme in PROXY_SCHEMES and not valid:
            raise ConfigError(
                f"{access.origin}: proxy-url {_safe_url(access.proxy_url)!r} is not a valid URL",
                hint="use e.g. http://proxy.example:3128",
            )
        if scheme not in PROXY_SCHEMES:
            raise ConfigError(
                f"{access.origin}: proxy-url scheme {scheme!r} is not supported",
                hint="use an http://, https:// or socks5:// proxy-url",
            )
        return access.proxy_url
    url = urlsplit(access.server)
    host = url.hostname or ""
    if _is_loopback(host):
        return None
    lowered = {k.lower(): v for k, v in environ.items() if k.lower().endswith("_proxy")}
    proxy = lowered.get(f"{url.scheme}_proxy")
    if not proxy:
        return None
    no_proxy = lowered.get("no_proxy", "")
    if no_proxy and _bypassed(host, no_proxy):
        return None
    return proxy


def _bypassed(host: str, no_proxy: str) -> bool:
    """``NO_PROXY`` as Go reads it: ``*``, host names (a leading dot or not: the name and its
    subdomains), IP addresses and CIDR blocks, comma-separated; ports are ignored."""
    host = host.lower().strip("[]")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
            continue
        except ValueError:
            pass
        entry = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
        entry = entry.lstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


class KubeTransport(httpx2.AsyncBaseTransport):
    """See the module docstring. ``credentials`` None: anonymous."""

    def __init__(
        self,
        access: ClusterAccess,
        credentials: CredentialSource | None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.access = access
        self.credentials = credentials
        self._proxy = proxy_for(access, os.environ if environ is None else environ)
        self._pools: dict[tuple[bytes | None, bytes | None], httpx2.AsyncHTTPTransport] = {}
        self._retired: list[httpx2.AsyncHTTPTransport] = []
        # Built now, so an unusable CA or client certificate is refused before any request.
        cert, key = access.client_cert_pem, access.client_key_pem
        self._pool(Credential(cert_pem=cert, key_pem=key) if cert else None)

    def _pool(self, credential: Credential | None) -> httpx2.AsyncHTTPTransport:
        key = (credential.cert_pem, credential.key_pem) if credential else (None, None)
        pool = self._pools.get(key)
        if pool is None:
            # A rotated client certificate gets a pool of its own; old ones close with us.
            self._retired.extend(self._pools.values())
            self._pools.clear()
            ctx = ssl_context(self.access, key[0], key[1])
            pool = httpx2.AsyncHTTPTransport(verify=ctx, proxy=self._proxy, trust_env=False)
            self._pools[key] = pool
        return pool

    async def _send(
        self, request: httpx2.Request, credential: Credential | None
    ) -> httpx2.Response:
        if credential is not None and credential.token:
            request.headers["Authorization"] = f"Bearer {credential.token}"
        else:
            request.headers.pop("Authorization", None)
        if self.access.tls_server_name:
            request.extensions["sni_hostname"] = self.access.tls_server_name
        try:
            return await self._pool(credential).handle_async_request(request)
        except httpx2.ProxyError as exc:
            raise KubeAPIError(
                f"cannot reach the Kubernetes API at {self.access.server} through proxy "
                f"{_safe_url(self._proxy)}: {_reason(exc)}",
                hint="check proxy-url in the kubeconfig (or HTTPS_PROXY / NO_PROXY)",
            ) from None
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise self._connect_error(exc) from None

    def _connect_error(self, exc: BaseException) -> KubeAPIError:
        reason = _reason(exc)
        cause = exc.__context__ or exc.__cause__
        if "CERTIFICATE_VERIFY_FAILED" in reason or isinstance(cause, ssl.SSLCertVerificationError):
            name = self.access.tls_server_name or urlsplit(self.access.server).hostname
            trusted = (
                "the kubeconfig's certificate authority"
                if self.access.ca_pem is not None
                else "the system's trusted authorities (the kubeconfig names no CA)"
            )
            return KubeAPIError(
                f"TLS: the Kubernetes API at {self.access.server} presented a certificate that "
                f"{trusted} does not verify for {name!r} ({reason})",
                hint="put the cluster's CA in certificate-authority-data (e.g. `kubeiam "
                "kubeconfig update` writes it), or set tls-server-name to a name in the "
                "server's certificate",
            )
        if "SSL" in reason or "TLS" in reason or isinstance(cause, ssl.SSLError):
            return KubeAPIError(
                f"TLS with the Kubernetes API at {self.access.server} failed ({reason})",
                hint="check the server address (is it https?) and the client certificate",
            )
        return KubeAPIError(
            f"cannot reach the Kubernetes API at {self.access.server} ({self.access.origin}): "
            f"{reason}",
            hint="check that the cluster is running and that the kubeconfig's server address "
            "is right",
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()  # the body can be sent again after a 401
        source = self.credentials
        credential = await source.current() if source is not None else None
        response = await self._send(request, credential)
        if response.status_code == UNAUTHORIZED and source is not None and credential is not None:
            fresh = await source.rejected(credential)
            if fresh is not None:
                await response.aclose()
                response = await self._send(request, fresh)
        if response.status_code in (UNAUTHORIZED, FORBIDDEN):
            body = await response.aread()
            await response.aclose()
            raise refusal(
                response.status_code,
                describe_request(request.method, request.url.path, dict(request.url.params)),
                path=request.url.path,
                message=server_message(body),
                server=self.access.server,
                credentials=source.describe if source is not None else "anonymous",
                origin=self.access.origin,
            )
        return response

    async def aclose(self) -> None:
        for pool in [*self._pools.values(), *self._retired]:
            await pool.aclose()
        self._pools.clear()
        self._retired.clear()


def _safe_url(url: str | None) -> str:
    """A proxy URL without its user and password."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparseable URL)"
    return f"{parts.scheme}://{host}{port}"


def transport_for(
    access: ClusterAccess,
    *,
    environ: Mapping[str, str] | None = None,
    **credential_options: Any,
) -> KubeTransport:
    """The transport for ``access`` with its user's credential source."""
    from kubeiam.kube.credentials import credential_source

    source = credential_source(access, environ=environ, **credential_options)
    return KubeTransport(access, source, environ=environ)
