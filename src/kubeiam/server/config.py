"""The server's configuration file, in the reference's format so existing files keep working.

::

    clusterID: my-cluster
    server:
      address: 127.0.0.1          # listen address (default 127.0.0.1)
      port: 21362
      stateDir: /var/aws-iam-authenticator
      backendMode: [MountedFile, EKSConfigMap]
      mapRoles: [...]             # entries keyed rolearn/roleARN/..., in any case
      mapUsers: [...]
      mapAccounts: ["111122223333"]
      mapGroups: [...]            # kubeiam: IAM group ARN -> username/groups (iamGroupMapping)

Keys are matched case-insensitively at every level, as the reference's configuration library
does (``roleARN`` and ``rolearn`` both work). Unknown keys are reported by name with a warning;
a value kubeiam cannot use raises :class:`ConfigError` naming the key and the fix. Command-line
flags override the file (:func:`apply_overrides`). Parsing is pure: :func:`load_config` only
reads the file.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeiam.case_insensitive import fold_keys
from kubeiam.errors import DUPLICATE_KEY, ConfigError
from kubeiam.partitions import PARTITIONS
from kubeiam.server.denylist import DenyList, parse_deny_list
from kubeiam.server.ec2 import DEFAULT_PROFILE_TTL
from kubeiam.server.identity_cache import DEFAULT_TTL, MAX_TTL

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 21362
DEFAULT_STATE_DIR = Path("/var/aws-iam-authenticator")
#: The parts' own defaults and bounds, under the config's names (the flags' help shows them).
DEFAULT_EC2_INSTANCE_PROFILE_TTL = DEFAULT_PROFILE_TTL
DEFAULT_IDENTITY_CACHE_TTL = DEFAULT_TTL
MAX_IDENTITY_CACHE_TTL = MAX_TTL
#: The reference's defaults for its ec2:DescribeInstances token bucket.
DEFAULT_EC2_QPS = 15
DEFAULT_EC2_BURST = 5
#: How long a user's IAM group memberships are cached (seconds): a removal from a group applies
#: after at most this long (plus kube-apiserver's own webhook cache).
DEFAULT_IAM_GROUP_TTL = 60.0
DEFAULT_IAM_GROUP_QPS = 10
DEFAULT_IAM_GROUP_BURST = 5
#: kube-apiserver sends tokens of at most a few KiB; 64 KiB leaves room and bounds memory.
DEFAULT_MAX_BODY = 64 * 1024
DEFAULT_CACHE_ENTRIES = 10_000
#: Seconds a request header may take from its first byte (the reference allows 60 s). A
#: kube-apiserver writes a whole TokenReview request (a few KiB) at once; 10 s is ample on a
#: loaded control plane and frees a slow client's connection 6x sooner.
DEFAULT_HEADER_TIMEOUT = 10.0
#: Seconds the body may take once the header has arrived; same reasoning.
DEFAULT_BODY_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection is kept. Longer than the 90 s after which Go's HTTP
#: client (kube-apiserver's webhook client) drops its own idle connections, so the client always
#: closes first and never sends a review on a connection the server is closing.
DEFAULT_IDLE_TIMEOUT = 120.0
#: Open connections served; beyond, a review is answered 429 (retried) and the connection closed.
#: kube-apiserver opens one connection per concurrent review; 1024 is 4x the 256 concurrent
#: reviews of a restart storm (issue 9, section 7), and bounds memory (~60 KiB of TLS and parser
#: buffers each, about 60 MiB at the limit).
DEFAULT_MAX_CONNECTIONS = 1024
#: The longest a timeout or TTL setting may be (identityCacheTTL has its own, shorter, bound): an
#: hour; a larger value is a slip of units (minutes or milliseconds written as seconds).
MAX_SECONDS = 3600
#: Upper bound of the QPS and burst settings: far above what AWS lets one caller make.
MAX_RATE = 10_000
#: Upper bound of maxConnections (each costs ~60 KiB): a larger value is a typo.
MAX_CONNECTIONS_LIMIT = 1_000_000
#: The reference's environment variable for the cluster id.
CLUSTER_ID_ENV = "KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID"


class BackendMode(enum.Enum):
    """Mapping backends, by the reference's names, tried in the configured order."""

    MOUNTED_FILE = "MountedFile"
    EKS_CONFIG_MAP = "EKSConfigMap"
    CRD = "CRD"
    DYNAMIC_FILE = "DynamicFile"


