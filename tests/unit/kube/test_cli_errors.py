"""Every class of Kubernetes API failure, through the real `kubeiam` CLI process: two lines on
stderr (`kubeiam: error: ...` and `fix: ...`), the documented exit code, no traceback, no secret.

The API is the real HTTPS stand-in of kube_api.py on 127.0.0.1; the exec plugin a real script.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from pathlib import Path
from typing import Any

import pytest
import trustme
from kube_api import KubeAPI, Pki, Plugin, credential, kubeconfig_doc, write_yaml

from support.cli import KUBEIAM

AWS_AUTH = "/api/v1/namespaces/kube-system/configmaps/aws-auth"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _kubeiam(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        KUBEIAM,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


CASES: list[tuple[str, int, str]] = [
    (
        "forbidden",
        1,
        "the Kubernetes API refused user 'token-user': get configmaps aws-auth in "
        "kube-system (403 Forbidden)",
    ),
    ("unauthorized", 1, "did not accept the credentials (token"),
    ("unreachable", 1, "cannot reach the Kubernetes API at https://127.0.0.1:"),
    ("wrong-ca", 1, "TLS: the Kubernetes API at https://127.0.0.1:"),
    ("ca-not-base64", 2, "certificate-authority-data is not valid base64"),
    ("ca-not-pem", 2, "does not hold a PEM certificate"),
    ("ca-garbage-pem", 2, "the certificate authority is not a valid PEM certificate"),
    ("basic-auth", 2, "basic authentication (username/password) is not supported"),
    ("auth-provider", 2, "the auth-provider plugin 'gcp' is not supported"),
    ("plugin-missing", 2, "exec plugin '/nonexistent/kube-plugin' not found"),
    ("plugin-fails", 3, "failed with exit status 4"),
    ("plugin-bad-json", 3, "did not print a usable ExecCredential: its output is not JSON"),
    ("kubeconfig-missing", 2, "does not exist"),
    ("server-port-out-of-range", 2, "server 'https://127.0.0.1:99999' is not usable"),
]


@pytest.mark.parametrize(("case", "code", "first_line"), CASES, ids=[c[0] for c in CASES])
async def test_mapping_list_failure_is_two_lines_with_a_fix(
    api: KubeAPI,
    pki: Pki,
    plugin: Plugin,
    tmp_path: Path,
    case: str,
    code: int,
    first_line: str,
) -> None:
    ca_data = base64.b64encode(pki.ca_pem).decode()
    server = api.url
    user: dict[str, Any] = {"token": "good-token"}
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin.path),
            "args": [str(plugin.answers_file)],
            "interactiveMode": "Never",
        }
    }
    if case == "forbidden":
        api.forbidden.add(AWS_AUTH)
    elif case == "unauthorized":
        user = {"token": "sekrit-wrong-token"}
    elif case == "unreachable":
        server = f"https://127.0.0.1:{_closed_port()}"
    elif case == "server-port-out-of-range":
        server = "https://127.0.0.1:99999"
    elif case == "wrong-ca":
        ca_data = base64.b64encode(trustme.CA().cert_pem.bytes()).decode()
    elif case == "ca-not-base64":
        ca_data = "!!not base64!!"
    elif case == "ca-not-pem":
        ca_data = base64.b64encode(b"just text").decode()
    elif case == "ca-garbage-pem":
        pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ca_data = base64.b64encode(pem).decode()
    elif case == "basic-auth":
        user = {"username": "admin", "password": "sekrit-password"}
    elif case == "auth-provider":
        user = {"auth-provider": {"name": "gcp", "config": {"access-token": "sekrit"}}}
    elif case.startswith("plugin"):
        user = exec_user
        if case == "plugin-missing":
            user["exec"]["command"] = "/nonexistent/kube-plugin"
        plugin.answer(4 if case == "plugin-fails" else "{not json", credential("x"))
    kubeconfig = tmp_path / "kc"
    if case != "kubeconfig-missing":
        doc = kubeconfig_doc(server, cluster={"certificate-authority-data": ca_data}, user=user)
        write_yaml(kubeconfig, doc)

    rc, out, err = await _kubeiam(
        "mapping", "list", "--store", "aws-auth", "--kubeconfig", str(kubeconfig)
    )

    assert rc == code, err
    assert out == ""
    assert "Traceback" not in err
    assert "sekrit" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    if case == "plugin-fails":
        # The plugin's own stderr is the user's, as with kubectl; kubeiam's two lines follow.
        assert lines[0] == "plugin failing on purpose"
        lines = lines[1:]
    assert len(lines) == 2, err
    assert lines[0].startswith("kubeiam: error: "), err
    assert first_line in lines[0], err
    assert lines[1].strip().startswith("fix: "), err
