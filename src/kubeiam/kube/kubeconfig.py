"""kubeconfig documents read the way kubectl reads them: a context resolved to a ClusterAccess.

kubectl's rules, each a named step here (which files to read, and in-cluster config, are
:mod:`kubeiam.kube.access`):

* **Merging** (:func:`merge_kubeconfigs`): the first file that names a cluster, user or context
  wins it; ``current-context`` comes from the first file that sets one. Relative paths are
  resolved against the directory of the file that holds them, before merging.
* **Resolving** (:func:`resolve_access`): the context (``--context`` or ``current-context``), its
  cluster (must exist) and its user (must exist when named); the cluster's CA, the user's client
  certificate and key are read and checked here, so a bad file is a :class:`ConfigError` before
  any connection.
* **Refused forms** (:func:`check_credential_forms`): basic auth and the ``auth-provider``
  plugins (removed from kubectl; gcp and azure in 1.26) each name what to use instead; a CA
  beside ``insecure-skip-tls-verify`` and half a client certificate are refused as kubectl's
  validation refuses them.

Everything but file reads is a plain function over values.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeiam.errors import ConfigError

#: kubectl's namespace when the context names none.
DEFAULT_NAMESPACE = "default"
#: The exec credential API versions kubectl still speaks (v1alpha1 was removed in 1.24; it is
#: cheap to keep, so old kubeconfigs keep working).
EXEC_API_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
    "client.authentication.k8s.io/v1alpha1",
)
EXEC_V1 = "client.authentication.k8s.io/v1"
#: kubectl's cluster extension a plugin receives as ``spec.cluster.config`` (provideClusterInfo).
EXEC_EXTENSION = "client.authentication.k8s.io/exec"
#: What replaces each removed auth-provider plugin (kubectl's own deprecation messages).
AUTH_PROVIDER_REPLACEMENTS = {
    "gcp": "the gke-gcloud-auth-plugin exec plugin (gcloud container clusters get-credentials)",
    "azure": "the kubelogin exec plugin (kubelogin convert-kubeconfig)",
    "oidc": "an OIDC exec plugin such as kubelogin (kubectl oidc-login)",
}
#: Largest kubeconfig, CA, certificate or token file read: these are a few KiB; anything
#: beyond is a wrong path (a log, a device), refused before it is read whole.
MAX_FILE_BYTES = 4 * 1024 * 1024
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
#: A namespace is a DNS label (RFC 1123), as the API server requires.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
#: What TLS accepts as a server name besides an IP address: dot-separated labels of letters,
#: digits, '-' and '_'; no spaces, control characters or empty labels.
_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?")


class InteractiveMode(enum.Enum):
    """``exec.interactiveMode``: whether the plugin may use the terminal."""

    NEVER = "Never"
    IF_AVAILABLE = "IfAvailable"
    ALWAYS = "Always"


@dataclass(frozen=True, slots=True)
class ExecConfig:
    """``users[].user.exec``, validated."""

    api_version: str
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    interactive_mode: InteractiveMode = InteractiveMode.IF_AVAILABLE
    provide_cluster_info: bool = False
    install_hint: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterAccess:
    """Everything needed to reach one cluster as one user (one kubeconfig context)."""

    #: Where this came from, for messages: ``kubeconfig /path, context ctx`` or ``in-cluster``.
    origin: str
    context: str
    server: str
    namespace: str = DEFAULT_NAMESPACE
    user: str | None = None
    ca_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    client_cert_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    exec: ExecConfig | None = None
    #: ``extensions[client.authentication.k8s.io/exec]`` of the cluster, for provideClusterInfo.
    exec_cluster_config: Any = None


@dataclass(frozen=True, slots=True)
class MergedKubeconfig:
    """The named maps of one or more kubeconfig files, merged by kubectl's rules."""

    files: tuple[Path, ...]
    clusters: Mapping[str, Mapping[str, Any]]
    users: Mapping[str, Mapping[str, Any]]
    contexts: Mapping[str, Mapping[str, Any]]
    current_context: str | None


# --------------------------------------------------------------------------------------------
# Reading and merging


