"""DynamicFile: reload on change, deletion fails closed, a corrupt file keeps the last good one."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from mapping_helpers import ACCOUNT, role_identity, user_identity

from kubeiam.mapping.backends.dynamic_file import DynamicFile
from kubeiam.mapping.chain import MappingChain

ADMIN = f"arn:aws:iam::{ACCOUNT}:user/admin"


def _doc(username: str = "admin", **extra: Any) -> dict[str, Any]:
    return {
        "LastUpdatedDateTime": "1700000000",
        "Version": "1",
        "mapUsers": [{"userarn": ADMIN, "username": username, "groups": ["system:masters"]}],
        **extra,
    }


def _write(path: Path, content: str | dict[str, Any]) -> None:
    """Write atomically (as real producers do) and make the change visible to a poll."""
    text = content if isinstance(content, str) else json.dumps(content)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Counts:
    def __init__(self) -> None:
        self.failures = 0
        self.skipped = 0

    def failure(self) -> None:
        self.failures += 1

    def skip(self, n: int) -> None:
        self.skipped += n


@pytest.fixture
def counts() -> Counts:
    return Counts()


def _backend(path: Path, counts: Counts, **kw: Any) -> DynamicFile:
    return DynamicFile(path, on_failure=counts.failure, on_skipped=counts.skip, **kw)


async def _name(backend: DynamicFile, identity: Any) -> str | None:
    user = await MappingChain([backend], reserved_prefixes={}).map(identity)
    return None if user is None else user.username


async def test_reload_on_change(tmp_path: Path, counts: Counts) -> None:
    path = tmp_path / "m.json"
    _write(path, _doc())
    backend = _backend(path, counts)
    assert backend.check()
    assert backend.ready
    assert await _name(backend, user_identity("admin")) == "admin"
    assert not backend.check()  # nothing changed
    _write(path, _doc("renamed", mapAccounts=["444455556666"]))
    assert backend.check()
    assert await _name(backend, user_identity("admin")) == "renamed"
    assert await _name(backend, user_identity("x", account="444455556666")) is not None
    assert counts.failures == 0


async def test_deleted_file_fails_closed_and_comes_back(tmp_path: Path, counts: Counts) -> None:
    path = tmp_path / "m.json"
    _write(path, _doc())
    backend = _backend(path, counts)
    backend.check()
    path.unlink()
    assert backend.check()
    assert backend.ready
    assert len(backend.mappings) == 0
    assert await _name(backend, user_identity("admin")) is None
    _write(path, _doc())
    assert backend.check()
    assert await _name(backend, user_identity("admin")) == "admin"


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        b"\xff\xfe".decode("latin-1"),
        json.dumps(
            {
                "mapUsers": [
                    {"userarn": ADMIN, "username": "admin"},
                    {"userarn": ADMIN, "username": "other"},
                ]
            }
        ),
        json.dumps({"mapRoles": {"rolearn": "x"}}),
    ],
    ids=["syntax", "not-object", "garbage", "conflict", "section-not-list"],
)
async def test_corrupt_file_keeps_last_good(tmp_path: Path, counts: Counts, content: str) -> None:
    path = tmp_path / "m.json"
    _write(path, _doc())
    backend = _backend(path, counts)
    backend.check()
    _write(path, content)
    assert backend.check()
    assert counts.failures == 1
    assert backend.store.last_error is not None
    assert await _name(backend, user_identity("admin")) == "admin"


async def test_corrupt_first_version_is_not_ready(tmp_path: Path, counts: Counts) -> None:
    path = tmp_path / "m.json"
    _write(path, "{")
    backend = _backend(path, counts)
    backend.check()
    assert not backend.ready
    assert counts.failures == 1
    _write(path, _doc())
    backend.check()
    assert backend.ready


async def test_missing_at_start_is_not_ready(tmp_path: Path, counts: Counts) -> None:
    backend = _backend(tmp_path / "absent.json", counts)
    assert backend.check()
    assert not backend.check()
    assert not backend.ready


async def test_bad_entries_are_skipped_and_counted(tmp_path: Path, counts: Counts) -> None:
    path = tmp_path / "m.json"
    doc = _doc()
    doc["mapUsers"].append({"userarn": "arn:aws:iam::1:user/x", "username": "x"})
    doc["mapAccounts"] = [111122223333, "12"]
    _write(path, doc)
    backend = _backend(path, counts)
    backend.check()
    assert backend.ready
    assert counts.skipped == 2
    assert await _name(backend, role_identity("Any")) == f"arn:aws:iam::{ACCOUNT}:role/Any"


async def test_json_keys_any_case(tmp_path: Path, counts: Counts) -> None:
    path = tmp_path / "m.json"
    _write(path, {"MAPUSERS": [{"UserArn": ADMIN, "UserName": "admin"}]})
    backend = _backend(path, counts)
    backend.check()
    assert await _name(backend, user_identity("admin")) == "admin"


async def test_user_id_strict(tmp_path: Path, counts: Counts) -> None:
    path = tmp_path / "m.json"
    _write(
        path,
        {
            "mapRoles": [
                {
                    "rolearn": f"arn:aws:iam::{ACCOUNT}:role/Admin",
                    "username": "admin",
                    "userid": "AROAEXAMPLEROLE00001",
                },
                {"username": "by-id", "userid": "AROAONLYID"},
            ]
        },
    )
    backend = _backend(path, counts, user_id_strict=True)
    backend.check()
    assert await _name(backend, role_identity()) == "admin"
    # Same role name, different role id (deleted and recreated): refused in strict mode.
    assert await _name(backend, role_identity(role_id="AROARECREATED")) is None
    assert await _name(backend, role_identity("Admin2", role_id="AROAEXAMPLEROLE00001")) is None
    assert await _name(backend, role_identity("Whatever", role_id="AROAONLYID")) == "by-id"


async def test_poll_loop_picks_up_changes(tmp_path: Path, counts: Counts) -> None:
    path = tmp_path / "m.json"
    _write(path, _doc())
    backend = _backend(path, counts, poll_interval=0.01)
    await backend.start()
    try:
        assert backend.ready
        _write(path, _doc("polled") | {"Version": "a-longer-version-string"})
        for _ in range(500):
            if await _name(backend, user_identity("admin")) == "polled":
                break
            await asyncio.sleep(0.01)
        assert await _name(backend, user_identity("admin")) == "polled"
    finally:
        await backend.stop()
