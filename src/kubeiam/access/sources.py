"""What the report reads from the cluster: its mapping rows and RBAC objects (I/O at the edge).

Which stores count, in the order the cluster's authenticator reads them (:func:`plan_sources`):

* ``--server-config F``: the server's own ``backendMode`` order: ``MountedFile`` is F's own
  ``mapRoles``/``mapUsers``/``mapGroups``/``mapAccounts``, ``DynamicFile`` its
  ``dynamicfilepath`` (principal ids count only with ``dynamicfileuseridstrict``),
  ``EKSConfigMap`` aws-auth, ``CRD`` the IAMIdentityMapping objects;
* otherwise, an EKS cluster (``--cluster NAME`` that EKS knows): its authentication mode decides:
  ``API`` access entries only, ``API_AND_CONFIG_MAP`` access entries then aws-auth (EKS uses
  the access entry when both name a principal), ``CONFIG_MAP`` aws-auth only;
* otherwise, whatever exists of: ``--file F``, aws-auth, IAMIdentityMapping objects (a cluster
  without the CRD installed has none).

Every store is read through the readers ``kubeiam mapping`` uses (the documents of
:mod:`kubeiam.admin.editing`, the server's own validation; :class:`~kubeiam.eks.entries_client.
EntriesClient` for access entries), and turned into rows by :mod:`kubeiam.access.rows`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kubeiam.access.report import AccessPolicyAssociation, MappingRow, RowKind
from kubeiam.access.rows import rows_from_entries
from kubeiam.eks.access_policies import AuthenticationMode
from kubeiam.eks.modes import reads_access_entries, reads_aws_auth
from kubeiam.errors import ConfigError, KubeAPIError

if TYPE_CHECKING:
    from kubeiam.eks.access_entries import AccessEntry
    from kubeiam.eks.entries_client import ClusterInfo

#: The store names rows carry (``principals[].source`` in the JSON).
AWS_AUTH = "aws-auth"
CRD = "crd"
FILE = "file"
ACCESS_ENTRIES = "access-entries"

#: The groups EKS gives node-type access entries (EC2_LINUX, EC2_WINDOWS, ...) whatever they hold.
NODE_GROUPS = ("system:bootstrappers", "system:nodes")


class StoreStep(enum.Enum):
    AWS_AUTH = AWS_AUTH
    CRD = CRD
    FILE = FILE
    ACCESS_ENTRIES = ACCESS_ENTRIES


@dataclass(frozen=True, slots=True)
class Step:
    """One store to read: which, the file for file stores, and how the server reads it."""

    store: StoreStep
    #: The file for FILE steps.
    path: Path | None = None
    #: A DynamicFile (JSON) rather than a server config's own lists.
    dynamic: bool = False
    #: DynamicFile with ``dynamicfileuseridstrict``: the entries' userids bind principals.
    strict: bool = False
    #: Read only if the store exists (no --server-config: "the stores that exist").
    optional: bool = False


@dataclass(frozen=True, slots=True)
class SourceRows:
    """One store's rows as read, with what reading it found (skipped entries ...)."""

    name: str
    target: str
    rows: tuple[MappingRow, ...]
    notes: tuple[str, ...] = ()


class EntriesReader(Protocol):
    """The part of :class:`~kubeiam.eks.entries_client.EntriesClient` the report uses."""

    def describe_cluster(self) -> ClusterInfo: ...

    def read_entries(self) -> list[AccessEntry]: ...


# -- which stores ------------------------------------------------------------------------------


def plan_from_server_config(path: Path) -> tuple[Step, ...]:
    """The steps ``kubeiam server --config path`` reads, in its backendMode order."""
    from kubeiam.server.config import BackendMode, read_config_file

    if not path.exists():
        raise ConfigError(
            f"--server-config {path}: no such file",
            hint="pass the config file kubeiam server runs with (its --config)",
        )
    values = read_config_file(path)
    modes: Sequence[BackendMode] = values.get("backend_mode") or (BackendMode.MOUNTED_FILE,)
    steps: list[Step] = []
    for mode in modes:
        if mode is BackendMode.MOUNTED_FILE:
            steps.append(Step(StoreStep.FILE, path))
        elif mode is BackendMode.DYNAMIC_FILE:
            dynamic = values.get("dynamic_file_path")
            if dynamic is None:
                raise ConfigError(
                    f"{path}: backendMode lists DynamicFile but dynamicfilepath is not set",
                    hint="set server.dynamicfilepath to the JSON mapping file",
                )
            strict = bool(values.get("dynamic_file_user_id_strict"))
            steps.append(Step(StoreStep.FILE, _beside(path, Path(dynamic)), True, strict))
        elif mode is BackendMode.EKS_CONFIG_MAP:
            steps.append(Step(StoreStep.AWS_AUTH))
        else:
            steps.append(Step(StoreStep.CRD))
    return tuple(steps)


