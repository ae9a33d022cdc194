"""The mapping editor (guards, backups, retries), lint and explain, on the local file store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeiam.admin.editing.aws_auth_document import AwsAuthMappings
from kubeiam.admin.editing.backups import BACKUP_HISTORY
from kubeiam.admin.editing.editor import MappingEditor
from kubeiam.admin.editing.explain import explain
from kubeiam.admin.editing.file_document import FileMappings
from kubeiam.admin.editing.file_store import FileStore
from kubeiam.admin.editing.guards import check_guards
from kubeiam.admin.editing.lint import Level, lint
from kubeiam.admin.editing.store import Snapshot
from kubeiam.admin.editing.store_writer import StoreMappingWriter
from kubeiam.admin.editing.writer import MappingChange
from kubeiam.errors import ConflictError, GuardError, MappingError
from kubeiam.mapping.aws_auth import Change, read_aws_auth

ACCOUNT = "111122223333"
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/NodeRole"
NODES = f"""\
- rolearn: {NODE_ROLE}
  username: system:node:{{{{EC2PrivateDNSName}}}}
  groups:
  - system:bootstrappers
  - system:nodes
"""
MASTER = f"""\
- userarn: arn:aws:iam::{ACCOUNT}:user/admin
  username: admin
  groups:
  - system:masters
"""
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def load(**data: str):  # type: ignore[no-untyped-def]
    return read_aws_auth(data)


# -- guards ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "needle"),
    [
        ({"mapRoles": NODES}, {}, "every node using role " + NODE_ROLE),
        (
            {"mapRoles": NODES},
            {"mapRoles": NODES.replace("system:nodes", "other")},
            "changes the node entry",
        ),
        ({"mapUsers": MASTER}, {}, "last system:masters"),
        (
            {"mapUsers": MASTER},
            {"mapUsers": MASTER.replace("system:masters", "view")},
            "last system:masters",
        ),
    ],
    ids=["node-removed", "node-changed", "last-master-removed", "last-master-demoted"],
)
def test_guards_refuse_without_force(
    before: dict[str, str], after: dict[str, str], needle: str
) -> None:
    with pytest.raises(GuardError, match=needle) as caught:
        check_guards(load(**before), load(**after), force=False)
    assert caught.value.exit_code == 5
    assert "no undo" in str(caught.value) or "cluster-admin" in str(caught.value)
    assert check_guards(load(**before), load(**after), force=True)  # says what it overrode


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"mapRoles": NODES}, {"mapRoles": NODES, "mapUsers": MASTER}),
        ({"mapUsers": MASTER}, {"mapUsers": MASTER + MASTER.replace("admin", "other")}),
        ({"mapUsers": MASTER + MASTER.replace("admin", "other")}, {"mapUsers": MASTER}),
        ({}, {}),
    ],
    ids=["add-next-to-nodes", "second-master", "one-master-left", "empty"],
)
def test_guards_allow_safe_changes(before: dict[str, str], after: dict[str, str]) -> None:
    assert check_guards(load(**before), load(**after), force=False) == []


# -- the editor on a real file -----------------------------------------------------------------


def editor(path: Path, **kwargs: object) -> MappingEditor:
    return MappingEditor(FileStore(path), now=lambda: NOW, by="tester", command="test", **kwargs)  # type: ignore[arg-type]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_edit_backs_up_the_previous_state_first(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"mapRoles": []}\n')
    result = run(editor(path).edit(lambda d: d.add_account(ACCOUNT)))
    assert result.change is Change.ADDED
    assert result.written
    records = run(FileStore(path).backups())
    assert [(r.revision, r.state, r.by, r.time) for r in records] == [
        (1, '{"mapRoles": []}\n', "tester", "2026-11-23T12:00:00+00:00")
    ]


def test_unchanged_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    run(editor(path).edit(lambda d: d.add_account(ACCOUNT), creates=True))
    text, mtime = path.read_text(), path.stat().st_mtime_ns
    result = run(editor(path).edit(lambda d: d.add_account(ACCOUNT)))
    assert result.change is Change.UNCHANGED
    assert not result.written
    assert (path.read_text(), path.stat().st_mtime_ns) == (text, mtime)


def test_history_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}\n")
    ed = editor(path)
    for i in range(BACKUP_HISTORY + 2):
        run(ed.edit(lambda d, i=i: d.add_account(f"{i:012d}")))
    records = run(FileStore(path).backups())
    assert [r.revision for r in records] == list(range(3, BACKUP_HISTORY + 3))


class RacedFileStore(FileStore):
    """A file store whose file another writer changes right after each of the first reads.

    The conflict is real: the other writer's text is on disk when our conditional write runs."""

    def __init__(self, path: Path, races: int) -> None:
        super().__init__(path)
        self.races = races
        self.reads = 0

    async def read(self, *, missing_ok: bool = False) -> Snapshot:
        snapshot = await super().read(missing_ok=missing_ok)
        self.reads += 1
        if self.reads <= self.races:
            other = FileMappings(self.path.read_text(), json_format=True)
            other.add_account(f"{self.reads:012d}")
            self.path.write_text(other.text())
        return snapshot


