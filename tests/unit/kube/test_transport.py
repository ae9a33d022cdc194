"""Every kubeconfig credential form, against a real HTTPS API on 127.0.0.1 (trustme certificates).

The exec plugin is a real script (conftest.PLUGIN) written to tmp_path; the clock of the exec
credential cache is injected, never slept on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kube_api import (
    KubeAPI,
    Pki,
    Plugin,
    config_map,
    credential,
    kubeconfig_doc,
    serve_api,
    server_context,
    write_yaml,
)

from kubeiam.errors import ConfigError, CredentialsError, KubeAPIError
from kubeiam.kube.client import async_client_for, load_kube_config, make_async_client
from kubeiam.kube.credentials import ExecCredentials
from kubeiam.kube.objects import get_object
from kubeiam.kube.refusals import KubeAccessError
from kubeiam.kube.resources import config_map as config_map_resource


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def read_aws_auth(client: Any) -> Any:
    try:
        return await get_object(client, config_map_resource(), "aws-auth", namespace="kube-system")
    finally:
        await client.close()


def exec_user(plugin: Plugin, **extra: Any) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin.path),
            "args": [str(plugin.answers_file)],
            "interactiveMode": "Never",
            **extra,
        }
    }


async def test_exec_v1_token_env_args_and_cluster_info(
    api: KubeAPI, pki: Pki, plugin: Plugin, tmp_path: Path
) -> None:
    plugin.answer(credential("good-token"))
    cluster = {
        "certificate-authority-data": b64(pki.ca_pem),
        "extensions": [
            {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "kube"}}
        ],
    }
    user = exec_user(plugin, env=[{"name": "PLUGIN_EXTRA", "value": "from-kubeconfig"}])
    user["exec"]["provideClusterInfo"] = True
    kubeconfig = write_yaml(tmp_path / "kc", kubeconfig_doc(api.url, cluster=cluster, user=user))

    obj = await read_aws_auth(make_async_client(kubeconfig))

    assert obj["data"] == {"mapUsers": "[]"}
    (run,) = plugin.runs()
    assert run["argv"] == [str(plugin.answers_file)]
    assert run["extra"] == "from-kubeconfig"
    assert run["stdin"] == "/dev/null"  # interactiveMode Never: no stdin
    info = json.loads(run["info"])
    assert info["apiVersion"] == "client.authentication.k8s.io/v1"
    assert info["kind"] == "ExecCredential"
    assert info["spec"]["interactive"] is False
    assert info["spec"]["cluster"] == {
        "server": api.url,
        "certificate-authority-data": b64(pki.ca_pem),
        "config": {"audience": "kube"},
    }
    assert [s.token for s in api.seen] == ["good-token"]


@pytest.mark.parametrize("version", ["v1beta1", "v1alpha1"])
async def test_exec_older_versions(
    api: KubeAPI, pki: Pki, plugin: Plugin, tmp_path: Path, version: str
) -> None:
    plugin.answer(credential("good-token", version=version))
    user = exec_user(plugin)
    user["exec"]["apiVersion"] = f"client.authentication.k8s.io/{version}"
    del user["exec"]["interactiveMode"]  # optional before v1 (IfAvailable)
    doc = kubeconfig_doc(
        api.url, cluster={"certificate-authority-data": b64(pki.ca_pem)}, user=user
    )
    obj = await read_aws_auth(make_async_client(write_yaml(tmp_path / "kc", doc)))
    assert obj is not None
    assert json.loads(plugin.runs()[0]["info"])["apiVersion"].endswith(version)


async def test_exec_credential_reused_until_expiry_and_rerun_on_401(
    api: KubeAPI, pki: Pki, plugin: Plugin, tmp_path: Path
) -> None:
    plugin.answer(
        credential("good-token", expirationTimestamp="2030-01-01T00:10:00Z"),
        credential("second-token", expirationTimestamp="2030-01-01T00:20:00Z"),
        credential("third-token"),
    )
    doc = kubeconfig_doc(
        api.url, cluster={"certificate-authority-data": b64(pki.ca_pem)}, user=exec_user(plugin)
    )
    access = load_kube_config(write_yaml(tmp_path / "kc", doc))
    clock = [1893456000.0]  # 2030-01-01T00:00:00Z
    client = async_client_for(access, now=lambda: clock[0], stdin_is_terminal=lambda: False)

    async def get() -> None:
        cm = config_map_resource()
        assert await get_object(client, cm, "aws-auth", namespace="kube-system") is not None

    try:
        await get()
        await get()
        clock[0] += 599
        await get()
        assert len(plugin.runs()) == 1  # reused until its expirationTimestamp
        clock[0] += 1
        api.tokens.add("second-token")
        await get()
        assert len(plugin.runs()) == 2  # expired: the plugin ran again
        # The API stops accepting second-token: a 401, the plugin runs again, and the refused
        # request is repeated with the fresh token.
        api.tokens = {"third-token"}
        await get()
        assert len(plugin.runs()) == 3
    finally:
        await client.close()
    assert [s.token for s in api.seen] == [
        "good-token",
        "good-token",
        "good-token",
        "second-token",
        "second-token",
        "third-token",
    ]


async def test_exec_client_certificate(
    api: KubeAPI, pki: Pki, plugin: Plugin, tmp_path: Path
) -> None:
    cert, key = pki.client("exec-cert-user")
    plugin.answer(credential(None, clientCertificateData=cert.decode(), clientKeyData=key.decode()))
    doc = kubeconfig_doc(
        api.url, cluster={"certificate-authority-data": b64(pki.ca_pem)}, user=exec_user(plugin)
    )
    assert await read_aws_auth(make_async_client(write_yaml(tmp_path / "kc", doc))) is not None
    assert [(s.token, s.client_cn) for s in api.seen] == [(None, "exec-cert-user")]


async def test_client_certificate_files_relative_to_the_kubeconfig(
    api: KubeAPI, pki: Pki, tmp_path: Path
) -> None:
    cert, key = pki.client("file-cert-user")
    home = tmp_path / "configs"
    (home / "pki").mkdir(parents=True)
    (home / "pki" / "me.crt").write_bytes(cert)
    (home / "pki" / "me.key").write_bytes(key)
    (home / "pki" / "ca.crt").write_bytes(pki.ca_pem)
    doc = kubeconfig_doc(
        api.url,
        cluster={"certificate-authority": "pki/ca.crt"},
        user={"client-certificate": "pki/me.crt", "client-key": "pki/me.key"},
    )
    kubeconfig = write_yaml(home / "kubeconfig", doc)
    assert await read_aws_auth(make_async_client(kubeconfig)) is not None
    assert api.seen[-1].client_cn == "file-cert-user"


async def test_client_certificate_data(api: KubeAPI, pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.client("data-cert-user")
    doc = kubeconfig_doc(
        api.url,
        cluster={"certificate-authority-data": b64(pki.ca_pem)},
        user={"client-certificate-data": b64(cert), "client-key-data": b64(key)},
    )
    assert await read_aws_auth(make_async_client(write_yaml(tmp_path / "kc", doc))) is not None
    assert api.seen[-1].client_cn == "data-cert-user"


async def test_token_and_token_file(api: KubeAPI, pki: Pki, tmp_path: Path) -> None:
    ca = {"certificate-authority-data": b64(pki.ca_pem)}
    kc = write_yaml(
        tmp_path / "a", kubeconfig_doc(api.url, cluster=ca, user={"token": "good-token"})
    )
    assert await read_aws_auth(make_async_client(kc)) is not None
    (tmp_path / "token").write_text("rotated-token\n")
    api.tokens.add("rotated-token")
    doc = kubeconfig_doc(api.url, cluster=ca, user={"tokenFile": "token", "token": "stale"})
    assert await read_aws_auth(make_async_client(write_yaml(tmp_path / "b", doc))) is not None
    assert [s.token for s in api.seen] == ["good-token", "rotated-token"]


async def test_tls_server_name(pki: Pki, tmp_path: Path) -> None:
    only_name = pki.ca.issue_cert("kube.internal")  # not valid for 127.0.0.1
    server = KubeAPI(tokens={"t"}, objects={"aws-auth": config_map("aws-auth", {})})
    async with serve_api(server, server_context(pki, only_name)):
        ca = {"certificate-authority-data": b64(pki.ca_pem)}
        doc = kubeconfig_doc(server.url, cluster=ca, user={"token": "t"})
        with pytest.raises(KubeAPIError, match=r"TLS: .* does not verify for '127\.0\.0\.1'"):
            await read_aws_auth(make_async_client(write_yaml(tmp_path / "a", doc)))
        ca["tls-server-name"] = "kube.internal"
        doc = kubeconfig_doc(server.url, cluster=ca, user={"token": "t"})
        assert await read_aws_auth(make_async_client(write_yaml(tmp_path / "b", doc))) is not None


async def test_insecure_skip_tls_verify(api: KubeAPI, tmp_path: Path) -> None:
    doc = kubeconfig_doc(
        api.url, cluster={"insecure-skip-tls-verify": True}, user={"token": "good-token"}
    )
    assert await read_aws_auth(make_async_client(write_yaml(tmp_path / "kc", doc))) is not None


@pytest.fixture
async def connect_proxy() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP CONNECT proxy on 127.0.0.1 that only tunnels to loopback; records targets."""
    targets: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        host, port = target.rsplit(":", 1)
        targets.append(target)
        if method != "CONNECT" or host != "127.0.0.1":
            writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", targets
    finally:
        server.close()


