"""`kubeiam mapping` on a local mapping file, and `kubeiam whoami`, as real processes.

The aws-auth and CRD stores run the same commands against the real API server in
tests/e2e/test_mapping_commands.py.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from kubeiam.localaws.environment import LocalAWS
from kubeiam.mapping.backends.dynamic_file import parse_dynamic_file
from kubeiam.mapping.model import load_sections
from support.cli import KUBEIAM, run_kubeiam

ACCOUNT = "111122223333"
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/NodeInstanceRole"

SERVER_CONFIG = f"""\
# kubeiam server configuration (hand-written; comments must survive)
server:
  clusterID: demo   # used in tokens
  mapRoles:
    - roleARN: {NODE_ROLE}
      username: system:node:{{{{EC2PrivateDNSName}}}}
      groups:
        - system:bootstrappers
        - system:nodes
  futureOption: keep-me
"""


def mapping(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kubeiam("mapping", *args, "--file", str(path))


def ok(path: Path, *args: str) -> None:
    """Run a mapping command that must succeed."""
    done = mapping(path, *args)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(SERVER_CONFIG)
    path.chmod(0o644)
    return path


def server_sections(path: Path) -> dict[str, object]:
    server: dict[str, object] = yaml.safe_load(path.read_text())["server"]
    return server


def test_every_add_is_idempotent_and_keeps_the_rest_of_the_file(config: Path) -> None:
    commands = [
        ("add-user", f"arn:aws:iam::{ACCOUNT}:user/kubedemy", "--username", "kubedemy",
         "--group", "system:masters"),
        ("add-role", f"arn:aws:iam::{ACCOUNT}:role/KubernetesAdmin", "--username",
         "admin:{{SessionName}}", "--group", "system:masters"),
        ("add-sso", "Developers", "--account", ACCOUNT, "--username", "dev:{{SessionName}}",
         "--group", "dev,view"),
        ("add-account", "444455556666"),
    ]  # fmt: skip
    for command in commands:
        first = mapping(config, *command)
        assert first.returncode == 0, first.stderr
        assert "added" in first.stderr
        text = config.read_text()
        second = mapping(config, *command)
        assert second.returncode == 0, second.stderr
        assert "unchanged" in second.stderr
        assert config.read_text() == text
    text = config.read_text()
    assert text.startswith(SERVER_CONFIG.split("  futureOption")[0])
    assert "# kubeiam server configuration" in text
    assert "clusterID: demo   # used in tokens" in text
    assert "futureOption: keep-me" in text
    assert oct(config.stat().st_mode & 0o777) == "0o644"  # the server must still read it
    # What the server's MountedFile backend reads: every entry valid, none dropped.
    server = server_sections(config)
    loaded = load_sections(server, prefix="server.")  # type: ignore[arg-type]
    assert loaded.issues == ()
    assert len(loaded.mappings) == 5


def test_a_different_mapping_of_the_same_arn_needs_replace(config: Path) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:user/kubedemy"
    assert mapping(config, "add-user", arn, "--username", "a", "--group", "g").returncode == 0
    before = config.read_text()
    refused = mapping(config, "add-user", arn, "--username", "b", "--group", "g")
    assert refused.returncode == 2
    assert "--replace" in refused.stderr
    assert config.read_text() == before
    replaced = mapping(config, "add-user", arn, "--username", "b", "--group", "g", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert "replaced" in replaced.stderr
    users = server_sections(config)["mapUsers"]
    assert users == [{"userARN": arn, "username": "b", "groups": ["g"]}]


def test_role_path_is_kept_and_explained(config: Path) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:role/teams/platform/Admins"
    done = mapping(config, "add-role", arn, "--username", "admin:{{SessionName}}")
    assert done.returncode == 0, done.stderr
    assert f"matches it as arn:aws:iam::{ACCOUNT}:role/Admins" in done.stderr
    same_role = mapping(
        config, "add-role", f"arn:aws:iam::{ACCOUNT}:role/Admins", "--username", "other"
    )
    assert same_role.returncode == 2  # the same role, path or not
    explained = mapping(
        config,
        "explain",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Admins/alice@example.com",
        "-o",
        "json",
    )
    assert explained.returncode == 0, explained.stderr
    found = json.loads(explained.stdout)
    assert found["username"] == "admin:alice-example.com"
    assert found["backend"] == "MountedFile"
    assert any("path stripping" in note for note in found["notes"])


def test_explain_says_why_nothing_matches(config: Path) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:user/kubedemy"
    assert mapping(config, "add-user", arn, "--username", "kubedemy").returncode == 0
    done = mapping(config, "explain", "arn:aws:iam::999999999999:user/kubedemy")
    assert done.returncode == 1
    assert "no match" in done.stdout
    assert "is for account 111122223333, the caller is in account 999999999999" in done.stdout
    assert "account 999999999999 is not mapped" in done.stdout
    node = mapping(config, "explain", NODE_ROLE, "--session-name", "i-0123456789abcdef0")
    assert node.returncode == 0
    assert "username: system:node:{{EC2PrivateDNSName}}" in node.stdout
    assert "ec2:DescribeInstances" in node.stdout


def test_node_entries_and_the_last_master_are_guarded(config: Path) -> None:
    before = config.read_text()
    refused = mapping(config, "remove", NODE_ROLE)
    assert refused.returncode == 5
    assert f"every node using role {NODE_ROLE} would lose access" in refused.stderr
    assert "no undo on EKS" in refused.stderr
    changed = mapping(config, "add-role", NODE_ROLE, "--username", "x", "--replace")
    assert changed.returncode == 5
    assert config.read_text() == before
    admin = f"arn:aws:iam::{ACCOUNT}:user/admin"
    ok(config, "add-user", admin, "--username", "a", "--group", "system:masters")
    last = mapping(config, "remove", admin)
    assert last.returncode == 5
    assert "last system:masters" in last.stderr
    forced = mapping(config, "remove", NODE_ROLE, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "--force:" in forced.stderr
    assert "mapRoles" not in server_sections(config)


def test_dry_run_prints_a_diff_and_writes_nothing(config: Path) -> None:
    before = config.read_text()
    done = mapping(config, "add-account", "444455556666", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"--- file {config} (current)\n+++ file {config} (after)\n")
    assert '+  mapAccounts:\n+    - "444455556666"\n' in done.stdout
    assert config.read_text() == before
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.yaml"]  # no backup either


def test_remove_user_account_and_permission_set(config: Path) -> None:
    user = f"arn:aws:iam::{ACCOUNT}:user/temp"
    assert mapping(config, "add-user", user, "--username", "t").returncode == 0
    assert mapping(config, "add-account", "444455556666").returncode == 0
    sso = ("Developers", "--account", ACCOUNT)
    assert mapping(config, "add-sso", *sso, "--username", "d").returncode == 0
    for args in ((user,), ("444455556666",), ("Developers", "--account", ACCOUNT)):
        done = mapping(config, "remove", *args)
        assert done.returncode == 0, done.stderr
        assert "removed" in done.stderr
        again = mapping(config, "remove", *args)
        assert again.returncode == 1, again.stderr
        assert "not found" in again.stderr
        ignored = mapping(config, "remove", *args, "--ignore-not-found")
        assert ignored.returncode == 0, ignored.stderr
        assert "nothing removed (--ignore-not-found)" in ignored.stderr
    assert config.read_text() == SERVER_CONFIG


@pytest.mark.parametrize(
    ("args", "closest"),
    [
        ((f"arn:aws:iam::{ACCOUNT}:user/kubedmy",), f"arn:aws:iam::{ACCOUNT}:user/kubedemy"),
        ((f"arn:aws:iam::{ACCOUNT}:role/NodeInstanceRol",), NODE_ROLE),
        (("111122223334",), "111122223333"),
        (("Develpers", "--account", ACCOUNT), "Developers"),
    ],
    ids=["user-typo", "role-typo", "account-typo", "permission-set-typo"],
)
def test_removing_what_is_not_mapped_names_the_closest(
    config: Path, args: tuple[str, ...], closest: str
) -> None:
    ok(config, "add-user", f"arn:aws:iam::{ACCOUNT}:user/kubedemy", "--username", "k")
    ok(config, "add-account", ACCOUNT)
    ok(config, "add-sso", "Developers", "--account", ACCOUNT, "--username", "d")
    before = config.read_text()
    done = mapping(config, "remove", *args)
    assert done.returncode == 1, done.stderr
    assert "not found" in done.stderr
    assert f"closest: {closest}" in done.stderr
    assert "--ignore-not-found" in done.stderr
    assert "Traceback" not in done.stderr
    assert config.read_text() == before


@pytest.mark.parametrize(
    "command",
    [
        ("list",),
        ("lint",),
        ("explain", f"arn:aws:iam::{ACCOUNT}:user/u"),
        ("remove", f"arn:aws:iam::{ACCOUNT}:user/u"),
        ("remove", f"arn:aws:iam::{ACCOUNT}:user/u", "--ignore-not-found"),
        ("backup",),
    ],
    ids=["list", "lint", "explain", "remove", "remove-ignore", "backup"],
)
def test_a_missing_mapping_file_is_an_error(tmp_path: Path, command: tuple[str, ...]) -> None:
    path = tmp_path / "typo.yaml"
    done = mapping(path, *command)
    assert done.returncode == 2, done.stderr
    assert "no such file" in done.stderr
    assert "fix: " in done.stderr
    assert not path.exists()


@pytest.mark.parametrize("name", ["new.yaml", "new.json"])
def test_only_an_add_creates_a_mapping_file_and_says_so(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    done = mapping(path, "add-user", f"arn:aws:iam::{ACCOUNT}:user/u", "--username", "u")
    assert done.returncode == 0, done.stderr
    assert "did not exist: created it" in done.stderr
    assert path.exists()


def test_list_in_three_formats(config: Path) -> None:
    sso = ("add-sso", "Dev", "--account", ACCOUNT, "--username", "dev", "--group", "dev")
    assert mapping(config, *sso).returncode == 0
    table = mapping(config, "list")
    assert table.stdout.splitlines()[0].split() == ["KIND", "ARN", "/", "KEY", "USERNAME", "GROUPS"]
    assert NODE_ROLE in table.stdout
    as_json = json.loads(mapping(config, "list", "-o", "json").stdout)
    as_yaml = yaml.safe_load(mapping(config, "list", "-o", "yaml").stdout)
    assert as_json == as_yaml
    assert [r["kind"] for r in as_json] == ["role", "sso"]
    assert as_json[1]["permissionSet"] == "Dev"


def test_lint_reports_errors_and_warnings(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
server:
  mapRoles:
    - rolearn: arn:aws:iam::{ACCOUNT}:role/path/Admin
      username: admin
      groups: [system:masters]
    - rolearn: arn:aws:iam::{ACCOUNT}:role/Admin
      username: someone-else
    - rolearn: arn:aws:iam::12345:role/Broken
      username: x
    - rolearn: arn:aws:iam::{ACCOUNT}:role/Templ
      username: "{{{{sessionname}}}}"
    - rolearn: arn:aws:iam::{ACCOUNT}:role/Sys
      username: system:sneaky
  mapUsers:
    - userarn: arn:aws:iam::{ACCOUNT}:user/u
      username: u
    - userarn: arn:aws:iam::{ACCOUNT}:user/u
      username: u
"""
    )
    done = mapping(path, "lint", "-o", "json")
    assert done.returncode == 1
    codes = {(f["code"], f["level"]) for f in json.loads(done.stdout)}
    assert {
        ("role-path", "warning"),
        ("conflict", "error"),
        ("invalid-arn", "error"),
        ("unknown-template", "error"),
        ("reserved-prefix", "warning"),
        ("system-masters", "warning"),
        ("duplicate", "warning"),
    } <= codes
    text = mapping(path, "lint")
    assert text.returncode == 1
    assert "error(s)" in text.stderr


