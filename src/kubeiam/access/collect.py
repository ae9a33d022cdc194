"""Read everything one report needs, concurrently (I/O at the edge).

Three reads that do not wait for each other: IAM (one bulk GetAccountAuthorizationDetails
pass and one credential report, on a worker thread since boto3 blocks), the mapping stores
(:mod:`kubeiam.access.sources`) and the RBAC objects (the Kubernetes API, async). The result,
:class:`Inputs`, is what :func:`kubeiam.access.report.build_report` and
:func:`~kubeiam.access.report.who_can` take.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubeiam.access.iam_graph import AccountIAM, IAMGraph
from kubeiam.access.rbac import RBAC
from kubeiam.access.report import MappingRow
from kubeiam.access.sources import (
    EntriesReader,
    SourceRows,
    Step,
    drop_shadowed,
    plan_existing,
    plan_for_mode,
    plan_from_server_config,
    read_local_files,
    read_rbac_objects,
    read_sources,
)
from kubeiam.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class Inputs:
    sources: tuple[SourceRows, ...]
    account: AccountIAM
    rbac: RBAC
    access_keys: Mapping[str, Sequence[datetime]]
    #: What the reads want the reader to know (a store skipped, an entry ignored ...).
    notes: tuple[str, ...]

    @property
    def rows(self) -> list[MappingRow]:
        return [row for source in self.sources for row in source.rows]

    def graph(self) -> IAMGraph:
        return IAMGraph(self.account)


@dataclass(frozen=True, slots=True)
class Where:
    """What the flags say about where to read."""

    server_config: Path | None = None
    file: Path | None = None
    #: The EKS cluster's access entries, or None when --cluster is not given.
    entries: EntriesReader | None = None
    cluster: str = ""


def plan(where: Where) -> tuple[tuple[Step, ...], EntriesReader | None, list[str]]:
    """The stores to read (see :mod:`kubeiam.access.sources`), the access-entry reader when
    they include access entries, and notes for the reader. Talks to EKS once (DescribeCluster)
    when --cluster is given without --server-config."""
    if where.server_config is not None:
        return plan_from_server_config(where.server_config), None, []
    if where.entries is None:
        return plan_existing(where.file), None, []
    try:
        info = where.entries.describe_cluster()
    except NotFoundError:
        note = (
            f"{where.cluster} is not an EKS cluster in this region: no access entries read "
            "(pass --region if it is one)"
        )
        return plan_existing(where.file), None, [note]
    steps = plan_for_mode(info.mode)
    if where.file is not None:
        steps = (*plan_existing(where.file)[:1], *steps)
    return steps, where.entries, [f"EKS authentication mode {info.mode.value}"]


async def collect(
    where: Where,
    open_client: Callable[[], Any],
    read_iam: Callable[[], IAMRead],
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> Inputs:
    """Read IAM, the stores and RBAC at the same time; any failure is the command's error.

    Local files (``--server-config`` and the files it names, ``--file``) are read first, so a
    bad file is refused before ``open_client`` (the Kubernetes client) or AWS is asked anything.
    """
    steps, entries, notes = await asyncio.to_thread(plan, where)
    local = await asyncio.to_thread(read_local_files, steps)
    client = open_client()
    try:
        return await _gather(steps, entries, notes, local, client, read_iam, progress)
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            await close()


async def _gather(
    steps: Sequence[Step],
    entries: EntriesReader | None,
    notes: list[str],
    local: Mapping[Step, SourceRows],
    client: Any,
    read_iam: Callable[[], IAMRead],
    progress: Callable[[str], None],
) -> Inputs:
    async def iam() -> IAMRead:
        found = await asyncio.to_thread(read_iam)
        progress(f"IAM read: {len(found.account.users)} users, {len(found.account.roles)} roles")
        return found

    async def stores() -> list[SourceRows]:
        found = await read_sources(steps, client, entries, local)
        progress(f"mappings read: {sum(len(s.rows) for s in found)} rows")
        return found

    async def rbac() -> RBAC:
        objects = await read_rbac_objects(client)
        progress(f"RBAC read: {sum(len(v) for v in objects.values())} objects")
        return RBAC(
            objects["cluster_roles"],
            objects["roles"],
            objects["cluster_role_bindings"],
            objects["role_bindings"],
        )

    read, found, rbac_index = await asyncio.gather(iam(), stores(), rbac())
    sources, shadowed = drop_shadowed(found)
    notes = notes + list(read.notes) + [n for s in sources for n in s.notes] + shadowed
    return Inputs(tuple(sources), read.account, rbac_index, read.key_ages, tuple(notes))


@dataclass(frozen=True, slots=True)
class IAMRead:
    account: AccountIAM
    #: User ARN -> creation times of its active access keys; empty when not readable.
    key_ages: Mapping[str, Sequence[datetime]]
    notes: tuple[str, ...] = ()


#: Refusals of the credential report that leave the rest of the report standing.
_REFUSED = frozenset({"AccessDenied", "AccessDeniedException"})


def read_account_iam(clients: Any, *, key_ages: bool = True) -> IAMRead:
    """The account of the caller's credentials (``clients``: :class:`kubeiam.aws.clients.
    AWSClients`) and its users' active access-key ages. Without the authorization details there
    is no report (an error); without the credential report only the old-key finding is missing,
    which the notes say rather than the report pretending no key is old."""
    from kubeiam.access.iam_reader import read_access_key_ages, read_account
    from kubeiam.aws.clients import translate_errors
    from kubeiam.errors import AWSAdminError

    with translate_errors("sts:GetCallerIdentity"):
        account_id = str(clients.sts.get_caller_identity()["Account"])
    account = read_account(clients.iam, account_id=account_id)
    if not key_ages:
        return IAMRead(account, {})
    try:
        ages = read_access_key_ages(clients.iam)
    except AWSAdminError as exc:
        if exc.code not in _REFUSED:
            raise
        note = (
            f"access-key ages not read ({exc.code} on the credential report): old keys reaching "
            "cluster-admin are not checked (allow iam:GenerateCredentialReport and "
            "iam:GetCredentialReport)"
        )
        return IAMRead(account, {}, (note,))
    return IAMRead(account, ages)
