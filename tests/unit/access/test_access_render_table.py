"""The report as text: one line per way in, its conditions under it, findings worst first."""

from __future__ import annotations

from datetime import UTC, datetime

from access_helpers import MFA, account, arn, role, trust, user

from kubeiam.access.iam_graph import IAMGraph
from kubeiam.access.rbac import RBAC
from kubeiam.access.render_table import render_table
from kubeiam.access.report import MappingRow, RowKind, build_report

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def _render(rows: list[MappingRow]) -> str:
    iam = account(user("alice"), role("admin", trust({"AWS": arn("user", "alice")}, Condition=MFA)))
    return render_table(build_report("demo", rows, IAMGraph(iam), RBAC(), now=NOW))


def test_way_in_with_its_condition_and_finding() -> None:
    text = _render(
        [MappingRow("aws-auth", RowKind.ROLE, arn("role", "admin"), "admin", ("system:masters",))]
    )
    lines = text.splitlines()
    assert lines[0] == "cluster: demo"
    header = lines[2]
    assert header.split() == [
        "PRINCIPAL",
        "KIND",
        "VIA",
        "DECISION",
        "USERNAME",
        "GROUPS",
        "SOURCE",
        "RIGHTS",
    ]
    row = lines[3]
    assert row.startswith(arn("user", "alice"))
    assert "conditional" in row
    assert "unrestricted (system:masters" in row
    # columns line up: each value starts where its header does
    assert row.index("user ") == header.index("KIND")
    assert row.index(arn("role", "admin")) == header.index("VIA")
    assert lines[4] == "    if aws:MultiFactorAuthPresent Bool true"
    assert any(line.startswith("high") and "cluster-admin" in line for line in lines)
    assert text.endswith("conditions are shown, not evaluated\n")


def test_no_findings_is_said() -> None:
    text = _render([])
    assert "no findings" in text
