"""The token and credential cache of ``kubeiam token`` (``~/.kube/cache/kubeiam/``).

kubectl starts the plugin on every run, often twice; the cache makes all but the first of those
runs a file read. It holds two kinds of entry, both things that expire:

- ``token``: a minted token and its expirationTimestamp. Served only while at least
  :data:`TOKEN_MIN_REMAINING` seconds are left.
- ``credentials``: temporary credentials kubeiam obtained itself (AssumeRole, SSO, a
  ``role_arn`` profile...), so that re-signing does not repeat AssumeRole or an MFA prompt.
  Served only while at least :data:`CREDENTIALS_MIN_REMAINING` seconds are left.

Safety: the directory is 0700 and every file 0600, owned by the user; anything readable by group
or others is refused with a :class:`CacheError` that says how to fix it (never silently used,
never silently "fixed"). Files are written to a temporary name and renamed into place, so a
reader sees an old or a new entry, never half of one; writers serialise on an ``fcntl`` lock
file next to the entry, so two racing processes mint once. A file that does not parse is a miss
and gets overwritten. Entries are JSON; their content is never logged.

Only ``posix`` (through :mod:`kubeiam.token.system`, not ``os``) and a builtin SHA-256 are
imported with the module, and JSON goes through :mod:`kubeiam.token.exec_credential`'s small
reader and writer: this module sits on the cache-hit path, whose whole-process time is the
product. ``fcntl`` (an extension module to load) is imported by the lock, which only a miss
takes, ``errno`` by a failed open and ``posixpath`` by the creation of a missing directory.
"""

import time

from kubeiam.token import system
from kubeiam.token.exec_credential import dumps, is_plain, loads
from kubeiam.token.protocol import EXPIRY_CUSHION_SECONDS, TOKEN_PREFIX

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from hashlib import sha256
    from os import stat_result
    from typing import TypeVar

    from kubeiam.errors import CacheError

    _T = TypeVar("_T")
else:
    try:  # CPython 3.11's builtin SHA-256: hashlib would load OpenSSL (~4 ms) for one digest
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

#: Bump when the entry layout changes: entries of another version are misses.
CACHE_VERSION = 1
#: Environment variable that moves the cache (tests, benchmarks, read-only homes).
CACHE_DIR_ENV = "KUBEIAM_CACHE_DIR"
#: Never hand out a token with less than a minute left (protocol.md section 1).
TOKEN_MIN_REMAINING = EXPIRY_CUSHION_SECONDS
#: Re-obtain cached temporary credentials when less than this is left: a token signed with them
#: dies with them, and botocore refreshes assumed roles at the same mark.
CREDENTIALS_MIN_REMAINING = 10 * 60
#: How long a process waits for another one holding an entry's lock (it may be waiting for an
#: MFA code) before it gives up on caching and goes on without the cache.
LOCK_TIMEOUT = 120.0
_LOCK_POLL = 0.02
#: A presigned token lives 15 minutes; an entry claiming more (or no finite number) is not one
#: kubeiam wrote: a miss, replaced by a fresh token.
MAX_TOKEN_LIFETIME = 3600
#: 9999-12-31T23:59:59Z, the last instant RFC 3339 (and ``time.gmtime``) can write: a
#: credential_process may hand out long-lived credentials, but not beyond that.
MAX_TIMESTAMP = 253_402_300_799
TOKEN = "token"  # noqa: S105 - an entry kind, not a secret
CREDENTIALS = "credentials"


def _refused(message: str, *, hint: str) -> "CacheError":
    """The :class:`~kubeiam.errors.CacheError` refusing a cache path: the error tree is imported
    on the way to the refusal only, since a cache hit refuses nothing (one module less to load
    on every kubectl run)."""
    from kubeiam.errors import CacheError

    return CacheError(message, hint=hint)


def default_cache_dir(environ: "Mapping[str, str]") -> str:
    """``$KUBEIAM_CACHE_DIR``, else ``~/.kube/cache/kubeiam``."""
    explicit = environ.get(CACHE_DIR_ENV)
    if explicit:
        return explicit
    home = environ.get("HOME") or system.expand_path("~")
    return system.join(home, ".kube", "cache", "kubeiam")


