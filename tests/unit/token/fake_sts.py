"""A fake STS on 127.0.0.1 over real TLS (trustme CA), whose answer each test chooses.

It records the requests, the SNI names and the raw paths it saw. The ``fake_sts`` fixture
(conftest.py) serves it in the test's loop; :func:`fake_sts_in_thread` runs the same server in a
background thread for code that starts its own event loop (the sync helper, the CLI).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import trustme
from aiohttp import web

from kubeiam.token.sts import CallerIdentity

HOST = "sts.us-east-1.amazonaws.com"
ARN = "arn:aws:iam::111122223333:user/alice"
CLUSTER_ID = "cluster-a"

JSON_OK = {
    "GetCallerIdentityResponse": {
        "GetCallerIdentityResult": {
            "Arn": ARN,
            "Account": "111122223333",
            "UserId": "AIDAEXAMPLEUSERID0001",
        },
        "ResponseMetadata": {"RequestId": "0b1c7a52-0000-4000-8000-000000000000"},
    }
}
XML_OK = b"""<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::111122223333:user/alice</Arn>
    <UserId>AIDAEXAMPLEUSERID0001</UserId>
    <Account>111122223333</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>0b1c7a52</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"""
EXPECTED = CallerIdentity(arn=ARN, account="111122223333", user_id="AIDAEXAMPLEUSERID0001")


def xml_error(code: str) -> bytes:
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        f"<Type>Sender</Type><Code>{code}</Code><Message>no</Message></Error>"
        "<RequestId>1</RequestId></ErrorResponse>"
    ).encode()


def json_error(code: str) -> bytes:
    return json.dumps({"Error": {"Code": code, "Message": "no", "Type": "Sender"}}).encode()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeSTS:
    """An HTTPS server on loopback whose answer each test chooses; it records what it saw."""

    port: int = 0
    handler: Handler | None = None
    requests: list[web.Request] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def resolve(self) -> dict[str, tuple[str, int]]:
        return {HOST: ("127.0.0.1", self.port), "sts.amazonaws.com": ("127.0.0.1", self.port)}


@asynccontextmanager
async def serve_fake_sts(ca: trustme.CA) -> AsyncIterator[FakeSTS]:
    state = FakeSTS()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST, "sts.amazonaws.com").configure_cert(context)

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        state.server_names.append(name)

    context.sni_callback = record_sni  # type: ignore[assignment]

    async def handle(request: web.Request) -> web.StreamResponse:
        state.requests.append(request)
        state.paths.append(request.path_qs)
        assert state.handler is not None
        return await state.handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    # No access log: it would print the presigned URL (this fake is the only one who sees it).
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


@contextmanager
def fake_sts_in_thread(ca: trustme.CA) -> Iterator[FakeSTS]:
    """The fake in its own thread and event loop; stopped (bounded wait) on exit."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        async with serve_fake_sts(ca) as state:
            holder["state"], holder["stop"] = state, stop
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert ready.wait(10), "fake STS did not start"
    state = holder["state"]
    stop = holder["stop"]
    assert isinstance(state, FakeSTS)
    assert isinstance(stop, asyncio.Event)
    try:
        yield state
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def answer(status: int, body: bytes, content_type: str = "application/json") -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type=content_type)

    return handler


def caller_json(arn: str, account: str, user_id: str) -> bytes:
    """A GetCallerIdentity success answer as STS writes it in JSON."""
    result = {"Arn": arn, "Account": account, "UserId": user_id}
    return json.dumps({"GetCallerIdentityResponse": {"GetCallerIdentityResult": result}}).encode()
