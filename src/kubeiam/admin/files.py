"""Locked, atomic replacement of small private files (kubeconfig, AWS credentials, mapping files).

Every admin command that edits a file a person also edits by hand goes through
:func:`locked_update`: take an exclusive ``fcntl`` lock on a sidecar lock file, read the current
text, let the caller compute the new text, then write it to a temporary file in the same
directory, ``fsync`` it, ``rename`` it over the original and ``fsync`` the directory. Readers see
either the old or the new file, never a half-written one; concurrent kubeiam writers serialise on
the lock, so neither loses the other's entries.

The lock is a sidecar (``.<name>.kubeiam.lock``) rather than the file itself because the rename
replaces the file's inode: a lock held on the old inode would not exclude a writer that opened the
new one. The sidecar is left in place (removing it would race with a waiting writer).

kubectl (client-go) guards its own writes with ``<file>.lock`` created with ``O_EXCL``. When
``kubectl_lock`` is set, that lock is taken too (bounded wait), so ``kubectl config set-context``
running at the same moment cannot interleave with us either.

What a write never does to the user's file (:mod:`kubeiam.fileio`): a symbolic link is written
through to its target (the link stays); an existing file keeps its owner, group and mode; CRLF
line endings stay CRLF (the text handed to ``change`` always uses ``\n``); a read-only file is
refused, not replaced; a file of another user (when not root) is refused, since the rename would
make it ours; a FIFO, socket or device at the path is refused without being opened. Directories
kubeiam creates are 0700 at every level.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kubeiam.documents import DocumentError
from kubeiam.errors import ConfigError
from kubeiam.fileio import (
    UnsafeFileError,
    make_private_dirs,
    os_error_problem,
    read_document_text,
    write_atomically,
    write_target,
)

#: Files kubeiam writes hold credentials or point at them: owner read/write only.
PRIVATE_FILE_MODE = 0o600
#: How long to wait for kubectl's ``<file>.lock`` before saying it looks stale.
KUBECTL_LOCK_WAIT_SECONDS = 5.0
_KUBECTL_LOCK_POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class FileUpdate:
    """What :func:`locked_update` did."""

    path: Path
    old_text: str | None
    new_text: str
    #: False when the new text equals the old one (nothing was written) or on a dry run.
    written: bool

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text


def lock_path_for(path: Path) -> Path:
    """The sidecar lock file for ``path``."""
    return path.with_name(f".{path.name}.kubeiam.lock")


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (and each missing parent) with mode 0700 when it does not exist."""
    if directory.is_dir():
        return
    try:
        make_private_dirs(directory)
    except OSError as exc:
        raise ConfigError(
            f"cannot create directory {directory}: {exc.strerror}",
            hint="create it yourself or choose another file",
        ) from None


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    lock_file = lock_path_for(path)
    try:
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(lock_file, flags, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise ConfigError(
            f"cannot create lock file {lock_file}: {exc.strerror}",
            hint=f"make {path.parent} writable by you, or remove {lock_file} if it is not a file",
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(
                f"lock file {lock_file} is not a regular file", hint=f"remove {lock_file}"
            )
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def _kubectl_lock(path: Path, wait: float) -> Iterator[None]:
    """client-go's ``<file>.lock``: created with O_EXCL, removed when done."""
    lock_file = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            break
        except FileExistsError:
            with contextlib.suppress(OSError):
                if not stat.S_ISREG(os.lstat(lock_file).st_mode):
                    raise ConfigError(
                        f"{lock_file} is not a regular file, so kubectl's lock cannot be taken",
                        hint=f"remove {lock_file}",
                    ) from None
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"{lock_file} exists: kubectl (or another tool) is writing {path}",
                    hint=f"retry; if no kubectl is running, the lock is stale: remove {lock_file}",
                ) from None
            time.sleep(_KUBECTL_LOCK_POLL_SECONDS)
    os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock_file.unlink()


def _read(path: Path) -> tuple[str | None, str]:
    """(text with ``\n`` line endings or None if absent, the line ending the file uses)."""
    text = read_document_text(path, error=DocumentError, missing_ok=True)
    if text is None or "\r" not in text:
        return text, "\n"
    newline = "\r\n" if "\r\n" in text.split("\n", 1)[0] + "\n" else "\n"
    return text.replace("\r\n", "\n").replace("\r", "\n"), newline


def atomic_write(
    path: Path, text: str, *, mode: int = PRIVATE_FILE_MODE, keep_mode: bool = False
) -> None:
    """Write ``text`` to ``path`` through a synced temporary file and a rename (see
    :func:`kubeiam.fileio.write_atomically`: links followed, owner and group kept)."""
    try:
        write_atomically(path, text.encode("utf-8"), mode, keep_mode=keep_mode)
    except UnsafeFileError as exc:
        problem, fix = os_error_problem(exc)
        raise ConfigError(f"{path} {problem}; nothing was written", hint=fix) from None
    except OSError as exc:
        directory = write_target(path).parent
        hint = None if os.access(directory, os.W_OK) else f"make {directory} writable by you"
        raise ConfigError(f"cannot write {path}: {exc.strerror}", hint=hint) from None


def locked_update(
    path: Path,
    change: Callable[[str | None], str],
    *,
    dry_run: bool = False,
    kubectl_lock: bool = False,
    kubectl_lock_wait: float = KUBECTL_LOCK_WAIT_SECONDS,
    preserve_mode: bool = False,
) -> FileUpdate:
    """Replace ``path`` with ``change(old_text)`` under a lock; ``old_text`` is None if absent.

    ``change`` may raise to abort: the file is then left exactly as it was. A symbolic link is
    written through to its target. A missing parent directory is created 0700; the file is
    written 0600 (an existing looser mode is tightened, never loosened) unless ``preserve_mode``
    keeps an existing file's mode (files without secrets that another process must read). An
    existing file keeps its owner, group and CRLF line endings. Nothing is written when the text
    does not change, or on ``dry_run``.
    """
    path = write_target(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory", hint="pass the path of a file")
    if dry_run:
        # No lock either: a dry run leaves no trace, not even a lock file.
        old, _ = _read(path)
        return FileUpdate(path, old, change(old), written=False)
    ensure_private_dir(path.parent)
    with _flock(path), _kubectl_lock(path, kubectl_lock_wait) if kubectl_lock else _nothing():
        old, newline = _read(path)
        new = change(old)
        if new == old:
            if not preserve_mode:
                _tighten_mode(path)
            return FileUpdate(path, old, new, written=False)
        data = new if newline == "\n" else new.replace("\n", newline)
        atomic_write(path, data, mode=PRIVATE_FILE_MODE, keep_mode=preserve_mode)
        return FileUpdate(path, old, new, written=True)


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


def _tighten_mode(path: Path) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & ~PRIVATE_FILE_MODE:
            path.chmod(current & PRIVATE_FILE_MODE)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot tighten the mode of {path}: {exc.strerror}") from None