def test_conflicts_are_retried_with_a_fresh_read(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}\n")
    store = RacedFileStore(path, races=2)
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    ed = MappingEditor(store, now=lambda: NOW, sleep=sleep, random=lambda: 0.5)
    result = run(ed.edit(lambda d: d.add_account(ACCOUNT)))
    assert result.attempts == 3
    assert len(pauses) == 2
    assert pauses[1] > pauses[0] > 0
    accounts = FileMappings(path.read_text(), json_format=True).load().mappings.accounts
    assert sorted(accounts) == ["000000000001", "000000000002", ACCOUNT]  # nothing lost


def test_conflicts_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}\n")

    async def sleep(seconds: float) -> None:
        return None

    ed = MappingEditor(RacedFileStore(path, races=99), now=lambda: NOW, sleep=sleep, attempts=3)
    with pytest.raises(ConflictError, match="3 attempts"):
        run(ed.edit(lambda d: d.add_account(ACCOUNT)))


def test_dry_run_returns_the_diff_and_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}\n")
    result = run(editor(path).edit(lambda d: d.add_account(ACCOUNT), dry_run=True))
    assert not result.written
    assert '+  "mapAccounts": [' in result.diff
    assert path.read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_a_change_that_breaks_the_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(
        '{"mapUsers": [{"userarn": "arn:aws:iam::111122223333:user/a", "username": "a"}]}'
    )

    # A hand edit gone wrong, put back through `restore`: a second, conflicting entry for user a.
    conflicting = (
        '{"mapUsers": [{"userarn": "arn:aws:iam::111122223333:user/a", "username": "a"}, '
        '{"userarn": "arn:aws:iam::111122223333:user/a", "username": "b"}]}\n'
    )
    before = path.read_text()

    with pytest.raises(MappingError, match="invalid mapping"):
        run(editor(path).restore(conflicting))
    assert path.read_text() == before


def test_restore_backs_up_first_and_is_guarded(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"server:\n  mapRoles:\n  - rolearn: {NODE_ROLE}\n    username: system:node:x\n"
    )
    ed = editor(path)
    with pytest.raises(GuardError):
        run(ed.restore("{}\n"))
    result = run(ed.restore("server:\n  mapRoles: []\n", force=True))
    assert result.change is Change.REPLACED
    assert path.read_text() == "server:\n  mapRoles: []\n"
    assert NODE_ROLE in run(FileStore(path).backups())[-1].state


def test_store_mapping_writer_is_the_iam_seam(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    writer = StoreMappingWriter(lambda: FileStore(path), now=lambda: NOW, target=f"file {path}")
    user = f"arn:aws:iam::{ACCOUNT}:user/kubedemy"
    assert writer.add_user(user, "kubedemy", ["system:masters"]) is MappingChange.ADDED
    assert writer.add_user(user, "kubedemy", ["system:masters"]) is MappingChange.UNCHANGED
    with pytest.raises(MappingError):
        writer.add_user(user, "other", ["x"])
    role = f"arn:aws:iam::{ACCOUNT}:role/Admins"
    assert writer.add_role(role, "admins", ["admins"]) is MappingChange.ADDED
    assert writer.remove(role) is MappingChange.REMOVED
    assert writer.remove(role) is MappingChange.ABSENT
    with pytest.raises(GuardError, match="last system:masters"):
        writer.remove(user)
    assert writer.target == f"file {path}"


# -- lint ------------------------------------------------------------------------------------


def codes(findings: list) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(f.code, f.level.value) for f in findings}


