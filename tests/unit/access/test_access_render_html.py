"""The self-contained HTML picture: structure, severity colours, escaping, nothing fetched.

(Loading it in a real browser is the CLI's e2e test, with Chromium from Debian.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html.parser import HTMLParser

from access_helpers import ROOT, account, arn, assume, group, role, trust, user

from kubeiam.access.iam_graph import IAMGraph
from kubeiam.access.rbac import RBAC
from kubeiam.access.render_html import COLUMNS, render_html
from kubeiam.access.report import MappingRow, Report, RowKind, build_report, report_json

NOW = datetime(2026, 12, 7, tzinfo=UTC)
EVIL = "</script><script>alert(1)</script>"


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)

    def handle_data(self, data: str) -> None:
        if self._in_script is not None and self._in_script.get("id") == "report":
            self.scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None


def _report(username: str = "viewer") -> Report:
    iam = account(
        user("root-person"),
        user("member", "viewers"),
        group("viewers", assume(arn("role", "viewer"))),
        role("viewer", trust({"AWS": ROOT})),
    )
    rows = [
        MappingRow(
            "aws-auth", RowKind.USER, arn("user", "root-person"), "admin", ("system:masters",)
        ),
        MappingRow("aws-auth", RowKind.ROLE, arn("role", "viewer"), username, ("view-group",)),
    ]
    return build_report("demo", rows, IAMGraph(iam), RBAC(), now=NOW)


def _parse(text: str) -> _Elements:
    parser = _Elements()
    parser.feed(text)
    return parser


def test_nodes_in_every_column_and_coloured_by_severity() -> None:
    parsed = _parse(render_html(_report()))
    nodes = [a for t, a in parsed.elements if t == "g" and "node" in (a.get("class") or "")]
    columns = {str(a["data-key"]).split(":", 1)[0] for a in nodes}
    assert columns == {str(i) for i in range(len(COLUMNS))}
    by_key = {str(a["data-key"]): str(a["class"]) for a in nodes}
    assert "sev-high" in by_key[f"0:{arn('user', 'root-person')}"]  # reaches cluster-admin
    assert "sev-medium" in by_key[f"1:{arn('role', 'viewer')}"]  # trusted by the account
    assert any("member" in str(a["data-search"]) for a in nodes)
    assert any(t == "input" and a.get("id") == "search" for t, a in parsed.elements)


def test_nothing_is_fetched() -> None:
    text = render_html(_report())
    parsed = _parse(text)
    for tag, attrs in parsed.elements:
        assert not {"src", "href", "srcset", "action"} & set(attrs), tag
    assert "url(" not in text
    assert "@import" not in text
    csp = [
        a
        for t, a in parsed.elements
        if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp
    assert "default-src 'none'" in str(csp[0]["content"])


def test_embedded_json_is_the_report_and_escapes_script_ends() -> None:
    report = _report(username=EVIL)
    text = render_html(report)
    assert EVIL not in text
    (data,) = _parse(text).scripts
    assert json.loads(data) == report_json(report)


def test_output_is_deterministic() -> None:
    assert render_html(_report()) == render_html(_report())


def test_a_dangling_mapping_is_drawn_waiting_for_its_principal() -> None:
    iam = account(user("someone"))
    gone = arn("role", "deleted-admin")
    rows = [MappingRow("aws-auth", RowKind.ROLE, gone, "admin", ("system:masters",))]
    report = build_report("demo", rows, IAMGraph(iam), RBAC(), now=NOW)
    parsed = _parse(render_html(report))
    nodes = {
        str(a["data-key"]): a for t, a in parsed.elements if t == "g" and "node" in str(a["class"])
    }
    start, mapped = nodes[f"0:dangling|{gone}"], nodes[f"2:dangling-mapping|{gone}"]
    assert "sev-medium" in str(start["class"])
    assert "sev-medium" in str(mapped["class"])
    assert "deleted-admin" in str(mapped["data-search"])
    edges = [a for t, a in parsed.elements if t == "path"]
    assert [(e["data-from"], e["data-to"]) for e in edges] == [
        (f"0:dangling|{gone}", f"2:dangling-mapping|{gone}")
    ]
