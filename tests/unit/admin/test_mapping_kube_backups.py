"""The aws-auth store's backup ConfigMap with a 10,000-entry aws-auth: every edit backs up, the
history stays under Kubernetes' 1 MiB, and restore brings a state back exactly.

The API server is an in-memory stand-in speaking the client's contract (get, create, replace with
resourceVersion, 404 and 409 as the client raises them): the size limit it enforces is the fault
under test, which a real kube-apiserver in the e2e suite would need minutes of setup to reach.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest

from kubeiam.admin.editing.backups import AWS_AUTH_BACKUP_NAME
from kubeiam.admin.editing.editor import MappingEditor
from kubeiam.admin.editing.kube_stores import AwsAuthStore
from kubeiam.kube.resources import config_map
from kubeiam.mapping.aws_auth import AWS_AUTH_NAME, Change

ACCOUNT = "111122223333"
#: What kube-apiserver refuses: a ConfigMap over 1 MiB.
CONFIGMAP_LIMIT = 1024 * 1024


def _status(code: int) -> httpx2.HTTPStatusError:
    request = httpx2.Request("GET", "https://kube.invalid")
    return httpx2.HTTPStatusError(str(code), request=request, response=httpx2.Response(code))


class MemoryAPI:
    """ConfigMaps by name, with resourceVersions and the 1 MiB limit."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0

    def store(self, obj: dict[str, Any]) -> Any:
        """Hold ``obj`` as the API server would (next resourceVersion); tests seed with it."""
        size = sum(len(k) + len(v) for k, v in (obj.get("data") or {}).items())
        if size > CONFIGMAP_LIMIT:
            raise _status(422)
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[obj["metadata"]["name"]] = obj
        return config_map().from_dict(json.loads(json.dumps(obj)))

    async def get(self, resource: Any, name: str, namespace: str | None = None) -> Any:
        if name not in self.objects:
            raise _status(404)
        return config_map().from_dict(json.loads(json.dumps(self.objects[name])))

    async def create(self, obj: Any) -> Any:
        data = obj.to_dict()
        if data["metadata"]["name"] in self.objects:
            raise _status(409)
        return self.store(data)

    async def replace(self, obj: Any) -> Any:
        data = obj.to_dict()
        current = self.objects.get(data["metadata"]["name"])
        if current is None or current["metadata"]["resourceVersion"] != data["metadata"].get(
            "resourceVersion"
        ):
            raise _status(409)
        return self.store(data)


def _roles(n: int, salt: str) -> str:
    return "".join(
        f"- rolearn: arn:aws:iam::{ACCOUNT}:role/Role{i}{salt}\n  username: role{i}\n"
        f"  groups:\n    - team-{i % 50}\n"
        for i in range(n)
    )


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.mark.parametrize("entries", [10, 10_000], ids=["small", "10k"])
def test_every_edit_backs_up_within_the_configmap_limit_and_restores_exactly(
    entries: int,
) -> None:
    api = MemoryAPI()
    api.store(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": AWS_AUTH_NAME, "namespace": "kube-system"},
            "data": {"mapRoles": _roles(entries, "")},
        }
    )
    store = AwsAuthStore(api)
    editor = MappingEditor(store, now=lambda: datetime(2026, 1, 1, tzinfo=UTC), by="t")
    states = []
    for i in range(12):
        states.append(dict(api.objects[AWS_AUTH_NAME]["data"]))
        arn = f"arn:aws:iam::{ACCOUNT}:user/u{i}"
        result = run(editor.edit(lambda d, a=arn: d.upsert_user(a, "u", [], replace=False)))
        assert result.written
    backup = api.objects[AWS_AUTH_BACKUP_NAME]["data"]
    assert sum(len(k) + len(v) for k, v in backup.items()) < CONFIGMAP_LIMIT
    records = run(store.backups())
    assert store.backup_notes == []
    assert 1 <= len(records) <= 10
    assert records[-1].revision == 12
    if entries > 100:
        assert all(key.endswith(".json.gz") for key in backup)
    result = run(editor.restore(records[-1].state))
    assert result.change is Change.REPLACED
    assert api.objects[AWS_AUTH_NAME]["data"] == states[-1]  # byte for byte


def test_a_corrupt_configmap_record_is_kept_named_and_skipped() -> None:
    api = MemoryAPI()
    api.store(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": AWS_AUTH_BACKUP_NAME, "namespace": "kube-system"},
            "data": {"r000001.json": "{not json", "owner-notes": "kept"},
        }
    )
    api.store(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": AWS_AUTH_NAME, "namespace": "kube-system"},
            "data": {"mapRoles": _roles(3, "")},
        }
    )
    store = AwsAuthStore(api)
    editor = MappingEditor(store, now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    result = run(editor.edit(lambda d: d.add_account(ACCOUNT)))
    assert result.written
    assert any("r000001.json" in note for note in result.notes)
    data = api.objects[AWS_AUTH_BACKUP_NAME]["data"]
    assert data["r000001.json"] == "{not json"  # untouched
    assert data["owner-notes"] == "kept"
    assert "r000002.json" in data  # numbered past the unreadable one
    records = run(store.backups())
    assert [r.revision for r in records] == [2]
    assert any("not a readable kubeiam backup" in n for n in store.backup_notes)
