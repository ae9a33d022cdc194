"""Helpers for the local AWS tests: botocore as the independent presigner, a tiny HTTPS client.

botocore's ``generate_presigned_url`` with a ``before-sign`` hook adding ``x-k8s-aws-id`` is the
reference client (protocol.md section 1); the STS front must accept exactly what it produces.
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest

Presign = Callable[..., str]


@functools.cache
def _botocore_session() -> Any:
    """One botocore session for the test run: creating one loads its data files (~0.25 s)."""
    import botocore.session

    return botocore.session.Session()


def botocore_presign(
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    region: str = "us-east-1",
    host: str | None = None,
    cluster_id: str = "cluster-a",
    at: datetime | None = None,
) -> str:
    """A presigned GetCallerIdentity URL made by botocore (clocked at ``at`` if given)."""
    session = _botocore_session()
    host = host or f"sts.{region}.amazonaws.com"
    client: Any = session.create_client(
        "sts",
        region_name=region,
        endpoint_url=f"https://{host}",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
    )

    def add_cluster_id(request: Any, **_: Any) -> None:
        request.headers["x-k8s-aws-id"] = cluster_id

    client.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_id)
    if at is None:
        return str(
            client.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
        )
    # botocore takes no clock argument; patching its clock function is the only way to sign
    # at a chosen time (the oracle itself is not replaced, only the time it reads).
    naive = at.replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
        return str(
            client.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
        )


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str


def https_get(
    url: str,
    *,
    port: int,
    ca_bundle: Path,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    host_header: str | None = None,
    timeout: float = 10.0,
) -> Answer:
    """GET ``url`` from 127.0.0.1:``port``, with the URL's host as SNI and Host (like --resolve)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    context = ssl.create_default_context(cafile=str(ca_bundle))

    class LoopbackConnection(http.client.HTTPSConnection):
        def connect(self) -> None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            self.sock = context.wrap_socket(sock, server_hostname=host)

    conn = LoopbackConnection(host, timeout=timeout, context=context)
    target = parts.path + ("?" + parts.query if parts.query else "")
    all_headers = dict(headers or {})
    if host_header is not None:
        all_headers["Host"] = host_header
    try:
        conn.request(method, target, headers=all_headers)
        response = conn.getresponse()
        return Answer(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read().decode(),
        )
    finally:
        conn.close()


@pytest.fixture
def presign() -> Presign:
    return botocore_presign


@pytest.fixture
def https() -> Callable[..., Answer]:
    return https_get