def read_file_bytes(path: Path, what: str) -> bytes:
    """A small regular file's bytes; a special file, a missing or huge one is a ConfigError.

    Read by :func:`kubeiam.fileio.read_regular_file` (special files refused before they are
    opened, never blocked on), with this module's smaller bound."""
    import errno

    from kubeiam.fileio import UnsafeFileError, os_error_problem, read_regular_file

    try:
        return read_regular_file(path, MAX_FILE_BYTES)
    except OSError as exc:
        problem, fix = os_error_problem(exc)
        if isinstance(exc, UnsafeFileError) and exc.errno == errno.EINVAL:
            raise ConfigError(f"{what} {path} is not a regular file", hint=fix) from None
        if isinstance(exc, UnsafeFileError):
            raise ConfigError(f"{what} {path} {problem}", hint=fix) from None
        raise ConfigError(f"cannot read {what} {path}: {problem}", hint=fix) from None


def parse_kubeconfig(text: bytes, path: Path) -> Mapping[str, Any]:
    """One kubeconfig document (an empty file is an empty config, as kubectl has it).

    Read by :mod:`kubeiam.documents`' bounded rules (UTF-8, no control characters, depth,
    alias expansion, duplicate keys), each refusal naming the line.
    """
    from kubeiam.documents import decode_text, parse_yaml

    source = f"kubeconfig {path}"
    doc = parse_yaml(decode_text(text, source=source), source=source)
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"kubeconfig {path} is not a YAML mapping")
    return doc


def _named(doc: Mapping[str, Any], section: str, key: str, path: Path) -> list[tuple[str, Any]]:
    items = doc.get(section) or []
    if not isinstance(items, list):
        raise ConfigError(f"kubeconfig {path}: {section} is not a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ConfigError(f"kubeconfig {path}: {section}[{i}] has no name")
        body = item.get(key) or {}
        if not isinstance(body, Mapping):
            raise ConfigError(f"kubeconfig {path}: {section} {item['name']!r}: {key} is not a map")
        out.append((item["name"], body))
    return out


#: Fields holding file paths, resolved against the file's directory (client-go's
#: GetClusterFileReferences / GetAuthInfoFileReferences).
_CLUSTER_PATHS = ("certificate-authority",)
_USER_PATHS = ("client-certificate", "client-key", "tokenFile")


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str(base / value)
    return value


def _resolve_paths(section: str, body: Mapping[str, Any], base: Path) -> Mapping[str, Any]:
    out = dict(body)
    for key in _CLUSTER_PATHS if section == "clusters" else _USER_PATHS:
        if key in out:
            out[key] = _absolute(out[key], base)
    exec_ = out.get("exec")
    if section == "users" and isinstance(exec_, Mapping):
        command = exec_.get("command")
        # A bare name is looked up on PATH; a relative path is relative to the file.
        if isinstance(command, str) and os.sep in command:
            out["exec"] = {**exec_, "command": _absolute(command, base)}
    return out


def merge_kubeconfigs(docs: Sequence[tuple[Path, Mapping[str, Any]]]) -> MergedKubeconfig:
    """Merge documents in order: first file to name an entry wins; first current-context wins."""
    maps: dict[str, dict[str, Mapping[str, Any]]] = {"clusters": {}, "users": {}, "contexts": {}}
    keys = {"clusters": "cluster", "users": "user", "contexts": "context"}
    current: str | None = None
    for path, doc in docs:
        base = path.absolute().parent
        for section, key in keys.items():
            for name, body in _named(doc, section, key, path):
                if name not in maps[section]:
                    maps[section][name] = _resolve_paths(section, body, base)
        cc = doc.get("current-context")
        if current is None and isinstance(cc, str) and cc:
            current = cc
    return MergedKubeconfig(
        tuple(p for p, _ in docs), maps["clusters"], maps["users"], maps["contexts"], current
    )


def load_kubeconfigs(files: Sequence[Path]) -> MergedKubeconfig:
    """Read and merge ``files`` (each must exist: the caller chose them)."""
    docs = [(p, parse_kubeconfig(read_file_bytes(p, "kubeconfig"), p)) for p in files]
    return merge_kubeconfigs(docs)


# --------------------------------------------------------------------------------------------
# Resolving one context


def _str(body: Mapping[str, Any], key: str, where: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} is not a string")
    return value


def _bool(body: Mapping[str, Any], key: str, where: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} is {value!r}, not true or false")
    return value


def decode_pem_data(value: str, what: str) -> bytes:
    """A ``*-data`` field: base64 of PEM text."""
    try:
        data = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{what} is not valid base64",
            hint="it holds the PEM file base64-encoded: base64 -w0 < file.pem",
        ) from None
    return data


