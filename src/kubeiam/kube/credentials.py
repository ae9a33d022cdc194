"""Kubernetes API credentials from a kubeconfig user: a token, a token file, or an exec plugin.

Each source hands the transport (:mod:`kubeiam.kube.transport`) a :class:`Credential` — a bearer
token and/or a client certificate — through ``current()``, and a fresh one through
``rejected(credential)`` when the API answered 401 (``None`` when nothing fresher exists). That is
client-go's behaviour: a 401 drops the cached credential and the next request runs the plugin
again; kubeiam also repeats the refused request once with the fresh credential.

Exec plugins follow client-go's exec authenticator (``client.authentication.k8s.io`` v1, v1beta1,
v1alpha1):

* the command runs with kubeiam's environment plus the entry's ``env``, and
  ``KUBERNETES_EXEC_INFO`` set to an ExecCredential whose ``spec.interactive`` says whether the
  plugin may prompt and, with ``provideClusterInfo``, whose ``spec.cluster`` describes the cluster
  (server, tls-server-name, CA data, proxy-url, the exec extension as ``config``);
* ``interactiveMode``: ``Never`` gives the plugin no stdin; ``IfAvailable`` passes stdin through
  when it is a terminal; ``Always`` requires a terminal and is refused without one. The plugin's
  stderr is always the user's (prompts and its own errors show there);
* the answer must be an ExecCredential of the configured apiVersion with a ``status`` holding a
  token or a client certificate and key (PEM); it is reused until ``status.expirationTimestamp``
  (forever without one) and dropped on a 401.

Parsing and the exec-info document are plain functions (:func:`exec_info`,
:func:`parse_exec_credential`); only :class:`ExecCredentials` runs processes.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from kubeiam.errors import ConfigError, CredentialsError
from kubeiam.kube.kubeconfig import (
    ClusterAccess,
    ExecConfig,
    InteractiveMode,
    read_file_bytes,
)

#: client-go re-reads a token file at most once a minute (cachingTokenSource); rotated
#: service-account tokens are picked up within that, or at once on a 401.
TOKEN_FILE_REREAD_SECONDS = 60.0
#: An ExecCredential is a few KiB at most (a certificate chain); more is a broken plugin.
MAX_EXEC_OUTPUT_BYTES = 1024 * 1024
EXEC_CREDENTIAL_KIND = "ExecCredential"


@dataclass(frozen=True, slots=True)
class Credential:
    """What one request authenticates with; never printed (the fields are secrets)."""

    token: str | None = field(default=None, repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    #: Unix time after which it must not be used; None: no expiry.
    expires_at: float | None = None


class CredentialSource(Protocol):
    """Where a transport gets credentials; ``describe`` names it in messages."""

    describe: str

    async def current(self) -> Credential: ...

    async def rejected(self, credential: Credential) -> Credential | None: ...


class StaticCredentials:
    """A token and/or client certificate written in the kubeconfig."""

    def __init__(self, credential: Credential, describe: str) -> None:
        self._credential = credential
        self.describe = describe

    async def current(self) -> Credential:
        return self._credential

    async def rejected(self, credential: Credential) -> Credential | None:
        return None


class TokenFileCredentials:
    """``tokenFile`` (and the in-cluster token): re-read each minute and after a 401."""

    def __init__(
        self,
        path: Path,
        *,
        cert_pem: bytes | None = None,
        key_pem: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._cert = cert_pem
        self._key = key_pem
        self._clock = clock
        self._cached: Credential | None = None
        self._read_at = 0.0
        self.describe = f"token file {path}"

    def _read(self) -> Credential:
        token = read_file_bytes(self._path, "tokenFile").decode("utf-8", "replace").strip()
        check_token(token, f"token file {self._path}")
        self._read_at = self._clock()
        self._cached = Credential(token=token, cert_pem=self._cert, key_pem=self._key)
        return self._cached

    async def current(self) -> Credential:
        if self._cached is None or self._clock() - self._read_at >= TOKEN_FILE_REREAD_SECONDS:
            return self._read()
        return self._cached

    async def rejected(self, credential: Credential) -> Credential | None:
        fresh = self._read()
        return fresh if fresh.token != credential.token else None


# --------------------------------------------------------------------------------------------
# Exec plugins: the pure parts


def _header_safe(token: str) -> bool:
    return (
        bool(token)
        and token == token.strip()
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in token)
    )


def check_token(token: str, what: str) -> str:
    """A bearer token that fits in an HTTP header: no control characters or surrounding spaces.

    The message never holds the token.
    """
    if not _header_safe(token):
        raise ConfigError(
            f"the token from {what} is empty or holds whitespace or control characters, which "
            "cannot be sent in an HTTP header",
            hint="check where the token comes from (a stray newline or a pasted quote?)",
        )
    return token


def exec_info(config: ExecConfig, access: ClusterAccess, *, interactive: bool) -> str:
    """The ``KUBERNETES_EXEC_INFO`` value kubectl would pass this plugin."""
    spec: dict[str, Any] = {"interactive": interactive}
    if (
        config.provide_cluster_info
        and config.api_version != "client.authentication.k8s.io/v1alpha1"
    ):
        cluster: dict[str, Any] = {"server": access.server}
        if access.tls_server_name:
            cluster["tls-server-name"] = access.tls_server_name
        if access.insecure:
            cluster["insecure-skip-tls-verify"] = True
        if access.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(access.ca_pem).decode()
        if access.proxy_url:
            cluster["proxy-url"] = access.proxy_url
        if access.exec_cluster_config is not None:
            cluster["config"] = access.exec_cluster_config
        spec["cluster"] = cluster
    doc = {"kind": EXEC_CREDENTIAL_KIND, "apiVersion": config.api_version, "spec": spec}
    return json.dumps(doc, separators=(",", ":"))


def parse_timestamp(value: str) -> float:
    """RFC 3339 (``Z`` or an offset, optional fractions) to unix time."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expirationTimestamp {value[:40]!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise ValueError(f"expirationTimestamp {value[:40]!r} has no time zone")
    try:
        return parsed.timestamp()
    except (OverflowError, OSError):
        raise ValueError(f"expirationTimestamp {value[:40]!r} is out of range") from None


