"""`kubeiam kubeconfig update`: add or update a kubeconfig entry whose user runs `kubeiam token`.

What `aws eks update-kubeconfig` gets wrong, and what this module does instead (landscape.md):

* it replaces whole entries and loses a context's ``namespace`` and comments: here the file is
  edited round-trip with ruamel.yaml, existing cluster and context entries are updated *in place*
  (only the keys kubeiam owns change; unknown keys, comments, ordering and ``namespace`` stay).
  The *user* entry is kubeiam's whole: any other credential left beside the exec section (a
  ``token``, ``username``/``password``, ``auth-provider``, client certificate, an exec ``env``
  naming another profile) would be used instead of kubeiam or make kubectl refuse the entry, so
  it is removed and the user told which keys went (never their values);
* a CA written beside ``insecure-skip-tls-verify: true`` is an error for kubectl: the flag is
  removed when kubeiam writes the CA data;
* a file where a name repeats in ``clusters``, ``users`` or ``contexts`` is refused by kubectl
  ("duplicate name"): kubeiam refuses to write it too, naming the entries and their lines;
* it always switches ``current-context``: here switching is the default (like aws) and
  ``--no-switch`` leaves it alone;
* it writes in place without a lock and keeps a 0644 mode: here :mod:`kubeiam.fileio` locks,
  writes a synced temporary file, renames it, and the file is 0600;
* ``AWS_PROFILE`` in the entry's ``env`` loses to access keys exported in the shell
  (aws-cli#7794): here the profile is an argument, ``kubeiam token --profile P``, which wins.

Decisions (docs/admin.md explains them to users):

* ``interactiveMode: IfAvailable`` for ``client.authentication.k8s.io/v1`` (where kubectl requires
  the field): `kubeiam token -r ROLE` may have to ask for an MFA code when the profile's role
  needs one, and kubectl hands the plugin a terminal only with ``IfAvailable``. When kubectl runs
  without a terminal (CI) it still runs the plugin; ``Never`` would make MFA profiles unusable.
* by default the entry runs the fast launcher (:mod:`kubeiam.token.launcher`): the command is
  this installation's interpreter, started isolated and without site, which skips the
  site-packages set-up (kubectl runs it on every command). When the interpreter is gone (the
  virtualenv moved, the kubeconfig was copied to another machine) kubectl's error names its path
  and the entry's ``installHint`` beside it says what it is and the fix (kubectl prints the hint
  only for a command not found on ``PATH``); when the package is gone the launcher's code prints
  the error and the fix. ``--exec-command`` writes that command itself instead
  (``kubeiam`` from ``PATH``, or an absolute path); the CLI warns when it is not found on
  ``PATH``.
* for an EKS cluster the token's cluster id is the cluster *name* (what ``aws eks get-token
  --cluster-name`` signs), except for local clusters on Outposts, whose id is the cluster's
  ``id`` (what ``aws eks update-kubeconfig`` writes as ``--cluster-id`` for them). Entry names
  default to the cluster ARN, like aws, so an entry aws wrote is updated in place.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import enum
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeiam.admin.kubeconfig import roundtrip
from kubeiam.cluster_id import check_cluster_id
from kubeiam.errors import AWSAdminError, ConfigError
from kubeiam.fileio import KUBECTL_LOCK_WAIT_SECONDS, FileUpdate, locked_update

if TYPE_CHECKING:
    from mypy_boto3_eks import EKSClient


class ExecAPIVersion(enum.Enum):
    """The exec credential API versions kubeiam writes (v1alpha1 left kubectl in 1.24)."""

    V1 = "client.authentication.k8s.io/v1"
    V1BETA1 = "client.authentication.k8s.io/v1beta1"

    @classmethod
    def from_flag(cls, value: str) -> ExecAPIVersion:
        for member in cls:
            if member.value.rsplit("/", 1)[1] == value or member.value == value:
                return member
        raise ConfigError(f"unknown exec API version {value!r}", hint="use v1 or v1beta1")


#: kubectl refuses a v1 exec entry without it; see the module docstring for the choice.
INTERACTIVE_MODE = "IfAvailable"
#: Default executable, looked up on PATH by kubectl.
DEFAULT_COMMAND = "kubeiam"
INSTALL_HINT = (
    "kubeiam gets the token for this cluster: install it (pip install kubeiam) or rerun "
    "`kubeiam kubeconfig update --exec-command /path/to/kubeiam ...`"
)
#: The lists whose entries are keyed by ``name``; kubectl refuses a file where a name repeats.
NAMED_LISTS = ("clusters", "users", "contexts")
#: The keys of ``users[].user.exec`` kubeiam writes; any other key there is dropped.
EXEC_KEYS = ("apiVersion", "command", "args", "interactiveMode", "installHint")
#: EKS statuses in which the endpoint and certificate are final (aws accepts the same two).
_USABLE_STATUSES = ("ACTIVE", "UPDATING")
#: Keys whose values must not be shown in a --dry-run diff (other users' static credentials).
#: Found anywhere in a line (block style, or inside a flow mapping `{id-token: ...}`); the rest
#: of the line is hidden.
_SECRET_KEYS = re.compile(
    r"^(?P<lead>.*?(?<![\w-])[\"']?"
    r"(?:token|password|client-key-data|id-token|refresh-token|client-secret)"
    r"[\"']?\s*:\s*)\S.*$"
)


@dataclass(frozen=True, slots=True)
class ClusterEndpoint:
    """Where a cluster's API server is and how to trust it."""

    #: The name the user passed (`--cluster`).
    name: str
    server: str
    #: Base64 of the PEM CA bundle, as kubeconfig's ``certificate-authority-data`` wants it.
    ca_data: str
    #: What ``kubeiam token -i`` signs as ``x-k8s-aws-id``.
    cluster_id: str
    region: str | None = None
    #: EKS cluster ARN; None outside EKS.
    arn: str | None = None
    #: Things the user should know (e.g. the CA data is not a PEM certificate).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecPlugin:
    """``users[].user.exec``: `kubeiam token -i ID [--region R] [-r ARN] [--profile P]`."""

    cluster_id: str
    region: str | None = None
    role_arn: str | None = None
    profile: str | None = None
    api_version: ExecAPIVersion = ExecAPIVersion.V1
    command: str = DEFAULT_COMMAND
    #: ``(python, package_dir)`` of this installation: the entry runs the fast launcher
    #: (:mod:`kubeiam.token.launcher`) instead of ``command``; None writes ``command`` itself.
    launcher: tuple[str, str] | None = None

    def exec_command(self) -> tuple[str, list[str]]:
        """``(command, args)`` of the exec entry."""
        if self.launcher is None:
            return self.command, self.args()
        from kubeiam.token.launcher import launcher_command

        return launcher_command(*self.launcher, self.args())

    def install_hint(self) -> str:
        """The entry's ``installHint``: what the command is, and the fix when it is gone."""
        if self.launcher is None:
            return INSTALL_HINT
        from kubeiam.token.launcher import INSTALL_HINT as LAUNCHER_INSTALL_HINT

        return LAUNCHER_INSTALL_HINT

    def args(self) -> list[str]:
        args = ["token", "-i", self.cluster_id]
        if self.region:
            args += ["--region", self.region]
        if self.role_arn:
            args += ["--role-arn", self.role_arn]
        if self.profile:
            # An argument, not AWS_PROFILE in env: keys exported in the shell beat AWS_PROFILE.
            args += ["--profile", self.profile]
        return args


