"""`mapping lint` reads a file exactly as the server does (one loader), an edit never writes a
file the server would refuse, and lint's own checks (session-chosen groups, output escaping)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeiam.admin.editing.editor import MappingEditor
from kubeiam.admin.editing.file_store import FileStore
from kubeiam.admin.editing.lint import Level, lint
from kubeiam.admin.editing.terminal import terminal_text
from kubeiam.errors import ConfigError, KubeIAMError, MappingError
from kubeiam.mapping.aws_auth import Change, read_aws_auth
from kubeiam.mapping.backends.dynamic_file import parse_dynamic_file
from kubeiam.mapping.backends.mounted_file import MountedFile
from kubeiam.server.config import read_config_file

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
GOOD_ROLE = f"    - rolearn: {ROLE}\n      username: admin\n      groups: [ops]\n"

#: (id, file name, text): server config YAML and DynamicFile JSON, good and bad.
CORPUS = [
    ("good-yaml", "c.yaml", f"clusterID: x\nserver:\n  mapRoles:\n{GOOD_ROLE}"),
    ("empty-yaml", "c.yaml", "clusterID: x\n"),
    ("dup-groups-key", "c.yaml", f"server:\n  mapRoles:\n{GOOD_ROLE}      groups: [admin]\n"),
    ("dup-section", "c.yaml", f"server:\n  mapRoles:\n{GOOD_ROLE}  mapRoles: []\n"),
    ("case-dup-section", "c.yaml", f"server:\n  mapRoles:\n{GOOD_ROLE}  MapRoles: []\n"),
    ("section-string", "c.yaml", "server:\n  mapUsers: oops\n"),
    ("section-dict", "c.yaml", "server:\n  mapUsers: {a: b}\n"),
    ("server-list", "c.yaml", "server: [a]\n"),
    ("invalid-yaml", "c.yaml", "server: [\n"),
    ("skipped-entry", "c.yaml", "server:\n  mapRoles:\n    - rolearn: nope\n      username: x\n"),
    (
        "control-char-name",
        "c.yaml",
        f'server:\n  mapUsers:\n    - userarn: {USER}\n      username: "a\\tb"\n',
    ),
    ("int-username", "c.yaml", f"server:\n  mapUsers:\n    - userarn: {USER}\n      username: 5\n"),
    (
        "conflict",
        "c.yaml",
        f"server:\n  mapRoles:\n{GOOD_ROLE}    - rolearn: {ROLE}\n      username: other\n",
    ),
    ("flat", "c.yaml", f"mapRoles:\n{GOOD_ROLE}"),
    (
        "alias-bomb",
        "c.yaml",
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdefg", "bcdefgh", strict=True)
        ),
    ),
    ("good-json", "m.json", json.dumps({"mapRoles": [{"rolearn": ROLE, "username": "a"}]})),
    ("dup-json-key", "m.json", '{"mapRoles": [], "mapRoles": []}'),
    ("case-dup-json", "m.json", '{"mapRoles": [], "MapRoles": []}'),
    ("json-section-string", "m.json", '{"mapUsers": "oops"}'),
    ("json-list", "m.json", "[]"),
    ("json-invalid", "m.json", "{"),
    ("json-skipped", "m.json", '{"mapRoles": [{"rolearn": "nope", "username": "x"}]}'),
    (
        "json-control",
        "m.json",
        '{"mapUsers": [{"userarn": "' + USER + '", "username": "a\\u0000"}]}',
    ),
]


def server_accepts(path: Path) -> bool:
    """What the server does with the file at start-up (MountedFile) or on load (DynamicFile)."""
    if path.suffix == ".json":
        return parse_dynamic_file(path.read_bytes()).ok
    try:
        values = read_config_file(path)
        MountedFile(
            values.get("map_roles", ()),
            values.get("map_users", ()),
            values.get("map_accounts", ()),
            values.get("map_groups", ()),
        )
    except (ConfigError, MappingError):
        return False
    return True


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.mark.parametrize(("name", "text"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_lint_refuses_exactly_what_the_server_refuses(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    store = FileStore(path)
    loaded = run(store.read()).document.load()
    findings = lint(loaded, backend=store.backend)
    assert loaded.ok is server_accepts(path), loaded.issues
    if not loaded.ok:  # and an entry the server skips is an error finding too
        assert any(f.level is Level.ERROR for f in findings)


@pytest.mark.parametrize(("name", "text"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_an_edit_never_writes_what_the_server_refuses(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    editor = MappingEditor(FileStore(path), now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    refused: KubeIAMError | None = None
    try:
        run(editor.edit(lambda d: d.upsert_user(USER, "alice", ["g"], replace=False)))
    except KubeIAMError as exc:
        refused = exc
    if refused is None:
        assert server_accepts(path), path.read_text()
        return
    assert refused.exit_code in (1, 2)
    assert path.read_text() == text  # nothing written
    assert not server_accepts(path) or "top level" in refused.message


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"server:\n  mapRoles:\n{GOOD_ROLE}      groups: [admin]\n")
    loaded = run(FileStore(path).read()).document.load()
    (finding,) = [f for f in lint(loaded, backend="MountedFile") if f.level is Level.ERROR]
    assert finding.code == "duplicate-key"
    assert "lines 5 and 6" in finding.message


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (["system:{{SessionName}}"], ("reserved-group", Level.ERROR)),
        (["eks:{{SessionNameRaw}}-x"], ("reserved-group", Level.ERROR)),
        (["system:serviceaccounts:{{AccountID}}"], ("reserved-group", Level.ERROR)),
        (["{{SessionName}}:masters"], ("session-group", Level.WARNING)),
        (["team-{{SessionName}}"], ("session-group", Level.WARNING)),
        (["team-{{AccountID}}", "{{AccessKeyID}}"], None),
        (["system:masters"], None),
    ],
    ids=[
        "system-session",
        "eks-session-raw",
        "system-account",
        "leading-placeholder",
        "team",
        "not-caller-chosen",
        "literal-reserved",
    ],
)
def test_lint_flags_group_templates_by_the_servers_rule(
    groups: list[str], expected: tuple[str, Level] | None
) -> None:
    data = {"mapRoles": f"- rolearn: {ROLE}\n  username: admin\n  groups: {json.dumps(groups)}\n"}
    found = [
        (f.code, f.level)
        for f in lint(read_aws_auth(data), backend="EKSConfigMap")
        if f.code in ("session-group", "reserved-group")
    ]
    assert found == ([expected] if expected else [])


def test_session_templates_in_user_entries_are_lint_errors() -> None:
    data = {"mapUsers": f"- userarn: {USER}\n  username: u-{{{{SessionName}}}}\n"}
    found = list(lint(read_aws_auth(data), backend="EKSConfigMap"))
    assert [(f.level, f.code) for f in found] == [(Level.ERROR, "session-template")]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain", "plain"),
        ("a\nb", "a\\nb"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("ad\u202enimda", "ad\\u202enimda"),
        ("x\udc80", "x\\udc80"),
    ],
    ids=["plain", "newline", "ansi", "bidi", "surrogate"],
)
def test_terminal_text_escapes_what_a_terminal_would_interpret(text: str, shown: str) -> None:
    assert terminal_text(text) == shown


def test_editor_refuses_session_templates_for_users(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    editor = MappingEditor(FileStore(path), now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(MappingError, match="only role sessions do"):
        run(
            editor.edit(
                lambda d: d.upsert_user(USER, "{{SessionName}}", [], replace=False), creates=True
            )
        )
    assert not path.exists()
    done = run(editor.edit(lambda d: d.upsert_user(USER, "alice", [], replace=False), creates=True))
    assert done.change is Change.ADDED
    assert done.created


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mapUsers": "oops"}, "mapUsers line 1: must be a YAML list"),
        ({"mapUsers": "a: b\n"}, "mapUsers line 1: must be a YAML list"),
        ({"mapRoles": "- [a\n"}, "mapRoles"),
        (
            {"mapRoles": f"- rolearn: {ROLE}\n  username: a\n  username: b\n"},
            "appears twice in the same mapping: lines 2 and 3",
        ),
        ({"mapUsers": "- just-a-string\n"}, "mapUsers"),
    ],
    ids=["string", "mapping", "invalid-yaml", "duplicate-key", "entry-not-mapping"],
)
def test_aws_auth_of_the_wrong_shape_is_refused_by_an_edit_and_lint(
    data: dict[str, str], message: str
) -> None:
    from kubeiam.admin.editing.aws_auth_document import AwsAuthMappings

    doc = AwsAuthMappings(data)
    with pytest.raises(MappingError, match=message):
        doc.upsert_user(USER, "alice", [], replace=False)
    assert doc.data == data  # nothing replaced
    findings = lint(doc.load(), backend="EKSConfigMap")
    assert any(f.level is Level.ERROR for f in findings)
