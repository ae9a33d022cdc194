"""One row per `kubeiam mapping lint` code: each problem is found and named where it is found
(arn.py, templates.py, the model, the documents, lint itself), never recovered from the wording
of a message (the last rows hold text that a message-matching table would have misread)."""

from __future__ import annotations

import pytest

from kubeiam.admin.editing.file_document import load_server_config_text
from kubeiam.admin.editing.lint import Level, lint
from kubeiam.mapping.aws_auth import read_aws_auth
from kubeiam.mapping.model import LoadResult

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Dev"
SSO_ROLE = f"arn:aws:iam::{ACCOUNT}:role/AWSReservedSSO_Admin_0123456789abcdef"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
GROUP = f"arn:aws:iam::{ACCOUNT}:group/devs"
NODES = "\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:nodes]\n"


def role(arn: str = ROLE, extra: str = "username: dev") -> str:
    return f"- rolearn: {arn}\n  {extra}\n"


def aws_auth(**data: str) -> LoadResult:
    return read_aws_auth(data)


def config_file(text: str) -> LoadResult:
    return load_server_config_text(text, name="config.yaml")


#: (id, loaded mapping, backend, nodes in the cluster, the finding's level, its code)
ROWS = [
    ("invalid-entry", aws_auth(mapRoles="- username: dev\n"), Level.ERROR, "invalid-entry"),
    (
        "invalid-name",
        aws_auth(mapRoles=role(extra="username: " + "x" * 2049)),
        Level.ERROR,
        "invalid-name",
    ),
    (
        "invalid-name-too-many-groups",
        aws_auth(mapRoles=role(extra=f"username: dev\n  groups: [{', '.join(['g'] * 101)}]")),
        Level.ERROR,
        "invalid-name",
    ),
    (
        "invalid-arn",
        aws_auth(mapRoles=role(arn="arn:aws:s3:::bucket")),
        Level.ERROR,
        "invalid-arn",
    ),
    (
        "invalid-arn-user-in-roles",
        aws_auth(mapRoles=role(arn=USER)),
        Level.ERROR,
        "invalid-arn",
    ),
    ("invalid-account", aws_auth(mapAccounts="- '12345'\n"), Level.ERROR, "invalid-account"),
    (
        "unknown-template",
        aws_auth(mapRoles=role(extra="username: '{{Nope}}'")),
        Level.ERROR,
        "unknown-template",
    ),
    (
        "malformed-template",
        aws_auth(mapRoles=role(extra="username: '{{SessionName}'")),
        Level.ERROR,
        "unknown-template",
    ),
    (
        "unknown-key",
        aws_auth(mapRoles=role(extra="username: dev\n  colour: blue")),
        Level.WARNING,
        "unknown-key",
    ),
    (
        "unknown-key-sso",
        aws_auth(
            mapRoles="- sso: {permissionSetName: Admin, accountID: '111122223333', colour: x}\n"
            "  username: admin\n"
        ),
        Level.ERROR,
        "unknown-key",
    ),
    (
        "unknown-key-server-config",
        config_file("server:\n  colour: blue\n"),
        Level.WARNING,
        "unknown-key",
    ),
    (
        "role-path",
        aws_auth(mapRoles=role(arn=f"arn:aws:iam::{ACCOUNT}:role/team/Dev")),
        Level.WARNING,
        "role-path",
    ),
    (
        "session-template",
        aws_auth(mapUsers=f"- userarn: {USER}\n  username: '{{{{SessionName}}}}'\n"),
        Level.ERROR,
        "session-template",
    ),
    (
        "reserved-group",
        aws_auth(mapRoles=role(extra="username: dev\n  groups: ['system:{{SessionName}}']")),
        Level.ERROR,
        "reserved-group",
    ),
    ("duplicate", aws_auth(mapRoles=role() + role()), Level.WARNING, "duplicate"),
    (
        "conflict",
        aws_auth(mapRoles=role() + role(extra="username: other")),
        Level.ERROR,
        "conflict",
    ),
    (
        "shadowed-sso",
        aws_auth(
            mapRoles=role(arn=SSO_ROLE)
            + "- sso: {permissionSetName: Admin, accountID: '111122223333'}\n  username: a\n"
        ),
        Level.WARNING,
        "shadowed",
    ),
    (
        "shadowed-account",
        aws_auth(mapRoles=role(), mapAccounts=f"- '{ACCOUNT}'\n"),
        Level.WARNING,
        "shadowed",
    ),
    (
        "duplicate-key-yaml",
        aws_auth(mapRoles=role(extra="username: dev\n  username: again")),
        Level.ERROR,
        "duplicate-key",
    ),
    (
        "duplicate-key-any-case",
        aws_auth(mapRoles=role(extra="username: dev\n  userName: again")),
        Level.ERROR,
        "duplicate-key",
    ),
    (
        "duplicate-key-section",
        config_file(f"server:\n  mapRoles: []\n  maproles:\n  - rolearn: {ROLE}\n"),
        Level.ERROR,
        "duplicate-key",
    ),
    (
        "not-read",
        config_file(f"mapRoles:\n- rolearn: {ROLE}\n  username: dev\n"),
        Level.WARNING,
        "not-read",
    ),
    ("account-wide", aws_auth(mapAccounts=f"- '{ACCOUNT}'\n"), Level.WARNING, "account-wide"),
    (
        "iam-group",
        aws_auth(mapGroups=f"- grouparn: {GROUP}\n  username: dev\n"),
        Level.WARNING,
        "iam-group",
    ),
    (
        "session-group",
        aws_auth(mapRoles=role(extra="username: dev\n  groups: ['team-{{SessionName}}']")),
        Level.WARNING,
        "session-group",
    ),
    (
        "reserved-prefix",
        aws_auth(mapRoles=role(extra="username: 'system:dev'")),
        Level.WARNING,
        "reserved-prefix",
    ),
    (
        "system-masters",
        aws_auth(mapRoles=role(extra="username: dev\n  groups: [system:masters]")),
        Level.WARNING,
        "system-masters",
    ),
    # Text a message-matching table would have misread: the account "duplicates" is an invalid
    # account, not a duplicate entry; an unknown template whose text says "duplicates" is an
    # unknown template.
    (
        "account-named-like-another-problem",
        aws_auth(mapAccounts="- duplicates\n"),
        Level.ERROR,
        "invalid-account",
    ),
    (
        "username-worded-like-another-problem",
        aws_auth(mapRoles=role(extra="username: '{{Nope}} duplicates'")),
        Level.ERROR,
        "unknown-template",
    ),
]


@pytest.mark.parametrize(
    ("loaded", "level", "code"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_each_problem_has_its_code(loaded: LoadResult, level: Level, code: str) -> None:
    findings = lint(loaded, backend="EKSConfigMap")
    assert (level, code) in {(f.level, f.code) for f in findings}, findings


def test_nodes_without_a_node_entry() -> None:
    loaded = aws_auth(mapRoles=role())
    findings = lint(loaded, backend="EKSConfigMap", node_count=3)
    assert [(f.level, f.code) for f in findings] == [(Level.ERROR, "missing-node-role")]
    with_nodes = aws_auth(mapRoles=role(arn=f"arn:aws:iam::{ACCOUNT}:role/Node", extra=NODES))
    assert lint(with_nodes, backend="EKSConfigMap", node_count=3) == []


def test_the_loader_sets_the_code_on_the_issue() -> None:
    loaded = aws_auth(mapRoles=role(arn="arn:aws:s3:::bucket") + role() + role())
    assert [issue.code for issue in loaded.issues] == ["invalid-arn", "duplicate"]
