"""Reading and writing the files people hand kubeiam, without blocking on them or damaging them.

Reading (:func:`read_regular_file`, :func:`read_document_text`): only regular files are read. A
FIFO, socket, device or directory at the path is refused from its ``stat`` before any ``open``,
and the open itself is non-blocking (a FIFO swapped in between cannot hang the command).

Writing (:func:`write_atomically`): readers see the old content or the new, never half of it. The
write goes through a symbolic link to its target (the link stays, as kubectl does), keeps an
existing file's owner, group and mode, and refuses a file its user cannot write (a read-only file
stays read-only) or whose owner a rename would change (another user's file, when not root).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from kubeiam.documents import MAX_DOCUMENT_BYTES, DocumentError, decode_text


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
