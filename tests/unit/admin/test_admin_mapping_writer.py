"""The MappingWriter `kubeiam iam ... --file F` writes through: `kubeiam mapping`'s file
store (server config YAML or DynamicFile JSON), round trip, guards and backup history."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeiam.admin.editing.backups import FILE_BACKUP_SUFFIX
from kubeiam.admin.editing.file_store import FileStore
from kubeiam.admin.editing.store_writer import StoreMappingWriter
from kubeiam.admin.editing.writer import MappingChange
from kubeiam.errors import ConfigError, GuardError, MappingError

USER = "arn:aws:iam::111122223333:user/kubedemy"
ROLE = "arn:aws:iam::111122223333:role/KubernetesAdmin"
NODE = "arn:aws:iam::111122223333:role/NodeRole"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def file_writer(path: Path, *, dry_run: bool = False) -> StoreMappingWriter:
    """What `kubeiam iam ... --file PATH` builds (cli.mapping.mapping_writer_for)."""
    return StoreMappingWriter(
        lambda: FileStore(path), now=lambda: NOW, target=f"file {path}", dry_run=dry_run
    )


def backup_states(path: Path) -> list[str]:
    return [r.state for r in asyncio.run(FileStore(path).backups())]


def backup_of(path: Path) -> Path:
    return path.with_name(path.name + FILE_BACKUP_SUFFIX)


SERVER_CONFIG = """\
# kubeiam server configuration
clusterID: kubedemy
server:
  port: 21362   # default
  mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/NodeRole
    username: system:node:{{EC2PrivateDNSName}}
    groups: [system:bootstrappers, system:nodes]