def check_ca_pem(data: bytes, what: str) -> bytes:
    """CA bundle bytes that hold at least one PEM certificate."""
    if PEM_CERTIFICATE not in data:
        raise ConfigError(
            f"{what} does not hold a PEM certificate",
            hint="it must be the cluster CA in PEM form (-----BEGIN CERTIFICATE-----)",
        )
    return data


def _is_host_name(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return _HOST_NAME.fullmatch(name) is not None


def check_server_url(server: str, where: str) -> str:
    """An ``http(s)://host[:port][/path]`` URL, as client-go requires of ``server``."""
    from urllib.parse import urlsplit

    problem = None
    try:
        parts = urlsplit(server)
        if parts.scheme not in ("https", "http"):
            problem = "it is not an https:// (or http://) URL"
        elif not parts.hostname or any(c.isspace() for c in server):
            problem = "it has no valid host name"
        else:
            parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError as exc:
        problem = str(exc) or "it cannot be parsed"
    if problem is not None:
        raise ConfigError(
            f"{where}: server {server[:200]!r} is not usable: {problem}",
            hint="set the cluster's server to its API address, e.g. https://10.0.0.1:6443",
        )
    return server


def check_credential_forms(user: Mapping[str, Any], where: str) -> None:
    """Refuse what kubectl no longer supports, and combinations its validation refuses."""
    provider = user.get("auth-provider")
    if provider is not None:
        name = provider.get("name") if isinstance(provider, Mapping) else None
        instead = AUTH_PROVIDER_REPLACEMENTS.get(str(name), "an exec plugin (users[].user.exec)")
        raise ConfigError(
            f"{where}: the auth-provider plugin {name!r} is not supported (kubectl removed the "
            "auth-provider plugins)",
            hint=f"use {instead}",
        )
    if user.get("username") or user.get("password"):
        raise ConfigError(
            f"{where}: basic authentication (username/password) is not supported (Kubernetes "
            "removed it in 1.19)",
            hint="use an exec plugin (e.g. `kubeiam kubeconfig update`), a token or a client "
            "certificate",
        )


def _exec_config(body: Any, where: str) -> ExecConfig:
    if not isinstance(body, Mapping):
        raise ConfigError(f"{where}: exec is not a map")
    api_version = _str(body, "apiVersion", where)
    command = _str(body, "command", where)
    if command is None:
        raise ConfigError(f"{where}: exec has no command")
    if api_version not in EXEC_API_VERSIONS:
        raise ConfigError(
            f"{where}: exec apiVersion {api_version!r} is not one kubectl speaks",
            hint="use client.authentication.k8s.io/v1 (or v1beta1)",
        )
    args = body.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{where}: exec args is not a list of strings")
    if "\0" in command or any("\0" in a for a in args):
        raise ConfigError(f"{where}: exec command or args contain a NUL character")
    env = []
    for i, item in enumerate(body.get("env") or []):
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("value", ""), str)
        ):
            raise ConfigError(f"{where}: exec env[{i}] needs a name and a string value")
        name, value = item["name"], item.get("value", "")
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise ConfigError(
                f"{where}: exec env[{i}] is not a usable environment variable (an empty name, "
                "or '=' or NUL in it)"
            )
        env.append((name, value))
    mode_text = body.get("interactiveMode")
    if mode_text is None:
        if api_version == EXEC_V1:
            raise ConfigError(
                f"{where}: exec interactiveMode must be set for {EXEC_V1}",
                hint="add interactiveMode: Never, IfAvailable or Always",
            )
        mode = InteractiveMode.IF_AVAILABLE
    else:
        try:
            mode = InteractiveMode(mode_text)
        except ValueError:
            raise ConfigError(
                f"{where}: exec interactiveMode {mode_text!r} is not Never, IfAvailable or Always"
            ) from None
    return ExecConfig(
        api_version=api_version,
        command=command,
        args=tuple(args),
        env=tuple(env),
        interactive_mode=mode,
        provide_cluster_info=_bool(body, "provideClusterInfo", where),
        install_hint=_str(body, "installHint", where),
    )


def _ca(cluster: Mapping[str, Any], where: str) -> bytes | None:
    data = _str(cluster, "certificate-authority-data", where)
    if data is not None:
        what = f"{where}: certificate-authority-data"
        return check_ca_pem(decode_pem_data(data, what), what)
    path = _str(cluster, "certificate-authority", where)
    if path is not None:
        what = f"{where}: certificate-authority {path}"
        return check_ca_pem(read_file_bytes(Path(path), "certificate-authority"), what)
    return None


