"""`kubeiam mapping add-group` / `remove` / `list` / `lint` / `explain` on local mapping files,
as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import yaml

from kubeiam.localaws.environment import LocalAWS
from kubeiam.mapping.backends.dynamic_file import parse_dynamic_file
from kubeiam.mapping.model import GroupMapping, load_sections
from support.cli import run_kubeiam

ACCOUNT = "111122223333"
DEVS = f"arn:aws:iam::{ACCOUNT}:group/eng/Developers"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"

SERVER_CONFIG = """\
# kubeiam server configuration (comments must survive)
server:
  iamGroupMapping: true   # resolve IAM users' groups
  mapUsers:
    - userARN: arn:aws:iam::111122223333:user/root-admin
      username: root-admin
      groups: [system:masters]
"""


def mapping(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kubeiam("mapping", *args, "--file", str(path))


def test_add_group_to_a_server_config_is_idempotent_and_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SERVER_CONFIG)
    args = ("add-group", DEVS, "--username", "dev:{{AccessKeyID}}", "--group", "devs,viewers")
    done = mapping(path, *args)
    assert done.returncode == 0, done.stderr
    assert f"added IAM group {DEVS}" in done.stderr
    again = mapping(path, *args)
    assert again.returncode == 0
    assert "unchanged" in again.stderr
    text = path.read_text()
    assert "# resolve IAM users' groups" in text
    server = yaml.safe_load(text)["server"]
    assert server["mapGroups"] == [
        {"groupARN": DEVS, "username": "dev:{{AccessKeyID}}", "groups": ["devs", "viewers"]}
    ]
    loaded = load_sections(server, prefix="server.")
    assert loaded.ok
    assert [type(e) for e in loaded.mappings.entries][-1] is GroupMapping

    different = mapping(path, "add-group", DEVS, "--username", "other")
    assert different.returncode != 0
    assert "--replace" in different.stderr

    listed = json.loads(mapping(path, "list", "-o", "json").stdout)
    assert {"kind": "group", "key": f"IAM group {DEVS}"}.items() <= listed[-1].items()

    explained = json.loads(mapping(path, "explain", ALICE, "-o", "json").stdout)
    assert explained["matched"] is False
    assert any(
        f"if the caller is a member of IAM group {DEVS}" in note for note in explained["notes"]
    )

    lint = mapping(path, "lint", "--no-nodes")
    assert "[iam-group]" in lint.stdout

    removed = mapping(path, "remove", DEVS.lower())
    assert removed.returncode == 0, removed.stderr
    assert "mapGroups" not in yaml.safe_load(path.read_text())["server"]


def test_add_group_to_a_dynamic_file(tmp_path: Path) -> None:
    path = tmp_path / "mappings.json"
    done = mapping(path, "add-group", DEVS, "--username", "dev", "--group", "devs")
    assert done.returncode == 0, done.stderr
    loaded = parse_dynamic_file(path.read_bytes())
    assert loaded.issues == ()
    assert [e.describe() for e in loaded.mappings.entries] == [f"mapGroups[0]: grouparn {DEVS}"]


def test_invalid_group_arn_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mappings.json"
    done = mapping(path, "add-group", f"arn:aws:iam::{ACCOUNT}:role/Dev", "--username", "d")
    assert done.returncode != 0
    assert "is not an IAM group ARN" in done.stderr
    assert not path.exists()


def test_session_name_username_is_a_lint_error(tmp_path: Path) -> None:
    path = tmp_path / "mappings.json"
    path.write_text(json.dumps({"mapGroups": [{"grouparn": DEVS, "username": "{{SessionName}}"}]}))
    lint = mapping(path, "lint", "--no-nodes")
    assert lint.returncode == 1
    assert "[session-template]" in lint.stdout


def test_whoami_lists_the_callers_groups_and_matches_the_group_entry(
    local_aws: LocalAWS, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    name = f"grp-whoami-{suffix}"
    key_id, secret = local_aws.create_user(name)
    iam = local_aws.boto3_client("iam")
    group = iam.create_group(GroupName=f"whoami-devs-{suffix}", Path="/eng/")["Group"]
    iam.add_user_to_group(GroupName=group["GroupName"], UserName=name)
    path = tmp_path / "mappings.json"
    done = mapping(path, "add-group", group["Arn"], "--username", "dev", "--group", "devs")
    assert done.returncode == 0, done.stderr
    env = {
        **os.environ,
        **local_aws.client_env(),
        "HOME": str(tmp_path / "home"),
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    me = run_kubeiam("whoami", "--file", str(path), "-o", "json", env=env)
    # Without iam:ListGroupsForUser (moto enforces IAM policies here) the memberships are
    # unknown: nothing matches, and the note names the entry a member would get.
    assert me.returncode == 1
    unknown = json.loads(me.stdout)
    assert unknown["iamGroups"] is None
    assert any(
        f"if the caller is a member of IAM group {group['Arn']}" in note
        for note in unknown["mappings"][0]["notes"]
    )
    iam.put_user_policy(
        UserName=name,
        PolicyName="list-own-groups",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "iam:ListGroupsForUser",
                        # moto's evaluator does not match IAM resource ARNs for this action
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    me = run_kubeiam("whoami", "--file", str(path), "-o", "json", env=env)
    assert me.returncode == 0, me.stdout + me.stderr
    found = json.loads(me.stdout)
    assert found["iamGroups"] == [group["Arn"]]
    assert (found["username"], found["groups"]) == ("dev", ["devs"])
    assert secret not in me.stdout + me.stderr
