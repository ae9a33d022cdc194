"""The webhook's TLS material: a self-signed certificate and its key in the state directory.

``kubeiam init`` and ``kubeiam server`` (when the state directory is empty) write the same two
files the reference does, ``cert.pem`` and ``key.pem``, so an existing state directory keeps
working. The key is written with mode 0600 through a temporary file and an atomic rename; an
existing pair is reused unless ``force`` is given, because kube-apiserver's webhook kubeconfig
pins this exact certificate.

The certificate is its own CA (kube-apiserver trusts it through ``certificate-authority-data``)
and names ``localhost``, ``127.0.0.1`` and ``::1`` plus the host name and listen address given.

Renewal keeps the key and takes two steps (:func:`stage_renewal`, :func:`activate_renewal`):
a self-signed certificate is trusted only where it is listed itself (OpenSSL and Go both refuse a
renewed one that only shares its predecessor's name and key), so kube-apiserver's kubeconfig must
list the new certificate before the webhook serves it. ``kubeiam.server.cert_watch`` reloads the
served pair without a restart.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeiam.errors import ConfigError
from kubeiam.fileio import write_atomically

log = logging.getLogger(__name__)

#: File names inside the state directory, the reference's, so existing directories keep working.
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
#: A renewal's certificate while kube-apiservers learn to trust it (``kubeiam init --renew``),
#: and the certificate it replaced (kept for the kubeconfig's CA bundle).
NEXT_CERT_FILE = "cert.next.pem"
PREVIOUS_CERT_FILE = "cert.previous.pem"
#: The reference issues its self-signed certificate for ~100 years: the webhook kubeconfig pins it,
#: and an expiring certificate would silently lock everyone out of the cluster. Rotate with --force.
CERT_LIFETIME = dt.timedelta(days=365 * 100)
#: Names every certificate carries, so that a server on loopback always verifies.
DEFAULT_DNS_NAMES = ("localhost",)
DEFAULT_IPS = ("127.0.0.1", "::1")
COMMON_NAME = "kubeiam"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """Where the certificate and key are, and whether this call created them."""

    cert_path: Path
    key_path: Path
    created: bool

    def cert_pem(self) -> bytes:
        return self.cert_path.read_bytes()


def subject_alt_names(hostname: str | None, address: str | None) -> x509.SubjectAlternativeName:
    """SANs for ``hostname`` and ``address`` (each an IP literal or a DNS name) plus loopback."""
    dns: list[str] = list(DEFAULT_DNS_NAMES)
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [
        ipaddress.ip_address(a) for a in DEFAULT_IPS
    ]
    for value in (hostname, address):
        if not value:
            continue
        try:
            ip = ipaddress.ip_address(value.strip("[]"))
        except ValueError:
            name = value.strip().lower().rstrip(".")
            if not name or any(c.isspace() or c in "/:" for c in name):
                raise ConfigError(
                    f"{value!r} is neither an IP address nor a DNS name",
                    hint="pass --hostname as a DNS name (webhook.example.internal) or an IP",
                ) from None
            if name not in dns:
                dns.append(name)
            continue
        if not ip.is_unspecified and ip not in ips:
            ips.append(ip)
    general: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    general.extend(x509.IPAddress(ip) for ip in ips)
    return x509.SubjectAlternativeName(general)


def generate_self_signed(
    *,
    hostname: str | None,
    address: str | None,
    now: dt.datetime,
    lifetime: dt.timedelta = CERT_LIFETIME,
) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key and a self-signed CA certificate for it, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, subject_alt_names(hostname, address), now=now, lifetime=lifetime)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert, key_pem


def _self_signed(
    key: ec.EllipticCurvePrivateKey,
    sans: x509.SubjectAlternativeName,
    *,
    now: dt.datetime,
    lifetime: dt.timedelta,
    common_name: str = COMMON_NAME,
) -> bytes:
    """The self-signed CA certificate (PEM) for ``key``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(sans, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def check_pem_pair(cert_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """The certificate of a PEM pair whose key belongs to it; ValueError otherwise."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key().public_bytes(der, pub) != key.public_key().public_bytes(der, pub):
        raise ValueError("the key does not belong to the certificate")
    return cert


def _check_pair(cert_path: Path, key_path: Path) -> None:
    """Refuse a certificate and key that do not belong together or cannot be read."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {cert_path} or key {key_path}: {exc}",
            hint="fix the files, or regenerate them with `kubeiam init --force`",
        ) from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key().public_bytes(der, pub) != key.public_key().public_bytes(der, pub):
        raise ConfigError(
            f"the key {key_path} does not belong to the certificate {cert_path}",
            hint="restore the matching pair, or regenerate both with `kubeiam init --force`",
        )
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "private key is readable by other users; run chmod 600 on it",
            extra={"path": str(key_path), "mode": oct(mode)},
        )


