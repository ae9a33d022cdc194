"""Shared by the chart and static-pod tests: helm, rendering, and starting `kubeiam server` with
a manifest's arguments (everything real but the final `run`, which would bind a fixed port)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import CHART, REPO, Render, Started, StartServer

from kubeiam.server.config import ServerConfig


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm from the e2e binary cache; packaging/helm.sh builds it once when it is missing."""
    result = subprocess.run(
        [REPO / "packaging/helm.sh"], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    def _render(
        *sets: str, namespace: str = "kube-system", values: Path | None = None
    ) -> list[dict[str, Any]]:
        args = [helm, "template", "kubeiam", CHART, "--namespace", namespace, "--include-crds"]
        if values is not None:
            args += ["-f", values]
        for item in sets:
            args += ["--set", item]
        result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return _render


class Recorded:
    config: ServerConfig | None = None
    workers: int | None = None
    level: int | None = None


@pytest.fixture
def start_server(monkeypatch: pytest.MonkeyPatch) -> StartServer:
    """Run `kubeiam server ARGS` up to the point it would listen; return its config and workers."""
    from kubeiam.cli import server as server_cli
    from kubeiam.server import logwriter, run

    seen = Recorded()

    def fake_run(config: ServerConfig, *, workers: int = 1) -> None:
        seen.config = config
        seen.workers = workers

    def fake_logging(fmt: Any, *, level: int = logging.INFO, **_: Any) -> None:
        seen.level = level

    monkeypatch.setattr(run, "run", fake_run)
    monkeypatch.setattr(logwriter, "configure_logging", fake_logging)

    def _start(args: list[str]) -> Started:
        assert args[0] == "server", args
        server_cli.server_command.main(args=args[1:], prog_name="kubeiam", standalone_mode=False)
        assert seen.config is not None
        assert seen.workers is not None
        return Started(seen.config, seen.workers)

    return _start