@dataclass(frozen=True, slots=True)
class KubeconfigEntry:
    """One cluster + user + context triple."""

    cluster_name: str
    user_name: str
    context_name: str
    server: str
    ca_data: str
    exec: ExecPlugin


@dataclass(frozen=True, slots=True)
class KubeconfigResult:
    """What :func:`update_kubeconfig` did (or would do, on a dry run)."""

    entry: KubeconfigEntry
    #: The file holding the entry, then (if different) the file holding current-context.
    updates: tuple[FileUpdate, ...]
    diff: str
    dry_run: bool
    warnings: tuple[str, ...] = field(default=())

    @property
    def path(self) -> Path:
        return self.updates[0].path

    @property
    def changed(self) -> bool:
        return any(u.changed for u in self.updates)


# --- building the entry (pure) ---------------------------------------------------------------


def build_entry(
    endpoint: ClusterEndpoint,
    *,
    role_arn: str | None = None,
    profile: str | None = None,
    api_version: ExecAPIVersion = ExecAPIVersion.V1,
    alias: str | None = None,
    user_alias: str | None = None,
    command: str = DEFAULT_COMMAND,
    launcher: tuple[str, str] | None = None,
) -> KubeconfigEntry:
    """The entry for ``endpoint``. Names default to the EKS ARN (like aws), else the name.

    The cluster id is checked by the rule `kubeiam token` applies, so no entry is written that
    could only fail when kubectl runs it."""
    check_cluster_id(endpoint.cluster_id, source="--cluster")
    base = endpoint.arn or endpoint.name
    plugin = ExecPlugin(
        cluster_id=endpoint.cluster_id,
        region=endpoint.region,
        role_arn=role_arn,
        profile=profile,
        api_version=api_version,
        command=command,
        launcher=launcher,
    )
    return KubeconfigEntry(
        cluster_name=base,
        user_name=user_alias or base,
        context_name=alias or base,
        server=endpoint.server,
        ca_data=endpoint.ca_data,
        exec=plugin,
    )