def test_lint_with_warnings_only_exits_zero(config: Path) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:user/kubedemy"
    ok(config, "add-user", arn, "--username", "k", "--group", "system:masters")
    done = mapping(config, "lint")
    assert done.returncode == 0, done.stdout
    assert "[system-masters]" in done.stdout


def test_backup_and_restore_round_trip(config: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    done = mapping(config, "backup", "--output-file", str(saved))
    assert done.returncode == 0, done.stderr
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    for i in range(3):
        arn = f"arn:aws:iam::{ACCOUNT}:user/u{i}"
        assert mapping(config, "add-user", arn, "--username", f"u{i}").returncode == 0
    after_three = config.read_text()
    history = mapping(config, "restore", "--list")
    revisions = [line.split()[0] for line in history.stdout.splitlines()[1:]]
    assert revisions == ["1", "2", "3"]  # the backup and the first add saw the same state
    back = mapping(config, "restore", "--revision", "2")
    assert back.returncode == 0, back.stderr
    assert "u0" in config.read_text()
    assert "u1" not in config.read_text()
    assert mapping(config, "restore", "--latest").returncode == 0  # undo the restore
    assert config.read_text() == after_three
    assert mapping(config, "restore", str(saved)).returncode == 0
    assert config.read_text() == SERVER_CONFIG
    backups = config.with_name(config.name + ".kubeiam-backup.json")
    assert oct(backups.stat().st_mode & 0o777) == "0o600"
    missing = mapping(config, "restore", "--revision", "99")
    assert missing.returncode == 2
    assert "restore --list" in missing.stderr


def test_dynamic_file_json_store(tmp_path: Path) -> None:
    path = tmp_path / "mappings.json"
    arn = f"arn:aws:iam::{ACCOUNT}:role/Ops"
    done = mapping(path, "add-role", arn, "--username", "ops", "--group", "ops")
    assert done.returncode == 0, done.stderr
    assert mapping(path, "add-account", ACCOUNT).returncode == 0
    loaded = parse_dynamic_file(path.read_bytes())
    assert loaded.issues == ()
    assert [e.describe() for e in loaded.mappings.entries] == [
        f"mapRoles[0]: rolearn {arn}",
        f"mapAccounts[0]: account {ACCOUNT}",
    ]
    explained = json.loads(mapping(path, "explain", arn, "-o", "json").stdout)
    assert explained["backend"] == "DynamicFile"


def test_writers_racing_on_one_file_lose_nothing(config: Path) -> None:
    arns = [f"arn:aws:iam::{ACCOUNT}:user/racer{i}" for i in range(6)]
    procs = [
        subprocess.Popen(
            [KUBEIAM, "mapping", "add-user", arn, "--username", arn[-6:], "--file", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for arn in arns
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    users = server_sections(config)["mapUsers"]
    assert isinstance(users, list)
    assert sorted(u["userARN"] for u in users) == sorted(arns)


def test_store_flags_are_checked() -> None:
    done = run_kubeiam("mapping", "list", "--store", "file")
    assert done.returncode == 2
    assert "--file PATH" in done.stderr


# --------------------------------------------------------------------------------------------
# whoami


@pytest.fixture
def aws_env(aws_cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**aws_cli_env, "HOME": str(tmp_path / "home")}


def test_whoami_user_and_its_mapping(
    local_aws: LocalAWS, aws_env: dict[str, str], config: Path
) -> None:
    name = f"kubedemy-{uuid.uuid4().hex[:6]}"
    key_id, secret = local_aws.create_user(name)
    arn = local_aws.user_arn(name)
    ok(config, "add-user", arn, "--username", "kubedemy", "--group", "system:masters")
    env = {**aws_env, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
    done = run_kubeiam("whoami", "--file", str(config), "-o", "json", env=env)
    assert done.returncode == 0, done.stderr
    me = json.loads(done.stdout)
    assert me["arn"] == arn
    assert me["canonicalArn"] == arn
    assert me["account"] == local_aws.account_id
    assert me["username"] == "kubedemy"
    assert me["groups"] == ["system:masters"]
    assert me["mappings"][0]["entry"].endswith(f"userarn {arn}")
    plain = run_kubeiam("whoami", env=env)
    assert plain.returncode == 0, plain.stderr
    assert f"ARN:           {arn}" in plain.stdout
    for text in (done.stdout, done.stderr, plain.stdout, plain.stderr):
        assert secret not in text


def test_whoami_assumed_role_through_a_profile(
    local_aws: LocalAWS, aws_env: dict[str, str], config: Path, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    user = f"dev-{suffix}"
    key_id, secret = local_aws.create_user(user)
    role_arn = local_aws.create_role(
        f"K8sDevs-{suffix}", trusted=local_aws.user_arn(user), grant_to_user=user
    )
    sts = local_aws.boto3_client("sts", credentials=(key_id, secret))
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="alice")["Credentials"]
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[dev]\n"
        f"aws_access_key_id = {creds['AccessKeyId']}\n"
        f"aws_secret_access_key = {creds['SecretAccessKey']}\n"
        f"aws_session_token = {creds['SessionToken']}\n"
    )
    credentials.chmod(0o600)
    ok(config, "add-role", role_arn, "--username", "dev:{{SessionName}}", "--group", "dev")
    env = {
        **aws_env,
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        # The profile must win over keys in the environment (which would sign as someone else).
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    done = run_kubeiam("whoami", "--profile", "dev", "--file", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert f"assumed-role/K8sDevs-{suffix}/alice" in done.stdout
    assert f"Canonical ARN: {role_arn}" in done.stdout
    assert "username: dev:alice" in done.stdout
    for text in (done.stdout, done.stderr):
        assert creds["SecretAccessKey"] not in text
        assert creds["SessionToken"] not in text
        assert secret not in text


def test_whoami_unmapped_exits_one(
    local_aws: LocalAWS, aws_env: dict[str, str], config: Path
) -> None:
    name = f"nobody-{uuid.uuid4().hex[:6]}"
    key_id, secret = local_aws.create_user(name)
    env = {**aws_env, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
    done = run_kubeiam("whoami", "--file", str(config), env=env)
    assert done.returncode == 1
    assert "no match" in done.stdout


def test_whoami_unknown_profile_is_a_config_error(aws_env: dict[str, str]) -> None:
    done = run_kubeiam("whoami", "--profile", "nope", env=aws_env)
    assert done.returncode == 2
    assert "nope" in done.stderr


#: Files a user may really have, each one the server refuses: (id, name, bytes).
BAD_FILES = [
    ("duplicate-key", "c.yaml", b"server:\n  mapUsers: []\n  mapUsers: []\n"),
    ("section-string", "c.yaml", b'server:\n  mapUsers: "oops"\n'),
    ("section-dict", "c.yaml", b"server:\n  mapUsers: {a: b}\n"),
    ("invalid-yaml", "c.yaml", b"server: [\n"),
    ("not-utf8", "c.yaml", b"server:\n  port: \xff\n"),
    ("control-char", "c.yaml", b"server:\n  port: 1\x1b\n"),
    ("deep", "c.yaml", b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n"),
    (
        "alias-bomb",
        "c.yaml",
        b"a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        b"e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
    ),
    ("json-dup", "m.json", b'{"mapUsers": [], "mapUsers": []}'),
    ("json-list", "m.json", b"[]"),
    ("json-digits", "m.json", b'{"a": 1' + b"0" * 5000 + b"}"),
]


@pytest.mark.parametrize(
    "command",
    [
        ("list",),
        ("lint", "--no-nodes"),
        ("explain", f"arn:aws:iam::{ACCOUNT}:user/u"),
        ("add-user", f"arn:aws:iam::{ACCOUNT}:user/u", "--username", "u"),
        ("remove", f"arn:aws:iam::{ACCOUNT}:user/u"),
    ],
    ids=["list", "lint", "explain", "add", "remove"],
)
@pytest.mark.parametrize(
    ("name", "content"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_every_command_on_a_bad_file_fails_cleanly(
    tmp_path: Path, command: tuple[str, ...], name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    done = mapping(path, *command)
    assert done.returncode in (1, 2), (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "error" in done.stderr
    assert path.read_bytes() == content  # nothing written
