"""Where ``kubeiam token`` gets the credentials it signs with.

Two paths, chosen by :func:`signing_credentials`:

- **Fast path** (stdlib only): access keys in the environment (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_CREDENTIAL_EXPIRATION``), and temporary
  credentials kubeiam cached itself. No botocore import: it costs ~0.3 s.
- **Full chain** through botocore (:mod:`kubeiam.token.botocore_chain`, imported only when the
  fast path has no answer, with botocore itself): shared config and credentials files,
  ``role_arn``/``source_profile``/``mfa_serial``, SSO and ``sso_session``,
  ``credential_process``, web identity, container and instance metadata; and AssumeRole for
  ``-r``. AssumeRole uses botocore's STS client, so botocore's ``AWS_ENDPOINT_URL_STS`` applies.

A profile given with ``--profile`` or ``AWS_PROFILE`` always wins over access keys in the
environment (with the AWS CLI it loses to them, and tokens get signed as the wrong identity:
aws-cli#7794).

Region and endpoint settings come from the flag, then the environment, then the profile's section
of the AWS config file, read here by a small INI reader for four keys (``configparser`` would
drag in ``re``; botocore's own reader is the oracle in the tests).
"""

import sys

from kubeiam.cluster_id import check_cluster_id
from kubeiam.token import cache as token_cache
from kubeiam.token import system

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from kubeiam.errors import ConfigError, CredentialsError

#: Session names AssumeRole accepts: 2-64 of ``[\w+=,.@-]`` (ASCII).
_SESSION_NAME_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+=,.@-"
)
#: External ids: 2-1224 of ``[\w+=,.@:/-]``.
_EXTERNAL_ID_CHARS = _SESSION_NAME_CHARS | frozenset(":/")
#: AssumeRole's DurationSeconds bounds.
MIN_DURATION = 900
MAX_DURATION = 43200
#: Settings read from a profile's section of the AWS config file.
_PROFILE_SETTINGS = (
    "region",
    "sts_regional_endpoints",
    "use_fips_endpoint",
    "use_dualstack_endpoint",
)
#: Environment variables that change what the default credential chain finds (cache key input).
_CHAIN_ENV = (
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


class Credentials:
    """AWS credentials to sign with. Immutable; ``repr`` never shows the secrets.

    A hand-written slotted class rather than a dataclass: ``dataclasses`` imports ``inspect``,
    ~20 ms of start-up on the plugin's hot path.
    """

    __slots__ = ("access_key_id", "expires_at", "secret_access_key", "session_token", "source")

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    #: Unix time the credentials stop working, if known.
    expires_at: float | None
    #: Where they came from, for messages ("environment", "profile dev", "role arn:...").
    source: str

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        expires_at: float | None = None,
        source: str = "environment",
    ) -> None:
        set_ = object.__setattr__
        set_(self, "access_key_id", access_key_id)
        set_(self, "secret_access_key", secret_access_key)
        set_(self, "session_token", session_token)
        set_(self, "expires_at", expires_at)
        set_(self, "source", source)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Credentials is immutable (cannot set {name})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def _fields(self) -> tuple[str, str, str | None, float | None, str]:
        return (
            self.access_key_id,
            self.secret_access_key,
            self.session_token,
            self.expires_at,
            self.source,
        )

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, source={self.source!r}, "
            f"expires_at={self.expires_at!r}, secret_access_key=<hidden>, "
            f"session_token={'<hidden>' if self.session_token else None})"
        )


class TokenRequest:
    """What the user asked ``kubeiam token`` for, after flags and environment were merged.

    Immutable, slotted, hand-written for the same start-up reason as :class:`Credentials`.
    """

    __slots__ = (
        "cluster_id",
        "duration",
        "external_id",
        "forward_session_name",
        "profile",
        "role",
        "session_name",
    )

    cluster_id: str
    role: str | None
    external_id: str | None
    session_name: str | None
    forward_session_name: bool
    profile: str | None
    duration: int | None

    def __init__(
        self,
        cluster_id: str,
        *,
        role: str | None = None,
        external_id: str | None = None,
        session_name: str | None = None,
        forward_session_name: bool = False,
        profile: str | None = None,
        duration: int | None = None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "cluster_id", cluster_id)
        set_(self, "role", role)
        set_(self, "external_id", external_id)
        set_(self, "session_name", session_name)
        set_(self, "forward_session_name", forward_session_name)
        set_(self, "profile", profile)
        set_(self, "duration", duration)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"TokenRequest is immutable (cannot set {name})")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"TokenRequest({fields})"


# -- errors, imported on the way to one: a cache hit raises none --------------------------------


def _config_error(message: str, *, hint: str) -> "ConfigError":
    from kubeiam.errors import ConfigError

    return ConfigError(message, hint=hint)


def _credentials_error(message: str, *, hint: str) -> "CredentialsError":
    from kubeiam.errors import CredentialsError

    return CredentialsError(message, hint=hint)


# -- validation ----------------------------------------------------------------------------------


