"""Lifecycle of ``kubeiam server``: TLS, the HTTPS listener, signals and graceful shutdown.

:func:`start_server` builds (unless given) the :class:`~kubeiam.server.components.Components`,
ensures the TLS pair and listens, returning a :class:`RunningServer` (tests use it in-process, on
port 0); :func:`serve` runs until SIGTERM or SIGINT, then stops accepting
connections, lets in-flight reviews finish (up to ``shutdown_timeout``), and stops the
components; :func:`run` is the command: logging (:mod:`kubeiam.server.logwriter`), then serve.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubeiam.server.app import create_app, protocol_error_answer
from kubeiam.server.cert_watch import CertificateWatcher
from kubeiam.server.components import Components, build_components
from kubeiam.server.config import ServerConfig
from kubeiam.server.connections import (
    ConnectionMetrics,
    ConnectionSettings,
    ConnectionTracker,
    listen,
)
from kubeiam.server.denylist_watch import DenyListGuard
from kubeiam.server.logwriter import configure_logging
from kubeiam.server.tls import KeyPair, ensure_keypair, server_ssl_context
from kubeiam.server.webhook_kubeconfig import webhook_url, write_webhook_kubeconfig

log = logging.getLogger("kubeiam.server")

# ---------------------------------------------------------------------------------------------
# Memory per TLS connection

#: asyncio allocates (and zero-fills) a read buffer of ``SSLProtocol.max_size`` bytes, 256 KiB by
#: default, for every TLS connection: the webhook's inbound ones and the STS client's outbound
#: ones. In a re-authentication storm (256 kube-apiserver connections plus the STS pool) that
#: alone is ~90 MB of RSS. A TokenReview body is at most 64 KiB and an STS answer about 1 KiB,
#: so 32 KiB reads lose nothing measurable (a larger record is read in more chunks) and the
#: storm's peak RSS halves (bench/bench_webhook_storm.py: 166 -> 86 MB at concurrency 256).
TLS_READ_BUFFER_BYTES = 32 * 1024


def limit_tls_read_buffers(size: int = TLS_READ_BUFFER_BYTES) -> None:
    """Make every TLS connection this process opens from now on read in ``size`` chunks.

    Process-wide (a class attribute of asyncio's TLS protocol): the server owns its process.
    Never raises the size above asyncio's own default."""
    import asyncio.sslproto

    current = getattr(asyncio.sslproto.SSLProtocol, "max_size", None)
    if isinstance(current, int) and 0 < size < current:
        asyncio.sslproto.SSLProtocol.max_size = size


# ---------------------------------------------------------------------------------------------
# Lifecycle


@dataclass(slots=True)
class RunningServer:
    """A started webhook. ``port`` is the bound port (useful with port 0)."""

    config: ServerConfig
    runner: web.AppRunner
    components: Components
    keypair: KeyPair
    port: int
    listener: asyncio.Server
    certificate: CertificateWatcher
    deny_list: DenyListGuard

    @property
    def url(self) -> str:
        return webhook_url(self.config.address, self.port)

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests (bounded), then stop the components."""
        self.listener.close()
        await self.runner.cleanup()
        await self.certificate.close()
        await self.deny_list.close()
        await self.components.close()


async def start_server(
    config: ServerConfig,
    *,
    components: Components | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    reuse_port: bool = False,
    metrics_page: Callable[[], bytes] | None = None,
) -> RunningServer:
    """Build (unless given) the components, ensure the TLS pair, and listen on HTTPS.

    ``reuse_port`` and ``metrics_page`` are a worker's (:mod:`kubeiam.server.workers`): the
    port shared with the other workers, and ``/metrics`` rendered over all of them."""
    limit_tls_read_buffers()
    keypair = ensure_keypair(
        config.state_dir, hostname=config.hostname, address=config.address, now=now()
    )
    ssl_context = server_ssl_context(keypair)
    if components is None:
        components = await build_components(config)
    registry = components.metrics.registry
    deny_list = DenyListGuard(config.deny_list, registry=registry, path=config.deny_list_file)
    try:
        deny_list.load()
    except BaseException:
        await components.close()
        raise
    app = create_app(
        components.verifier,
        components.chain,
        metrics=components.metrics,
        identity_cache=components.cache,
        audiences=config.audiences,
        scrubbed_accounts=config.scrubbed_accounts,
        max_body_bytes=config.max_body_bytes,
        body_timeout=config.body_timeout,
        deny_list=deny_list,
        metrics_page=metrics_page,
    )
    tracker = ConnectionTracker(
        ConnectionSettings(
            header_timeout=config.header_timeout,
            body_timeout=config.body_timeout,
            idle_timeout=config.idle_timeout,
            max_connections=config.max_connections,
        ),
        ConnectionMetrics(registry),
    )
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=config.shutdown_timeout)
    try:
        await runner.setup()
        listener = await listen(
            runner,
            config.address,
            config.port,
            ssl_context=ssl_context,
            tracker=tracker,
            on_error=protocol_error_answer(app),
            reuse_port=reuse_port,
        )
    except OSError as exc:
        await runner.cleanup()
        await components.close()
        from kubeiam.errors import ConfigError

        raise ConfigError(
            f"cannot listen on {config.address}:{config.port}: {exc.strerror}",
            hint="choose a free --port, or stop the process that holds it",
        ) from None
    port = int(listener.sockets[0].getsockname()[1])
    certificate = CertificateWatcher(keypair, ssl_context, registry=registry, now=now)
    certificate.start()
    deny_list.start()
    running = RunningServer(
        config, runner, components, keypair, port, listener, certificate, deny_list
    )
    if config.generate_kubeconfig is not None:
        host = config.hostname or config.address
        write_webhook_kubeconfig(
            config.generate_kubeconfig, webhook_url(host, port), keypair.cert_pem()
        )
    log.info(
        "listening",
        extra={
            "address": config.address,
            "port": port,
            "cluster_id": config.cluster_id,
            "backends": [m.value for m in config.backend_mode],
        },
    )
    return running


async def serve(
    config: ServerConfig,
    *,
    started: Callable[[RunningServer], None] | None = None,
    reuse_port: bool = False,
    metrics_page: Callable[[], bytes] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT; then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start_server(config, reuse_port=reuse_port, metrics_page=metrics_page)
    # Everything built so far lives as long as the process: keep it out of the collector's
    # scans, so that full collections during reviews stay short.
    gc.freeze()
    if started is not None:
        started(running)
    try:
        await stop.wait()
        log.info("shutting down: finishing in-flight reviews")
        began = time.monotonic()
        await running.stop()
        log.info("stopped", extra={"shutdown_ms": round((time.monotonic() - began) * 1000)})
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run(config: ServerConfig, *, workers: int = 1) -> int:
    """``kubeiam server``: configure logging and serve until a signal; the exit status.

    With ``workers`` > 1, a supervisor runs that many servers on one port
    (:mod:`kubeiam.server.workers`)."""
    if workers > 1:
        from kubeiam.server.workers import run_workers

        return run_workers(config, workers)
    logs = configure_logging(config.log_format, background=True)
    try:
        run_loop(serve(config))
    finally:
        logs.close()
    return 0


#: Set to 0 to run the server on asyncio's own event loop even where uvloop is installed.
UVLOOP_ENV = "KUBEIAM_UVLOOP"


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when it is installed (and not turned off with
    ``KUBEIAM_UVLOOP=0``), else on asyncio's loop.

    uvloop's event loop and TLS transport are C: a distinct-token review cost about 11% less
    server CPU with it (bench/bench_reference.py ``--variant``, docs/server.md "Performance").
    Its TLS transport reads into a buffer that is allocated but not zero-filled, so
    :func:`limit_tls_read_buffers` has nothing to do there."""
    import os

    if os.environ.get(UVLOOP_ENV, "1") != "0":
        try:
            import uvloop  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(main)
            return
    asyncio.run(main)
