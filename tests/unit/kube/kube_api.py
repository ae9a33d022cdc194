"""A real HTTPS Kubernetes API stand-in on 127.0.0.1 (port 0), with trustme certificates.

``KubeAPI`` answers ``GET .../configmaps/<name>`` (and list) from ``objects``; it accepts the
bearer tokens in ``tokens`` and client certificates signed by the test CA (the certificate's
common name is the user), answers 401 to anything else, and 403 to the paths in ``forbidden``.
Every request is recorded (method, path, query, Authorization present or not, client CN).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    token: str | None
    client_cn: str | None


@dataclass
class KubeAPI:
    tokens: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        cn = None
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        cn = value
        self.seen.append(Seen(request.method, request.path, dict(request.query), token, cn))
        if token not in self.tokens and cn is None:
            return _status(401, "Unauthorized")
        user = cn or "token-user"
        if request.path in self.forbidden:
            verb = "get" if request.method == "GET" else request.method.lower()
            return _status(
                403,
                f'configmaps "aws-auth" is forbidden: User "{user}" cannot {verb} resource '
                '"configmaps" in API group "" in the namespace "kube-system"',
            )
        name = request.match_info.get("name")
        if request.query.get("watch") in ("true", "1"):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            await asyncio.Event().wait()  # held open until the server stops
        if name is None:
            items = list(self.objects.values())
            return _json(
                {
                    "kind": "ConfigMapList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": "9"},
                    "items": items,
                }
            )
        obj = self.objects.get(name)
        if obj is None:
            return _status(404, f'configmaps "{name}" not found')
        return _json(obj)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _status(code: int, message: str) -> web.Response:
    return _json(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "code": code,
        },
        status=code,
    )


def config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "kube-system", "resourceVersion": "7"},
        "data": data,
    }


@dataclass
class Pki:
    ca: trustme.CA
    server: trustme.LeafCert
    dir: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def client(self, name: str) -> tuple[bytes, bytes]:
        leaf = self.ca.issue_cert(name, common_name=name)
        return leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    return Pki(ca, ca.issue_cert("127.0.0.1", "kube.internal"), tmp_path_factory.mktemp("pki"))


@pytest.fixture
def ca_pem(pki: Pki) -> bytes:
    return pki.ca_pem


@asynccontextmanager
async def serve_api(api: KubeAPI, server_ctx: ssl.SSLContext | None) -> AsyncIterator[KubeAPI]:
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps", api.handle)
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", api.handle)
    app.router.add_get("/api/v1/nodes", api.handle)
    app.router.add_get("/apis/iamauthenticator.k8s.aws/v1alpha1/iamidentitymappings", api.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    api.url = f"{'https' if server_ctx else 'http'}://127.0.0.1:{port}"
    try:
        yield api
    finally:
        await runner.cleanup()


def server_context(pki: Pki, leaf: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    (leaf or pki.server).configure_cert(ctx)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    pki.ca.configure_trust(ctx)
    return ctx


@pytest.fixture
async def api(pki: Pki) -> AsyncIterator[KubeAPI]:
    """An HTTPS API accepting token ``good-token``, holding kube-system/aws-auth."""
    server = KubeAPI(tokens={"good-token"})
    server.objects["aws-auth"] = config_map("aws-auth", {"mapUsers": "[]"})
    async with serve_api(server, server_context(pki)) as running:
        yield running


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return path


def kubeconfig_doc(
    server: str,
    *,
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    name: str = "test",
    current: str | None = "test",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": name, "user": user or {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }
    if current is not None:
        doc["current-context"] = current
    return doc


PLUGIN = """\
#!{python}
# A test exec plugin: logs each run (argv, env, exec info) and prints the ExecCredential in
# its first argument's file, or fails as the second argument says.
import json, os, sys
log = os.environ["PLUGIN_LOG"]
with open(log, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "info": os.environ.get("KUBERNETES_EXEC_INFO"),
                        "extra": os.environ.get("PLUGIN_EXTRA"),
                        "stdin": os.path.realpath("/proc/self/fd/0")}}) + "\\n")
answers = json.load(open(sys.argv[1]))
n = sum(1 for _ in open(log)) - 1
answer = answers[min(n, len(answers) - 1)]
if isinstance(answer, int):
    print("plugin failing on purpose", file=sys.stderr)
    sys.exit(answer)
sys.stdout.write(answer if isinstance(answer, str) else json.dumps(answer))
"""


@dataclass
class Plugin:
    path: Path
    answers_file: Path
    log: Path

    def answer(self, *answers: object) -> None:
        self.answers_file.write_text(json.dumps(list(answers)))

    def runs(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plugin:
    path = tmp_path / "bin" / "kube-plugin"
    path.parent.mkdir()
    path.write_text(PLUGIN.format(python=sys.executable))
    path.chmod(0o755)
    log = tmp_path / "plugin.log"
    monkeypatch.setenv("PLUGIN_LOG", str(log))
    return Plugin(path, tmp_path / "answers.json", log)


def credential(token: str | None = None, *, version: str = "v1", **status: Any) -> dict[str, Any]:
    body = dict(status)
    if token is not None:
        body["token"] = token
    return {
        "apiVersion": f"client.authentication.k8s.io/{version}",
        "kind": "ExecCredential",
        "status": body,
    }
