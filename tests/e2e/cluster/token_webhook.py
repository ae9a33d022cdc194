"""A fixed-answer TokenReview webhook on 127.0.0.1, to prove the control plane's webhook wiring.

This is not a stand-in for `kubeiam server` (the seed tests run the real one): it lets the
harness's own tests check that kube-apiserver, restarted with `--authentication-token-webhook-*`
flags, really consults a webhook over TLS, with the configured API version, before kubeiam is in
the picture. It knows one token and records the apiVersion of each review it receives.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .pki import CertFiles


@dataclass(frozen=True, slots=True)
class KnownUser:
    """The user the webhook reports for its one known token."""

    token: str
    username: str
    uid: str
    groups: tuple[str, ...]


@dataclass(slots=True)
class TokenWebhook:
    """Serves POST /authenticate over TLS; `url` is what the webhook kubeconfig points at."""

    tls: CertFiles
    user: KnownUser
    received_api_versions: list[str] = field(default_factory=list)
    #: Set to True to start denying the known token (to observe kube-apiserver's cache TTL).
    revoked: bool = False
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"https://127.0.0.1:{self._server.server_address[1]}/authenticate"

    def _answer(self, review: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        api_version = str(review.get("apiVersion", ""))
        self.received_api_versions.append(api_version)
        token = review.get("spec", {}).get("token")
        status: dict[str, Any] = {"authenticated": False}
        code = 401
        if token == self.user.token and not self.revoked:
            code = 200
            status = {
                "authenticated": True,
                "user": {
                    "username": self.user.username,
                    "uid": self.user.uid,
                    "groups": list(self.user.groups),
                },
            }
        return code, {"apiVersion": api_version, "kind": "TokenReview", "status": status}

    def start(self) -> None:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                code, body = webhook._answer(json.loads(self.rfile.read(length) or b"{}"))
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: a request line may not be logged next to tokens."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="token-webhook", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
