"""The operating system as the token plugin's fast path sees it: ``posix`` itself, not ``os``.

``os`` is a thin Python layer over the builtin ``posix`` module, but importing it also imports
``_collections_abc`` (for ``os.environ``), ``stat``, ``posixpath`` and ``genericpath``: 2.4 ms of
a 12.6 ms ``kubeiam token`` on this project's machine (whole processes, ``os._exit`` at the end,
medians of 40; the bare interpreter is 7.4 ms), the largest single part of the plugin's own
start, and kubectl starts the plugin on every command. The fast path (environment keys, a cache
hit, a fresh token) therefore imports this module instead:

* the file calls and flags are ``posix``'s own objects, the very ones ``os`` re-exports
  (``os.open is posix.open``), and the file-type tests are ``_stat``'s (``stat`` re-exports
  them);
* :func:`process_environ` is ``os.environ`` when ``os`` is loaded (so that whatever changed it is
  seen), else the process environment decoded the way ``os.environ`` decodes it;
* the path helpers do what ``posixpath``'s do for the plugin's paths and hand anything else
  (``$VARS``, ``~user``, no ``HOME``) to ``posixpath`` itself.

Everything past the fast path (botocore, click, the lock and the directory creation of a cache
miss) may import ``os`` as usual.
"""

import sys
from _stat import S_IMODE, S_ISDIR, S_ISREG

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

try:
    import posix as _os
except ImportError:  # pragma: no cover - not POSIX: os has the same names
    import os as _os  # type: ignore[no-redef]

__all__ = [
    "O_CLOEXEC",
    "O_CREAT",
    "O_EXCL",
    "O_NOCTTY",
    "O_NOFOLLOW",
    "O_NONBLOCK",
    "O_RDONLY",
    "O_RDWR",
    "O_WRONLY",
    "S_IMODE",
    "S_ISDIR",
    "S_ISREG",
    "chmod",
    "close",
    "exit_now",
    "expand_path",
    "fstat",
    "geteuid",
    "getpid",
    "join",
    "mkdir",
    "open_fd",
    "process_environ",
    "read",
    "replace",
    "stat",
    "unlink",
    "urandom",
    "write",
]

O_CLOEXEC = _os.O_CLOEXEC
O_CREAT = _os.O_CREAT
O_EXCL = _os.O_EXCL
O_NOCTTY = _os.O_NOCTTY
O_NOFOLLOW = _os.O_NOFOLLOW
O_NONBLOCK = _os.O_NONBLOCK
O_RDONLY = _os.O_RDONLY
O_RDWR = _os.O_RDWR
O_WRONLY = _os.O_WRONLY

chmod = _os.chmod
close = _os.close
fstat = _os.fstat
geteuid = _os.geteuid
getpid = _os.getpid
mkdir = _os.mkdir
open_fd = _os.open
read = _os.read
replace = _os.replace
stat = _os.stat
unlink = _os.unlink
urandom = _os.urandom
write = _os.write
#: Leave at once: no interpreter teardown (the caller has flushed what it wrote).
exit_now = _os._exit


def process_environ() -> "Mapping[str, str]":
    """The process environment: ``os.environ`` itself once ``os`` is loaded (a test or botocore
    may have changed it), else a snapshot decoded as ``os.environ`` decodes (the file system
    encoding, undecodable bytes as surrogates)."""
    loaded = sys.modules.get("os")
    if loaded is not None:
        return loaded.environ  # type: ignore[no-any-return]
    encoding = sys.getfilesystemencoding()
    raw: dict[bytes, bytes] = _os.environ
    return {
        key.decode(encoding, "surrogateescape"): value.decode(encoding, "surrogateescape")
        for key, value in raw.items()
    }


def join(first: str, *rest: str) -> str:
    """``posixpath.join`` for ``str``: an absolute part restarts the path, a ``/`` between."""
    path = first
    for part in rest:
        if part.startswith("/"):
            path = part
        elif not path or path.endswith("/"):
            path += part
        else:
            path += "/" + part
    return path


def expand_path(path: str) -> str:
    """``os.path.expanduser(os.path.expandvars(path))``: ``~`` and ``~/...`` from ``$HOME`` here;
    a path with ``$``, a ``~user`` or no ``HOME`` through ``posixpath`` itself."""
    if "$" in path:
        import posixpath

        return posixpath.expanduser(posixpath.expandvars(path))
    if not path.startswith("~"):
        return path
    home = process_environ().get("HOME")
    if home is None or not (path == "~" or path.startswith("~/")):
        import posixpath

        return posixpath.expanduser(path)
    return (home.rstrip("/") + path[1:]) or "/"
