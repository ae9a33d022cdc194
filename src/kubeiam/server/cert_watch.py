"""The serving certificate's life: its expiry as a metric and a warning, and reloads without a
restart.

Every ``poll_interval`` seconds the watcher looks at ``cert.pem`` and ``key.pem`` in the state
directory (mtime, size, inode). When either changed, it reads both, checks that the key belongs
to the certificate, and loads them into the *live* :class:`ssl.SSLContext`: new TLS handshakes
use the new certificate, connections already open (and the reviews on them) keep theirs. A pair
that does not match (a renewal half-written, a wrong key) is not loaded: the old one keeps
serving, and the reason is logged and counted. The pair is loaded from a private copy of the
bytes that were checked, so a file replaced between the check and the load cannot slip in.

``kubeiam_serving_certificate_expiry_timestamp_seconds`` is the served certificate's notAfter.
From ``WARN_BEFORE`` ahead of it, a warning is logged at start-up and then once a day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from kubeiam.fileio import FileSignature, file_signature
from kubeiam.mapping.backends import cancel_task
from kubeiam.server.tls import KeyPair, check_pem_pair

log = logging.getLogger(__name__)

#: Warn this long before the certificate expires: a month leaves time to renew and roll the
#: webhook kubeconfig through every kube-apiserver.
WARN_BEFORE = dt.timedelta(days=30)
#: Then repeat the warning this often (one line a day is seen without flooding the log).
WARN_EVERY = dt.timedelta(days=1)
#: How often the files are polled: a renewed certificate is served within this long.
DEFAULT_POLL_INTERVAL = 10.0


class CertificateMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.expiry = Gauge(
            "serving_certificate_expiry_timestamp_seconds",
            "notAfter of the webhook's serving certificate (unix time)",
            namespace="kubeiam",
            registry=registry,
        )
        self.reloads = Counter(
            "serving_certificate_reloads",
            "Reloads of the serving certificate from the state directory",
            ["result"],
            namespace="kubeiam",
            registry=registry,
        )
        for result in ("success", "failure"):
            self.reloads.labels(result)


def _signature(pair: KeyPair) -> tuple[FileSignature, FileSignature] | None:
    """Both files' signatures; None while either is missing or unreadable (mid-renewal)."""
    try:
        cert, key = file_signature(pair.cert_path), file_signature(pair.key_path)
    except OSError:
        return None
    return None if cert is None or key is None else (cert, key)


class CertificateWatcher:
    """Keeps ``context`` serving the state directory's current pair; see the module doc."""

    def __init__(
        self,
        pair: KeyPair,
        context: ssl.SSLContext,
        *,
        registry: CollectorRegistry,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self.pair = pair
        self.context = context
        self.now = now
        self.poll_interval = poll_interval
        self.metrics = CertificateMetrics(registry)
        self.not_after: dt.datetime | None = None
        self.serial: int | None = None
        self._signature = _signature(pair)
        self._last_warning: dt.datetime | None = None
        self._task: asyncio.Task[None] | None = None
        try:
            cert = check_pem_pair(pair.cert_path.read_bytes(), pair.key_path.read_bytes())
        except (OSError, ValueError, TypeError):
            return  # the context loaded it already; the next poll says what is wrong
        self._served(cert.not_valid_after_utc, cert.serial_number)

    def _served(self, not_after: dt.datetime, serial: int) -> None:
        self.not_after = not_after
        self.serial = serial
        self.metrics.expiry.set(not_after.timestamp())

    def reload(self) -> bool:
        """Load the pair into the live context if the files changed; True when loaded."""
        signature = _signature(self.pair)
        if signature is None or signature == self._signature:
            return False
        try:
            cert_pem = self.pair.cert_path.read_bytes()
            key_pem = self.pair.key_path.read_bytes()
            cert = check_pem_pair(cert_pem, key_pem)
            with tempfile.TemporaryDirectory(prefix="kubeiam-tls-") as tmp:
                cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
                cert_file.write_bytes(cert_pem)
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(key_pem)
                self.context.load_cert_chain(str(cert_file), str(key_file))
        except (OSError, ValueError, TypeError, ssl.SSLError) as exc:
            # Not remembered as seen: the next poll tries again (the other file of a renewal
            # may still be on its way).
            self.metrics.reloads.labels("failure").inc()
            log.warning(
                "serving certificate not reloaded; the previous one is still served",
                extra={"path": str(self.pair.cert_path), "error": type(exc).__name__},
            )
            return False
        self._signature = signature
        self._served(cert.not_valid_after_utc, cert.serial_number)
        self.metrics.reloads.labels("success").inc()
        log.info(
            "serving certificate reloaded",
            extra={
                "not_after": cert.not_valid_after_utc.isoformat(),
                "serial": f"{cert.serial_number:x}",
            },
        )
        return True

    def warn_if_expiring(self) -> bool:
        """Log a warning when the certificate expires within WARN_BEFORE (at most daily)."""
        if self.not_after is None:
            return False
        now = self.now()
        left = self.not_after - now
        if left > WARN_BEFORE:
            return False
        if self._last_warning is not None and now - self._last_warning < WARN_EVERY:
            return False
        self._last_warning = now
        fields = {
            "not_after": self.not_after.isoformat(),
            "days_left": round(left.total_seconds() / 86400, 1),
            "fix": "renew it with `kubeiam init --renew --state-dir DIR` (docs/server.md)",
        }
        if left.total_seconds() <= 0:
            log.error("the serving certificate has expired", extra=fields)
        else:
            log.warning("the serving certificate expires soon", extra=fields)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self.reload()
                self.warn_if_expiring()
            except Exception as exc:  # the watcher must outlive any one bad poll
                log.error("certificate poll failed", extra={"error": type(exc).__name__})

    def start(self) -> None:
        self.warn_if_expiring()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        await cancel_task(self._task)
        self._task = None
