"""Reading and writing the files people hand kubeiam, without blocking on them or damaging them.

Reading (:func:`read_regular_file`, :func:`read_document_text`): only regular files are read. A
FIFO, socket, device or directory at the path is refused from its ``stat`` before any ``open``,
and the open itself is non-blocking (a FIFO swapped in between cannot hang the command).

Writing (:func:`write_atomically`, the one atomic write): readers see the old content or the new,
never half of it. The write goes through a symbolic link to its target (the link stays, as kubectl
does), keeps an existing file's owner, group and mode, and refuses a file its user cannot write (a
read-only file stays read-only) or whose owner a rename would change (another user's file, when
not root).

Editing a file a person also edits by hand (:func:`locked_update`: kubeconfig, AWS credentials,
mapping files): take an exclusive ``fcntl`` lock on a sidecar lock file, read the current text,
let the caller compute the new text, then :func:`write_atomically`. Concurrent kubeiam writers
serialise on the lock, so neither loses the other's entries. The lock is a sidecar
(``.<name>.kubeiam.lock``) rather than the file itself because the rename replaces the file's
inode: a lock held on the old inode would not exclude a writer that opened the new one. The
sidecar is left in place (removing it would race with a waiting writer). kubectl (client-go)
guards its own writes with ``<file>.lock`` created with ``O_EXCL``; when ``kubectl_lock`` is set,
that lock is taken too (bounded wait), so ``kubectl config set-context`` running at the same
moment cannot interleave with us either. CRLF line endings stay CRLF (the text handed to
``change`` always uses ``\n``). Directories kubeiam creates are 0700 at every level.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kubeiam.documents import MAX_DOCUMENT_BYTES, DocumentError, decode_text
from kubeiam.errors import ConfigError


class UnsafeFileError(OSError):
    """The path is not a file kubeiam can read or replace safely; ``strerror`` says why and
    ``fix`` what to do."""

    def __init__(
        self, code: int, problem: str, filename: str, fix: str = "pass the path of a regular file"
    ) -> None:
        super().__init__(code, problem, filename)
        self.fix = fix


class ReadOnlyFileError(UnsafeFileError):
    """The file is read-only for its user: kubeiam does not replace it."""


class ForeignOwnerError(UnsafeFileError):
    """Replacing the file would change its owner or group, which this process cannot restore."""


_TOO_LARGE_FIX = "pass the right file (kubeconfigs and mapping files are small)"


def describe_mode(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)" ...); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _refuse_special(path: Path, mode: int) -> None:
    kind = describe_mode(mode)
    if kind is not None:
        raise UnsafeFileError(errno.EINVAL, f"is {kind}, not a regular file", str(path))


#: What a poller compares to see that a file changed: modification time, size, inode (an
#: atomic rename gives a new inode even within the clock's resolution).
FileSignature = tuple[int, int, int]


def file_signature(path: Path) -> FileSignature | None:
    """``path``'s :data:`FileSignature`; None when it does not exist. Raises other ``OSError``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def read_regular_file(path: Path, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of the regular file at ``path`` (symbolic links followed).

    Raises ``OSError``: ``FileNotFoundError``, :class:`UnsafeFileError` for a FIFO, socket, device
    or directory (never opened, so never blocked on) and for a file over ``max_bytes``, or the
    error ``stat``/``open`` gave (``ELOOP`` for a symlink loop, ``EACCES``).
    """
    _refuse_special(path, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        _refuse_special(path, st.st_mode)  # swapped after the stat above
        if st.st_size > max_bytes:
            raise UnsafeFileError(
                errno.EFBIG,
                f"is larger than {max_bytes // (1024 * 1024)} MiB",
                str(path),
                _TOO_LARGE_FIX,
            )
        chunks = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafeFileError(
            errno.EFBIG,
            f"is larger than {max_bytes // (1024 * 1024)} MiB",
            str(path),
            _TOO_LARGE_FIX,
        )
    return data


def os_error_problem(exc: OSError) -> tuple[str, str]:
    """(problem, fix) for an ``OSError`` met reading or writing a file."""
    if isinstance(exc, UnsafeFileError):
        return str(exc.strerror), exc.fix
    if exc.errno == errno.ENOENT:
        return "no such file", "check the path"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links (a link loop?)", "fix the symbolic link"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied", "make it readable by you (chmod u+r), or run as its owner"
    if exc.errno == errno.EISDIR:
        return "is a directory, not a regular file", "pass the path of a regular file"
    return f"cannot read it: {exc.strerror or exc}", "check the path and its permissions"


def read_document_text(
    path: Path,
    *,
    error: type[DocumentError] = DocumentError,
    missing_ok: bool = False,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> str | None:
    """The checked UTF-8 text of the document at ``path`` (:func:`kubeiam.documents.decode_text`).

    ``None`` for a missing file when ``missing_ok``; every other problem raises ``error``
    naming the file, what is wrong and the fix. Line endings are kept as written.
    """
    try:
        data = read_regular_file(path, max_bytes)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise error(str(path), "no such file", hint="check the path") from None
    except OSError as exc:
        problem, fix = os_error_problem(exc)
        raise error(str(path), problem, hint=fix) from None
    return decode_text(data, source=str(path), error=error)


#: A directory kubeiam creates (``~/.kube``, ``~/.aws``, the token cache) is private.
PRIVATE_DIR_MODE = 0o700


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and each missing parent with mode 0700 (``mkdir -p`` would give the
    parents the umask's mode). Raises ``OSError``; an existing directory is left as it is."""
    missing: list[Path] = []
    current = Path(os.path.abspath(directory))
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for level in reversed(missing):
        try:
            os.mkdir(level, PRIVATE_DIR_MODE)
        except FileExistsError:
            if not level.is_dir():
                raise
            continue
        os.chmod(level, PRIVATE_DIR_MODE)  # the umask may have removed bits; never adds any


