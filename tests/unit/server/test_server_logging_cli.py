"""Log formats of the server, and how `kubeiam server` merges its flags with the file."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from kubeiam.errors import ConfigError
from kubeiam.server.config import BackendMode, LogFormat
from kubeiam.server.logwriter import configure_logging


@pytest.fixture
def restore_root_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


REVIEW = {"outcome": "success", "status": 200, "latency_ms": 0.2, "username": "jane doe"}


@pytest.mark.parametrize("background", [False, True], ids=["direct", "writer-thread"])
def test_json_lines(restore_root_logging: object, background: bool) -> None:
    out = io.StringIO()
    setup = configure_logging(LogFormat.JSON, stream=out, background=background)
    logging.getLogger("kubeiam.server.review").info("token review", extra={"review": REVIEW})
    logging.getLogger("kubeiam.server.config").warning("unknown key", extra={"key": "server.x"})
    setup.close()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "token review"
    assert first["logger"] == "kubeiam.server.review"
    assert {k: first[k] for k in REVIEW} == REVIEW
    assert first["time"].endswith("Z")
    assert len(first["time"]) == len("2026-11-23T16:00:00.000Z")
    assert (second["level"], second["key"]) == ("warning", "server.x")


def test_text_lines_quote_values_with_spaces(restore_root_logging: object) -> None:
    out = io.StringIO()
    configure_logging(LogFormat.TEXT, stream=out)
    logging.getLogger("kubeiam.server.review").info("token review", extra={"review": REVIEW})
    line = out.getvalue().strip()
    assert " INFO kubeiam.server.review: token review " in line
    assert 'username="jane doe"' in line
    assert "outcome=success" in line
    assert "latency_ms=0.2" in line
    logging.getLogger("kubeiam.server").info("listening", extra={"backends": ["A", "B"]})
    assert out.getvalue().splitlines()[-1].endswith("listening backends=A,B")


def test_flags_override_file_and_env_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubeiam.cli.server import config_from_options

    path = tmp_path / "c.yaml"
    path.write_text("clusterID: file\nserver:\n  port: 1000\n  backendMode: [MountedFile]\n")
    monkeypatch.setenv("KUBEIAM_STS_RESOLVE", "sts.us-east-1.amazonaws.com=127.0.0.1:9")
    options: dict[str, object] = {
        "cluster_id": "flag",
        "port": None,
        "backend_mode": "MountedFile,CRD",
        "log_format": "json",
        "sts_resolve": (),
        "sts_allowed_hosts": (),
    }
    config = config_from_options(path, options)
    assert config.cluster_id == "flag"
    assert config.port == 1000
    assert config.backend_mode == (BackendMode.MOUNTED_FILE, BackendMode.CRD)
    assert config.log_format is LogFormat.JSON
    assert config.sts_resolve == ("sts.us-east-1.amazonaws.com=127.0.0.1:9",)
    with pytest.raises(ConfigError, match="--backend-mode"):
        config_from_options(path, {**options, "backend_mode": "Nope"})


def test_server_command_reports_config_errors(tmp_path: Path, restore_root_logging: object) -> None:
    from click.testing import CliRunner

    from kubeiam.cli.app import cli

    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: 1\n")
    result = CliRunner().invoke(cli, ["server", "--config", str(path)])
    assert result.exit_code == 2
    assert "cluster id is not set" in result.output
