"""kubeiam.fileio: reads never block on special files; writes never damage or weaken a file."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeiam.documents import DocumentError
from kubeiam.fileio import (
    ForeignOwnerError,
    ReadOnlyFileError,
    UnsafeFileError,
    make_private_dirs,
    read_document_text,
    read_regular_file,
    write_atomically,
)


@contextlib.contextmanager
def unix_socket_at(path: Path) -> Iterator[None]:
    short = Path(tempfile.mkdtemp(prefix="ks", dir="/tmp"))  # AF_UNIX paths are short
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(short / "s"))
        sock.listen(1)
        os.rename(short / "s", path)
        yield
    finally:
        sock.close()
        shutil.rmtree(short, ignore_errors=True)


@contextlib.contextmanager
def special(path: Path, kind: str) -> Iterator[None]:
    if kind == "fifo":
        os.mkfifo(path)
        yield
    elif kind == "socket":
        with unix_socket_at(path):
            yield
    elif kind == "directory":
        path.mkdir()
        yield
    elif kind == "device":
        path.symlink_to("/dev/zero")  # a character device that never ends
        yield
    else:
        raise AssertionError(kind)


SPECIALS = ["fifo", "socket", "directory", "device"]


@pytest.mark.parametrize("kind", SPECIALS)
def test_reading_a_special_file_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "config"
    with special(path, kind), pytest.raises(UnsafeFileError) as err:
        read_regular_file(path)  # a FIFO without a writer would block a plain open()
    assert "not a regular file" in str(err.value)


@pytest.mark.parametrize("kind", SPECIALS)
def test_a_document_at_a_special_path_is_a_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "config"
    with special(path, kind), pytest.raises(DocumentError) as err:
        read_document_text(path)
    assert str(path) in str(err.value)
    assert "fix:" in str(err.value)


def test_a_symlink_loop_and_a_missing_file(tmp_path: Path) -> None:
    loop = tmp_path / "a"
    loop.symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(loop)
    with pytest.raises(DocumentError, match="symbolic links"):
        read_document_text(loop)
    assert read_document_text(tmp_path / "absent", missing_ok=True) is None
    with pytest.raises(DocumentError, match="no such file"):
        read_document_text(tmp_path / "absent")


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 2048)
    with pytest.raises(UnsafeFileError, match="larger than"):
        read_regular_file(path, max_bytes=1024)


#: Who reads the mode-000 file when the tests run as root (root reads any file whatever its mode).
NOBODY = 65534


def test_an_unreadable_file_says_permission_denied(tmp_path: Path) -> None:
    """As root, the read runs as nobody (through seteuid, which drops root's capabilities), in a
    directory nobody can traverse (pytest's tmp_path sits under a 0700 root directory)."""
    if os.geteuid() != 0:
        path = tmp_path / "config"
        path.write_text("a: 1\n")
        path.chmod(0)
        with pytest.raises(DocumentError, match="permission denied"):
            read_document_text(path)
        return
    shared = Path(tempfile.mkdtemp(prefix="kubeiam-000-", dir="/tmp"))
    try:
        shared.chmod(0o711)
        path = shared / "config"
        path.write_text("a: 1\n")
        path.chmod(0)
        os.seteuid(NOBODY)
        try:
            with pytest.raises(DocumentError) as err:
                read_document_text(path)
        finally:
            os.seteuid(0)
        assert "permission denied" in str(err.value)
        assert str(path) in str(err.value)
        assert "fix:" in str(err.value)
        assert read_document_text(path) == "a: 1\n"  # root, again: the file was left alone
    finally:
        shutil.rmtree(shared)


# -- writing ------------------------------------------------------------------------------------


def test_a_write_goes_through_a_symlink_to_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real" / "config"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "config"
    link.symlink_to(target)
    write_atomically(link, b"new\n", 0o600)
    assert link.is_symlink()
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["config"]  # no temp left


def test_an_existing_mode_is_kept_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("old\n")
    path.chmod(0o640)
    write_atomically(path, b"new\n", 0o600, keep_mode=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    write_atomically(path, b"newer\n", 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_read_only_file_stays_read_only(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("old\n")
    path.chmod(0o444)
    with pytest.raises(ReadOnlyFileError) as err:
        write_atomically(path, b"new\n", 0o600)
    assert "read-only" in str(err.value)
    assert path.read_text() == "old\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_a_special_file_is_never_replaced(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "config"
    with special(path, kind):
        with pytest.raises(UnsafeFileError):
            write_atomically(path, b"new\n", 0o600)
        assert not stat.S_ISREG(os.stat(path).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make a file owned by another user")
def test_owner_and_group_are_kept_when_root_writes(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("old\n")
    os.chown(path, 1234, 2345)
    write_atomically(path, b"new\n", 0o600, keep_mode=True)
    st = path.stat()
    assert (st.st_uid, st.st_gid) == (1234, 2345)
    assert path.read_text() == "new\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_users_file_is_refused_not_taken_over() -> None:
    """The writer acts as nobody (65534, through seteuid) on a root-owned, world-writable file
    in a world-writable directory: a rename would hand the file to nobody, so it is refused."""
    shared = Path(tempfile.mkdtemp(prefix="kubeiam-owner-", dir="/tmp"))
    try:
        shared.chmod(0o777)
        path = shared / "config"
        path.write_text("old\n")
        path.chmod(0o666)
        os.seteuid(65534)
        try:
            with pytest.raises(ForeignOwnerError) as err:
                write_atomically(path, b"new\n", 0o600, keep_mode=True)
        finally:
            os.seteuid(0)
        assert "belongs to another user" in str(err.value)
        assert path.read_text() == "old\n"
        assert path.stat().st_uid == 0
        assert sorted(p.name for p in shared.iterdir()) == ["config"]
    finally:
        shutil.rmtree(shared)


def test_private_directories_are_0700_at_every_level(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        make_private_dirs(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    for level in ("a", "a/b", "a/b/c"):
        assert stat.S_IMODE((tmp_path / level).stat().st_mode) == 0o700, level
    (tmp_path / "open").mkdir(mode=0o755)
    make_private_dirs(tmp_path / "open" / "x")
    assert stat.S_IMODE((tmp_path / "open").stat().st_mode) == 0o755  # existing: left alone