def cache_key(fields: dict[str, str | None]) -> str:
    """A file-name-safe digest of everything that changes what an entry holds."""
    blob = dumps(fields, sort_keys=True)
    return sha256(blob.encode("utf-8")).hexdigest()[:40]


class _Lock:
    """An exclusive ``flock`` on ``<entry>.lock``, taken with a bounded wait."""

    __slots__ = ("acquired", "fd", "path", "timeout")

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1
        self.acquired = False

    def __enter__(self) -> bool:
        # O_NONBLOCK: a FIFO planted at the lock path must not block the open.
        flags = (
            system.O_RDWR
            | system.O_CREAT
            | system.O_NOFOLLOW
            | system.O_NONBLOCK
            | system.O_CLOEXEC
        )
        try:
            self.fd = system.open_fd(self.path, flags, 0o600)
        except OSError:
            return False
        if not system.S_ISREG(system.fstat(self.fd).st_mode):
            system.close(self.fd)
            self.fd = -1
            raise _refused(
                f"token cache lock {self.path} is not a regular file",
                hint=f"rm {self.path}, or pass --no-cache",
            )
        import fcntl  # only here: a cache hit takes no lock, --no-cache none at all

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_LOCK_POLL)
                continue
            self.acquired = True
            return True

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            system.close(self.fd)  # closing releases the flock
            self.fd = -1
        self.acquired = False


