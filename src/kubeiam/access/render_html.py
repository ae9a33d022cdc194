"""The access report as one self-contained HTML file: the picture (pure; ``-o html``).

Five columns, left to right: where a way in starts (IAM user, account, service, SSO permission
set ...), the roles assumed on the way, the mapping row, the Kubernetes identity (username and
groups), its rights. Nodes and edges carry the worst severity of the findings that name them;
a search box dims every node that does not match. The layout is computed here, so the file
needs no script library, font or stylesheet from anywhere: nothing is fetched when it is opened.
The report's JSON is embedded too (``<script type="application/json" id="report">``).
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from kubeiam.access.report import Report, Severity, report_json

COLUMNS = ("way in", "roles assumed", "mapping", "Kubernetes identity", "rights")
#: Geometry, in SVG user units.
COLUMN_WIDTH = 300
NODE_WIDTH = 250
NODE_HEIGHT = 34
ROW_GAP = 12
TOP = 60
#: Longest label drawn in a node; the full text is in its tooltip and search text.
LABEL_CHARS = 38
#: The finding code of a mapping whose principal does not exist (report.py).
DANGLING = "dangling-mapping"


@dataclass(slots=True)
class _Node:
    key: str
    column: int
    label: str
    title: str
    severity: Severity | None = None
    row: int = 0
    search: list[str] = field(default_factory=list)


class _Picture:
    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.edges: dict[tuple[str, str], Severity | None] = {}

    def node(self, column: int, ident: str, label: str, title: str = "") -> str:
        key = f"{column}:{ident}"
        if key not in self.nodes:
            self.nodes[key] = _Node(key, column, label, title or label)
        return key

    def edge(self, a: str, b: str, severity: Severity | None) -> None:
        self.edges[(a, b)] = _worst(self.edges.get((a, b)), severity)

    def mark(self, key: str, severity: Severity | None, words: Iterable[str]) -> None:
        node = self.nodes[key]
        node.severity = _worst(node.severity, severity)
        node.search.extend(words)


def _worst(a: Severity | None, b: Severity | None) -> Severity | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def render_html(report: Report) -> str:
    picture = _build(report)
    return _document(report, picture)


def _build(report: Report) -> _Picture:
    severity_of: dict[str, Severity] = {}
    for finding in report.findings:
        for arn in finding.arns:
            severity_of[arn] = max(severity_of.get(arn, finding.severity), finding.severity)
    picture = _Picture()
    for entry in report.principals:
        severity = _worst(severity_of.get(entry.arn), severity_of.get(entry.mapped))
        for arn in entry.via:
            severity = _worst(severity, severity_of.get(arn))
        chain = [picture.node(0, entry.arn, _short(entry.arn), f"{entry.kind}: {entry.arn}")]
        chain += [picture.node(1, arn, _short(arn), arn) for arn in entry.via]
        chain.append(
            picture.node(
                2,
                f"{entry.source}|{entry.mapped}",
                _short(entry.mapped),
                f"{entry.source}: {entry.mapped}",
            )
        )
        identity = f"{entry.username} [{', '.join(entry.groups)}]"
        chain.append(picture.node(3, identity, identity, identity))
        rights = "; ".join(entry.rights) or "no rights"
        chain.append(
            picture.node(4, rights, ("cluster-admin" if entry.cluster_admin else rights), rights)
        )
        words = [entry.arn, *entry.via, entry.mapped, entry.username, *entry.groups, *entry.rights]
        words += entry.conditions
        for key in chain:
            picture.mark(key, severity, words)
        for a, b in itertools.pairwise(chain):
            picture.edge(a, b, severity)
    _dangling(report, picture)
    rows = [0] * len(COLUMNS)
    for node in picture.nodes.values():
        node.row = rows[node.column]
        rows[node.column] += 1
    return picture


def _dangling(report: Report, picture: _Picture) -> None:
    """A mapping whose principal does not exist has no way in yet: drawn as "nobody (yet)" ->
    the mapping, in the finding's colour, so the picture shows the name waiting to be taken."""
    for finding in report.findings:
        if finding.code != DANGLING:
            continue
        for arn in finding.arns:
            start = picture.node(
                0, f"dangling|{arn}", "nobody yet: does not exist", finding.message
            )
            mapped = picture.node(2, f"dangling-mapping|{arn}", _short(arn), finding.message)
            for key in (start, mapped):
                picture.mark(key, finding.severity, [arn, finding.message])
            picture.edge(start, mapped, finding.severity)


def _short(arn: str) -> str:
    """The end of an ARN (``role/Admin``), enough to recognise it in a node."""
    tail = arn.split(":", 5)[-1] if arn.startswith("arn:") else arn
    return tail if len(tail) <= LABEL_CHARS else "..." + tail[-(LABEL_CHARS - 3) :]


def _x(column: int) -> int:
    return 20 + column * COLUMN_WIDTH


