"""locked_update: the one way admin commands replace a user's file, and what it never does."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kubeiam.errors import ConfigError
from kubeiam.fileio import lock_path_for, locked_update


def append(line: str):  # type: ignore[no-untyped-def]
    def change(old: str | None) -> str:
        assert old is None or "\r" not in old  # editors always see \n
        return (old or "") + line + "\n"

    return change


def test_crlf_line_endings_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b"apiVersion: v1\r\nkind: Config\r\n")
    update = locked_update(path, append("current-context: x"))
    assert update.written
    assert path.read_bytes() == b"apiVersion: v1\r\nkind: Config\r\ncurrent-context: x\r\n"


def test_lf_files_stay_lf(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b"a: 1\n")
    locked_update(path, append("b: 2"))
    assert path.read_bytes() == b"a: 1\nb: 2\n"


def test_a_symlinked_file_is_edited_through_the_link(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "kubeconfig"
    target.write_text("a: 1\n")
    link = tmp_path / "config"
    link.symlink_to(target)
    update = locked_update(link, append("b: 2"))
    assert link.is_symlink()
    assert target.read_text() == "a: 1\nb: 2\n"
    assert update.path == target
    assert lock_path_for(target).exists()  # writers through any link share one lock


def test_a_read_only_file_is_refused_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("a: 1\n")
    path.chmod(0o444)
    with pytest.raises(ConfigError) as err:
        locked_update(path, append("b: 2"))
    assert "read-only" in str(err.value)
    assert "fix: make it writable first" in str(err.value)
    assert path.read_text() == "a: 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


@pytest.mark.parametrize("dry_run", [False, True], ids=["write", "dry-run"])
def test_a_fifo_at_the_path_is_refused_at_once(tmp_path: Path, dry_run: bool) -> None:
    path = tmp_path / "config"
    os.mkfifo(path)
    with pytest.raises(ConfigError, match="FIFO"):
        locked_update(path, append("b: 2"), dry_run=dry_run)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_a_fifo_at_the_lock_path_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("a: 1\n")
    os.mkfifo(lock_path_for(path))
    with pytest.raises(ConfigError, match="lock file"):
        locked_update(path, append("b: 2"))
    assert path.read_text() == "a: 1\n"


def test_the_mode_is_kept_when_asked_and_tightened_otherwise(tmp_path: Path) -> None:
    shared = tmp_path / "server.yaml"
    shared.write_text("a: 1\n")
    shared.chmod(0o644)
    locked_update(shared, append("b: 2"), preserve_mode=True)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    private = tmp_path / "credentials"
    private.write_text("a: 1\n")
    private.chmod(0o644)
    locked_update(private, append("b: 2"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o600  # tightened, never loosened


def test_new_directories_are_private_at_every_level(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        locked_update(tmp_path / "home" / ".kube" / "config", append("a: 1"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "home" / ".kube").stat().st_mode) == 0o700


def test_a_fifo_at_kubectls_lock_path_is_refused_not_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("a: 1\n")
    os.mkfifo(tmp_path / "config.lock")
    with pytest.raises(ConfigError, match="not a regular file"):
        locked_update(path, append("b: 2"), kubectl_lock=True, kubectl_lock_wait=0.1)
    assert path.read_text() == "a: 1\n"
