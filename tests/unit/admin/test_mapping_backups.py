"""Corrupt or oddly shaped backup histories: restore says what is wrong, a new change still
works, and the broken history is kept (set aside, or left in place and named), never dropped."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeiam.admin.editing.backups import (
    CONFIGMAP_BACKUP_BUDGET,
    CORRUPT_SUFFIX,
    FILE_BACKUP_SUFFIX,
    BackupRecord,
    encode_record,
    next_revision,
    read_backup_data,
    records_from_data,
    trim_backups,
)
from kubeiam.admin.editing.editor import MappingEditor
from kubeiam.admin.editing.file_store import FileStore
from kubeiam.documents import MAX_DOCUMENT_BYTES
from kubeiam.errors import ConfigError

ACCOUNT = "111122223333"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GOOD = {"revision": 1, "time": "t", "by": "me", "command": "c", "store": "file", "state": "{}\n"}


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


#: (id, history file content as bytes): none of them is a history kubeiam wrote.
CORRUPT = [
    ("not-json", b"this is not json\n"),
    ("truncated", json.dumps([GOOD]).encode()[:-5]),
    ("object", b'{"revision": 1}'),
    ("string-revision", json.dumps([{**GOOD, "revision": "1"}]).encode()),
    ("bool-revision", json.dumps([{**GOOD, "revision": True}]).encode()),
    ("zero-revision", json.dumps([{**GOOD, "revision": 0}]).encode()),
    ("huge-revision", b'[{"revision": 1' + b"0" * 5000 + b', "time": "t"}]'),
    ("unknown-store", json.dumps([{**GOOD, "store": "s3"}]).encode()),
    ("state-not-text", json.dumps([{**GOOD, "state": {"a": 1}}]).encode()),
    ("missing-state", json.dumps([{k: v for k, v in GOOD.items() if k != "state"}]).encode()),
    ("time-not-text", json.dumps([{**GOOD, "time": 5}]).encode()),
    ("long-command", json.dumps([{**GOOD, "command": "x" * 5000}]).encode()),
    ("duplicate-revision", json.dumps([GOOD, GOOD]).encode()),
    ("duplicate-key", b'[{"revision": 1, "revision": 2}]'),
    ("deep", b"[" * 5000 + b"]" * 5000),
    ("record-not-object", b"[1, 2]"),
    ("not-utf8", b'[{"by": "\xff"}]'),
    ("control-char", b'[{"by": "\x1b[31m"}]'),
]


@pytest.mark.parametrize("content", [c[1] for c in CORRUPT], ids=[c[0] for c in CORRUPT])
def test_a_corrupt_file_history_is_reported_then_kept_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}\n")
    history = tmp_path / ("m.json" + FILE_BACKUP_SUFFIX)
    history.write_bytes(content)
    store = FileStore(path)

    with pytest.raises(ConfigError, match="backup history cannot be read") as caught:
        run(store.backups())
    assert caught.value.exit_code == 2
    assert "Traceback" not in str(caught.value)
    assert CORRUPT_SUFFIX in str(caught.value)  # says what the next change will do

    editor = MappingEditor(store, now=lambda: NOW, by="tester", command="test")
    result = run(editor.edit(lambda d: d.add_account(ACCOUNT)))
    assert result.written
    (note,) = result.notes
    assert "could not be read" in note
    assert "new history started" in note
    (aside,) = tmp_path.glob("m.json" + FILE_BACKUP_SUFFIX + CORRUPT_SUFFIX + "*")
    assert aside.read_bytes() == content  # kept as it was
    assert str(aside) in note
    records = run(FileStore(path).backups())
    assert [(r.revision, r.state) for r in records] == [(1, "{}\n")]


def test_a_second_corrupt_history_does_not_overwrite_the_first(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}\n")
    history = tmp_path / ("m.json" + FILE_BACKUP_SUFFIX)
    editor = MappingEditor(FileStore(path), now=lambda: NOW)
    for i, account in enumerate(("111122223333", "222233334444")):
        history.write_text(f"broken {i}")
        run(editor.edit(lambda d, a=account: d.add_account(a)))
    kept = sorted(p.read_text() for p in tmp_path.glob("*" + CORRUPT_SUFFIX + "*"))
    assert kept == ["broken 0", "broken 1"]


def test_restore_from_a_file_does_not_need_the_history(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}\n")
    (tmp_path / ("m.json" + FILE_BACKUP_SUFFIX)).write_text("broken")
    record = BackupRecord(3, "t", "me", "c", "file", '{"mapAccounts": ["111122223333"]}\n')
    editor = MappingEditor(FileStore(path), now=lambda: NOW)
    result = run(editor.restore(record.state))
    assert result.written
    assert json.loads(path.read_text()) == {"mapAccounts": ["111122223333"]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "is a JSON list, not an object"),
        ({**GOOD, "revision": "1"}, "not a positive integer"),
        ({**GOOD, "store": "crd", "state": "text"}, "not the objects' specs"),
        ({**GOOD, "store": "aws-auth", "state": {"mapRoles": 1}}, "not the ConfigMap's data"),
        ({**GOOD, "by": None}, "by is a NoneType, not a string"),
    ],
    ids=["list", "string-revision", "crd-state", "aws-auth-state", "null-by"],
)
def test_a_backup_record_of_the_wrong_shape_is_refused_not_converted(
    raw: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        BackupRecord.from_wire(raw)


def test_configmap_history_keeps_and_names_unreadable_keys() -> None:
    good = {**GOOD, "store": "aws-auth", "state": {"mapRoles": "- x\n"}}
    data = {
        "r000001.json": json.dumps(good),
        "r000002.json": "not json",
        "r000003.json": json.dumps({**good, "revision": 9}),  # key and revision disagree
        "notes.txt": "someone else's key",
    }
    records, notes = records_from_data(data)
    assert [r.revision for r in records] == [1]
    assert len(notes) == 2
    assert "r000002.json" in notes[0]
    assert "kept as it is and not used" in notes[0]
    assert "says revision 9" in notes[1]
    # A new record never takes the number of a key it could not read.
    assert next_revision(records, data) == 4


def _aws_auth_state(entries: int, salt: int = 0) -> dict[str, str]:
    roles = "".join(
        f"- rolearn: arn:aws:iam::{ACCOUNT}:role/Role{i}-{salt}\n  username: role{i}\n"
        f"  groups:\n    - team-{i % 50}\n"
        for i in range(entries)
    )
    return {"mapRoles": roles}


def test_big_states_are_stored_compressed_and_the_history_fits_a_configmap() -> None:
    """A 10,000-entry aws-auth is ~600 KB: ten plain copies would break Kubernetes' 1 MiB
    ConfigMap limit and with it every edit; compressed and trimmed by size they fit."""
    data: dict[str, str] = {}
    for revision in range(1, 13):
        records, notes, keys = read_backup_data(data)
        assert notes == []
        record = BackupRecord(
            revision, "t", "me", "c", "aws-auth", _aws_auth_state(10_000, revision)
        )
        key, value = encode_record(record)
        assert key.endswith(".json.gz")
        data[key] = value
        trim_backups(data, [keys[r.revision] for r in records], "aws-auth-kubeiam-backup")
    assert sum(len(k) + len(v) for k, v in data.items()) <= CONFIGMAP_BACKUP_BUDGET
    kept, _ = records_from_data(data)
    assert kept[-1].revision == 12
    assert kept[-1].state == _aws_auth_state(10_000, 12)  # reads back exactly
    assert 1 <= len(kept) <= 10


def test_small_states_stay_readable_json() -> None:
    key, value = encode_record(BackupRecord(1, "t", "me", "c", "file", "{}\n"))
    assert key == "r000001.json"
    assert json.loads(value)["state"] == "{}\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!", "not base64 gzip"),
        (base64.b64encode(b"plain, not gzip").decode(), "not base64 gzip"),
        (
            base64.b64encode(
                gzip.compress(b"[" + b" " * (MAX_DOCUMENT_BYTES + 10) + b"]")
            ).decode(),
            "inflates beyond",
        ),
    ],
    ids=["not-base64", "not-gzip", "gzip-bomb"],
)
def test_unreadable_compressed_records_are_named_and_kept(value: str, message: str) -> None:
    data = {"r000001.json.gz": value}
    records, notes = records_from_data(data)
    assert records == []
    assert message in notes[0]
    assert data == {"r000001.json.gz": value}


def test_a_big_file_state_is_stored_compressed_and_restores_exactly(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    roles = "".join(
        f"    - rolearn: arn:aws:iam::{ACCOUNT}:role/R{i}\n      username: r{i}\n"
        for i in range(2000)
    )
    original = f"# mine\nserver:\n  mapRoles:\n{roles}"
    path.write_text(original)
    editor = MappingEditor(FileStore(path), now=lambda: NOW)
    run(editor.edit(lambda d: d.add_account(ACCOUNT)))
    history = tmp_path / ("config.yaml" + FILE_BACKUP_SUFFIX)
    (item,) = json.loads(history.read_text())
    assert "state" not in item
    assert len(item["stateGzip"]) < len(original) / 4
    (record,) = run(FileStore(path).backups())
    assert record.state == original
    run(editor.restore(record.state))
    assert path.read_text() == original


def test_a_compressed_state_that_does_not_inflate_makes_the_history_unreadable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}\n")
    bad = {**{k: v for k, v in GOOD.items() if k != "state"}, "stateGzip": "!!"}
    history = tmp_path / ("m.json" + FILE_BACKUP_SUFFIX)
    history.write_text(json.dumps([bad]))
    with pytest.raises(ConfigError, match="not base64 gzip"):
        run(FileStore(path).backups())
