"""The serving certificate's life: expiry metric and warnings, reloads, `kubeiam init --renew`
and `--activate`."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from prometheus_client import CollectorRegistry

from kubeiam.cli.app import cli
from kubeiam.errors import ConfigError
from kubeiam.server.cert_watch import CertificateWatcher
from kubeiam.server.tls import (
    NEXT_CERT_FILE,
    activate_renewal,
    ensure_keypair,
    server_ssl_context,
    stage_renewal,
)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def watcher(state: Path, clock: Clock, registry: CollectorRegistry) -> CertificateWatcher:
    pair = ensure_keypair(state, hostname=None, address="127.0.0.1", now=clock.now)
    return CertificateWatcher(pair, server_ssl_context(pair), registry=registry, now=clock)


def test_expiry_metric_and_warnings_from_30_days_then_daily(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(NOW)
    registry = CollectorRegistry()
    state = tmp_path / "state"
    ensure_keypair(state, hostname=None, address=None, now=NOW, lifetime=dt.timedelta(days=40))
    w = watcher(state, clock, registry)
    not_after = cert(state / "cert.pem").not_valid_after_utc
    assert (
        registry.get_sample_value("kubeiam_serving_certificate_expiry_timestamp_seconds")
        == not_after.timestamp()
    )
    caplog.set_level(logging.WARNING, logger="kubeiam.server.cert_watch")
    assert not w.warn_if_expiring()  # 40 days left
    clock.now = NOW + dt.timedelta(days=11)  # 29 days left
    assert w.warn_if_expiring()
    assert not w.warn_if_expiring()  # once a day
    clock.now += dt.timedelta(hours=23)
    assert not w.warn_if_expiring()
    clock.now += dt.timedelta(hours=1)
    assert w.warn_if_expiring()
    clock.now = NOW + dt.timedelta(days=41)
    assert w.warn_if_expiring()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [
        ("WARNING", "the serving certificate expires soon"),
        ("WARNING", "the serving certificate expires soon"),
        ("ERROR", "the serving certificate has expired"),
    ]
    assert "kubeiam init --renew" in caplog.records[0].fix  # type: ignore[attr-defined]


def test_reload_on_change_keeps_the_old_pair_when_the_new_one_does_not_match(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    state = tmp_path / "state"
    w = watcher(state, Clock(NOW), registry)
    first = w.serial
    assert not w.reload()  # nothing changed

    # a certificate that is not the key's: refused, the old one stays served
    other = tmp_path / "other"
    ensure_keypair(other, hostname=None, address=None, now=NOW)
    shutil.copy(other / "cert.pem", state / "cert.pem")
    assert not w.reload()
    assert w.serial == first
    assert (
        registry.get_sample_value(
            "kubeiam_serving_certificate_reloads_total", {"result": "failure"}
        )
        == 1
    )
    # the matching key arrives too: loaded
    shutil.copy(other / "key.pem", state / "key.pem")
    assert w.reload()
    assert w.serial == cert(state / "cert.pem").serial_number != first
    assert (
        registry.get_sample_value(
            "kubeiam_serving_certificate_reloads_total", {"result": "success"}
        )
        == 1
    )


async def test_the_poll_loop_reloads(tmp_path: Path) -> None:
    state = tmp_path / "state"
    w = watcher(state, Clock(NOW), CollectorRegistry())
    w.poll_interval = 0.05
    first = w.serial
    w.start()
    try:
        stage_renewal(state, hostname=None, address=None, now=NOW)
        activate_renewal(state)
        for _ in range(100):
            if w.serial != first:
                break
            await asyncio.sleep(0.02)
        assert w.serial == cert(state / "cert.pem").serial_number != first
    finally:
        await w.close()


def test_stage_keeps_key_and_names_and_activate_swaps(tmp_path: Path) -> None:
    state = tmp_path / "state"
    pair = ensure_keypair(state, hostname="webhook.internal", address="10.0.0.5", now=NOW)
    key = pair.key_path.read_bytes()
    served_before = pair.cert_path.read_bytes()
    served, staged = stage_renewal(
        state, hostname=None, address="127.0.0.1", now=NOW, lifetime=dt.timedelta(days=90)
    )
    assert served == served_before == pair.cert_path.read_bytes()  # nothing served changes yet
    assert stage_renewal(state, hostname=None, address=None, now=NOW)[1] == staged  # idempotent
    new = x509.load_pem_x509_certificate(staged)
    names = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "webhook.internal" in names.get_values_for_type(x509.DNSName)
    assert new.not_valid_after_utc == NOW + dt.timedelta(days=90)
    _, previous = activate_renewal(state)
    assert previous == served_before
    assert pair.cert_path.read_bytes() == staged
    assert pair.key_path.read_bytes() == key
    assert not (state / NEXT_CERT_FILE).exists()
    assert (state / "cert.previous.pem").read_bytes() == served_before


@pytest.mark.parametrize(
    ("setup", "call", "message"),
    [
        ("empty", "stage", "there is no certificate and key to renew"),
        ("pair", "activate", "there is no staged certificate"),
        ("foreign-staged", "activate", "does not belong to the key"),
    ],
    ids=["stage-without-pair", "activate-without-stage", "activate-foreign"],
)
def test_renewal_refusals(tmp_path: Path, setup: str, call: str, message: str) -> None:
    state = tmp_path / "state"
    if setup != "empty":
        ensure_keypair(state, hostname=None, address=None, now=NOW)
    if setup == "foreign-staged":
        ensure_keypair(tmp_path / "other", hostname=None, address=None, now=NOW)
        shutil.copy(tmp_path / "other" / "cert.pem", state / NEXT_CERT_FILE)

    def step() -> object:
        if call == "stage":
            return stage_renewal(state, hostname=None, address=None, now=NOW)
        return activate_renewal(state)

    with pytest.raises(ConfigError, match=message):
        step()


def kubeconfig_cas(path: Path) -> list[bytes]:
    doc = yaml.safe_load(path.read_text())
    data = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    return [b"-----BEGIN" + part for part in data.split(b"-----BEGIN")[1:]]


def test_init_renew_then_activate_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    state = tmp_path / "state"
    base = ["init", "-i", "my-cluster", "--state-dir", str(state)]
    assert runner.invoke(cli, base).exit_code == 0
    kubeconfig = state / "aws-iam-authenticator.kubeconfig"
    old = (state / "cert.pem").read_bytes()
    key = (state / "key.pem").read_bytes()

    result = runner.invoke(cli, [*base, "--renew", "--valid-days", "365"])
    assert result.exit_code == 0, result.output
    assert "kubeiam init --activate" in result.output
    staged = (state / NEXT_CERT_FILE).read_bytes()
    assert kubeconfig_cas(kubeconfig) == [old, staged]  # trusts both while kube-apiservers roll
    assert (state / "cert.pem").read_bytes() == old

    result = runner.invoke(cli, [*base, "--activate"])
    assert result.exit_code == 0, result.output
    assert (state / "cert.pem").read_bytes() == staged
    assert (state / "key.pem").read_bytes() == key
    assert kubeconfig_cas(kubeconfig) == [staged, old]

    assert runner.invoke(cli, base).exit_code == 0  # later: the served certificate alone
    assert kubeconfig_cas(kubeconfig) == [staged]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--renew", "--force"], "--renew, --activate and --force are steps of their own"),
        (["--renew", "--activate"], "--renew, --activate and --force are steps of their own"),
        (["--renew"], "there is no certificate and key to renew"),
        (["--activate"], "there is no certificate and key to renew"),
    ],
    ids=["renew-force", "renew-activate", "renew-nothing", "activate-nothing"],
)
def test_init_renew_refusals(tmp_path: Path, flags: list[str], message: str) -> None:
    result = CliRunner().invoke(
        cli, ["init", "-i", "my-cluster", "--state-dir", str(tmp_path / "s"), *flags]
    )
    assert result.exit_code != 0
    assert result.output.startswith("kubeiam: error: ")
    assert message in result.output
    assert "fix: " in result.output
    assert "Traceback" not in result.output
