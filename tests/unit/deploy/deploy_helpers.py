"""Helpers of the chart and static-pod tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeiam.server.config import ServerConfig

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy/helm/kubeiam"

Render = Callable[..., list[dict[str, Any]]]


@dataclass(frozen=True)
class Started:
    """What `kubeiam server ARGS` would have run: its config and its number of workers."""

    config: ServerConfig
    workers: int


StartServer = Callable[[list[str]], Started]


def template_error(helm: Path, *sets: str) -> str:
    args: list[str | Path] = [helm, "template", "kubeiam", CHART]
    for item in sets:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0, result.stdout
    return result.stderr


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(matches) == 1, [(d["kind"], d["metadata"]["name"]) for d in docs]
    return matches[0]


def relocate(args: list[str], mounts: dict[str, Path]) -> list[str]:
    """A manifest's arguments with its in-container paths moved to host directories."""
    out = []
    for arg in args:
        for prefix, path in mounts.items():
            arg = arg.replace(f"={prefix}", f"={path}")
        out.append(arg)
    return out
