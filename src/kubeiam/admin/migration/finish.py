"""`kubeiam migrate finish`: switch the cluster to mode API, which cannot be undone.

Refused unless `migrate verify` passes (every migrated principal gets the planned identity from
its access entry) and a break-glass admin entry exists (an entry with
AmazonEKSClusterAdminPolicy on the whole cluster): in API EKS no longer reads aws-auth, and EKS
never moves a cluster's mode back. aws-auth is backed up again (it may have changed since apply)
and never deleted: the command that deletes it is printed, for a person to run once they are
sure. After finish, rollback is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kubeiam.admin.migration.apply import switch_mode
from kubeiam.admin.migration.cluster_side import ClusterSide
from kubeiam.admin.migration.record import MigrationRecord, save_record
from kubeiam.admin.migration.verify import Verification
from kubeiam.eks.access_policies import AuthenticationMode
from kubeiam.eks.entries_client import EntriesClient
from kubeiam.errors import GuardError
from kubeiam.mapping.aws_auth import AWS_AUTH_NAME, AWS_AUTH_NAMESPACE

#: What a person runs to delete aws-auth once the cluster is in API (finish never does).
DELETE_COMMAND = f"kubectl -n {AWS_AUTH_NAMESPACE} delete configmap {AWS_AUTH_NAME}"


@dataclass(frozen=True, slots=True)
class Finished:
    record: MigrationRecord
    backup: str
    delete_command: str = DELETE_COMMAND


def check_finish(verification: Verification) -> None:
    """GuardError unless finishing is safe (see the module docstring)."""
    if not verification.ok:
        bad = [c for c in verification.checks if c.status != "ok"]
        raise GuardError(
            f"verify fails for {len(bad)} principal(s) ({bad[0].principal}: {bad[0].status}); "
            "the switch to API would change their access",
            hint="run `kubeiam migrate verify`, fix what it lists (or `migrate apply` again)",
        )
    if not verification.admins:
        raise GuardError(
            "no break-glass admin: no access entry has AmazonEKSClusterAdminPolicy on the "
            "cluster, and in API nobody could administer it",
            hint="kubeiam mapping add-role ARN --store access-entries --cluster NAME "
            "--access-policy AmazonEKSClusterAdminPolicy",
        )


def finish(
    record: MigrationRecord,
    verification: Verification,
    client: EntriesClient,
    *,
    record_file: Path,
    aws_auth: dict[str, str] | None,
    side: ClusterSide | None,
    by: str,
    command: str,
    now: str,
    progress: Callable[[str], None] = lambda _: None,
) -> Finished:
    check_finish(verification)
    backup = record.aws_auth_backup
    if aws_auth is not None:
        if side is not None:
            progress("backing up aws-auth")
            backup = side.backup_aws_auth(aws_auth, by=by, command=command, now=now)
        record = replace(record, aws_auth_before=record.aws_auth_before or dict(aws_auth))
    progress("switching the authentication mode to API (cannot be undone)")
    switch_mode(client, AuthenticationMode.API)
    record = replace(record, finished=now).with_event(f"{now} {by}: mode -> API (finished)")
    save_record(record_file, record)
    return Finished(record, backup)