def _beside(config: Path, target: Path) -> Path:
    """A relative dynamicfilepath is the server's working directory's; the report's best guess
    is the config file's directory (where a chart or unit mounts both)."""
    return target if target.is_absolute() else config.parent / target


def plan_for_mode(mode: AuthenticationMode) -> tuple[Step, ...]:
    """An EKS cluster's stores for its authentication mode (:mod:`kubeiam.eks.modes`: access
    entries first, since an entry wins over the principal's aws-auth row)."""
    steps = [Step(StoreStep.ACCESS_ENTRIES)] if reads_access_entries(mode) else []
    if reads_aws_auth(mode):
        steps.append(Step(StoreStep.AWS_AUTH, optional=True))
    return tuple(steps)


def plan_existing(file: Path | None) -> tuple[Step, ...]:
    """No server config and no EKS cluster: the file given, then the cluster's stores that
    exist (the order of the server's default chart values: file, aws-auth, CRD)."""
    steps = [Step(StoreStep.FILE, file, dynamic=file.suffix.lower() == ".json")] if file else []
    return (*steps, Step(StoreStep.AWS_AUTH, optional=True), Step(StoreStep.CRD, optional=True))


# -- reading -----------------------------------------------------------------------------------


def read_local_files(steps: Sequence[Step]) -> dict[Step, SourceRows]:
    """The file steps' rows, read before anything is asked of a cluster or of AWS (a bad file is
    refused at once, whatever the state of the cluster)."""
    return {
        step: read_file_rows(step.path, step.dynamic, step.strict)
        for step in steps
        if step.store is StoreStep.FILE and step.path is not None
    }


async def read_sources(
    steps: Sequence[Step],
    client: Any,
    entries: EntriesReader | None = None,
    already: Mapping[Step, SourceRows] | None = None,
) -> list[SourceRows]:
    """Every step's rows, in order (stores that are optional and absent are left out);
    ``already``: steps read before (:func:`read_local_files`)."""
    done = already or {}

    async def one(step: Step) -> SourceRows | None:
        return done[step] if step in done else await _read(step, client, entries)

    found = await asyncio.gather(*(one(step) for step in steps))
    return [rows for rows in found if rows is not None]


async def _read(step: Step, client: Any, entries: EntriesReader | None) -> SourceRows | None:
    if step.store is StoreStep.FILE:
        assert step.path is not None
        return await asyncio.to_thread(read_file_rows, step.path, step.dynamic, step.strict)
    if step.store is StoreStep.ACCESS_ENTRIES:
        assert entries is not None
        found = await asyncio.to_thread(entries.read_entries)
        return SourceRows(ACCESS_ENTRIES, "EKS access entries", tuple(entry_rows(found)))
    from kubeiam.admin.editing.kube_stores import AwsAuthStore, CrdStore

    if step.store is StoreStep.AWS_AUTH:
        snapshot = await AwsAuthStore(client).read()
        if not snapshot.exists and step.optional:
            return None
        return _document_rows(AWS_AUTH, "ConfigMap kube-system/aws-auth", snapshot.document)
    try:
        snapshot = await CrdStore(client).read()
    except KubeAPIError as exc:
        if step.optional and "not installed" in str(exc):
            return None
        raise
    return _document_rows(CRD, "IAMIdentityMapping objects", snapshot.document)


def read_file_rows(path: Path, dynamic: bool, strict: bool = False) -> SourceRows:
    """A server config's own lists, or a DynamicFile, as the server reads it."""
    from kubeiam.admin.editing.file_document import FileMappings
    from kubeiam.fileio import read_document_text

    text = read_document_text(path, missing_ok=True)
    if text is None:
        raise ConfigError(f"{path}: no such file", hint="check --file / --server-config")
    document = FileMappings(text, json_format=dynamic, name=str(path))
    return _document_rows(FILE, f"file {path}", document, keep_ids=dynamic and strict)