"""


def test_yaml_add_keeps_comments_and_the_files_key_spelling(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SERVER_CONFIG)
    writer = file_writer(path)
    assert writer.add_role(ROLE, "admin:{{SessionName}}", ["system:masters"]) is MappingChange.ADDED
    assert writer.add_user(USER, "kubedemy", ["system:masters"]) is MappingChange.ADDED
    text = path.read_text()
    assert text.startswith(SERVER_CONFIG)  # existing entries byte for byte, indentation kept
    assert f"\n  - rolearn: {ROLE}\n    username: admin:" in text
    assert "port: 21362   # default" in text
    assert f"rolearn: {ROLE}" in text  # the file's spelling (rolearn), not roleARN
    assert f"userARN: {USER}" in text  # no user entries yet: the reference's spelling
    assert "groups: [system:bootstrappers, system:nodes]" in text


def test_yaml_file_is_created_with_a_server_section(tmp_path: Path) -> None:
    path = tmp_path / "new.yaml"
    file_writer(path).add_user(USER, "kubedemy", ["system:masters"])
    assert path.read_text() == (
        f"server:\n  mapUsers:\n    - userARN: {USER}\n      username: kubedemy\n"
        "      groups:\n        - system:masters\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not backup_of(path).exists()  # there was no previous state to save


def test_json_dynamic_file(tmp_path: Path) -> None:
    path = tmp_path / "dynamic.json"
    path.write_text(json.dumps({"mapRoles": [], "mapAccounts": ["111122223333"]}))
    path.chmod(0o644)  # the server may run as another user: an existing mode is kept
    writer = file_writer(path)
    writer.add_user(USER, "kubedemy", ["system:masters"])
    writer.add_role(ROLE, "admin", ["system:masters"])
    data = json.loads(path.read_text())
    assert data == {
        "mapRoles": [{"rolearn": ROLE, "username": "admin", "groups": ["system:masters"]}],
        "mapAccounts": ["111122223333"],
        "mapUsers": [{"userarn": USER, "username": "kubedemy", "groups": ["system:masters"]}],
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    before_remove = path.read_text()
    assert writer.remove(USER) is MappingChange.REMOVED
    assert "mapUsers" not in json.loads(path.read_text())
    # Every write saved the previous content first, in a private history next to the file.
    assert backup_states(path)[-1] == before_remove
    assert len(backup_states(path)) == 3
    assert stat.S_IMODE(backup_of(path).stat().st_mode) == 0o600


@pytest.mark.parametrize("suffix", [".yaml", ".json"], ids=["yaml", "json"])
def test_adding_the_same_mapping_twice_is_a_no_op(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    writer = file_writer(path)
    writer.add_user(USER, "kubedemy", ["system:masters"])
    text, inode = path.read_text(), path.stat().st_ino
    assert writer.add_user(USER, "kubedemy", ["system:masters"]) is MappingChange.UNCHANGED
    assert (path.read_text(), path.stat().st_ino) == (text, inode)


@pytest.mark.parametrize(
    ("existing", "added"),
    [
        ("arn:aws:iam::111122223333:role/team/KubernetesAdmin", ROLE),
        (ROLE.upper().replace("ARN:AWS:IAM", "arn:aws:iam"), ROLE),
    ],
    ids=["role-path", "case"],
)
def test_the_same_arn_with_a_different_mapping_is_refused(
    tmp_path: Path, existing: str, added: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"server:\n  mapRoles:\n  - roleARN: {existing}\n    username: x\n    groups: []\n"
    )
    before = path.read_text()
    with pytest.raises(MappingError, match="already mapped"):
        file_writer(path).add_role(added, "admin", ["system:masters"])
    assert path.read_text() == before


def test_remove_restores_the_file_an_add_started_from(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("clusterID: demo\n")
    writer = file_writer(path)
    writer.add_user(USER, "kubedemy", ["g"])
    assert writer.remove(USER) is MappingChange.REMOVED
    assert path.read_text() == "clusterID: demo\n"
    assert writer.remove(USER) is MappingChange.ABSENT


def test_remove_from_a_missing_file_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    """A typo in --mapping-file is not "nothing to remove": only the adds create a file."""
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match="no such file") as caught:
        file_writer(path).remove(USER)
    assert caught.value.exit_code == 2
    assert "only the add-* commands create" in str(caught.value)
    assert not path.exists()
    assert not backup_of(path).exists()
    assert file_writer(path).add_user(USER, "kubedemy", ["g"]) is MappingChange.ADDED
    assert path.exists()


def test_node_entries_are_removed_only_with_force(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SERVER_CONFIG)
    with pytest.raises(GuardError, match="removes the node entry") as err:
        file_writer(path).remove(NODE)
    assert err.value.hint is not None
    assert "--force" in err.value.hint
    assert path.read_text() == SERVER_CONFIG
    assert not backup_of(path).exists()  # refused before anything was written
    assert file_writer(path).remove(NODE, force=True) is MappingChange.REMOVED
    assert NODE not in path.read_text()
    assert backup_states(path) == [SERVER_CONFIG]


def test_the_last_system_masters_mapping_is_removed_only_with_force(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    writer = file_writer(path)
    writer.add_user(USER, "kubedemy", ["system:masters"])
    writer.add_role(ROLE, "admin", ["system:masters"])
    assert writer.remove(ROLE) is MappingChange.REMOVED  # another admin remains
    with pytest.raises(GuardError, match="last system:masters"):
        writer.remove(USER)
    assert USER in path.read_text()
    assert writer.remove(USER, force=True) is MappingChange.REMOVED
    assert USER not in path.read_text()


def test_remove_drops_every_section_it_empties(tmp_path: Path) -> None:
    """Absent and empty mean the same to the server: an emptied mapAccounts goes too."""
    path = tmp_path / "dynamic.json"
    path.write_text(json.dumps({"mapAccounts": [], "mapUsers": []}))
    writer = file_writer(path)
    writer.add_user(USER, "kubedemy", ["g"])
    assert writer.remove(USER) is MappingChange.REMOVED
    assert json.loads(path.read_text()) == {}


def test_flat_yaml_with_top_level_lists_is_refused(tmp_path: Path) -> None:
    """kubeiam server reads mappings under `server:` only: an entry added at the top level
    would look written and map nobody."""
    path = tmp_path / "flat.yaml"
    path.write_text("mapUsers: []\n")
    with pytest.raises(ConfigError, match="top level, where kubeiam server does not read it"):
        file_writer(path).add_user(USER, "kubedemy", ["g"])
    assert path.read_text() == "mapUsers: []\n"


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("bad.yaml", "server: [\n", ConfigError),
        ("bad.json", "{", ConfigError),
        ("list.yaml", "server:\n  mapUsers: {a: 1}\n", ConfigError),
        ("top.json", "[]", ConfigError),
    ],
    ids=["yaml", "json", "not-a-list", "json-top-level"],
)
def test_bad_files_are_refused_untouched(
    tmp_path: Path, name: str, text: str, error: type[Exception]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(error):
        file_writer(path).add_user(USER, "kubedemy", ["g"])
    assert path.read_text() == text
    assert not backup_of(path).exists()


def test_kind_and_arn_are_checked(tmp_path: Path) -> None:
    writer = file_writer(tmp_path / "m.yaml")
    with pytest.raises(MappingError, match="not an IAM user ARN"):
        writer.add_user(ROLE, "x", ["g"])
    with pytest.raises(MappingError):
        writer.add_role("arn:aws:iam::1:role/x", "x", ["g"])


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(SERVER_CONFIG)
    assert file_writer(path, dry_run=True).add_user(USER, "u", ["g"]) is MappingChange.ADDED
    assert path.read_text() == SERVER_CONFIG
    assert not backup_of(path).exists()


def test_what_the_writer_writes_is_what_the_server_reads(tmp_path: Path) -> None:
    """The files are read back by the server's own parsers: DynamicFile and the config file."""
    from kubeiam.mapping.backends.dynamic_file import parse_dynamic_file
    from kubeiam.server.config import read_config_file

    dynamic = tmp_path / "dynamic.json"
    writer = file_writer(dynamic)
    writer.add_user(USER, "kubedemy", ["system:masters"])
    writer.add_role(ROLE, "admin:{{SessionName}}", ["system:masters"])
    loaded = parse_dynamic_file(dynamic.read_bytes())
    assert loaded.issues == ()
    kinds = sorted(type(e).__name__ for e in loaded.mappings.entries)
    assert kinds == ["RoleMapping", "UserMapping"]

    config = tmp_path / "config.yaml"
    config.write_text(SERVER_CONFIG)
    writer = file_writer(config)
    writer.add_user(USER, "kubedemy", ["system:masters"])
    writer.add_role(ROLE, "admin:{{SessionName}}", ["system:masters"])
    values = read_config_file(config)
    assert values["map_users"] == (
        {"userarn": USER, "username": "kubedemy", "groups": ["system:masters"]},
    )
    assert [r["rolearn"] for r in values["map_roles"]] == [NODE, ROLE]
