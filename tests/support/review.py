"""A TokenReview client for a kubeiam server running on loopback, over its real HTTPS."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from kubeiam.server.run import RunningServer

#: aiohttp's own default: enough connections for every concurrent review of a test.
CONNECTION_LIMIT = 100


class ReviewClient:
    """Posts TokenReviews as the kube-apiserver does, trusting only the server's own CA."""

    def __init__(self, server: RunningServer, *, limit: int = CONNECTION_LIMIT) -> None:
        ctx = ssl.create_default_context(cafile=str(server.keypair.cert_path))
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=limit))
        self.server = server
        #: The server's URL without the path (``https://127.0.0.1:PORT``).
        self.base = server.url.removesuffix("/authenticate")

    async def review(
        self, token: str, api_version: str = "authentication.k8s.io/v1", **spec: Any
    ) -> tuple[int, dict[str, Any]]:
        """The HTTP status and the JSON answer to a TokenReview of ``token``."""
        body = {"apiVersion": api_version, "kind": "TokenReview", "spec": {"token": token, **spec}}
        async with self.session.post(self.base + "/authenticate", json=body) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path) as resp:
            return resp.status, await resp.text()

    async def metrics(self) -> str:
        """The text of ``/metrics`` (read it with :mod:`support.metrics`)."""
        status, text = await self.get("/metrics")
        assert status == 200, text
        return text

    async def close(self) -> None:
        await self.session.close()