def check_request(request: "TokenRequest") -> None:
    """Refuse values AWS or the server would refuse later, with a message naming the flag."""
    check_cluster_id(request.cluster_id)
    if request.role is not None and not (
        request.role.startswith("arn:") and ":role/" in request.role
    ):
        raise _config_error(
            f"--role {request.role!r} is not an IAM role ARN",
            hint="write it as arn:aws:iam::<account>:role/<name>",
        )
    if request.session_name is not None and not (
        2 <= len(request.session_name) <= 64 and set(request.session_name) <= _SESSION_NAME_CHARS
    ):
        raise _config_error(
            f"--session-name {request.session_name!r} is not a valid role session name",
            hint="use 2-64 letters, digits and +=,.@_- characters",
        )
    if request.external_id is not None and not (
        2 <= len(request.external_id) <= 1224 and set(request.external_id) <= _EXTERNAL_ID_CHARS
    ):
        raise _config_error(
            "--external-id is not a valid external id",
            hint="use 2-1224 letters, digits and +=,.@:/_- characters",
        )
    if request.duration is not None and not MIN_DURATION <= request.duration <= MAX_DURATION:
        raise _config_error(
            f"--duration {request.duration} is outside AssumeRole's "
            f"{MIN_DURATION}..{MAX_DURATION} seconds",
            hint="pass seconds (900..43200) or a form like 15m or 1h",
        )
    if request.role is None and (
        request.session_name
        or request.external_id
        or request.duration
        or request.forward_session_name
    ):
        raise _config_error(
            "--session-name, --external-id, --forward-session-name and --duration need -r/--role",
            hint="add -r <role ARN>, or drop those flags",
        )


def parse_duration(text: str) -> int:
    """Seconds from ``900``, ``900s``, ``15m``, ``1h`` or ``1h30m``; :class:`ConfigError` else."""
    if text.isdigit():
        return int(text)
    total = 0
    number = ""
    units = {"h": 3600, "m": 60, "s": 1}
    for ch in text:
        if ch.isdigit():
            number += ch
        elif ch in units and number:
            total += int(number) * units[ch]
            number = ""
        else:
            number = "!"
            break
    if number or not text:
        raise _config_error(
            f"--duration {text!r} is not a duration", hint="write seconds (3600) or 1h, 15m, 1h30m"
        )
    return total