def test_lint_missing_node_role_only_when_nodes_exist() -> None:
    result = load(mapUsers=MASTER)
    assert ("missing-node-role", "error") in codes(
        lint(result, backend="EKSConfigMap", node_count=3)
    )
    assert "missing-node-role" not in {
        f.code for f in lint(result, backend="EKSConfigMap", node_count=0)
    }
    assert ("missing-node-role", "warning") in codes(lint(result, backend="CRD", node_count=3))
    assert "missing-node-role" not in {
        f.code for f in lint(load(mapRoles=NODES), backend="EKSConfigMap", node_count=3)
    }


def test_lint_reserved_prefix_depends_on_the_backend() -> None:
    result = load(mapRoles=NODES)
    assert not [f for f in lint(result, backend="EKSConfigMap") if f.level is Level.ERROR]
    assert ("reserved-prefix", "error") in codes(lint(result, backend="CRD"))


def test_lint_account_shadowing_and_account_wide() -> None:
    result = load(mapUsers=MASTER, mapAccounts=f'- "{ACCOUNT}"\n')
    found = codes(lint(result, backend="EKSConfigMap"))
    assert {
        ("shadowed", "warning"),
        ("account-wide", "warning"),
        ("system-masters", "warning"),
    } <= found


# -- explain ---------------------------------------------------------------------------------


def mappings(**data: str):  # type: ignore[no-untyped-def]
    return AwsAuthMappings(data).load().mappings


def test_explain_renders_templates_it_can() -> None:
    roles = (
        f"- rolearn: arn:aws:iam::{ACCOUNT}:role/Dev\n"
        "  username: dev:{{SessionName}}:{{AccountID}}\n  groups: [dev]\n"
    )
    found = explain(
        mappings(mapRoles=roles),
        f"arn:aws:iam::{ACCOUNT}:role/Dev",
        backend="EKSConfigMap",
        target="t",
    )
    assert found.matched
    assert found.username == f"dev:{{{{SessionName}}}}:{ACCOUNT}"
    assert any("--session-name" in n for n in found.notes)
    with_session = explain(
        mappings(mapRoles=roles),
        f"arn:aws:iam::{ACCOUNT}:role/Dev",
        backend="EKSConfigMap",
        target="t",
        session_name="a@b",
    )
    assert with_session.username == f"dev:a-b:{ACCOUNT}"


def test_explain_role_path_in_the_question() -> None:
    found = explain(
        mappings(mapRoles=NODES),
        f"arn:aws:iam::{ACCOUNT}:role/some/path/NodeRole",
        backend="EKSConfigMap",
        target="t",
    )
    assert found.matched
    assert found.canonical_arn == NODE_ROLE
    assert any("has an IAM path" in n for n in found.notes)
    assert found.username == "system:node:{{EC2PrivateDNSName}}"


@pytest.mark.parametrize(
    ("arn", "needle"),
    [
        ("arn:aws:iam::999999999999:role/NodeRole", "is for account 111122223333"),
        (f"arn:aws:iam::{ACCOUNT}:user/NodeRole", "maps an IAM role of that name"),
        (f"arn:aws:iam::{ACCOUNT}:role/Other", f"account {ACCOUNT} is not mapped as a whole"),
        (
            f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Ops_0123456789abcdef/x",
            "add-sso Ops --account",
        ),
    ],
    ids=["other-account", "other-kind", "account", "sso-role"],
)
def test_explain_near_misses(arn: str, needle: str) -> None:
    found = explain(mappings(mapRoles=NODES), arn, backend="EKSConfigMap", target="t")
    assert not found.matched
    assert any(needle in n for n in found.notes), found.notes


def test_explain_reports_a_reserved_prefix_denial() -> None:
    found = explain(mappings(mapRoles=NODES), NODE_ROLE, backend="CRD", target="t")
    assert any(n.startswith("DENIED") for n in found.notes)


def test_explain_rejects_what_is_not_an_arn() -> None:
    with pytest.raises(MappingError, match="not an IAM user, role or STS caller ARN"):
        explain(mappings(), "kubedemy", backend="EKSConfigMap", target="t")


def test_a_crlf_mapping_file_stays_crlf(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"# mine\r\nserver:\r\n  port: 1\r\n")
    result = run(editor(path).edit(lambda d: d.add_account(ACCOUNT)))
    assert result.written
    data = path.read_bytes()
    assert data.startswith(b"# mine\r\nserver:\r\n  port: 1\r\n  mapAccounts:\r\n")
    assert b"\r\r" not in data
    assert data.count(b"\n") == data.count(b"\r\n")