def _pem(user: Mapping[str, Any], key: str, where: str) -> bytes | None:
    data = _str(user, f"{key}-data", where)
    if data is not None:
        return decode_pem_data(data, f"{where}: {key}-data")
    path = _str(user, key, where)
    if path is not None:
        return read_file_bytes(Path(path), key)
    return None


def resolve_access(merged: MergedKubeconfig, context: str | None = None) -> ClusterAccess:
    """The :class:`ClusterAccess` of ``context`` (default: the current context)."""
    files = ", ".join(str(p) for p in merged.files) or "(none)"
    name = context or merged.current_context
    if not name:
        raise ConfigError(
            f"kubeconfig {files} has no current-context",
            hint="pass --context NAME, or run `kubectl config use-context NAME`",
        )
    ctx = merged.contexts.get(name)
    if ctx is None:
        known = ", ".join(sorted(merged.contexts)) or "none"
        raise ConfigError(
            f"context {name!r} not found in kubeconfig {files} (contexts: {known})",
            hint="pass --context with one of those",
        )
    where = f"kubeconfig {files}, context {name}"
    cluster_name = _str(ctx, "cluster", where)
    cluster = merged.clusters.get(cluster_name or "")
    if cluster is None:
        raise ConfigError(f"{where}: cluster {cluster_name!r} not found")
    server = _str(cluster, "server", f"{where}, cluster {cluster_name}")
    if server is None:
        raise ConfigError(f"{where}: cluster {cluster_name!r} has no server")
    check_server_url(server, f"{where}, cluster {cluster_name}")
    user_name = _str(ctx, "user", where)
    user: Mapping[str, Any] = {}
    if user_name is not None:
        found = merged.users.get(user_name)
        if found is None:
            raise ConfigError(f"{where}: user {user_name!r} not found")
        user = found
    cwhere = f"{where}, cluster {cluster_name}"
    uwhere = f"{where}, user {user_name}"
    check_credential_forms(user, uwhere)
    ca = _ca(cluster, cwhere)
    insecure = _bool(cluster, "insecure-skip-tls-verify", cwhere)
    if insecure and ca is not None:
        raise ConfigError(
            f"{cwhere}: insecure-skip-tls-verify is set beside a certificate authority",
            hint="remove insecure-skip-tls-verify (kubectl refuses both)",
        )
    cert = _pem(user, "client-certificate", uwhere)
    key = _pem(user, "client-key", uwhere)
    if (cert is None) != (key is None):
        raise ConfigError(f"{uwhere}: a client certificate needs both the certificate and the key")
    exec_ = user.get("exec")
    token_file = _str(user, "tokenFile", uwhere)
    extensions = cluster.get("extensions") or []
    exec_cluster_config = None
    if isinstance(extensions, list):
        for ext in extensions:
            if isinstance(ext, Mapping) and ext.get("name") == EXEC_EXTENSION:
                exec_cluster_config = ext.get("extension")
    namespace = _str(ctx, "namespace", where) or DEFAULT_NAMESPACE
    if not _NAMESPACE.fullmatch(namespace):
        raise ConfigError(
            f"{where}: namespace {namespace[:80]!r} is not a Kubernetes namespace name",
            hint="lowercase letters, digits and '-', at most 63 characters",
        )
    tls_server_name = _str(cluster, "tls-server-name", cwhere)
    if tls_server_name is not None and not _is_host_name(tls_server_name):
        raise ConfigError(
            f"{cwhere}: tls-server-name {tls_server_name[:80]!r} is not a host name",
            hint="set it to a DNS name (or IP address) in the server's certificate",
        )
    return ClusterAccess(
        origin=where,
        context=name,
        server=server,
        namespace=namespace,
        user=user_name,
        ca_pem=ca,
        insecure=insecure,
        tls_server_name=tls_server_name,
        proxy_url=_str(cluster, "proxy-url", cwhere),
        client_cert_pem=cert,
        client_key_pem=key,
        token=_str(user, "token", uwhere),
        token_file=Path(token_file) if token_file else None,
        exec=_exec_config(exec_, uwhere) if exec_ is not None else None,
        exec_cluster_config=exec_cluster_config,
    )