def _document_rows(name: str, target: str, document: Any, *, keep_ids: bool = False) -> SourceRows:
    loaded = document.load()
    if loaded.errors:
        # The server refuses such a store as a whole: the report says so rather than guess.
        first = loaded.errors[0]
        raise ConfigError(
            f"{target}: the server would refuse it: {first}",
            hint="`kubeiam mapping lint` shows every problem",
        )
    rows = rows_from_entries(loaded.mappings.entries, name)
    if not keep_ids:
        # Only access entries and a strict DynamicFile bind a principal id; elsewhere a userid
        # is not checked by the server, so it cannot show a recreated principal.
        rows = [dataclasses.replace(row, principal_id="") for row in rows]
    notes = tuple(f"{target}: skipped: {issue}" for issue in loaded.skipped)
    return SourceRows(name, target, tuple(rows), notes)


def entry_rows(entries: Sequence[AccessEntry]) -> list[MappingRow]:
    """EKS access entries as rows, with their access policies and scopes."""
    rows = []
    for entry in entries:
        groups = entry.groups or (NODE_GROUPS if entry.is_node else ())
        policies = tuple(
            AccessPolicyAssociation(grant.name, grant.scope, grant.namespaces)
            for grant in entry.policies
        )
        kind = RowKind.USER if entry.kind == "user" else RowKind.ROLE
        rows.append(
            MappingRow(
                ACCESS_ENTRIES,
                kind,
                entry.principal_arn,
                entry.username,
                groups,
                access_policies=policies,
                created_at=entry.created_at,
            )
        )
    return rows


def drop_shadowed(sources: Sequence[SourceRows]) -> tuple[list[SourceRows], list[str]]:
    """EKS's precedence: in ``API_AND_CONFIG_MAP`` a principal with an access entry gets that
    entry's identity and its aws-auth row is not used (AWS's "Set cluster authentication mode"
    page; :func:`kubeiam.eks.modes.decide` for one principal), so such rows leave the report,
    each with a note. Other sources are left alone."""
    from kubeiam.access.iam_graph import principal_key

    entries = {
        principal_key(row.principal)
        for source in sources
        if source.name == ACCESS_ENTRIES
        for row in source.rows
    }
    if not entries:
        return list(sources), []
    kept: list[SourceRows] = []
    notes: list[str] = []
    for source in sources:
        if source.name != AWS_AUTH:
            kept.append(source)
            continue
        rows = []
        for row in source.rows:
            if row.kind in (RowKind.ROLE, RowKind.USER) and principal_key(row.principal) in entries:
                notes.append(
                    f"aws-auth's row for {row.principal} is not used: its access entry wins"
                )
            else:
                rows.append(row)
        kept.append(dataclasses.replace(source, rows=tuple(rows)))
    return kept, notes


# -- RBAC --------------------------------------------------------------------------------------


async def read_rbac_objects(client: Any) -> Mapping[str, list[Mapping[str, Any]]]:
    """ClusterRoles, Roles, ClusterRoleBindings and RoleBindings of every namespace, as the API
    returns them (keys: the :class:`~kubeiam.access.rbac.RBAC` constructor's arguments)."""
    from lightkube.resources.rbac_authorization_v1 import (
        ClusterRole,
        ClusterRoleBinding,
        Role,
        RoleBinding,
    )

    from kubeiam.kube.objects import api_errors

    kinds = {
        "cluster_roles": (ClusterRole, {}),
        "roles": (Role, {"namespace": "*"}),
        "cluster_role_bindings": (ClusterRoleBinding, {}),
        "role_bindings": (RoleBinding, {"namespace": "*"}),
    }

    async def listed(kind: Any, options: Mapping[str, str]) -> list[Mapping[str, Any]]:
        def refused(code: int | None, exc: Exception) -> KubeAPIError:
            return KubeAPIError(
                f"cannot list {kind.__name__} objects: {exc}",
                hint="the report needs list on clusterroles, roles, clusterrolebindings and "
                "rolebindings (e.g. the view ClusterRole does not allow it; cluster-admin does)",
            )

        with api_errors(refused):
            return [obj.to_dict() async for obj in client.list(kind, **options)]

    results = await asyncio.gather(*(listed(kind, opts) for kind, opts in kinds.values()))
    return dict(zip(kinds, results, strict=True))