#: Deprecated names the reference still accepts.
_BACKEND_ALIASES = {"file": BackendMode.MOUNTED_FILE, "configmap": BackendMode.EKS_CONFIG_MAP}


class LogFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``kubeiam server`` needs, after the file and the flags have been merged."""

    cluster_id: str
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    #: Name kube-apiserver uses to reach the webhook; put in the certificate and kubeconfig.
    hostname: str | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    #: Where to write the webhook kubeconfig at start-up; None writes none (see docs/server.md).
    generate_kubeconfig: Path | None = None
    backend_mode: tuple[BackendMode, ...] = (BackendMode.MOUNTED_FILE,)
    partition: str = "aws"
    #: Mapping entries as written, with keys canonicalised (``rolearn``, ``userarn``, ...).
    map_roles: tuple[Mapping[str, Any], ...] = ()
    map_users: tuple[Mapping[str, Any], ...] = ()
    map_accounts: tuple[str, ...] = ()
    map_groups: tuple[Mapping[str, Any], ...] = ()
    #: backend name -> reserved username prefixes (``reservedPrefixConfig``).
    reserved_prefixes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dynamic_file_path: Path | None = None
    dynamic_file_user_id_strict: bool = False
    kubeconfig: Path | None = None
    master: str | None = None
    ec2_qps: int = DEFAULT_EC2_QPS
    ec2_burst: int = DEFAULT_EC2_BURST
    ec2_role_arn: str | None = None
    source_arn: str | None = None
    ec2_region: str | None = None
    #: Refuse node sessions whose instance's profile does not hold the token's role.
    ec2_instance_role_check: bool = False
    ec2_instance_profile_ttl: float = DEFAULT_EC2_INSTANCE_PROFILE_TTL
    #: Resolve IAM users' group memberships (iam:ListGroupsForUser) for ``mapGroups`` entries.
    iam_group_mapping: bool = False
    iam_group_ttl: float = DEFAULT_IAM_GROUP_TTL
    iam_group_role_arn: str | None = None
    iam_group_qps: int = DEFAULT_IAM_GROUP_QPS
    iam_group_burst: int = DEFAULT_IAM_GROUP_BURST
    scrubbed_accounts: tuple[str, ...] = ()
    # kubeiam extensions (camelCase keys under server:, and flags)
    sts_resolve: tuple[str, ...] = ()
    sts_ca_bundle: Path | None = None
    #: Extra STS hosts (``HOST=REGION``, e.g. VPC endpoints) tokens may name.
    sts_allowed_hosts: tuple[str, ...] = ()
    sts_timeout: float = 10.0
    audiences: tuple[str, ...] = ()
    identity_cache_size: int = DEFAULT_CACHE_ENTRIES
    identity_cache_ttl: float = DEFAULT_IDENTITY_CACHE_TTL
    max_body_bytes: int = DEFAULT_MAX_BODY
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Principals refused outright (``denyList``), plus the watched ``denyListFile``.
    deny_list: DenyList = field(default_factory=DenyList)
    deny_list_file: Path | None = None
    log_format: LogFormat = LogFormat.TEXT
    shutdown_timeout: float = 10.0

    def replace(self, **changes: Any) -> ServerConfig:
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------------------------
# Key tables. Lower-cased key -> field name. The reference's keys first, then kubeiam's.

_TOP_KEYS = {"clusterid": "cluster_id", "server": "server", "log-format": "log_format"}
#: Top-level keys the reference reads that kubeiam accepts and ignores.
_TOP_IGNORED = {"log-verbosity", "feature-gates"}

_SERVER_KEYS = {
    "address": "address",
    "port": "port",
    "hostname": "hostname",
    "statedir": "state_dir",
    "generatekubeconfig": "generate_kubeconfig",
    "backendmode": "backend_mode",
    "partition": "partition",
    "maproles": "map_roles",
    "mapusers": "map_users",
    "mapaccounts": "map_accounts",
    "mapgroups": "map_groups",
    "reservedprefixconfig": "reserved_prefixes",
    "dynamicfilepath": "dynamic_file_path",
    "dynamicfileuseridstrict": "dynamic_file_user_id_strict",
    "kubeconfig": "kubeconfig",
    "master": "master",
    "ec2describeinstancesqps": "ec2_qps",
    "ec2describeinstancesburst": "ec2_burst",
    "ec2describeinstancesrolearn": "ec2_role_arn",
    "sourcearn": "source_arn",
    "ec2region": "ec2_region",
    "ec2instancerolecheck": "ec2_instance_role_check",
    "ec2instanceprofilettl": "ec2_instance_profile_ttl",
    "iamgroupmapping": "iam_group_mapping",
    "iamgroupcachettl": "iam_group_ttl",
    "iamgrouprolearn": "iam_group_role_arn",
    "iamgroupqps": "iam_group_qps",
    "iamgroupburst": "iam_group_burst",
    "scrubbedaccounts": "scrubbed_accounts",
    "stsresolve": "sts_resolve",
    "stscabundle": "sts_ca_bundle",
    "stsallowedhosts": "sts_allowed_hosts",
    "ststimeout": "sts_timeout",
    "audiences": "audiences",
    "identitycachesize": "identity_cache_size",
    "identitycachettl": "identity_cache_ttl",
    "maxbodybytes": "max_body_bytes",
    "headertimeout": "header_timeout",
    "bodytimeout": "body_timeout",
    "idletimeout": "idle_timeout",
    "maxconnections": "max_connections",
    "denylist": "deny_list",
    "denylistfile": "deny_list_file",
    "logformat": "log_format",
    "shutdowntimeout": "shutdown_timeout",
}
#: Reference keys kubeiam reads but has no use for; a warning says why.
_SERVER_IGNORED = {
    "kubeconfigpregenerated": "kubeiam writes a webhook kubeconfig only when generateKubeconfig "
    "is set",
    "healthport": "kubeiam serves /healthz on the webhook's own port",
    "dynamicbackendmodepath": "backendMode is read from this file only",
}

#: Canonical spelling of mapping-entry keys (aws-auth's), by lower-cased key.
_ENTRY_KEYS = {
    "rolearn": "rolearn",
    "userarn": "userarn",
    "grouparn": "grouparn",
    "username": "username",
    "groups": "groups",
    "userid": "userid",
    "sso": "sso",
}
_SSO_KEYS = {
    "permissionsetname": "permissionSetName",
    "accountid": "accountID",
    "partition": "partition",
}


def _lower_keys(where: str, doc: Mapping[Any, Any]) -> dict[str, Any]:
    def fold(key: object) -> str:
        if not isinstance(key, str):
            raise ConfigError(f"{where}: key {key!r} is not a string")
        return key.lower()

    return fold_keys(
        doc,
        lambda key: ConfigError(
            f"{where}: key {key!r} appears twice (keys are case-insensitive)",
            hint="keep one spelling of the key",
            code=DUPLICATE_KEY,
        ),
        fold=fold,
    )


def _canonical_entry(where: str, entry: Any, table: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping (key: value pairs)")
    out: dict[str, Any] = {}
    for low, value in _lower_keys(where, entry).items():
        name = table.get(low)
        if name is None:
            log.warning("unknown key in server config", extra={"key": f"{where}.{low}"})
            out[low] = value
            continue
        if name == "sso" and value is not None:
            value = _canonical_entry(f"{where}.sso", value, _SSO_KEYS)
        out[name] = value
    return out


def _str(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f"{key} must be a string", hint=f"write {key}: <text>")
    return str(value)


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        raise ConfigError(f"{key} must be a list of strings", hint=f"write {key}: [a, b]")
    return tuple(_str(key, v) for v in value)


def _int(key: str, value: Any, *, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{key} must be an integer, not {value!r}", hint=f"write {key}: <{low}..{high}>"
        ) from None
    if not low <= number <= high:
        raise ConfigError(f"{key} must be between {low} and {high}, not {number}")
    return number


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"{key} must be true or false, not {value!r}")


def parse_backend_modes(key: str, value: Any) -> tuple[BackendMode, ...]:
    """``[MountedFile, EKSConfigMap]`` or ``"MountedFile,EKSConfigMap"`` -> ordered modes."""
    names = _str_list(key, value)
    by_lower = {m.value.lower(): m for m in BackendMode} | _BACKEND_ALIASES
    modes: list[BackendMode] = []
    for name in names:
        mode = by_lower.get(name.lower())
        if mode is None:
            choices = ", ".join(m.value for m in BackendMode)
            raise ConfigError(f"{key}: unknown backend {name!r}", hint=f"use one of {choices}")
        if mode in modes:
            raise ConfigError(f"{key}: backend {mode.value} is listed twice")
        modes.append(mode)
    if not modes:
        raise ConfigError(f"{key} is empty", hint="list at least one backend, e.g. [MountedFile]")
    return tuple(modes)


def _reserved_prefixes(key: str, value: Any) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(
            f"{key} must be a list of {{backendmode, usernamePrefixReserveList}} entries"
        )
    out: dict[str, tuple[str, ...]] = {}
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where} must be a mapping")
        entry = _lower_keys(where, item)
        (mode,) = parse_backend_modes(f"{where}.backendmode", entry.get("backendmode"))
        out[mode.value] = _str_list(
            f"{where}.usernamePrefixReserveList", entry.get("usernameprefixreservelist")
        )
    return out


def _account_list(key: str, value: Any) -> tuple[str, ...]:
    accounts = _str_list(key, value)
    for account in accounts:
        if not (len(account) == 12 and account.isdigit()):
            raise ConfigError(
                f"{key}: {account!r} is not a 12-digit AWS account id",
                hint='quote account ids in YAML so leading zeros survive: - "012345678901"',
            )
    return accounts


def _convert(key: str, name: str, value: Any) -> Any:
    """Turn one raw value into the type of field ``name`` (``key`` is for messages)."""
    if name in (
        "address",
        "hostname",
        "master",
        "ec2_role_arn",
        "source_arn",
        "ec2_region",
        "iam_group_role_arn",
    ):
        return _str(key, value) if value not in (None, "") else None
    if name == "port":
        return _int(key, value, low=0, high=65535)
    if name in ("state_dir",):
        return Path(_str(key, value))
    if name in (
        "generate_kubeconfig",
        "dynamic_file_path",
        "kubeconfig",
        "sts_ca_bundle",
        "deny_list_file",
    ):
        return Path(_str(key, value)) if value not in (None, "") else None
    if name == "backend_mode":
        return parse_backend_modes(key, value)
    if name == "partition":
        partition = _str(key, value)
        if partition not in PARTITIONS:
            raise ConfigError(
                f"{key}: unknown partition {partition!r}",
                hint=f"use one of {', '.join(sorted(PARTITIONS))}",
            )
        return partition
    if name in ("map_roles", "map_users", "map_groups"):
        if value is None:
            return ()
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ConfigError(f"{key} must be a list of mapping entries")
        return tuple(
            _canonical_entry(f"{key}[{i}]", item, _ENTRY_KEYS) for i, item in enumerate(value)
        )
    if name in ("map_accounts", "scrubbed_accounts"):
        return _account_list(key, value)
    if name == "reserved_prefixes":
        return _reserved_prefixes(key, value)
    if name in ("dynamic_file_user_id_strict", "ec2_instance_role_check", "iam_group_mapping"):
        return _bool(key, value)
    if name in ("ec2_qps", "ec2_burst", "iam_group_qps", "iam_group_burst"):
        return _int(key, value, low=1, high=MAX_RATE)
    if name == "identity_cache_size":
        return _int(key, value, low=0, high=10_000_000)
    if name == "max_body_bytes":
        return _int(key, value, low=4096, high=16 * 1024 * 1024)
    if name == "max_connections":
        return _int(key, value, low=1, high=MAX_CONNECTIONS_LIMIT)
    if name == "deny_list":
        return parse_deny_list(value, where=key)
    if name == "identity_cache_ttl":
        return _seconds(key, value, high=MAX_IDENTITY_CACHE_TTL)  # a token never lives longer
    if name == "ec2_instance_profile_ttl":
        return _seconds(key, value, high=MAX_SECONDS)
    if name in (
        "shutdown_timeout",
        "sts_timeout",
        "iam_group_ttl",
        "header_timeout",
        "body_timeout",
        "idle_timeout",
    ):
        return _seconds(key, value, high=MAX_SECONDS)
    if name in ("sts_resolve", "audiences", "sts_allowed_hosts"):
        return _str_list(key, value)
    if name == "log_format":
        return parse_log_format(key, value)
    if name == "cluster_id":
        return _str(key, value)
    raise AssertionError(name)  # pragma: no cover - the key tables only name known fields


def _seconds(key: str, value: Any, *, high: float) -> float:
    """Every timeout and TTL key: a number of seconds, more than 0, at most ``high``.

    YAML reads ``true`` as a boolean, which ``float`` would turn into 1 second: refused.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a number of seconds, not {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number of seconds, not {value!r}") from None
    if not 0 < seconds <= high:
        raise ConfigError(f"{key} must be more than 0 and at most {high:g} seconds, not {value!r}")
    return seconds


def parse_log_format(key: str, value: Any) -> LogFormat:
    try:
        return LogFormat(str(value).lower())
    except ValueError:
        raise ConfigError(f"{key} must be text or json, not {value!r}") from None


def parse_config(doc: Any, *, source: str = "config") -> dict[str, Any]:
    """A parsed YAML document -> ServerConfig field values (pure; no validation across keys)."""
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source} must be a YAML mapping at the top level")
    values: dict[str, Any] = {}
    top = _lower_keys(source, doc)
    for low, raw in top.items():
        if low in _TOP_IGNORED:
            continue
        name = _TOP_KEYS.get(low)
        if name is None:
            log.warning("unknown key in server config", extra={"key": low, "file": source})
            continue
        if name == "server":
            if raw is None:
                continue
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{source}: server must be a mapping of settings")
            for skey, sraw in _lower_keys(f"{source}: server", raw).items():
                sname = _SERVER_KEYS.get(skey)
                if sname is None:
                    if skey in _SERVER_IGNORED:
                        log.warning(
                            "server config key ignored: " + _SERVER_IGNORED[skey],
                            extra={"key": f"server.{skey}"},
                        )
                    else:
                        log.warning(
                            "unknown key in server config",
                            extra={"key": f"server.{skey}", "file": source},
                        )
                    continue
                values[sname] = _convert(f"server.{skey}", sname, sraw)
        else:
            values[name] = _convert(low, name, raw)
    return values


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and parse the YAML file at ``path`` (field values, not yet a ServerConfig).

    Through the one bounded loader (:mod:`kubeiam.documents`): a FIFO or device is refused
    without blocking; duplicate keys, deep nesting, alias bombs, bad bytes are refused with
    the line, so the server does not start on a file it would read differently than written.
    """
    from kubeiam.documents import parse_yaml
    from kubeiam.fileio import read_document_text

    text = read_document_text(path, missing_ok=True)
    if text is None:
        raise ConfigError(
            f"cannot read the config file {path}: no such file",
            hint="pass an existing file with --config",
        )
    doc = parse_yaml(text, source=str(path))
    return parse_config(doc, source=str(path))


def build_config(values: Mapping[str, Any], overrides: Mapping[str, Any]) -> ServerConfig:
    """Merge file values with flag ``overrides`` (None means "not given") and validate."""
    merged = dict(values)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    cluster_id = merged.get("cluster_id")
    if not cluster_id:
        raise ConfigError(
            "the cluster id is not set",
            hint=f"set clusterID in the config file, pass -i/--cluster-id, or set {CLUSTER_ID_ENV}",
        )
    # The rule `kubeiam token` signs by, checked before anything is written or bound.
    from kubeiam.cluster_id import check_cluster_id

    check_cluster_id(str(cluster_id), source="clusterID or -i/--cluster-id")
    config = ServerConfig(**merged)
    validate(config)
    return config


def validate(config: ServerConfig) -> None:
    """Checks across keys, as the reference makes them (with messages that say the fix)."""
    dynamic = BackendMode.DYNAMIC_FILE in config.backend_mode
    if dynamic and config.dynamic_file_path is None:
        raise ConfigError(
            "backendMode lists DynamicFile but dynamicfilepath is not set",
            hint="set server.dynamicfilepath to the JSON mapping file",
        )
    if not dynamic and config.dynamic_file_path is not None:
        raise ConfigError(
            "dynamicfilepath is set but backendMode does not list DynamicFile",
            hint="add DynamicFile to server.backendMode, or remove dynamicfilepath",
        )
    try:
        ipaddress.ip_address(config.address)
    except ValueError:
        raise ConfigError(
            f"server.address {config.address!r} is not an IP address",
            hint="listen on an IP such as 127.0.0.1 or 0.0.0.0; put DNS names in server.hostname",
        ) from None
    for backend in config.reserved_prefixes:
        if BackendMode(backend) not in config.backend_mode:
            log.warning(
                "reservedPrefixConfig names a backend that backendMode does not list",
                extra={"key": "server.reservedPrefixConfig", "backend": backend},
            )
