"""Mapping entries of any store become report rows, templates kept as written."""

from __future__ import annotations

from kubeiam.access.report import MappingRow, RowKind
from kubeiam.access.rows import rows_from_entries
from kubeiam.mapping.aws_auth import read_aws_auth

ACCOUNT = "111122223333"
DATA = {
    "mapRoles": f"""
- rolearn: arn:aws:iam::{ACCOUNT}:role/team/Viewer
  username: viewer:{{{{SessionName}}}}
  groups: [view-group]
- sso:
    permissionSetName: Ops
    accountID: "{ACCOUNT}"
  username: ops:{{{{SessionName}}}}
  groups: [ops]
""",
    "mapUsers": f"""
- userarn: arn:aws:iam::{ACCOUNT}:user/alice
  username: alice
  groups: [system:masters]
""",
    "mapAccounts": f'- "{ACCOUNT}"\n',
    "mapGroups": f"""
- grouparn: arn:aws:iam::{ACCOUNT}:group/devs
  username: dev:{{{{SessionName}}}}
  groups: [devs]
""",
}


def test_every_kind_of_entry_becomes_a_row() -> None:
    result = read_aws_auth(DATA)
    assert not result.errors
    rows = rows_from_entries(result.mappings.entries, "aws-auth")
    assert sorted(rows, key=lambda r: r.kind.value) == sorted(
        [
            MappingRow(
                "aws-auth",
                RowKind.ROLE,
                f"arn:aws:iam::{ACCOUNT}:role/Viewer",
                "viewer:{{SessionName}}",
                ("view-group",),
            ),
            MappingRow(
                "aws-auth", RowKind.SSO, "Ops", "ops:{{SessionName}}", ("ops",), account=ACCOUNT
            ),
            MappingRow(
                "aws-auth",
                RowKind.USER,
                f"arn:aws:iam::{ACCOUNT}:user/alice",
                "alice",
                ("system:masters",),
            ),
            MappingRow("aws-auth", RowKind.ACCOUNT, ACCOUNT, ""),
            MappingRow(
                "aws-auth",
                RowKind.GROUP,
                f"arn:aws:iam::{ACCOUNT}:group/devs",
                "dev:{{SessionName}}",
                ("devs",),
            ),
        ],
        key=lambda r: r.kind.value,
    )