def check_ca_data(ca_data: str) -> tuple[str, ...]:
    """Validate ``certificate-authority-data``: strict base64 required; PEM only warned about.

    EKS always returns base64 of a PEM bundle; the local AWS environment (moto) returns random
    base64, which kubectl would refuse at TLS time. That is worth a warning, not a failure.
    """
    try:
        raw = base64.b64decode(ca_data, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "the cluster's certificate-authority data is not valid base64",
            hint="check the cluster's certificate (EKS: aws eks describe-cluster) or pass "
            "--server and --certificate-authority",
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in raw:
        return (
            "the cluster's certificate-authority data is not a PEM certificate; "
            "kubectl will not be able to verify the API server",
        )
    return ()


def endpoint_from_files(
    name: str,
    server: str,
    ca_file: Path,
    *,
    region: str | None = None,
    cluster_id: str | None = None,
) -> ClusterEndpoint:
    """A cluster outside EKS (kOps, kubeadm): server URL and a PEM CA file given by the user."""
    if not server.startswith("https://"):
        raise ConfigError(
            f"--server {server!r} is not an https:// URL", hint="pass the API server's https URL"
        )
    try:
        pem = ca_file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read --certificate-authority {ca_file}: {exc.strerror}"
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ConfigError(
            f"{ca_file} is not a PEM certificate",
            hint="pass the cluster CA in PEM form (-----BEGIN CERTIFICATE-----)",
        )
    ca_data = base64.b64encode(pem).decode("ascii")
    return ClusterEndpoint(name, server, ca_data, cluster_id or name, region, None)


def endpoint_from_eks(description: Mapping[str, Any], *, name: str) -> ClusterEndpoint:
    """A :class:`ClusterEndpoint` from an EKS DescribeCluster ``cluster`` object (pure)."""
    status = description.get("status")
    if status not in _USABLE_STATUSES:
        raise AWSAdminError(
            f"EKS cluster {name!r} is {status}, not ACTIVE",
            hint="wait until `aws eks describe-cluster` reports ACTIVE, then retry",
            code="ClusterNotReady",
        )
    arn = str(description.get("arn") or "")
    server = str(description.get("endpoint") or "")
    ca_data = str((description.get("certificateAuthority") or {}).get("data") or "")
    if not arn or not server or not ca_data:
        raise AWSAdminError(
            f"EKS cluster {name!r} has no endpoint or certificate yet",
            hint="wait until the cluster is ACTIVE, then retry",
            code="ClusterNotReady",
        )
    region = arn.split(":")[3] or None
    # Local clusters on Outposts sign tokens for their id, not their name.
    cluster_id = (
        str(description["id"])
        if description.get("outpostConfig") and description.get("id")
        else name
    )
    warnings = check_ca_data(ca_data)
    return ClusterEndpoint(name, server, ca_data, cluster_id, region, arn, warnings)


def describe_eks_cluster(eks: EKSClient, name: str) -> ClusterEndpoint:
    """DescribeCluster through ``eks`` (endpoint from AWS_ENDPOINT_URL_EKS if set)."""
    from kubeiam.aws.clients import translate_errors

    with translate_errors("eks:DescribeCluster", resource=name):
        description = eks.describe_cluster(name=name)["cluster"]
    return endpoint_from_eks(dict(description), name=name)


# --- editing the document (round trip) -------------------------------------------------------


def _parse(path: Path, text: str | None) -> tuple[Any, Any]:
    """(document, yaml instance configured to dump it like it was written)."""
    from ruamel.yaml.comments import CommentedMap

    doc, yaml = roundtrip.load(path, text)
    if doc is None:
        return _new_document(), yaml
    if not isinstance(doc, CommentedMap):
        raise ConfigError(f"{path} is not a kubeconfig (its top level is not a mapping)")
    check_unique_names(doc, path)
    return doc, yaml


def _line_of(items: Any, index: int) -> int | None:
    """1-based line of ``items[index]`` in the file, when ruamel recorded it."""
    try:
        return int(items.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def check_unique_names(doc: Any, path: Path) -> None:
    """Refuse a document where a name repeats within ``clusters``, ``users`` or ``contexts``:
    kubectl rejects such a file, and which entry kubeiam should update would be a guess."""
    problems: list[str] = []
    for key in NAMED_LISTS:
        items = doc.get(key)
        if not isinstance(items, list):
            continue
        lines: dict[str, list[int | None]] = {}
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str):
                lines.setdefault(name, []).append(_line_of(items, index))
        for name, found in lines.items():
            if len(found) > 1:
                at = [str(n) for n in found if n is not None]
                where = f" (lines {', '.join(at)})" if len(at) == len(found) else ""
                problems.append(f"{key}: {len(found)} entries named {_quote(name)}{where}")
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise ConfigError(
            f"{path} has duplicate names, which kubectl refuses: {'; '.join(problems[:3])}{more}; "
            "nothing was written",
            hint="delete or rename the extra entries (kubectl config delete-cluster / "
            "delete-user / delete-context NAME removes one), then retry",
        )


def _quote(name: str) -> str:
    """A name for a message: escaped (no control characters reach the terminal), bounded."""
    text = repr(name[:80])
    return text + "..." if len(name) > 80 else text


def _new_document() -> Any:
    from ruamel.yaml.comments import CommentedMap

    doc = CommentedMap()
    doc["apiVersion"] = "v1"
    doc["kind"] = "Config"
    doc["preferences"] = CommentedMap()
    doc["clusters"] = []
    doc["contexts"] = []
    doc["users"] = []
    doc["current-context"] = ""
    return doc


def _named_list(doc: Any, key: str, path: Path) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    items = doc.get(key)
    if items is None:
        items = CommentedSeq()
        doc[key] = items
    if not isinstance(items, list):
        raise ConfigError(f"{path}: `{key}` is not a list", hint="fix the file, then retry")
    return items


def _find(items: Any, name: str) -> Any | None:
    for item in items:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return None


def _sub(parent: Any, key: str) -> Any:
    from ruamel.yaml.comments import CommentedMap

    value = parent.get(key)
    if not isinstance(value, dict):
        value = CommentedMap()
        parent[key] = value
    return value


def _upsert(items: Any, name: str, body_key: str) -> Any:
    """The body mapping of entry ``name`` in ``items``, created (name first) when absent."""
    from ruamel.yaml.comments import CommentedMap

    item = _find(items, name)
    if item is None:
        # Follow the file's habit: kubectl writes `name` last, people often write it first.
        name_first = bool(items) and isinstance(items[0], dict) and next(iter(items[0])) == "name"
        item = CommentedMap()
        if name_first:
            item["name"] = name
        item[body_key] = CommentedMap()
        item["name"] = name
        items.append(item)
    return _sub(item, body_key)


def _set(mapping: Any, key: str, value: Any) -> None:
    """Assign only when different, so unchanged scalars keep their quoting style."""
    if mapping.get(key) != value:
        mapping[key] = value


def apply_entry(doc: Any, entry: KubeconfigEntry, *, switch: bool, path: Path) -> list[str]:
    """Upsert ``entry`` into a round-trip document: the keys kubeiam owns in the cluster and
    context entries, and the whole user entry. Returns notes on what was removed."""
    from ruamel.yaml.comments import CommentedSeq

    notes: list[str] = []
    cluster = _upsert(_named_list(doc, "clusters", path), entry.cluster_name, "cluster")
    _set(cluster, "server", entry.server)
    _set(cluster, "certificate-authority-data", entry.ca_data)
    cluster.pop("certificate-authority", None)  # both set is an error for kubectl
    if cluster.pop("insecure-skip-tls-verify", None):
        notes.append(
            f"cluster {_quote(entry.cluster_name)}: removed insecure-skip-tls-verify; the API "
            "server is verified with the cluster's CA now"
        )

    user = _upsert(_named_list(doc, "users", path), entry.user_name, "user")
    stale = [str(k) for k in user if k != "exec"]
    for key in stale:
        user.pop(key)  # a token, password, auth-provider or client cert beside exec
    exec_ = _sub(user, "exec")
    stale_exec = [str(k) for k in exec_ if k not in EXEC_KEYS]
    for key in stale_exec:
        exec_.pop(key)  # env (e.g. an AWS_PROFILE aws wrote), provideClusterInfo, ...
    if stale or stale_exec:
        keys = ", ".join([*stale, *(f"exec.{k}" for k in stale_exec)])
        notes.append(
            f"user {_quote(entry.user_name)}: replaced by the kubeiam exec entry; removed {keys}"
        )
    plugin = entry.exec
    _set(exec_, "apiVersion", plugin.api_version.value)
    command, args = plugin.exec_command()
    _set(exec_, "command", command)
    if list(exec_.get("args") or []) != args:
        seq = CommentedSeq(args)
        old_args = exec_.get("args")
        if isinstance(old_args, CommentedSeq) and old_args.fa.flow_style():
            seq.fa.set_flow_style()  # keep `args: [a, b]` on one line if it was written so
        exec_["args"] = seq
    if plugin.api_version is ExecAPIVersion.V1 or "interactiveMode" in exec_:
        _set(exec_, "interactiveMode", INTERACTIVE_MODE)
    _set(exec_, "installHint", plugin.install_hint())

    context = _upsert(_named_list(doc, "contexts", path), entry.context_name, "context")
    _set(context, "cluster", entry.cluster_name)
    _set(context, "user", entry.user_name)
    # any `namespace`, `extensions` the context has are left alone

    if switch:
        _set(doc, "current-context", entry.context_name)
    return notes


def render(
    path: Path,
    old_text: str | None,
    entry: KubeconfigEntry,
    *,
    switch: bool,
    notes: list[str] | None = None,
) -> str:
    """The new text of ``path`` with ``entry`` applied (pure apart from parsing); what was
    removed is appended to ``notes``."""
    doc, yaml = _parse(path, old_text)
    removed = apply_entry(doc, entry, switch=switch, path=path)
    if notes is not None:
        notes[:] = removed  # the last attempt's, if the caller retried
    return roundtrip.dump(doc, yaml)


def set_current_context(path: Path, old_text: str | None, context: str) -> str:
    doc, yaml = _parse(path, old_text)
    _set(doc, "current-context", context)
    return roundtrip.dump(doc, yaml)


# --- which file ------------------------------------------------------------------------------


def default_kubeconfig(home: Path) -> Path:
    return home / ".kube" / "config"


def kubeconfig_paths(flag: str | None, env: Mapping[str, str], home: Path) -> list[Path]:
    """Files kubectl would merge: ``--kubeconfig``, else ``$KUBECONFIG``, else ~/.kube/config."""
    if flag:
        return [Path(os.path.expanduser(flag))]
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        seen: list[Path] = []
        for p in listed:
            path = Path(os.path.expanduser(p))
            if path not in seen:
                seen.append(path)
        return seen
    return [default_kubeconfig(home)]


def _quick_load(path: Path) -> Mapping[str, Any] | None:
    from kubeiam.documents import parse_yaml
    from kubeiam.fileio import read_document_text

    text = read_document_text(path, missing_ok=True)  # bounded: kubeiam.documents' rules
    if text is None:
        return None
    data = parse_yaml(text, source=f"{path} (listed in KUBECONFIG)")
    return data if isinstance(data, dict) else None


def _defines(data: Mapping[str, Any], entry: KubeconfigEntry) -> bool:
    wanted = (
        ("clusters", entry.cluster_name),
        ("users", entry.user_name),
        ("contexts", entry.context_name),
    )
    for key, name in wanted:
        for item in data.get(key) or ():
            if isinstance(item, dict) and item.get("name") == name:
                return True
    return False


def choose_files(paths: Sequence[Path], entry: KubeconfigEntry) -> tuple[Path, Path | None]:
    """(file to write the entry to, file whose current-context kubectl uses or None).

    The entry goes to the first file that already defines its cluster, user or context (kubectl
    merges first-wins, so that is the definition in effect), else to the first file. The
    current-context in effect is the first non-empty one in the list.
    """
    if len(paths) == 1:
        return paths[0], paths[0]
    target: Path | None = None
    owner: Path | None = None
    for path in paths:
        data = _quick_load(path)
        if data is None:
            continue
        if target is None and _defines(data, entry):
            target = path
        if owner is None and data.get("current-context"):
            owner = path
    return (target or paths[0]), owner


# --- the command -----------------------------------------------------------------------------


def _redact(line: str) -> str:
    m = (
        _SECRET_KEYS.match(line[1:])
        if line[:1] in "+- " and line[:3] not in ("---", "+++")
        else None
    )
    if m:
        return line[:1] + m.group("lead") + "<redacted>"
    return line


def unified_diff(updates: Sequence[FileUpdate]) -> str:
    """A unified diff of ``updates`` with other users' credentials redacted."""
    chunks: list[str] = []
    for u in updates:
        old = (u.old_text or "").splitlines(keepends=True)
        new = u.new_text.splitlines(keepends=True)
        name = str(u.path)
        for line in difflib.unified_diff(old, new, fromfile=name, tofile=name):
            text = line if line.endswith("\n") else line + "\n"
            chunks.append(_redact(text.rstrip("\n")) + "\n")
    return "".join(chunks)


def update_kubeconfig(
    entry: KubeconfigEntry,
    paths: Sequence[Path],
    *,
    switch: bool = True,
    dry_run: bool = False,
    warnings: Sequence[str] = (),
    kubectl_lock_wait: float = KUBECTL_LOCK_WAIT_SECONDS,
) -> KubeconfigResult:
    """Write ``entry`` into the right file of ``paths`` (see :func:`choose_files`)."""
    target, owner = choose_files(paths, entry)
    separate_switch = switch and owner is not None and owner != target
    notes: list[str] = []
    updates = [
        locked_update(
            target,
            lambda old: render(
                target, old, entry, switch=switch and not separate_switch, notes=notes
            ),
            dry_run=dry_run,
            kubectl_lock=True,
            kubectl_lock_wait=kubectl_lock_wait,
        )
    ]
    if separate_switch:
        assert owner is not None
        updates.append(
            locked_update(
                owner,
                lambda old: set_current_context(owner, old, entry.context_name),
                dry_run=dry_run,
                kubectl_lock=True,
                kubectl_lock_wait=kubectl_lock_wait,
            )
        )
    return KubeconfigResult(
        entry, tuple(updates), unified_diff(updates), dry_run, (*warnings, *notes)
    )
