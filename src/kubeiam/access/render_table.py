"""The access report as plain-text tables for people (pure; ``-o table``).

Two tables: the ways in (one line each, conditions on their own indented lines so a long
condition never hides the next column), then the findings, worst first, then the caveats.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubeiam.access.report import PrincipalEntry, Report

PRINCIPAL_HEADER = (
    "PRINCIPAL",
    "KIND",
    "VIA",
    "DECISION",
    "USERNAME",
    "GROUPS",
    "SOURCE",
    "RIGHTS",
)
FINDING_HEADER = ("SEVERITY", "CODE", "MESSAGE")


def render_table(report: Report) -> str:
    lines = [f"cluster: {report.cluster}", ""]
    lines += _table(
        PRINCIPAL_HEADER, [_principal_row(e) for e in report.principals], report.principals
    )
    lines.append("")
    if report.findings:
        findings = [(f.severity.label, f.code, f.message) for f in report.findings]
        lines += _table(FINDING_HEADER, findings, ())
    else:
        lines.append("no findings")
    lines += ["", *(f"note: {c}" for c in report.caveats)]
    return "\n".join(lines) + "\n"


def render_principals(entries: Sequence[PrincipalEntry]) -> str:
    """The ways-in table alone (``who-can``)."""
    if not entries:
        return "nobody\n"
    return "\n".join(_table(PRINCIPAL_HEADER, [_principal_row(e) for e in entries], entries)) + "\n"


def _principal_row(entry: PrincipalEntry) -> tuple[str, ...]:
    return (
        entry.arn,
        entry.kind,
        " -> ".join(entry.via) or "-",
        entry.decision.value,
        entry.username or "-",
        ",".join(entry.groups) or "-",
        entry.source,
        "; ".join(entry.rights) or "none",
    )


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], entries: Sequence[PrincipalEntry]
) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    out = ["  ".join(v.ljust(w) for v, w in zip(header, widths, strict=True)).rstrip()]
    for index, row in enumerate(rows):
        out.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if index < len(entries):
            out += [f"    {c}" for c in entries[index].conditions]
    return out