def parse_exec_credential(output: bytes, api_version: str) -> Credential:
    """The credential in a plugin's stdout; ``ValueError`` says what is wrong (no secret in it)."""
    if len(output) > MAX_EXEC_OUTPUT_BYTES:
        raise ValueError(f"it printed more than {MAX_EXEC_OUTPUT_BYTES} bytes")
    try:
        doc = json.loads(output)
    except (ValueError, RecursionError):
        raise ValueError("its output is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("its output is not a JSON object")
    if doc.get("kind") != EXEC_CREDENTIAL_KIND:
        raise ValueError(f"its output has kind {doc.get('kind')!r}, not {EXEC_CREDENTIAL_KIND}")
    if doc.get("apiVersion") != api_version:
        raise ValueError(
            f"it answered apiVersion {doc.get('apiVersion')!r}, but the kubeconfig asks for "
            f"{api_version}"
        )
    status = doc.get("status")
    if not isinstance(status, dict):
        raise ValueError("its ExecCredential has no status")
    token = status.get("token") or None
    cert = status.get("clientCertificateData") or None
    key = status.get("clientKeyData") or None
    for name, value in (("token", token), ("clientCertificateData", cert), ("clientKeyData", key)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"status.{name} is not a string")
    if (cert is None) != (key is None):
        raise ValueError("it returned only one of clientCertificateData and clientKeyData")
    if token is None and cert is None:
        raise ValueError("it returned neither a token nor a client certificate and key")
    if token is not None and not _header_safe(token):
        raise ValueError("status.token holds whitespace or control characters")
    expires = status.get("expirationTimestamp")
    if expires is not None and not isinstance(expires, str):
        raise ValueError("status.expirationTimestamp is not a string")
    return Credential(
        token=token,
        cert_pem=cert.encode() if cert else None,
        key_pem=key.encode() if key else None,
        expires_at=parse_timestamp(expires) if expires else None,
    )


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def plugin_interactive(mode: InteractiveMode, stdin_is_terminal: bool, command: str) -> bool:
    """Whether the plugin gets the terminal; ``Always`` without one is a ConfigError."""
    if mode is InteractiveMode.NEVER:
        return False
    if mode is InteractiveMode.ALWAYS and not stdin_is_terminal:
        raise ConfigError(
            f"exec plugin {command} needs a terminal (interactiveMode: Always), but standard "
            "input is not a terminal",
            hint="run the command from a terminal, or set interactiveMode: IfAvailable if the "
            "plugin can work without prompting",
        )
    return stdin_is_terminal


# --------------------------------------------------------------------------------------------
# Exec plugins: running them


class ExecCredentials:
    """Runs an exec plugin and keeps its credential until it expires or is rejected."""

    def __init__(
        self,
        access: ClusterAccess,
        *,
        environ: Mapping[str, str] | None = None,
        now: Callable[[], float] = time.time,
        stdin_is_terminal: Callable[[], bool] = _stdin_is_terminal,
    ) -> None:
        assert access.exec is not None
        self._access = access
        self._config: ExecConfig = access.exec
        self._environ = environ
        self._now = now
        self._stdin_is_terminal = stdin_is_terminal
        self._cached: Credential | None = None
        self._lock: asyncio.Lock | None = None
        self.runs = 0
        self.describe = f"exec plugin {os.path.basename(self._config.command)}"

    def _usable(self, credential: Credential | None) -> bool:
        return credential is not None and (
            credential.expires_at is None or self._now() < credential.expires_at
        )

    async def current(self) -> Credential:
        if self._usable(self._cached):
            assert self._cached is not None
            return self._cached
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._usable(self._cached):
                self._cached = await self._run()
            assert self._cached is not None
            return self._cached

    async def rejected(self, credential: Credential) -> Credential | None:
        if self._cached is credential:
            self._cached = None
        fresh = await self.current()
        same = fresh.token == credential.token and fresh.cert_pem == credential.cert_pem
        return None if same else fresh

    def _env(self, interactive: bool) -> dict[str, str]:
        env = dict(os.environ if self._environ is None else self._environ)
        env.update(self._config.env)
        env["KUBERNETES_EXEC_INFO"] = exec_info(self._config, self._access, interactive=interactive)
        return env

    async def _run(self) -> Credential:
        config = self._config
        name = config.command
        interactive = plugin_interactive(
            config.interactive_mode, self._stdin_is_terminal(), os.path.basename(name)
        )
        where = f"user {self._access.user} in {self._access.origin}"
        try:
            proc = await asyncio.create_subprocess_exec(
                name,
                *config.args,
                env=self._env(interactive),
                stdin=None if interactive else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=None,  # the plugin's prompts and messages are the user's, as with kubectl
            )
        except FileNotFoundError:
            raise ConfigError(
                f"exec plugin {name!r} not found ({where})",
                hint=config.install_hint.strip().splitlines()[0]
                if config.install_hint
                else "install it, or write its absolute path in the kubeconfig's exec command",
            ) from None
        except PermissionError:
            raise ConfigError(
                f"exec plugin {name!r} is not executable ({where})",
                hint=f"chmod +x {name}",
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot run exec plugin {name!r}: {exc.strerror or exc}") from None
        stdout, _ = await proc.communicate()
        self.runs += 1
        # Only the command's name: arguments may carry secrets.
        shown = os.path.basename(name)
        if proc.returncode != 0:
            raise CredentialsError(
                f"exec plugin `{shown}` ({where}) failed with exit status {proc.returncode}",
                hint="its own message is above; run the kubeconfig's exec command by hand "
                "to see it",
            )
        try:
            credential = parse_exec_credential(stdout, config.api_version)
        except ValueError as exc:
            raise CredentialsError(
                f"exec plugin `{shown}` ({where}) did not print a usable ExecCredential: {exc}",
                hint="run the kubeconfig's exec command by hand: it must print an "
                f"ExecCredential ({config.api_version}) on stdout",
            ) from None
        if credential.cert_pem is None and self._access.client_cert_pem is not None:
            # A token from the plugin beside the kubeconfig's own client certificate.
            credential = dataclasses.replace(
                credential,
                cert_pem=self._access.client_cert_pem,
                key_pem=self._access.client_key_pem,
            )
        return credential


def credential_source(
    access: ClusterAccess,
    *,
    environ: Mapping[str, str] | None = None,
    now: Callable[[], float] = time.time,
    stdin_is_terminal: Callable[[], bool] = _stdin_is_terminal,
) -> CredentialSource | None:
    """The source for ``access``'s user (None: anonymous), in client-go's precedence:
    tokenFile, then token, then the exec plugin; a client certificate rides along."""
    cert, key = access.client_cert_pem, access.client_key_pem
    if access.token_file is not None:
        return TokenFileCredentials(access.token_file, cert_pem=cert, key_pem=key)
    if access.token is not None:
        token = check_token(access.token, f"the kubeconfig ({access.origin})")
        return StaticCredentials(Credential(token=token, cert_pem=cert, key_pem=key), "token")
    if access.exec is not None:
        return ExecCredentials(
            access, environ=environ, now=now, stdin_is_terminal=stdin_is_terminal
        )
    if cert is not None:
        return StaticCredentials(Credential(cert_pem=cert, key_pem=key), "client certificate")
    return None
