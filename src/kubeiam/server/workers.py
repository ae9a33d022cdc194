"""``kubeiam server --workers N``: N server processes sharing one port (``SO_REUSEPORT``).

One Python process reviews on one core at a time; control-plane nodes have several. With
``--workers N`` a supervisor starts N workers, each a whole server (verifier and STS client,
identity cache, mapping backends, listener) in its own interpreter, listening on the same
address and port with ``SO_REUSEPORT``: the kernel spreads new connections over the workers.

What the supervisor does once, before the workers start, so they cannot race over it: the TLS
key pair (generated if absent), the port (with ``--port 0`` it binds one and holds it, bound but
not listening, so no other program takes it), and ``--generate-kubeconfig``.

Metrics keep one process's semantics where it matters (docs/server.md, "Workers"): the workers
keep their counters and histograms in prometheus_client's multiprocess files, and whichever
worker answers ``/metrics`` sums them over all workers, so a scrape sees the same series,
monotonic, as from one process. Gauges are per worker, labelled ``pid``.

Lifecycle: SIGTERM or SIGINT to the supervisor is passed to every worker, which drains its
in-flight reviews as a single server does. A worker that exits on its own stops the server
(the supervisor stops the others and exits with that worker's status): the orchestrator's
restart policy restarts the whole, rather than a server quietly running on fewer cores.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from kubeiam.errors import ConfigError
from kubeiam.server.config import ServerConfig

log = logging.getLogger("kubeiam.server")

#: prometheus_client's switch to multiprocess mode, read when a worker imports it.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The most workers kubeiam starts (each holds a full server: ~50 MB).
MAX_WORKERS = 64
#: How long, beyond ``shutdownTimeout``, the supervisor waits for a worker to exit after SIGTERM.
EXIT_GRACE_SECONDS = 5.0


def check_workers(workers: int) -> None:
    """Refuse a worker count kubeiam cannot run here."""
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(
            f"--workers {workers} is out of range", hint=f"use 1 to {MAX_WORKERS} workers"
        )
    if workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError(
            "--workers needs SO_REUSEPORT, which this platform lacks", hint="use --workers 1"
        )


def reserve_port(address: str, port: int) -> socket.socket:
    """A socket bound to ``address:port`` with ``SO_REUSEPORT`` and not listening: it holds the
    port (port 0 picks one) while the workers bind it too, and receives no connection."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {address}:{port}: {exc.strerror}",
            hint="choose a free --port, or stop the process that holds it",
        ) from None
    return sock


def metrics_parent(state_dir: Path) -> str:
    """Where the workers' metric files go: the temporary directory, or, where there is none that
    is writable (a read-only root filesystem, as the chart and the static pod run it), the state
    directory, which the server writes its key pair to anyway."""
    for candidate in (None, str(state_dir)):
        try:
            probe = tempfile.mkdtemp(prefix="kubeiam-metrics-probe-", dir=candidate)
        except OSError:
            continue
        os.rmdir(probe)
        return os.path.dirname(probe)
    raise ConfigError(
        f"--workers needs a writable directory for the workers' metrics: neither the temporary "
        f"directory nor {state_dir} is writable",
        hint="mount an emptyDir at /tmp (or set TMPDIR to a writable directory)",
    )


def run_workers(config: ServerConfig, workers: int) -> int:
    """Start ``workers`` servers on one port, supervise them until a signal; the exit status."""
    from kubeiam.server.tls import ensure_keypair
    from kubeiam.server.webhook_kubeconfig import webhook_url, write_webhook_kubeconfig

    check_workers(workers)
    keypair = ensure_keypair(
        config.state_dir,
        hostname=config.hostname,
        address=config.address,
        now=dt.datetime.now(dt.UTC),
    )
    holder = reserve_port(config.address, config.port)
    port = int(holder.getsockname()[1])
    if config.generate_kubeconfig is not None:
        host = config.hostname or config.address
        write_webhook_kubeconfig(
            config.generate_kubeconfig, webhook_url(host, port), keypair.cert_pem()
        )
    worker_config = config.replace(port=port, generate_kubeconfig=None)
    level = logging.getLogger().getEffectiveLevel()
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with tempfile.TemporaryDirectory(
            prefix="kubeiam-metrics-", dir=metrics_parent(config.state_dir)
        ) as metrics_dir:
            os.environ[MULTIPROC_ENV] = metrics_dir
            context = multiprocessing.get_context("spawn")
            processes = [
                context.Process(
                    target=worker_main,
                    args=(worker_config, index, level),
                    name=f"kubeiam-worker-{index}",
                )
                for index in range(workers)
            ]
            for process in processes:
                process.start()
            log.info(
                "workers started",
                extra={
                    "workers": workers,
                    "port": port,
                    "pids": [p.pid for p in processes],
                },
            )
            return _supervise(processes, stopping, config.shutdown_timeout)
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        holder.close()


def _supervise(
    processes: Sequence[multiprocessing.process.BaseProcess],
    stopping: list[int],
    shutdown_timeout: float,
) -> int:
    """Wait for a signal or a worker's exit; then stop every worker; the exit status."""
    status = 0
    while not stopping:
        sentinels = [p.sentinel for p in processes]
        ready = multiprocessing.connection.wait(sentinels, timeout=0.5)
        if ready:
            gone = next(p for p in processes if p.sentinel in ready)
            gone.join()
            status = gone.exitcode or 1
            log.error(
                "a worker exited; stopping the others",
                extra={"pid": gone.pid, "exit_code": gone.exitcode},
            )
            break
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(shutdown_timeout + EXIT_GRACE_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
            status = status or 1
    return status


def worker_main(config: ServerConfig, index: int, level: int) -> None:
    """One worker: a whole server on the shared port, metrics summed over the workers."""
    from kubeiam.server.logwriter import configure_logging
    from kubeiam.server.run import run_loop, serve

    logs = configure_logging(config.log_format, level=level, background=True)
    try:
        run_loop(serve(config, reuse_port=True, metrics_page=multiprocess_metrics_page()))
    finally:
        logs.close()


def multiprocess_metrics_page() -> Callable[[], bytes]:
    """A function rendering every worker's metrics as one page (multiprocess mode)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]

    def render() -> bytes:
        return generate_latest(registry)

    return render