def write_target(path: Path) -> Path:
    """The file a write to ``path`` replaces: the final target of a symbolic link (kubectl
    writes through links too), else ``path`` itself, as an absolute path."""
    path = Path(os.path.abspath(path))
    if not path.is_symlink():
        return path
    return Path(os.path.realpath(path))


def check_replaceable(path: Path) -> os.stat_result | None:
    """The ``stat`` of the existing file at ``path`` (None if absent), if kubeiam may replace it.

    Raises :class:`UnsafeFileError` for a special file, :class:`ReadOnlyFileError` for a file
    its user cannot write (root included: no write bit at all), :class:`ForeignOwnerError` for a
    file whose owner or group the new file could not keep.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    _refuse_special(path, st.st_mode)
    euid = os.geteuid()
    read_only = not os.access(path, os.W_OK) or (euid == 0 and not st.st_mode & 0o222)
    if read_only:
        raise ReadOnlyFileError(
            errno.EACCES,
            f"is read-only (mode {stat.S_IMODE(st.st_mode):04o}); kubeiam does not replace a file "
            "you cannot write",
            str(path),
            f"make it writable first (chmod u+w {path}) if you mean to change it",
        )
    if euid != 0 and st.st_uid != euid:
        raise ForeignOwnerError(
            errno.EPERM,
            f"belongs to another user (uid {st.st_uid}); replacing it would make it yours",
            str(path),
            "run the command as the file's owner, or copy the file and pass the copy",
        )
    if euid != 0 and st.st_gid not in {os.getegid(), *os.getgroups()}:
        raise ForeignOwnerError(
            errno.EPERM,
            f"belongs to group {st.st_gid}, which you are not in; the new file could not keep it",
            str(path),
            "run the command as a member of that group, or as root",
        )
    return st


def write_atomically(path: Path, data: bytes, mode: int, *, keep_mode: bool = False) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and a rename.

    A symbolic link is written through (:func:`write_target`). An existing file keeps its owner
    and group, and its mode when ``keep_mode`` (otherwise, and for a new file, ``mode``); see
    :func:`check_replaceable` for what is refused. The temporary file lives in the target's
    directory (so the rename is atomic) and is private before any byte is written, so a private
    file is never readable by others, even briefly. Raises ``OSError``; no temporary file is
    left behind whatever fails.
    """
    target = write_target(path)
    existing = check_replaceable(target)
    final_mode = stat.S_IMODE(existing.st_mode) if existing and keep_mode else mode
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), final_mode & 0o700)
            if existing is not None and (
                existing.st_uid != os.geteuid() or existing.st_gid != os.getegid()
            ):
                os.fchown(fh.fileno(), existing.st_uid, existing.st_gid)
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), final_mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on directories
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# -- locked updates of files people also edit -------------------------------------------------

#: Files kubeiam writes hold credentials or point at them: owner read/write only.
PRIVATE_FILE_MODE = 0o600
#: How long to wait for kubectl's ``<file>.lock`` before saying it looks stale.
KUBECTL_LOCK_WAIT_SECONDS = 5.0
#: How often to look whether kubectl's lock is gone: short next to the wait, cheap (one open).
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


def _read_lf(path: Path) -> tuple[str | None, str]:
    """(text with ``\n`` line endings or None if absent, the line ending the file uses)."""
    text = read_document_text(path, error=DocumentError, missing_ok=True)
    if text is None or "\r" not in text:
        return text, "\n"
    newline = "\r\n" if "\r\n" in text.split("\n", 1)[0] + "\n" else "\n"
    return text.replace("\r\n", "\n").replace("\r", "\n"), newline


def write_private_file(path: Path, text: str, *, keep_mode: bool = False) -> None:
    """:func:`write_atomically` ``text`` to ``path`` with mode 0600 (an existing file's mode when
    ``keep_mode``); a refusal or failure is a :class:`~kubeiam.errors.ConfigError` saying that
    nothing was written, with the fix."""
    try:
        write_atomically(path, text.encode("utf-8"), PRIVATE_FILE_MODE, keep_mode=keep_mode)
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
        old, _ = _read_lf(path)
        return FileUpdate(path, old, change(old), written=False)
    ensure_private_dir(path.parent)
    with (
        _flock(path),
        _kubectl_lock(path, kubectl_lock_wait) if kubectl_lock else contextlib.nullcontext(),
    ):
        old, newline = _read_lf(path)
        new = change(old)
        if new == old:
            if not preserve_mode:
                _tighten_mode(path)
            return FileUpdate(path, old, new, written=False)
        data = new if newline == "\n" else new.replace("\n", newline)
        write_private_file(path, data, keep_mode=preserve_mode)
        return FileUpdate(path, old, new, written=True)


def _tighten_mode(path: Path) -> None:
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & ~PRIVATE_FILE_MODE:
            path.chmod(current & PRIVATE_FILE_MODE)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot tighten the mode of {path}: {exc.strerror}") from None
