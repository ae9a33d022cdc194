"""``kubeiam init`` and the TLS pair: modes, SANs, idempotence, the webhook kubeconfig."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509

from kubeiam.cli.app import cli
from kubeiam.errors import ConfigError
from kubeiam.server.tls import ensure_keypair, server_ssl_context
from kubeiam.server.webhook_kubeconfig import render_webhook_kubeconfig, webhook_url

NOW = dt.datetime(2026, 11, 23, 16, 0, tzinfo=dt.UTC)


def sans(cert_path: Path) -> tuple[set[str], set[str]]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(ext.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}
    return dns, ips


def test_new_pair_has_private_key_and_right_sans(tmp_path: Path) -> None:
    pair = ensure_keypair(
        tmp_path / "state", hostname="webhook.example.internal", address="10.0.0.5", now=NOW
    )
    assert pair.created
    assert pair.key_path.stat().st_mode & 0o777 == 0o600
    assert pair.cert_path.stat().st_mode & 0o777 == 0o644
    dns, ips = sans(pair.cert_path)
    assert dns == {"localhost", "webhook.example.internal"}
    assert ips == {"127.0.0.1", "::1", "10.0.0.5"}
    cert = x509.load_pem_x509_certificate(pair.cert_path.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc > NOW + dt.timedelta(days=365 * 50)
    assert not list(pair.key_path.parent.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize(
    ("hostname", "address", "dns", "ips"),
    [
        (None, "0.0.0.0", {"localhost"}, {"127.0.0.1", "::1"}),  # noqa: S104
        ("192.168.1.9", "127.0.0.1", {"localhost"}, {"127.0.0.1", "::1", "192.168.1.9"}),
        ("Node-1.Example.", None, {"localhost", "node-1.example"}, {"127.0.0.1", "::1"}),
        (None, "fd00::7", {"localhost"}, {"127.0.0.1", "::1", "fd00::7"}),
    ],
    ids=["unspecified-address", "ip-hostname", "dns-normalised", "ipv6"],
)
def test_sans(
    tmp_path: Path, hostname: str | None, address: str | None, dns: set[str], ips: set[str]
) -> None:
    pair = ensure_keypair(tmp_path, hostname=hostname, address=address, now=NOW)
    assert sans(pair.cert_path) == (dns, ips)


def test_existing_pair_is_reused_unless_forced(tmp_path: Path) -> None:
    first = ensure_keypair(tmp_path, hostname=None, address="127.0.0.1", now=NOW)
    cert = first.cert_path.read_bytes()
    again = ensure_keypair(tmp_path, hostname="other", address="127.0.0.1", now=NOW)
    assert not again.created
    assert again.cert_path.read_bytes() == cert
    forced = ensure_keypair(tmp_path, hostname=None, address="127.0.0.1", now=NOW, force=True)
    assert forced.created
    assert forced.cert_path.read_bytes() != cert


def test_half_pair_is_refused(tmp_path: Path) -> None:
    pair = ensure_keypair(tmp_path, hostname=None, address=None, now=NOW)
    pair.key_path.unlink()
    with pytest.raises(ConfigError, match="does not") as info:
        ensure_keypair(tmp_path, hostname=None, address=None, now=NOW)
    assert "--force" in str(info.value)


def test_mismatched_pair_is_refused(tmp_path: Path) -> None:
    a = ensure_keypair(tmp_path / "a", hostname=None, address=None, now=NOW)
    b = ensure_keypair(tmp_path / "b", hostname=None, address=None, now=NOW)
    b.key_path.write_bytes(a.key_path.read_bytes())
    with pytest.raises(ConfigError, match="does not belong"):
        ensure_keypair(tmp_path / "b", hostname=None, address=None, now=NOW)


def test_bad_hostname_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither an IP address nor a DNS name"):
        ensure_keypair(tmp_path, hostname="bad host/name", address=None, now=NOW)


def test_ssl_context_is_tls12_or_later(tmp_path: Path) -> None:
    ctx = server_ssl_context(ensure_keypair(tmp_path, hostname=None, address=None, now=NOW))
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "https://127.0.0.1:21362/authenticate"),
        ("0.0.0.0", "https://127.0.0.1:21362/authenticate"),  # noqa: S104
        ("::", "https://[::1]:21362/authenticate"),
        ("fd00::1", "https://[fd00::1]:21362/authenticate"),
        ("webhook.internal", "https://webhook.internal:21362/authenticate"),
    ],
    ids=["ipv4", "unspecified-v4", "unspecified-v6", "ipv6", "dns"],
)
def test_webhook_url(host: str, url: str) -> None:
    assert webhook_url(host, 21362) == url


def test_kubeconfig_document() -> None:
    doc = yaml.safe_load(render_webhook_kubeconfig("https://h:1/authenticate", b"PEM"))
    assert doc["clusters"][0]["cluster"] == {
        "certificate-authority-data": base64.b64encode(b"PEM").decode(),
        "server": "https://h:1/authenticate",
    }
    assert doc["current-context"] == "webhook"
    assert doc["contexts"][0]["context"] == {
        "cluster": "aws-iam-authenticator",
        "user": "apiserver",
    }


def test_init_command_writes_everything_and_is_idempotent(tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ["init", "-i", "demo", "--hostname", "webhook.internal", "--address", "10.1.2.3"]
    args += ["--port", "9443", "--state-dir", str(state)]
    runner = CliRunner()
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    kubeconfig = state / "aws-iam-authenticator.kubeconfig"
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://webhook.internal:9443/authenticate"
    cert_pem = (state / "cert.pem").read_bytes()
    assert base64.b64decode(cluster["certificate-authority-data"]) == cert_pem
    assert (state / "key.pem").stat().st_mode & 0o777 == 0o600
    dns, ips = sans(state / "cert.pem")
    assert "webhook.internal" in dns
    assert ipaddress.ip_address("10.1.2.3") in {ipaddress.ip_address(i) for i in ips}
    key = (state / "key.pem").read_bytes()

    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "reused" in again.output
    assert (state / "cert.pem").read_bytes() == cert_pem
    assert (state / "key.pem").read_bytes() == key

    forced = runner.invoke(cli, [*args, "--force"])
    assert forced.exit_code == 0
    assert (state / "key.pem").read_bytes() != key


def test_init_kubeconfig_out_and_bad_cluster_id(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "k" / "webhook.yaml"
    ok = runner.invoke(
        cli, ["init", "-i", "c", "--state-dir", str(tmp_path / "s"), "--kubeconfig-out", str(out)]
    )
    assert ok.exit_code == 0, ok.output
    assert yaml.safe_load(out.read_text())["clusters"][0]["cluster"]["server"] == (
        "https://127.0.0.1:21362/authenticate"
    )
    bad = runner.invoke(cli, ["init", "-i", " spaced ", "--state-dir", str(tmp_path / "t")])
    assert bad.exit_code == 2
    assert not (tmp_path / "t").exists()
