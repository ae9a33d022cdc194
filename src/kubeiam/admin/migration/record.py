"""The record `migrate apply` keeps of what it created and changed, for `verify`, `finish` and
`rollback`.

EKS cannot tell which entries and associations a migration made (associations cannot be tagged;
an entry someone made by hand looks the same), so this record is what rollback trusts: the
entries apply created, the entries it changed with their previous state, the RBAC bindings it
created, the mode the cluster had before, and aws-auth's data as apply read it.

Where it lives: a local file, ``$KUBEIAM_STATE_DIR`` (default ``$XDG_STATE_HOME/kubeiam``, else
``~/.local/state/kubeiam``) ``/migrations/<account>-<region>-<cluster>.json``, 0600, beside the
access-entries store's backups, or the file ``--record FILE`` names. Not a ConfigMap beside
aws-auth: once apply has run, the cluster is in API_AND_CONFIG_MAP and an access entry wins over
the principal's aws-auth row, so a wrong entry for the admin's own role can lock that admin out
of the Kubernetes API, which is exactly when rollback is needed; the record must be readable with
AWS credentials alone, as the entries it undoes are. A team that runs the migration from several
machines passes the same ``--record FILE`` (a shared, private location).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubeiam.eks.access_entries import AccessEntry
from kubeiam.eks.entries_client import ClusterInfo
from kubeiam.errors import ConfigError, MappingError

RECORD_KIND = "kubeiam-migration-record"
RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class BindingRef:
    kind: str
    name: str
    namespace: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "namespace": self.namespace}

    def describe(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass(frozen=True, slots=True)
class MigrationRecord:
    cluster: str
    cluster_arn: str
    #: The mode before the first apply (the mode is one way: rollback cannot restore it).
    mode_before: str
    #: aws-auth's data as apply read it; None when it was not read (no kubeconfig and no file).
    aws_auth_before: dict[str, str] | None = None
    #: Where aws-auth was backed up (the backup ConfigMap and revision, or the file read).
    aws_auth_backup: str = ""
    created: tuple[AccessEntry, ...] = ()
    #: (previous state, state apply gave it) of each entry apply changed.
    changed: tuple[tuple[AccessEntry, AccessEntry], ...] = ()
    bindings: tuple[BindingRef, ...] = ()
    #: Time of `migrate finish`; rollback is refused after it.
    finished: str = ""
    history: tuple[str, ...] = field(default_factory=tuple)

    def with_event(self, text: str) -> MigrationRecord:
        return replace(self, history=(*self.history, text))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": RECORD_KIND,
            "version": RECORD_VERSION,
            "cluster": self.cluster,
            "clusterArn": self.cluster_arn,
            "modeBefore": self.mode_before,
            "awsAuthBefore": self.aws_auth_before,
            "awsAuthBackup": self.aws_auth_backup,
            "created": [e.to_json() for e in self.created],
            "changed": [{"before": b.to_json(), "after": a.to_json()} for b, a in self.changed],
            "bindings": [b.to_json() for b in self.bindings],
            "finished": self.finished or None,
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, raw: Any, *, source: str) -> MigrationRecord:
        try:
            if raw.get("kind") != RECORD_KIND or raw.get("version") != RECORD_VERSION:
                raise ValueError(f"kind/version is not {RECORD_KIND}/{RECORD_VERSION}")
            before = raw.get("awsAuthBefore")
            return cls(
                str(raw["cluster"]),
                str(raw["clusterArn"]),
                str(raw["modeBefore"]),
                {str(k): str(v) for k, v in before.items()} if before is not None else None,
                str(raw.get("awsAuthBackup") or ""),
                tuple(AccessEntry.from_json(e) for e in raw.get("created") or ()),
                tuple(
                    (AccessEntry.from_json(c["before"]), AccessEntry.from_json(c["after"]))
                    for c in raw.get("changed") or ()
                ),
                tuple(
                    BindingRef(str(b["kind"]), str(b["name"]), str(b.get("namespace") or ""))
                    for b in raw.get("bindings") or ()
                ),
                str(raw.get("finished") or ""),
                tuple(str(h) for h in raw.get("history") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError, MappingError) as exc:
            raise ConfigError(
                f"{source} is not a kubeiam migration record ({type(exc).__name__}: {exc})",
                hint="pass the --record file `kubeiam migrate apply` wrote, or move this one away",
            ) from None


def record_path(state: Path, info: ClusterInfo) -> Path:
    """The record of one cluster (account, region and name identify it)."""
    return state / "migrations" / f"{info.account}-{info.region}-{info.name}.json"


def load_record(path: Path, info: ClusterInfo | None = None) -> MigrationRecord | None:
    """The record at ``path``; None when there is none. With ``info``, a record of another
    cluster is a ConfigError (a --record mix-up would delete the wrong entries)."""
    from kubeiam.documents import load_json
    from kubeiam.fileio import read_document_text

    text = read_document_text(path, missing_ok=True)
    if text is None:
        return None
    record = MigrationRecord.from_json(load_json(text, source=str(path)), source=str(path))
    if info is not None and record.cluster_arn != info.arn:
        raise ConfigError(
            f"{path} is the migration record of {record.cluster_arn}, not of {info.arn}",
            hint="pass the --record file `kubeiam migrate apply` wrote for this cluster",
        )
    return record


def save_record(path: Path, record: MigrationRecord) -> None:
    """Write ``record`` atomically (0600); its directory is created private."""
    from kubeiam.fileio import ensure_private_dir, write_private_file

    ensure_private_dir(path.parent)
    write_private_file(path, json.dumps(record.to_json(), indent=2) + "\n")
