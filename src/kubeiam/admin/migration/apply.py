"""`kubeiam migrate apply`: make the cluster hold a migration plan, undoably.

In order: refuse a plan that leaves no cluster admin; back aws-auth up with the aws-auth store's
own backup mechanism (the ConfigMap ``kube-system/aws-auth-kubeiam-backup``) when the cluster was
read, and keep its data in the record either way; switch CONFIG_MAP -> API_AND_CONFIG_MAP (the
only mode in which entries and aws-auth both count, so nobody loses access while entries are
added); create the planned entries, then their policies, change existing entries that differ,
and create the RBAC bindings for the groups that replace ``system:`` groups. Each change is
written to the record (:mod:`kubeiam.admin.migration.record`) as soon as it is made, so an
interrupted run can still be rolled back. Idempotent: what the cluster already holds needs no
step. A failure undoes every change this run made (the mode stays: it is one way) and the error
says so.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kubeiam.admin.migration.cluster_side import ClusterSide
from kubeiam.admin.migration.plan import (
    ChangeEntry,
    CreateBinding,
    CreateEntry,
    Step,
    held_back,
    steps_for,
)
from kubeiam.admin.migration.record import (
    BindingRef,
    MigrationRecord,
    load_record,
    save_record,
)
from kubeiam.admin.migration.rollback import restore, undo
from kubeiam.aws.clients import translate_errors
from kubeiam.eks.access_entries import STANDARD, AccessEntry
from kubeiam.eks.access_policies import AuthenticationMode
from kubeiam.eks.entries_client import ClusterInfo, EntriesClient
from kubeiam.eks.migration import Plan
from kubeiam.errors import GuardError, KubeIAMError

#: The mode apply moves a CONFIG_MAP cluster to: entries count, aws-auth still does too.
MIXED = AuthenticationMode.API_AND_CONFIG_MAP
#: How long apply waits for EKS to report the new mode (a real update takes minutes).
MODE_WAIT_SECONDS = 20 * 60
#: Seconds between DescribeCluster polls while waiting.
MODE_POLL_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Applied:
    record: MigrationRecord
    steps: tuple[str, ...]
    mode_switched: bool
    #: needs-rbac rows left on aws-auth (their bindings could not be copied), with the fix.
    skipped: tuple[str, ...] = ()


def apply_plan(
    plan: Plan,
    client: EntriesClient,
    info: ClusterInfo,
    *,
    record_file: Path,
    aws_auth: dict[str, str] | None,
    aws_auth_source: str,
    side: ClusterSide | None,
    by: str,
    command: str,
    now: str,
    progress: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = _time.sleep,
) -> Applied:
    if not plan.ok:
        raise GuardError(
            "the plan leaves no cluster admin; nothing was changed",
            hint="add a break-glass admin entry first (`kubeiam mapping add-role ARN --store "
            "access-entries --access-policy AmazonEKSClusterAdminPolicy`), then plan again",
        )
    record = load_record(record_file, info) or MigrationRecord(info.name, info.arn, info.mode.value)
    if record.finished:
        raise GuardError(
            f"the migration of {info.name} was finished at {record.finished} (mode API)",
            hint="change entries with `kubeiam mapping ... --store access-entries`",
        )
    if record.aws_auth_before is None and aws_auth is not None:
        where = f"kept in the record (read from {aws_auth_source})"
        if side is not None:
            progress("backing up aws-auth")
            where = side.backup_aws_auth(aws_auth, by=by, command=command, now=now)
        record = replace(record, aws_auth_before=dict(aws_auth), aws_auth_backup=where)
    save_record(record_file, record)
    switched = False
    if info.mode is AuthenticationMode.CONFIG_MAP:
        progress("switching the authentication mode to API_AND_CONFIG_MAP (one way)")
        switch_mode(client, MIXED, sleep=sleep)
        switched = True
        record = record.with_event(f"{now} {by}: mode CONFIG_MAP -> API_AND_CONFIG_MAP")
        save_record(record_file, record)
    steps = steps_for(plan, client.read_entries(), can_bind=side is not None)
    skipped = tuple(
        f"{row.source} {row.written}: needs its RBAC bindings copied first; it stays on "
        "aws-auth (run apply with --kubeconfig)"
        for row in held_back(plan, can_bind=side is not None)
    )
    created: list[AccessEntry] = []
    changed: list[tuple[AccessEntry, AccessEntry]] = []
    bindings: list[BindingRef] = []
    done: list[str] = []

    def keep() -> None:
        save_record(
            record_file,
            replace(
                record,
                created=(*record.created, *created),
                changed=(*record.changed, *changed),
                bindings=(*record.bindings, *bindings),
            ),
        )

    try:
        for number, step in enumerate(steps, 1):
            progress(f"[{number}/{len(steps)}] {describe(step)}")
            _do(step, client, side, created, changed, bindings)
            keep()
            done.append(describe(step))
    except KubeIAMError as exc:
        progress(f"failed ({exc.message}); undoing what this run changed")
        try:
            undo(client, side, created=created, changed=changed, bindings=bindings)
        except KubeIAMError as again:
            raise KubeIAMError(
                f"{exc.message}; undoing this run failed too ({again.message}): the record "
                f"{record_file} lists what is left",
                hint="run `kubeiam migrate rollback` once the cause is fixed",
            ) from None
        created.clear()
        changed.clear()
        bindings.clear()
        keep()
        mode = f" (the mode stays {MIXED.value}: it is one way)" if switched else ""
        raise type(exc)(
            f"{exc.message}; every change this run made was undone{mode}",
            hint=exc.hint,
            code=exc.code,
        ) from None
    record = load_record(record_file) or record
    record = record.with_event(f"{now} {by}: applied {len(done)} step(s)")
    save_record(record_file, record)
    return Applied(record, tuple(done), switched, skipped)


def _do(
    step: Step,
    client: EntriesClient,
    side: ClusterSide | None,
    created: list[AccessEntry],
    changed: list[tuple[AccessEntry, AccessEntry]],
    bindings: list[BindingRef],
) -> None:
    if isinstance(step, CreateEntry):
        entry = step.entry
        client.create(replace(entry, policies=()), username_given=entry.entry_type == STANDARD)
        created.append(entry)  # recorded before its policies: a failed association is undone
        for grant in entry.policies:
            client.associate(entry.principal_arn, grant)
    elif isinstance(step, ChangeEntry):
        changed.append((step.before, step.after))  # recorded first: a half change is undone
        restore(client, step.after, step.before)
    elif isinstance(step, CreateBinding):
        if side is None:
            raise GuardError(
                f"the plan creates {step.binding.kind} {step.binding.name} for "
                f"{step.binding.group}; that needs the cluster",
                hint="pass --kubeconfig, or remove the needs-rbac rows from the plan",
            )
        binding = step.binding
        if side.create_binding(binding):
            bindings.append(BindingRef(binding.kind, binding.name, binding.namespace))


def describe(step: Step) -> str:
    if isinstance(step, CreateEntry):
        policies = " ".join(p.describe() for p in step.entry.policies)
        return (
            f"create {step.entry.entry_type} entry {step.entry.principal_arn} "
            f"({step.source}){' with ' + policies if policies else ''}"
        )
    if isinstance(step, ChangeEntry):
        return f"change the entry of {step.before.principal_arn} to the plan ({step.source})"
    where = f" in {step.binding.namespace}" if step.binding.namespace else ""
    return f"create {step.binding.kind} {step.binding.name}{where} for group {step.binding.group}"


def switch_mode(
    client: EntriesClient,
    mode: AuthenticationMode,
    *,
    sleep: Callable[[float], None] = _time.sleep,
    clock: Callable[[], float] = _time.monotonic,
) -> None:
    """UpdateClusterConfig to ``mode`` and wait until DescribeCluster reports it."""
    with translate_errors("eks:UpdateClusterConfig", resource=client.cluster):
        client.eks.update_cluster_config(
            name=client.cluster, accessConfig={"authenticationMode": mode.value}
        )
    deadline = clock() + MODE_WAIT_SECONDS
    while client.describe_cluster().mode is not mode:
        if clock() > deadline:
            raise KubeIAMError(
                f"EKS did not report mode {mode.value} within {MODE_WAIT_SECONDS // 60} minutes",
                hint=f"check `aws eks describe-cluster --name {client.cluster}`, then run the "
                "command again",
            )
        sleep(MODE_POLL_SECONDS)