def ensure_keypair(
    state_dir: Path,
    *,
    hostname: str | None,
    address: str | None,
    now: dt.datetime,
    force: bool = False,
    lifetime: dt.timedelta = CERT_LIFETIME,
) -> KeyPair:
    """Reuse ``cert.pem`` + ``key.pem`` in ``state_dir``, or write a new pair.

    A half-present pair (one file without the other) is refused unless ``force``: silently
    replacing a key would break every kube-apiserver that pins the old certificate.
    """
    cert_path = state_dir / CERT_FILE
    key_path = state_dir / KEY_FILE
    have_cert, have_key = cert_path.exists(), key_path.exists()
    if not force and have_cert and have_key:
        _check_pair(cert_path, key_path)
        return KeyPair(cert_path, key_path, created=False)
    if not force and (have_cert or have_key):
        present, missing = (cert_path, key_path) if have_cert else (key_path, cert_path)
        raise ConfigError(
            f"{present} exists but {missing} does not",
            hint="restore the missing file, or write a new pair with `kubeiam init --force` "
            "(kube-apiserver's webhook kubeconfig must then be updated too)",
        )
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_pem, key_pem = generate_self_signed(
            hostname=hostname, address=address, now=now, lifetime=lifetime
        )
        write_atomically(key_path, key_pem, 0o600)
        write_atomically(cert_path, cert_pem, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the TLS certificate and key in {state_dir}: {exc.strerror}",
            hint="choose a writable --state-dir (or stateDir in the config file)",
        ) from None
    log.info("wrote a new self-signed certificate and key", extra={"state_dir": str(state_dir)})
    return KeyPair(cert_path, key_path, created=True)


def _read_pair(state_dir: Path) -> tuple[Path, Path, ec.EllipticCurvePrivateKey]:
    cert_path = state_dir / CERT_FILE
    key_path = state_dir / KEY_FILE
    if not (cert_path.exists() and key_path.exists()):
        raise ConfigError(
            f"there is no certificate and key to renew in {state_dir}",
            hint="write a first pair with `kubeiam init` (without --renew)",
        )
    _check_pair(cert_path, key_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(
            f"the key {key_path} is not an ECDSA key; kubeiam renews only its own pairs",
            hint="write a new pair with `kubeiam init --force`",
        )
    return cert_path, key_path, key


def _write_cert(path: Path, pem: bytes) -> None:
    try:
        write_atomically(path, pem, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the certificate {path}: {exc.strerror}",
            hint="run it as the user that owns the state directory",
        ) from None


def stage_renewal(
    state_dir: Path,
    *,
    hostname: str | None,
    address: str | None,
    now: dt.datetime,
    lifetime: dt.timedelta = CERT_LIFETIME,
) -> tuple[bytes, bytes]:
    """Step 1 of a renewal: write ``cert.next.pem``, a new certificate for the same key; returns
    (the served certificate, the staged one), both PEM.

    Nothing is served differently yet: kube-apiserver verifies the webhook against the
    certificates its webhook kubeconfig lists, and a self-signed certificate is trusted only when
    listed itself (OpenSSL and Go alike), so every kube-apiserver must first load a kubeconfig
    listing both (see docs/server.md). The staged certificate's names are the served one's plus
    ``hostname`` and ``address``. A staged certificate already there is kept (the step can be
    repeated to rewrite the kubeconfig).
    """
    cert_path, key_path, key = _read_pair(state_dir)
    current = cert_path.read_bytes()
    next_path = state_dir / NEXT_CERT_FILE
    if next_path.exists():
        try:
            check_pem_pair(next_path.read_bytes(), key_path.read_bytes())
            return current, next_path.read_bytes()
        except (OSError, ValueError, TypeError):
            log.warning("replacing a staged certificate that does not match the key")
    old = x509.load_pem_x509_certificate(current)
    try:
        old_names = list(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        old_names = []
    names = list(subject_alt_names(hostname, address))
    names.extend(n for n in old_names if n not in names)
    # A subject of its own: with two trusted certificates of one name, OpenSSL picks the first
    # as the issuer of the other and refuses the chain (Go does not); distinct names keep a
    # kubeconfig listing both valid in either order, for every client.
    staged = _self_signed(
        key,
        x509.SubjectAlternativeName(names),
        now=now,
        lifetime=lifetime,
        common_name=f"{COMMON_NAME} {now:%Y-%m-%dT%H:%M:%SZ}",
    )
    _write_cert(next_path, staged)
    log.info("staged a renewed certificate (same key)", extra={"path": str(next_path)})
    return current, staged


def activate_renewal(state_dir: Path) -> tuple[KeyPair, bytes]:
    """Step 2: the staged certificate becomes ``cert.pem`` (one atomic rename; a running server
    serves it to new connections within its poll interval). Returns the pair and the certificate
    it replaced (PEM)."""
    cert_path, key_path, _ = _read_pair(state_dir)
    next_path = state_dir / NEXT_CERT_FILE
    try:
        staged = next_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"there is no staged certificate {next_path} to activate",
            hint="stage one with `kubeiam init --renew`, roll the kubeconfig it writes, then "
            "activate",
        ) from None
    try:
        check_pem_pair(staged, key_path.read_bytes())
    except (ValueError, TypeError):
        raise ConfigError(
            f"the staged certificate {next_path} does not belong to the key {key_path}",
            hint="stage it again with `kubeiam init --renew`",
        ) from None
    previous = cert_path.read_bytes()
    _write_cert(state_dir / PREVIOUS_CERT_FILE, previous)
    try:
        next_path.replace(cert_path)
    except OSError as exc:
        raise ConfigError(f"cannot activate {next_path}: {exc.strerror}") from None
    log.info("activated the renewed certificate", extra={"state_dir": str(state_dir)})
    return KeyPair(cert_path, key_path, created=False), previous


def server_ssl_context(pair: KeyPair) -> ssl.SSLContext:
    """A server-side TLS context: TLS 1.2 or later only, with the state directory's pair."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(str(pair.cert_path), str(pair.key_path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {pair.cert_path}: {exc}",
            hint="regenerate it with `kubeiam init --force`",
        ) from None
    return ctx