async def test_proxy_url(
    api: KubeAPI, pki: Pki, tmp_path: Path, connect_proxy: tuple[str, list[str]]
) -> None:
    proxy, targets = connect_proxy
    cluster = {"certificate-authority-data": b64(pki.ca_pem), "proxy-url": proxy}
    doc = kubeconfig_doc(api.url, cluster=cluster, user={"token": "good-token"})
    assert await read_aws_auth(make_async_client(write_yaml(tmp_path / "kc", doc))) is not None
    assert targets == [api.url.removeprefix("https://")]


async def test_kubeconfig_list_merged_by_kubectls_rules(
    api: KubeAPI, pki: Pki, tmp_path: Path
) -> None:
    ca = {"certificate-authority-data": b64(pki.ca_pem)}
    first = kubeconfig_doc(api.url, cluster=ca, user={"token": "good-token"}, current=None)
    # The second file also names "test" (ignored: the first file wins it) and sets the
    # current context (used: the first file sets none).
    second = kubeconfig_doc("https://127.0.0.1:1", user={"token": "wrong"}, current="test")
    a = write_yaml(tmp_path / "a", first)
    b = write_yaml(tmp_path / "b", second)
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}:{a}:{b}", "HOME": str(tmp_path)}
    client = make_async_client(None, use_kubectl_defaults=True, environ=env)
    assert await read_aws_auth(client) is not None
    assert [s.token for s in api.seen] == ["good-token"]


