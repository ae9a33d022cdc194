"""`kubeiam verify` fed a whole ExecCredential (or any JSON document) instead of a token says
so and how to pass the token, before any STS call, without quoting the token (real processes;
the token is presigned offline, nothing reaches the network)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.cli import run_kubeiam

KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def kubeiam(
    *args: str, home: Path, stdin: str | None = None, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", **KEYS, **(extra or {})}
    return run_kubeiam(*args, input=stdin, env=env)


def exec_info(version: str) -> dict[str, str]:
    info = {"apiVersion": f"client.authentication.k8s.io/{version}", "kind": "ExecCredential"}
    return {"KUBERNETES_EXEC_INFO": json.dumps({**info, "spec": {"interactive": False}})}


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
@pytest.mark.parametrize("via", ["stdin", "argument"])
def test_a_whole_exec_credential_is_named_and_the_way_to_pass_the_token_given(
    via: str, version: str, scrubbed_env: Path
) -> None:
    minted = kubeiam(
        "token", "-i", "demo", "--no-cache", home=scrubbed_env, extra=exec_info(version)
    )
    assert minted.returncode == 0, minted.stderr
    document = json.loads(minted.stdout)
    assert document["apiVersion"].endswith(version)
    token = document["status"]["token"]
    if via == "stdin":
        done = kubeiam("verify", "-i", "demo", "-t", "-", home=scrubbed_env, stdin=minted.stdout)
        source = "standard input"
    else:
        done = kubeiam("verify", "-i", "demo", "-t", minted.stdout, home=scrubbed_env)
        source = "--token"
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines == [
        f"kubeiam: error: {source} is a whole ExecCredential (what `kubeiam token` prints for "
        "kubectl), not a token",
        "  fix: pass the token alone: `kubeiam token -i ID --token-only | kubeiam verify -i ID "
        "-t -` (or the ExecCredential's status.token)",
    ]
    assert token not in done.stderr + done.stdout


def test_the_advice_works_token_only_prints_the_bare_token(scrubbed_env: Path) -> None:
    done = kubeiam("token", "-i", "demo", "--no-cache", "--token-only", home=scrubbed_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("k8s-aws-v1.")
    assert done.stdout.count("\n") == 1
    # ... and verify takes it past every format check to the STS call (refused here: a closed
    # port on loopback)
    checked = kubeiam(
        "verify",
        "-i",
        "demo",
        "-t",
        "-",
        "--sts-timeout",
        "0.5",
        "--sts-resolve",
        "sts.amazonaws.com=127.0.0.1:9",
        home=scrubbed_env,
        stdin=done.stdout,
    )
    assert checked.returncode == 1, checked.stderr
    assert "cannot connect to STS" in checked.stderr


OTHER_DOCUMENTS = {
    "json-object": '{"apiVersion": "v1", "kind": "Config"}',
    "deeply-nested": "{" + '"a":' * 1 + "[" * 200_000 + "]" * 200_000 + "}",
}


@pytest.mark.parametrize("case", list(OTHER_DOCUMENTS), ids=list(OTHER_DOCUMENTS))
def test_other_json_is_refused_as_not_a_token(case: str, scrubbed_env: Path) -> None:
    done = kubeiam(
        "verify", "-i", "demo", "-t", "-", home=scrubbed_env, stdin=OTHER_DOCUMENTS[case]
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[0] == (
        "kubeiam: error: standard input is a JSON document, not a token (k8s-aws-v1....)"
    )
    assert "Traceback" not in done.stderr
