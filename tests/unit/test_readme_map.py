"""The README's package map ("Where the code lives") names every package and module in src/kubeiam.

A newcomer finds where a concept lives from that table alone, so a module added without a word
there is a module nobody finds. Each package's row must name each of its modules (in backticks);
the top-level modules are named in the first row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "kubeiam"
TOP_LEVEL = "top-level modules"


def map_rows() -> dict[str, str]:
    """The map's first column (the package, as written) -> the rest of its row."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Where the code lives\n", 1)[1].split("\n#", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        header = cells[-1] == "may import"
        if line.startswith("|") and len(cells) == 3 and not header and not set(cells[0]) <= {"-"}:
            rows[cells[0].strip("`")] = " ".join(cells[1:])
    return rows


def packages() -> dict[str, list[str]]:
    """Each row the map must have -> the module names it must mention."""
    wanted: dict[str, list[str]] = {TOP_LEVEL: []}
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if path.stem in ("__init__", "__main__"):
            continue
        if len(relative.parts) == 1:
            wanted[TOP_LEVEL].append(path.stem)
            continue
        # A package's row; a package inside it (mapping/backends/) is named as a whole.
        depth = 2 if relative.parts[0] == "admin" else 1
        package = "/".join(relative.parts[:depth]) + "/"
        inner = relative.parts[depth:]
        name = inner[0] + "/" if len(inner) > 1 else path.stem
        if name not in wanted.setdefault(package, []):
            wanted[package].append(name)
    return wanted


@pytest.mark.parametrize("package", sorted(packages()))
def test_each_package_and_module_is_on_the_map(package: str) -> None:
    rows = map_rows()
    assert package in rows, f"README 'Where the code lives' has no row for {package}"
    missing = [m for m in packages()[package] if f"`{m}`" not in rows[package]]
    assert not missing, f"README map row {package} does not name {missing}"


def test_the_map_has_no_row_for_a_package_that_is_gone() -> None:
    assert set(map_rows()) == set(packages())