def parse_expiration(value: str, variable: str) -> float:
    """Unix time of an ISO 8601 timestamp such as ``2026-11-23T15:31:55Z``."""
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _config_error(
            f"{variable} is not an ISO 8601 timestamp",
            hint="use the form 2026-11-23T15:31:55Z, or unset it",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# -- environment and config file -----------------------------------------------------------------


def profile_from(flag: str | None, environ: "Mapping[str, str]") -> str | None:
    """``--profile``, else ``AWS_DEFAULT_PROFILE``, else ``AWS_PROFILE`` (botocore's order)."""
    return flag or environ.get("AWS_DEFAULT_PROFILE") or environ.get("AWS_PROFILE") or None


def env_credentials(environ: "Mapping[str, str]") -> "Credentials | None":
    """Access keys from the environment, or ``None`` when ``AWS_ACCESS_KEY_ID`` is unset."""
    akid = environ.get("AWS_ACCESS_KEY_ID")
    secret = environ.get("AWS_SECRET_ACCESS_KEY")
    if not akid and not secret:
        return None
    if not akid or not secret:
        missing = "AWS_SECRET_ACCESS_KEY" if akid else "AWS_ACCESS_KEY_ID"
        raise _credentials_error(
            f"partial credentials in the environment: {missing} is not set",
            hint=f"set {missing} too, or unset AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or None
    expiration = environ.get("AWS_CREDENTIAL_EXPIRATION")
    expires_at = parse_expiration(expiration, "AWS_CREDENTIAL_EXPIRATION") if expiration else None
    return Credentials(akid, secret, token, expires_at, "environment")


def config_file(environ: "Mapping[str, str]") -> str:
    return system.expand_path(environ.get("AWS_CONFIG_FILE") or "~/.aws/config")


def credentials_file(environ: "Mapping[str, str]") -> str:
    return system.expand_path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")


def read_profile_settings(path: str, profile: str) -> dict[str, str]:
    """The region and endpoint keys of ``profile``'s section of an AWS config file.

    Follows botocore's reading (``[default]`` or ``[profile NAME]``, later sections win, keys
    lower-cased, ``=`` or ``:``, full-line ``#``/``;`` comments, indented continuation lines belong
    to the key above). A missing or unreadable file has no settings.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return {}
    wanted = {"default"} if profile == "default" else set()
    found: dict[str, str] = {}
    in_section = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if raw[0] in " \t":  # continuation of a multi-line value: never one of our keys
            continue
        if line.startswith("[") and line.endswith("]"):
            parts = line[1:-1].split()
            name = line[1:-1].strip()
            if len(parts) == 2 and parts[0] == "profile":
                in_section = parts[1].strip('"') == profile
            else:
                in_section = name in wanted
            continue
        if not in_section:
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut <= 0:
            continue
        key = line[:cut].strip().lower()
        if key in _PROFILE_SETTINGS:
            found[key] = line[cut + 1 :].strip()
    return found


def _true(value: str | None) -> bool:
    """botocore's ``ensure_boolean``: only ``true`` (any case) is true."""
    return value is not None and value.lower() == "true"


def endpoint_settings(
    region_flag: str | None, profile: str | None, environ: "Mapping[str, str]"
) -> tuple[str | None, bool, bool, bool]:
    """``(region, legacy, fips, dualstack)``: flag, then environment, then the config file.

    ``AWS_REGION`` is honoured before ``AWS_DEFAULT_REGION`` (the Go SDK's order; botocore reads
    only the latter).
    """
    region = region_flag or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    sts_mode = environ.get("AWS_STS_REGIONAL_ENDPOINTS")
    fips = environ.get("AWS_USE_FIPS_ENDPOINT")
    dualstack = environ.get("AWS_USE_DUALSTACK_ENDPOINT")
    if not region or sts_mode is None or fips is None or dualstack is None:
        settings = read_profile_settings(config_file(environ), profile or "default")
        region = region or settings.get("region")
        sts_mode = sts_mode if sts_mode is not None else settings.get("sts_regional_endpoints")
        fips = fips if fips is not None else settings.get("use_fips_endpoint")
        dualstack = dualstack if dualstack is not None else settings.get("use_dualstack_endpoint")
    if sts_mode not in (None, "", "regional", "legacy"):
        raise _config_error(
            f"sts_regional_endpoints / AWS_STS_REGIONAL_ENDPOINTS is {sts_mode!r}",
            hint="use 'regional' (the default) or 'legacy'",
        )
    return region or None, sts_mode == "legacy", _true(fips), _true(dualstack)


def _file_stamp(path: str) -> str:
    try:
        st = system.stat(path)
    except OSError:
        return "-"
    return f"{st.st_mtime_ns}:{st.st_size}"


def source_descriptor(
    env_creds: "Credentials | None", profile: str | None, environ: "Mapping[str, str]"
) -> str:
    """What identifies the source credentials without resolving them (a cache key input).

    Environment keys: their access key id. Otherwise the profile, the identity (mtime, size) of
    the config and credentials files, and the variables that steer the default chain: editing
    any of them makes cached entries misses.
    """
    if env_creds is not None:
        return f"env:{env_creds.access_key_id}"
    parts = [
        f"profile:{profile or ''}",
        _file_stamp(config_file(environ)),
        _file_stamp(credentials_file(environ)),
        *(environ.get(name, "") for name in _CHAIN_ENV),
    ]
    return "|".join(parts)


# -- putting it together -------------------------------------------------------------------------


def signing_credentials(
    request: "TokenRequest",
    *,
    region: str | None,
    environ: "Mapping[str, str]",
    cache: "token_cache.FileCache | None",
    now: float,
) -> "Credentials":
    """The credentials to sign ``request``'s token with (profile > environment > chain; role).

    With a cache, temporary credentials kubeiam obtained (an assumed role, or a profile's
    refreshable credentials) are reused until :data:`~kubeiam.token.cache.CREDENTIALS_MIN_REMAINING`
    before they expire, so neither AssumeRole nor an MFA prompt is repeated on every kubectl run.
    """
    profile = profile_from(request.profile, environ)
    env_creds = None if profile else env_credentials(environ)
    if request.role is None and env_creds is not None:
        return env_creds
    from kubeiam.token.botocore_chain import obtain  # the fast path ended above

    if cache is None:
        return obtain(request, env_creds, profile, region, now)
    key = token_cache.cache_key(
        {
            "kind": "credentials",
            "source": source_descriptor(env_creds, profile, environ),
            "role": request.role,
            "externalId": request.external_id,
            "sessionName": request.session_name,
            "forward": "1" if request.forward_session_name else None,
            "duration": str(request.duration) if request.duration else None,
        }
    )
    return token_cache.load_or_obtain(
        cache,
        token_cache.CREDENTIALS,
        key,
        load=lambda: _load_cached(cache, key, now),
        obtain=lambda: obtain(request, env_creds, profile, region, now),
        store=lambda fresh: _store_temporary(cache, key, fresh),
        warn=_warn,
    )


def _warn(text: str) -> None:
    sys.stderr.write(f"kubeiam: warning: {text}\n")


def _load_cached(cache: "token_cache.FileCache", key: str, now: float) -> "Credentials | None":
    cached = token_cache.load_credentials(cache, key, now)
    return None if cached is None else Credentials(*cached, source="cache")


def _store_temporary(cache: "token_cache.FileCache", key: str, fresh: "Credentials") -> None:
    """Cache ``fresh`` if it is temporary (an expiry and a session token); long-lived keys are
    never written to the cache."""
    if fresh.expires_at is None or fresh.session_token is None:
        return
    token_cache.store_credentials(
        cache,
        key,
        access_key_id=fresh.access_key_id,
        secret_access_key=fresh.secret_access_key,
        session_token=fresh.session_token,
        expires_at=fresh.expires_at,
    )
