"""Where ``--workers`` keeps its metric files when the root filesystem is read-only."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from kubeiam.errors import ConfigError
from kubeiam.server.workers import metrics_parent


def test_the_temporary_directory_when_it_is_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert metrics_parent(tmp_path / "state") == str(tmp_path / "tmp")
    assert list((tmp_path / "tmp").iterdir()) == [], "the probe leaves nothing behind"


def test_the_state_directory_when_there_is_no_usable_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A regular file where the temporary directory should be: mkdtemp fails there for root too.
    (tmp_path / "tmp").write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    state = tmp_path / "state"
    state.mkdir()
    assert metrics_parent(state) == str(state)
    assert list(state.iterdir()) == []


def test_neither_writable_is_one_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tmp").write_text("")
    (tmp_path / "state").write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    with pytest.raises(ConfigError) as refused:
        metrics_parent(tmp_path / "state")
    assert "--workers needs a writable directory" in refused.value.message
    assert "emptyDir at /tmp" in (refused.value.hint or "")
