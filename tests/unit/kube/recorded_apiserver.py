"""A tiny Kubernetes API server on 127.0.0.1 that answers from a recorded sequence (tests only).

It serves the list and watch requests of one resource collection from the same files the
ReplaySource uses (tests/fixtures/mapping/watch-*.json), over real HTTP, so the lightkube
adapter (kubeiam.kube.sources) is exercised end to end: chunked watch streams, ERROR events,
a 500 on list, a connection that breaks mid-stream (DROP). PAUSE markers are ignored here.
When the recording is used up, watch requests stay open until the server stops. The real
kube-apiserver arrives with issue 4 (tests/e2e).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web


class RecordedAPIServer:
    def __init__(self, script_path: Path, *, list_kind: str) -> None:
        script: dict[str, Any] = json.loads(script_path.read_text())
        self._lists: deque[dict[str, Any]] = deque(script["lists"])
        self._watches: deque[list[dict[str, Any]]] = deque(script["watches"])
        self._list_kind = list_kind
        self.requests: list[dict[str, str]] = []
        self.exhausted = asyncio.Event()
        self.objects: dict[str, dict[str, Any]] = {}

    async def collection(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        if request.query.get("watch") in ("true", "1"):
            return await self._watch(request)
        if not self._lists:
            self.exhausted.set()
            return _status(503, "recording used up")
        answer = self._lists.popleft()
        if "error" in answer:
            return _status(500, answer["error"])
        return _json(
            {
                "kind": self._list_kind,
                "apiVersion": "v1",
                "metadata": {"resourceVersion": answer["resourceVersion"]},
                "items": answer["items"],
            }
        )

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if not self._watches:
            self.exhausted.set()
            await asyncio.Event().wait()  # held open until the server stops
        for event in self._watches.popleft():
            if event["type"] == "PAUSE":
                continue
            if event["type"] == "DROP":
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(json.dumps(event).encode() + b"\n")
        await response.write_eof()
        return response

    # -- single objects (get / replace / create), for kubeiam.kube.objects ------------------

    async def get_one(self, request: web.Request) -> web.Response:
        obj = self.objects.get(request.match_info["name"])
        if obj is None:
            return _status(404, "not found")
        return _json(obj)

    async def put_one(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.json()
        current = self.objects.get(name)
        if current is None:
            return _status(404, "not found")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return _status(409, "the object has been modified; please apply your changes")
        body["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.objects[name] = body
        return _json(body)

    async def post(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = body["metadata"]["name"]
        if name in self.objects:
            return _status(409, f"{name} already exists")
        body["metadata"]["resourceVersion"] = "1"
        self.objects[name] = body
        return _json(body, status=201)


def _json(body: object, status: int = 200) -> web.Response:
    """JSON with the exact Content-Type the API server sends (lightkube compares it verbatim)."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _status(code: int, message: str) -> web.Response:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message}
    return _json({**status, "code": code}, status=code)


@asynccontextmanager
async def serve(server: RecordedAPIServer, collection: str) -> AsyncIterator[str]:
    """Run ``server`` on 127.0.0.1 (port 0) for ``collection``; yields the base URL."""
    app = web.Application()
    app.router.add_get(collection, server.collection)
    app.router.add_post(collection, server.post)
    app.router.add_get(collection + "/{name}", server.get_one)
    app.router.add_put(collection + "/{name}", server.put_one)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def write_kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "recorded", "cluster": {"server": url}}],
                "users": [{"name": "kubeiam", "user": {"token": "recorded-test-token"}}],
                "contexts": [
                    {"name": "recorded", "context": {"cluster": "recorded", "user": "kubeiam"}}
                ],
                "current-context": "recorded",
            }
        )
    )
    return path
