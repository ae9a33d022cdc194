"""Key material for a loopback control plane: one CA, serving and client certificates, SA keys.

One CA signs kube-apiserver's serving certificate (IP 127.0.0.1, DNS localhost) and the client
certificates; kube-apiserver trusts it as `--client-ca-file`, so an admin certificate with
`O=system:masters` gets full access for setup, as envtest does. Keys are EC P-256 (fast to make);
the service-account signing key is RSA, the algorithm every token consumer accepts.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=1)
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CertFiles:
    """A certificate and its private key on disk (PEM; the key is 0600)."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class ControlPlanePki:
    """Every file kube-apiserver and its clients need, written under one directory."""

    ca: CertFiles
    serving: CertFiles
    admin: CertFiles
    service_account_key: Path
    service_account_public_key: Path


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _new_ca(now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("kubeiam-e2e-ca")
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca: CertFiles,
    directory: Path,
    *,
    file_stem: str,
    subject: x509.Name,
    server: bool,
    now: datetime.datetime,
) -> CertFiles:
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
            x509.DNSName("localhost"),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    files = CertFiles(cert=directory / f"{file_stem}.crt", key=directory / f"{file_stem}.key")
    _write_cert(files.cert, builder.sign(ca_key, hashes.SHA256()))
    _write_key(files.key, key)
    return files


def write_client_cert(
    ca: CertFiles,
    directory: Path,
    *,
    user: str,
    groups: tuple[str, ...] = (),
    now: datetime.datetime,
) -> CertFiles:
    """A client certificate for `user` (CN) in `groups` (O), signed by the control plane's CA."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    return _issue(
        ca, directory, file_stem=user, subject=x509.Name(attributes), server=False, now=now
    )


def write_server_cert(
    ca: CertFiles, directory: Path, *, name: str, now: datetime.datetime
) -> CertFiles:
    """A serving certificate for 127.0.0.1 and localhost, signed by the control plane's CA."""
    return _issue(ca, directory, file_stem=name, subject=_name(name), server=True, now=now)


def write_pki(directory: Path, *, now: datetime.datetime) -> ControlPlanePki:
    """Generate the CA, serving and admin certificates and the service-account key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _new_ca(now)
    ca = CertFiles(cert=directory / "ca.crt", key=directory / "ca.key")
    _write_cert(ca.cert, ca_cert)
    _write_key(ca.key, ca_key)
    serving = write_server_cert(ca, directory, name="apiserver", now=now)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_private = directory / "service-account.key"
    sa_public = directory / "service-account.pub"
    _write_key(sa_private, sa_key)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    admin = write_client_cert(
        ca, directory, user="kubeiam-e2e-admin", groups=("system:masters",), now=now
    )
    return ControlPlanePki(
        ca=ca,
        serving=serving,
        admin=admin,
        service_account_key=sa_private,
        service_account_public_key=sa_public,
    )