# --------------------------------------------------------------------------------------------
# Errors: each class ends in a kubeiam error with a fix, never a library traceback


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "error", "pattern"),
    [
        ("unreachable", KubeAPIError, r"cannot reach the Kubernetes API at https://127\.0\.0\.1:"),
        ("wrong CA", KubeAPIError, "TLS: .*certificate authority does not verify"),
        ("401", KubeAccessError, r"did not accept the credentials \(token, .*\(401 Unauthorized\)"),
        (
            "403",
            KubeAccessError,
            r"refused user 'token-user': get configmaps aws-auth in kube-system "
            r"\(403 Forbidden\)",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v[:3] else None,
)
async def test_api_failures_name_the_server_and_the_fix(
    api: KubeAPI, pki: Pki, tmp_path: Path, case: str, error: type[Exception], pattern: str
) -> None:
    import trustme

    server = api.url
    ca = pki.ca_pem
    token = "good-token"
    if case == "unreachable":
        server = f"https://127.0.0.1:{_closed_port()}"
    elif case == "wrong CA":
        ca = trustme.CA().cert_pem.bytes()
    elif case == "401":
        token = "bad-token"
    else:
        api.forbidden.add("/api/v1/namespaces/kube-system/configmaps/aws-auth")
    doc = kubeconfig_doc(
        server, cluster={"certificate-authority-data": b64(ca)}, user={"token": token}
    )
    with pytest.raises(error, match=pattern) as caught:
        await read_aws_auth(make_async_client(write_yaml(tmp_path / "kc", doc)))
    assert isinstance(caught.value, KubeAPIError)
    assert caught.value.hint
    assert "bad-token" not in str(caught.value)
    if case == "403":
        assert "verb 'get' on configmaps (apiGroup \"\") in namespace kube-system" in str(
            caught.value.hint
        )


@pytest.mark.parametrize(
    ("answers", "command", "error", "pattern"),
    [
        ((credential("x"),), "/nonexistent/kube-plugin", ConfigError, "not found"),
        ((3,), None, CredentialsError, "failed with exit status 3"),
        (
            ("not json",),
            None,
            CredentialsError,
            "did not print a usable ExecCredential: .*not JSON",
        ),
        (
            (credential("x", version="v1beta1"),),
            None,
            CredentialsError,
            "answered apiVersion 'client.authentication.k8s.io/v1beta1'",
        ),
        (
            ({"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1"},),
            None,
            CredentialsError,
            "has no status",
        ),
        ((credential(None),), None, CredentialsError, "neither a token nor a client certificate"),
        (
            (credential("x", expirationTimestamp="tomorrow"),),
            None,
            CredentialsError,
            "expirationTimestamp 'tomorrow' is not RFC 3339",
        ),
    ],
    ids=["not-found", "exit-3", "not-json", "wrong-version", "no-status", "empty", "bad-expiry"],
)
async def test_exec_plugin_failures(
    api: KubeAPI,
    pki: Pki,
    plugin: Plugin,
    tmp_path: Path,
    answers: tuple[Any, ...],
    command: str | None,
    error: type[Exception],
    pattern: str,
) -> None:
    plugin.answer(*answers)
    user = exec_user(plugin, installHint="install kube-plugin from example.invalid")
    if command is not None:
        user["exec"]["command"] = command
    doc = kubeconfig_doc(
        api.url, cluster={"certificate-authority-data": b64(pki.ca_pem)}, user=user
    )
    with pytest.raises(error, match=pattern) as caught:
        await read_aws_auth(make_async_client(write_yaml(tmp_path / "kc", doc)))
    assert caught.value.hint  # type: ignore[attr-defined]
    if command is not None:
        assert "install kube-plugin" in caught.value.hint  # type: ignore[attr-defined]
    assert api.seen == []


async def test_interactive_always_without_a_terminal_is_refused(
    api: KubeAPI, pki: Pki, plugin: Plugin, tmp_path: Path
) -> None:
    plugin.answer(credential("good-token"))
    user = exec_user(plugin, interactiveMode="Always")
    doc = kubeconfig_doc(
        api.url, cluster={"certificate-authority-data": b64(pki.ca_pem)}, user=user
    )
    access = load_kube_config(write_yaml(tmp_path / "kc", doc))
    source = ExecCredentials(access, stdin_is_terminal=lambda: False)
    with pytest.raises(ConfigError, match=r"needs a terminal .*Always"):
        await source.current()
    assert plugin.runs() == []


@pytest.mark.parametrize(
    ("mode", "terminal", "interactive", "stdin_null"),
    [
        ("IfAvailable", False, False, True),
        ("IfAvailable", True, True, False),
        ("Always", True, True, False),
        ("Never", True, False, True),
    ],
    ids=["ifavailable-no-tty", "ifavailable-tty", "always-tty", "never-tty"],
)
async def test_interactive_modes_pass_stdin_only_when_allowed(
    api: KubeAPI,
    pki: Pki,
    plugin: Plugin,
    tmp_path: Path,
    mode: str,
    terminal: bool,
    interactive: bool,
    stdin_null: bool,
) -> None:
    plugin.answer(credential("good-token"))
    user = exec_user(plugin, interactiveMode=mode)
    doc = kubeconfig_doc(
        api.url, cluster={"certificate-authority-data": b64(pki.ca_pem)}, user=user
    )
    access = load_kube_config(write_yaml(tmp_path / "kc", doc))
    # Our stdin becomes a pipe for the test, so a plugin that inherits it sees a pipe; the
    # terminal test itself is injected (a pty would be the only other way).
    saved = os.dup(0)
    read_end, write_end = os.pipe()
    os.dup2(read_end, 0)
    try:
        await ExecCredentials(access, stdin_is_terminal=lambda: terminal).current()
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    (run,) = plugin.runs()
    assert json.loads(run["info"])["spec"]["interactive"] is interactive
    assert (run["stdin"] == "/dev/null") is stdin_null
    assert stdin_null or run["stdin"].startswith("pipe:") or "pipe" in run["stdin"]


async def test_in_cluster_token_is_read_again_after_a_401(
    api: KubeAPI, pki: Pki, tmp_path: Path
) -> None:
    """The pod's service account: CA and namespace from the mount, the token re-read when the
    API refuses it (the kubelet rotates it)."""
    from urllib.parse import urlsplit

    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "ca.crt").write_bytes(pki.ca_pem)
    (sa / "namespace").write_text("kube-system\n")
    (sa / "token").write_text("rotated-away\n")
    port = str(urlsplit(api.url).port)
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
    client = make_async_client(None, environ=env, service_account_dir=sa)
    try:
        with pytest.raises(KubeAccessError, match=r"token file .*\(401 Unauthorized\)"):
            await get_object(client, config_map_resource(), "aws-auth", namespace="kube-system")
        (sa / "token").write_text("good-token\n")  # the kubelet rotated it
        obj = await get_object(client, config_map_resource(), "aws-auth")  # context namespace
        assert obj is not None
    finally:
        await client.close()
    # Refused, read again (unchanged: the 401 stands); later refused, read again, repeated.
    assert [s.token for s in api.seen] == ["rotated-away", "rotated-away", "good-token"]