def _y(row: int) -> int:
    return TOP + row * (NODE_HEIGHT + ROW_GAP)


def _svg(picture: _Picture) -> str:
    height = TOP + max([n.row for n in picture.nodes.values()] + [0]) * (NODE_HEIGHT + ROW_GAP) + 80
    width = _x(len(COLUMNS)) + 20
    parts = [
        f'<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
    ]
    parts += [
        f'<text class="column" x="{_x(i)}" y="30">{html.escape(title)}</text>'
        for i, title in enumerate(COLUMNS)
    ]
    for (a, b), severity in picture.edges.items():
        na, nb = picture.nodes[a], picture.nodes[b]
        x1, y1 = _x(na.column) + NODE_WIDTH, _y(na.row) + NODE_HEIGHT // 2
        x2, y2 = _x(nb.column), _y(nb.row) + NODE_HEIGHT // 2
        mid = (x1 + x2) // 2
        parts.append(
            f'<path class="edge {_severity_class(severity)}" data-from="{html.escape(a)}"'
            f' data-to="{html.escape(b)}" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"/>'
        )
    for index, node in enumerate(picture.nodes.values()):
        search = html.escape(" ".join(dict.fromkeys([node.title, *node.search])).lower())
        label = (
            node.label if len(node.label) <= LABEL_CHARS else node.label[: LABEL_CHARS - 3] + "..."
        )
        parts.append(
            f'<g class="node {_severity_class(node.severity)}" id="n{index}"'
            f' data-key="{html.escape(node.key)}" data-search="{search}"'
            f' transform="translate({_x(node.column)},{_y(node.row)})">'
            f"<title>{html.escape(node.title)}</title>"
            f'<rect width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<text x="10" y="22">{html.escape(label)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _severity_class(severity: Severity | None) -> str:
    return f"sev-{severity.label}" if severity is not None else "sev-none"


#: Nothing may be loaded from anywhere: the file is its own world (inline style and script only).
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_STYLE = """
body { font-family: sans-serif; margin: 16px; color: #222; }
#search { width: 40em; padding: 6px; font-size: 14px; }
.column { font-weight: bold; font-size: 14px; }
.node rect { fill: #f4f6f8; stroke: #8a949e; stroke-width: 1.5; }
.node text { font-size: 12px; }
.node.sev-low rect { fill: #eef6ff; stroke: #4a90d9; }
.node.sev-medium rect { fill: #fff8e5; stroke: #e0a800; }
.node.sev-high rect { fill: #ffeede; stroke: #e8590c; }
.node.sev-critical rect { fill: #ffe3e3; stroke: #c92a2a; stroke-width: 2.5; }
.edge { fill: none; stroke: #adb5bd; stroke-width: 1.5; }
.edge.sev-medium { stroke: #e0a800; } .edge.sev-high { stroke: #e8590c; }
.edge.sev-critical { stroke: #c92a2a; stroke-width: 2.5; }
.dim { opacity: 0.15; }
table { border-collapse: collapse; margin-top: 12px; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; font-size: 13px; }
"""

_SCRIPT = """
const box = document.getElementById('search');
box.addEventListener('input', () => {
  const q = box.value.trim().toLowerCase();
  const hit = new Set();
  document.querySelectorAll('#graph .node').forEach(n => {
    const on = !q || n.dataset.search.includes(q);
    n.classList.toggle('dim', !on);
    if (on) hit.add(n.dataset.key);
  });
  document.querySelectorAll('#graph .edge').forEach(e => {
    e.classList.toggle('dim', !(hit.has(e.dataset.from) && hit.has(e.dataset.to)));
  });
  document.getElementById('matches').textContent = q ? hit.size + ' matching nodes' : '';
});
"""


def _findings_table(report: Report) -> str:
    if not report.findings:
        return "<p>No findings.</p>"
    rows = "".join(
        f'<tr class="{_severity_class(f.severity)}"><td>{f.severity.label}</td>'
        f"<td>{html.escape(f.code)}</td><td>{html.escape(f.message)}</td></tr>"
        for f in report.findings
    )
    header = "<tr><th>severity</th><th>code</th><th>message</th></tr>"
    return f'<table id="findings">{header}{rows}</table>'


def _document(report: Report, picture: _Picture) -> str:
    data = json.dumps(report_json(report)).replace("</", "<\\/")
    caveats = "".join(f"<li>{html.escape(c)}</li>" for c in report.caveats)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>kubeiam access: {html.escape(report.cluster)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>Who can get into {html.escape(report.cluster)}</h1>
<input id="search" type="search" placeholder="search ARNs, usernames, groups, rights" autofocus>
<span id="matches"></span>
{_svg(picture)}
<h2>Findings</h2>
{_findings_table(report)}
<ul id="caveats">{caveats}</ul>
<script type="application/json" id="report">{data}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
