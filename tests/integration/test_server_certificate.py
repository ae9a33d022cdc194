"""A certificate renewed while the webhook serves, over real HTTPS on loopback: new connections
get the new certificate, a review in flight on an old connection completes, nothing restarts.

The verifier is a stand-in that holds one review until the test releases it (a slow STS call,
made to order); TLS, the listener and the reload are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from kubeiam.identity import Identity
from kubeiam.server.components import Components
from kubeiam.server.config import ServerConfig
from kubeiam.server.identity_cache import IdentityCache
from kubeiam.server.metrics import ServerMetrics
from kubeiam.server.run import RunningServer, start_server
from kubeiam.server.tls import activate_renewal, stage_renewal
from support.identities import user_identity
from support.metrics import sample_sum

IDENTITY = user_identity()


class User:
    username = "alice"
    groups = ("devs",)
    backend = "MountedFile"


class GatedVerifier:
    """Token ``slow`` waits for ``gate``; any other is verified at once."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def verify(self, token: str) -> Identity:
        if token == "slow":
            self.waiting.set()
            await self.gate.wait()
        return IDENTITY


class Mapper:
    ready = True

    async def map(self, identity: Identity) -> User:
        return User()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, GatedVerifier]]:
    verifier = GatedVerifier()
    config = ServerConfig(
        cluster_id="renewal", port=0, state_dir=tmp_path / "state", shutdown_timeout=2.0
    )
    components = Components(verifier, Mapper(), ServerMetrics(), IdentityCache(max_entries=0))
    running = await start_server(config, components=components)
    yield running, verifier
    verifier.gate.set()
    await running.stop()


def body(token: str) -> bytes:
    doc = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    return json.dumps(doc).encode()


def request(token: str) -> bytes:
    payload = body(token)
    return (
        f"POST /authenticate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def connect(
    server: RunningServer, trusted: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """A TLS connection trusting ``trusted`` (PEM, one or more); returns the served serial."""
    ctx = ssl.create_default_context(cadata=trusted.decode())
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=ctx, server_hostname="127.0.0.1"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return reader, writer, x509.load_der_x509_certificate(der).serial_number


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, object]]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, json.loads(await reader.readexactly(length))


def serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


async def test_renewal_while_serving(server: tuple[RunningServer, GatedVerifier]) -> None:
    running, verifier = server
    state = running.config.state_dir
    old = running.keypair.cert_pem()

    # a review in flight on a connection made with the old certificate
    r1, w1, first = await connect(running, old)
    assert first == serial(old)
    w1.write(request("slow"))
    await w1.drain()
    await asyncio.wait_for(verifier.waiting.wait(), 5)

    # step 1: staged; nothing served changes, the old kubeconfig still works
    _, staged = stage_renewal(
        state, hostname=None, address=None, now=datetime.now(UTC), lifetime=timedelta(days=90)
    )
    assert not running.certificate.reload()
    *_, now_served = await connect(running, old)
    assert now_served == serial(old)

    # step 2: activated and reloaded, without a restart
    activate_renewal(state)
    assert running.certificate.reload()
    r2, w2, second = await connect(running, old + staged)  # the --renew kubeconfig trusts both
    assert second == serial(staged)
    w2.write(request("fast"))
    await w2.drain()
    assert (await answer(r2))[0] == 200
    with pytest.raises(ssl.SSLCertVerificationError):  # why step 1 comes first
        await connect(running, old)

    # the review in flight completes on its connection, with the old certificate
    verifier.gate.set()
    status, doc = await asyncio.wait_for(answer(r1), 5)
    assert status == 200
    assert doc["status"]["authenticated"] is True  # type: ignore[index]

    text = running.components.metrics.render().decode()
    expiry = x509.load_pem_x509_certificate(staged).not_valid_after_utc.timestamp()
    # Compared as a number: the exposition writes 1.80439786e+09 for ...860 (no trailing zero).
    assert sample_sum(text, "kubeiam_serving_certificate_expiry_timestamp_seconds") == expiry
    for w in (w1, w2):
        w.close()
