"""Wiring and lifecycle of ``kubeiam server``: logging, TLS, the verifier, the mapping chain, the
HTTPS listener, signals and graceful shutdown.

:func:`start_server` builds and starts everything from a :class:`ServerConfig` and returns a
:class:`RunningServer` (tests and the benchmark use it in-process, on port 0);
:func:`serve` runs until SIGTERM or SIGINT, then stops accepting connections, lets in-flight
reviews finish (up to ``shutdown_timeout``), and stops the backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiohttp import web

from kubeiam.server.app import TokenVerifier, UserMapper, create_app, protocol_error_answer
from kubeiam.server.cert_watch import CertificateWatcher
from kubeiam.server.config import LogFormat, ServerConfig
from kubeiam.server.connections import (
    ConnectionMetrics,
    ConnectionSettings,
    ConnectionTracker,
    listen,
)
from kubeiam.server.denylist_watch import DenyListGuard
from kubeiam.server.identity_cache import IdentityCache
from kubeiam.server.metrics import ServerMetrics
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
# Logging

#: How long the log writer lets lines gather after the first of a batch, and the most per write.
_BATCH_WAIT = 0.002
_BATCH_LINES = 1000

#: LogRecord attributes that are not "extra" fields.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        if key == "review" and isinstance(value, dict):
            out.update(value)
        else:
            out[key] = value
    return out


def _timestamp(record: logging.LogRecord) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC). time.strftime: datetime costs 3x more per line."""
    seconds = int(record.created)
    millis = int((record.created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = record.exc_info[0].__name__
        return json.dumps(doc, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``TIME LEVEL logger: msg key=value ...`` (values with spaces quoted)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, f"{record.name}:", record.getMessage()]
        for key, value in _fields(record).items():
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                text = ",".join(value)
            else:
                text = value if isinstance(value, str) else json.dumps(value, default=str)
            if not text or any(c.isspace() or c in '"=' for c in text):
                text = json.dumps(text)
            parts.append(f"{key}={text}")
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(f"exception={record.exc_info[0].__name__}")
        return " ".join(parts)


class _LineWriter(logging.Handler):
    """Formats on the caller's thread, writes on a writer thread.

    Formatting a line takes tens of microseconds and is done where the record is made; the
    write to stderr (which can block when a pipe is full) happens on the writer thread, which
    holds the GIL only between system calls. (Formatting on the writer thread too made the event
    loop wait for the GIL, up to the 5 ms switch interval, whenever lines queued up.) The writer
    lets a burst gather for 2 ms and writes it at once, so it wakes once per burst, not per line.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kubeiam-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put(self.format(record) + "\n")
        except Exception:
            self.handleError(record)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            line = self._lines.get()
            if line is None:
                break
            # Let a burst queue up, then write it at once: one wake-up of this thread per
            # batch instead of per line (every wake-up takes the GIL from the event loop),
            # which cut a cache hit's server CPU under load by about a quarter.
            time.sleep(_BATCH_WAIT)
            batch = [line]
            while len(batch) < _BATCH_LINES:
                try:
                    more = self._lines.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            try:
                self._stream.write("".join(batch))
                self._stream.flush()
            except (OSError, ValueError):  # stderr closed: nothing left to tell
                continue
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._thread.is_alive():
            self._lines.put(None)
            self._thread.join(timeout=5)
        super().close()


@dataclass(slots=True)
class LogSetup:
    """The installed logging; :meth:`close` writes what is queued and stops the writer."""

    handler: logging.Handler

    def close(self) -> None:
        if isinstance(self.handler, _LineWriter):
            self.handler.close()


def configure_logging(
    fmt: LogFormat,
    *,
    level: int = logging.INFO,
    stream: TextIO | None = None,
    background: bool = False,
) -> LogSetup:
    """Send kubeiam's and aiohttp's logs to ``stream`` (stderr) in ``fmt``.

    With ``background`` (the server), lines are written by a thread, so a review never waits on
    a write to stderr (profiling showed the log line to be the largest part of a cache hit's own
    time).
    """
    target = stream if stream is not None else sys.stderr
    handler: logging.Handler = _LineWriter(target) if background else logging.StreamHandler(target)
    handler.setFormatter(JSONFormatter() if fmt is LogFormat.JSON else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log would repeat every review; the review line already says it all.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return LogSetup(handler)


# ---------------------------------------------------------------------------------------------
# Components


@dataclass(slots=True)
class Components:
    """What a running server holds besides the HTTP listener; closed in reverse order."""

    verifier: TokenVerifier
    chain: UserMapper
    metrics: ServerMetrics
    cache: IdentityCache
    closers: list[Callable[[], Any]] = field(default_factory=list)

    async def close(self) -> None:
        await close_all(self.closers)


async def close_all(closers: list[Callable[[], Any]]) -> None:
    """Call each closer (awaiting coroutines) in reverse order; a failure does not stop the rest."""
    for closer in reversed(closers):
        try:
            result = closer()
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:  # shutdown must go on; say what failed
            log.warning("error while stopping", extra={"error": type(exc).__name__})


def build_verifier(config: ServerConfig, metrics: ServerMetrics) -> tuple[TokenVerifier, Any]:
    """The token verifier for ``config`` and its STS client (to close at shutdown)."""
    from kubeiam.token.sts import STSClient, parse_resolve_specs
    from kubeiam.token.validation import parse_allowed_hosts
    from kubeiam.token.verifier import Verifier

    allowed = parse_allowed_hosts(config.sts_allowed_hosts)
    resolve = parse_resolve_specs(
        config.sts_resolve, partition=config.partition, allowed_hosts=allowed
    )
    sts = STSClient(
        resolve=resolve or None,
        ca_bundle=str(config.sts_ca_bundle) if config.sts_ca_bundle else None,
        timeout=config.sts_timeout,
        observer=metrics.sts_observer,
    )
    verifier = Verifier(
        config.cluster_id, partition=config.partition, sts=sts, allowed_hosts=allowed
    )
    return verifier, sts


def _aws_region(config: ServerConfig) -> str:
    import os

    return (
        config.ec2_region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


def build_group_resolver(config: ServerConfig, metrics: ServerMetrics) -> Any:
    """The ``mapGroups`` resolver (iam:ListGroupsForUser), or None without
    ``iamGroupMapping`` (boto3 is loaded on the first lookup)."""
    if not config.iam_group_mapping:
        return None
    from kubeiam.server.ec2 import make_iam_client, make_session_factory
    from kubeiam.server.iam_groups import IAMGroupResolver

    session = make_session_factory(
        region=_aws_region(config),
        role_arn=config.iam_group_role_arn,
        source_arn=config.source_arn,
        session_name="kubeiam-iam-groups",
    )
    return IAMGroupResolver(
        make_iam_client(session),
        ttl=config.iam_group_ttl,
        qps=config.iam_group_qps,
        burst=config.iam_group_burst,
        on_call=metrics.iam_group_calls.inc,
        on_failure=metrics.iam_group_failures.inc,
    )


def build_ec2_resolver(config: ServerConfig, metrics: ServerMetrics) -> tuple[Any, Any]:
    """The ``{{EC2PrivateDNSName}}`` resolver and, with ``ec2InstanceRoleCheck``, the
    instance-role check (boto3 is loaded on the first lookup)."""
    from kubeiam.server.ec2 import (
        EC2PrivateDNSResolver,
        InstanceRoleChecker,
        make_ec2_client,
        make_iam_client,
        make_session_factory,
    )

    region = _aws_region(config)
    session = make_session_factory(
        region=region, role_arn=config.ec2_role_arn, source_arn=config.source_arn
    )
    resolver = EC2PrivateDNSResolver(
        make_ec2_client(region=region, session=session),
        qps=config.ec2_qps,
        burst=config.ec2_burst,
        on_call=metrics.ec2_describe_instances_calls.inc,
    )
    checker = (
        InstanceRoleChecker(resolver, make_iam_client(session), ttl=config.ec2_instance_profile_ttl)
        if config.ec2_instance_role_check
        else None
    )
    return resolver, checker


async def build_components(config: ServerConfig) -> Components:
    """Verifier, mapping chain (backends started), metrics and identity cache for ``config``."""
    from kubeiam.server.backends import build_chain

    metrics = ServerMetrics()
    verifier, sts = build_verifier(config, metrics)
    closers: list[Callable[[], Any]] = [sts.close]
    try:
        resolver, checker = build_ec2_resolver(config, metrics)
        closers.append(resolver.close)
        groups = build_group_resolver(config, metrics)
        if groups is not None:
            closers.append(groups.close)
        chain, stop = await build_chain(config, metrics, resolver, checker, groups)
        closers.append(stop)
    except BaseException:
        await close_all(closers)
        raise
    return Components(
        verifier=verifier,
        chain=chain,
        metrics=metrics,
        cache=IdentityCache(max_entries=config.identity_cache_size, ttl=config.identity_cache_ttl),
        closers=closers,
    )


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
    tracker: ConnectionTracker
    certificate: CertificateWatcher
    deny_list: DenyListGuard

    @property
    def url(self) -> str:
        return webhook_url(self.config.address, self.port)

    @property
    def base_url(self) -> str:
        return self.url.removesuffix("/authenticate")

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
) -> RunningServer:
    """Build (unless given) the components, ensure the TLS pair, and listen on HTTPS."""
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
        config, runner, components, keypair, port, listener, tracker, certificate, deny_list
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
    config: ServerConfig, *, started: Callable[[RunningServer], None] | None = None
) -> None:
    """Run until SIGTERM or SIGINT; then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start_server(config)
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


def run(config: ServerConfig) -> None:
    """``kubeiam server``: configure logging and serve until a signal."""
    logs = configure_logging(config.log_format, background=True)
    try:
        asyncio.run(serve(config))
    finally:
        logs.close()
