"""The last line of defence: even when the review log or the metrics themselves fail, the answer
is a 503 TokenReview, never aiohttp's 500 page or a dropped connection.

The metrics are made to fail on purpose (a subclass whose ``observe_review`` raises): a fault the
real registry cannot be made to produce.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from kubeiam.identity import Identity
from kubeiam.server.app import create_app, protocol_error_answer
from kubeiam.server.connections import (
    ConnectionMetrics,
    ConnectionSettings,
    ConnectionTracker,
    listen,
)
from kubeiam.server.identity_cache import IdentityCache
from kubeiam.server.metrics import Result, ServerMetrics
from support.identities import user_identity

IDENTITY = user_identity()


class BrokenMetrics(ServerMetrics):
    def observe_review(self, result: Result, seconds: float) -> None:
        raise RuntimeError("metrics backend broken")


class Verifier:
    async def verify(self, token: str) -> Identity:
        return IDENTITY


class Mapper:
    ready = True

    async def map(self, identity: Identity) -> None:
        return None


REVIEW = json.dumps(
    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "t"}}
).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /authenticate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: "
        + str(len(REVIEW)).encode()
        + b"\r\n\r\n"
        + REVIEW,
        b"GARBAGE\r\n\r\n",
    ],
    ids=["review", "not-http"],
)
async def test_failing_metrics_still_answer_a_review(raw: bytes) -> None:
    metrics = BrokenMetrics()
    app = create_app(Verifier(), Mapper(), metrics=metrics, identity_cache=IdentityCache())
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    tracker = ConnectionTracker(
        ConnectionSettings(1.0, 1.0, 5.0, 16), ConnectionMetrics(metrics.registry)
    )
    server = await listen(
        runner,
        "127.0.0.1",
        0,
        ssl_context=None,
        tracker=tracker,
        on_error=protocol_error_answer(app),
    )
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        server.close()
        await runner.cleanup()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])  # HTTP/1.0 for an unparsable request line
    assert status == (503 if raw.startswith(b"POST") else 400), data
    doc = json.loads(body)
    assert doc["kind"] == "TokenReview"
    assert doc["status"]["authenticated"] is False