class FileCache:
    """Entries ``<kind>-<key>.json`` in one private directory."""

    __slots__ = ("directory",)

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, kind: str, key: str) -> str:
        return system.join(self.directory, f"{kind}-{key}.json")

    # -- reading (lock-free: entries are replaced atomically) -----------------------------------

    def load(self, kind: str, key: str) -> dict[str, object] | None:
        """The entry's JSON object, or ``None`` for a miss (absent, corrupt, other version).

        Raises :class:`CacheError` if the directory or the file is readable by group or others,
        belongs to another user, or is a symbolic link.
        """
        try:
            dir_st = system.stat(self.directory)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _refused(
                f"cannot use the token cache directory {self.directory}: {exc.strerror}",
                hint="fix its permissions, or pass --no-cache",
            ) from None
        self._check_private(self.directory, dir_st, is_dir=True)
        path = self.path(kind, key)
        try:
            # O_NONBLOCK: a FIFO at the path is opened without waiting, then refused below.
            flags = (
                system.O_RDONLY
                | system.O_NOFOLLOW
                | system.O_NONBLOCK
                | system.O_NOCTTY
                | system.O_CLOEXEC
            )
            fd = system.open_fd(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            import errno

            if exc.errno == errno.ENXIO:  # what open() says of a socket
                raise _refused(
                    f"token cache entry {path} is a socket, not a file", hint=f"rm {path}"
                ) from None
            if exc.errno == errno.ELOOP:
                raise _refused(
                    f"token cache file {path} is a symbolic link; kubeiam refuses to follow it",
                    hint=f"rm {path}",
                ) from None
            raise _refused(
                f"cannot read token cache file {path}: {exc.strerror}",
                hint=f"rm {path}, or pass --no-cache",
            ) from None
        try:
            st = system.fstat(fd)
            if not system.S_ISREG(st.st_mode):
                raise _refused(
                    f"token cache entry {path} is not a regular file", hint=f"rm -r {path}"
                )
            self._check_private(path, st, is_dir=False)
            try:
                raw = system.read(fd, 1 << 20)
            except OSError as exc:
                raise _refused(
                    f"cannot read token cache file {path}: {exc.strerror}",
                    hint=f"rm {path}, or pass --no-cache",
                ) from None
        finally:
            system.close(fd)
        entry: object = plain_token_entry(raw)
        if entry is None:
            try:
                entry = loads(raw)
            except (ValueError, RecursionError):  # anything unreadable is a miss, then replaced
                return None
        if not isinstance(entry, dict) or entry.get("version") != CACHE_VERSION:
            return None
        return entry

    @staticmethod
    def _check_private(path: str, st: "stat_result", *, is_dir: bool) -> None:
        what = "directory" if is_dir else "file"
        if is_dir and not system.S_ISDIR(st.st_mode):
            raise _refused(
                f"token cache path {path} is not a directory", hint=f"rm {path}, or pass --no-cache"
            )
        if st.st_uid != system.geteuid():
            raise _refused(
                f"token cache {what} {path} belongs to another user (uid {st.st_uid})",
                hint=f"remove it (rm -r {path}) or set {CACHE_DIR_ENV} to a directory of yours",
            )
        if st.st_mode & 0o077:
            mode = "700" if is_dir else "600"
            raise _refused(
                f"token cache {what} {path} is accessible by group or others "
                f"(mode {system.S_IMODE(st.st_mode):04o}); it holds credentials, so kubeiam "
                "refuses to use it",
                hint=f"chmod {mode} {path}",
            )

    # -- writing ---------------------------------------------------------------------------------

    def ensure_directory(self) -> None:
        """Create the directory 0700 if needed; refuse one that is not private."""
        try:
            _make_private_dirs(self.directory)
        except OSError as exc:
            raise _refused(
                f"cannot create the token cache directory {self.directory}: {exc.strerror}",
                hint=f"set {CACHE_DIR_ENV} to a writable directory, or pass --no-cache",
            ) from None
        self._check_private(self.directory, system.stat(self.directory), is_dir=True)

    def lock(self, kind: str, key: str, timeout: float = LOCK_TIMEOUT) -> "_Lock":
        """Context manager: ``with cache.lock(k, key) as acquired:`` (``False`` on time-out)."""
        self.ensure_directory()
        return _Lock(self.path(kind, key) + ".lock", timeout)

    def store(self, kind: str, key: str, entry: dict[str, object]) -> None:
        """Write the entry 0600 under a temporary name, then rename it into place."""
        self.ensure_directory()
        path = self.path(kind, key)
        tmp = f"{path}.{system.getpid()}.{system.urandom(6).hex()}.tmp"
        data = dumps({**entry, "version": CACHE_VERSION})
        flags = (
            system.O_WRONLY | system.O_CREAT | system.O_EXCL | system.O_NOFOLLOW | system.O_CLOEXEC
        )
        try:
            fd = system.open_fd(tmp, flags, 0o600)
            try:
                system.write(fd, data.encode("utf-8"))
            finally:
                system.close(fd)
            system.replace(tmp, path)
        except OSError as exc:
            try:  # noqa: SIM105 - contextlib would cost the cache-hit path an import
                system.unlink(tmp)
            except OSError:
                pass
            raise _refused(
                f"cannot write token cache file {path}: {exc.strerror}",
                hint=f"check the permissions of {self.directory}, or pass --no-cache",
            ) from None


#: A token entry as :meth:`FileCache.store` writes it, around its token and expiry.
_ENTRY_HEAD = '{"token":"'
_ENTRY_EXPIRY = '","expiresAt":'
_ENTRY_TAIL = f',"version":{CACHE_VERSION}}}'


def plain_token_entry(raw: bytes) -> "dict[str, object] | None":
    """A token entry read without the JSON scanner when it is exactly what :func:`store_token`
    writes: a plain token (see :func:`~kubeiam.token.exec_credential.is_plain`) and an expiry of
    digits with at most one decimal point. ``None`` for anything else, which ``loads`` then
    reads: the same dict either way, but a cache hit need not load the scanner (an extension
    module, 0.4 ms of the plugin's start)."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.startswith(_ENTRY_HEAD) or not text.endswith(_ENTRY_TAIL):
        return None
    token, sep, number = text[len(_ENTRY_HEAD) : -len(_ENTRY_TAIL)].partition(_ENTRY_EXPIRY)
    whole, point, fraction = number.partition(".")
    if not sep or not is_plain(token) or not whole.isdigit() or (point and not fraction.isdigit()):
        return None
    if whole.startswith("0") and whole != "0":  # JSON has no leading zeros
        return None
    expires_at = float(number) if point else int(whole)
    return {"token": token, "expiresAt": expires_at, "version": CACHE_VERSION}


def _make_private_dirs(directory: str) -> None:
    """Create ``directory`` and each missing parent 0700 (``makedirs`` would give the parents
    the umask's mode: ``~/.kube`` and ``~/.kube/cache`` hold credentials too)."""
    import posixpath  # a miss that creates the directory: off the cache-hit path

    missing = []
    current = posixpath.abspath(directory)
    while not posixpath.isdir(current):
        missing.append(current)
        parent = posixpath.dirname(current)
        if parent == current:
            break
        current = parent
    for level in reversed(missing):
        try:
            system.mkdir(level, 0o700)
        except FileExistsError:
            if not posixpath.isdir(level):
                raise
            continue
        system.chmod(level, 0o700)  # the umask may have removed bits; never adds any


def _expiry(value: object, latest: float) -> float | None:
    """``expiresAt`` as kubeiam could have written it: a number (not a bool) from 0 to
    ``latest`` (so that formatting it as a timestamp cannot overflow); else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= latest:  # also False for NaN
        return None
    return float(value)


def _text(value: object) -> str | None:
    """A printable ASCII string (what AWS keys and tokens are), else None."""
    if isinstance(value, str) and value and value.isascii() and value.isprintable():
        return value
    return None


# -- the one way an entry is filled -------------------------------------------------------------


def load_or_obtain(
    cache: "FileCache",
    kind: str,
    key: str,
    *,
    load: "Callable[[], _T | None]",
    obtain: "Callable[[], _T]",
    store: "Callable[[_T], None]",
    warn: "Callable[[str], None]",
    before_miss: "Callable[[], None] | None" = None,
) -> "_T":
    """The cached value of an entry, or a fresh one obtained once however many processes race.

    A hit is served without a lock. On a miss the entry's lock is taken, the entry read again
    (another process may have filled it while this one waited), and only then is the value
    obtained (minted, assumed, an MFA prompt...) and stored. If the lock cannot be had in
    :data:`LOCK_TIMEOUT`, the value is obtained anyway and not stored. ``store`` decides what is
    worth keeping; a failure to store is only a warning, since the value itself is good.
    ``before_miss`` runs after a lock-free miss, before anything is created: checks of the
    request that a hit can skip (only a request that passed them can have stored the entry).
    """
    hit = load()
    if hit is not None:
        return hit
    if before_miss is not None:
        before_miss()
    from kubeiam.errors import CacheError  # a miss: the error tree is worth its import now

    with cache.lock(kind, key) as locked:
        if locked:
            hit = load()
            if hit is not None:
                return hit
        fresh = obtain()
        if locked:
            try:
                store(fresh)
            except CacheError as exc:  # the value is good; only caching failed
                warn(str(exc))
        return fresh


# -- the two kinds of entry ----------------------------------------------------------------------


def load_token(cache: "FileCache", key: str, now: float) -> tuple[str, float] | None:
    """``(token, expires_at)`` if a cached token has at least a minute left."""
    entry = cache.load(TOKEN, key)
    if entry is None:
        return None
    token = _text(entry.get("token"))
    expires_at = _expiry(entry.get("expiresAt"), now + MAX_TOKEN_LIFETIME)
    if token is None or not token.startswith(TOKEN_PREFIX) or expires_at is None:
        return None
    if expires_at - now < TOKEN_MIN_REMAINING:
        return None
    return token, float(expires_at)


def store_token(cache: "FileCache", key: str, token: str, expires_at: float) -> None:
    cache.store(TOKEN, key, {"token": token, "expiresAt": expires_at})


def load_credentials(
    cache: "FileCache", key: str, now: float
) -> tuple[str, str, str | None, float] | None:
    """``(access_key_id, secret_access_key, session_token, expires_at)`` with enough time left."""
    entry = cache.load(CREDENTIALS, key)
    if entry is None:
        return None
    akid = _text(entry.get("accessKeyId"))
    secret = _text(entry.get("secretAccessKey"))
    raw_token = entry.get("sessionToken")
    token = _text(raw_token)
    expires_at = _expiry(entry.get("expiresAt"), MAX_TIMESTAMP)
    if akid is None or secret is None or expires_at is None:
        return None
    if token is None and raw_token is not None:
        return None
    if expires_at - now < CREDENTIALS_MIN_REMAINING:
        return None
    return akid, secret, token, float(expires_at)


def store_credentials(
    cache: "FileCache",
    key: str,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    expires_at: float,
) -> None:
    cache.store(
        CREDENTIALS,
        key,
        {
            "accessKeyId": access_key_id,
            "secretAccessKey": secret_access_key,
            "sessionToken": session_token,
            "expiresAt": expires_at,
        },
    )
