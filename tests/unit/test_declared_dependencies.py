"""Every third-party package the product imports is one pyproject.toml declares.

A package that only arrives because another dependency brings it (httpx2 through lightkube, yarl
through aiohttp) can vanish or change under kubeiam when that dependency moves on; `make lock`
would then drop it without a word. The imports are read from the source (as import-linter does),
not from what happens to be installed. Imports under ``if TYPE_CHECKING:`` (the boto3 stubs) are
type-checking only. ``kubeiam.localaws`` is the development environment (moto[server] and its
server, pytest, trustme: the ``dev`` extra) and is left out.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "kubeiam"
#: The development environment: its imports come from the dev extra, not the runtime set.
DEV_ONLY = SRC / "localaws"


def _runtime_imports(node: ast.AST) -> Iterator[str]:
    """Top-level names of the absolute imports in ``node`` outside ``if TYPE_CHECKING:``."""
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        for stmt in node.orelse:
            yield from _runtime_imports(stmt)
    elif isinstance(node, ast.Import):
        yield from (alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.module and not node.level:
            yield node.module.split(".")[0]
    else:
        for child in ast.iter_child_nodes(node):
            yield from _runtime_imports(child)


def product_imports() -> dict[str, set[str]]:
    """Third-party top-level module -> the product files importing it."""
    found: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(DEV_ONLY):
            continue
        for name in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if name in sys.stdlib_module_names or name == "kubeiam":
                continue
            found.setdefault(name, set()).add(str(path.relative_to(SRC)))
    return found


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}


def test_every_imported_package_is_declared() -> None:
    distributions = importlib.metadata.packages_distributions()
    runtime = declared()
    imports = product_imports()
    assert {"lightkube", "botocore"} <= set(imports)  # the walk sees the product
    undeclared = {
        name: sorted(files)
        for name, files in imports.items()
        if not {canonicalize_name(d) for d in distributions.get(name, [name])} & runtime
    }
    assert not undeclared, (
        f"imported but not in pyproject.toml's dependencies: {undeclared}; declare them "
        "and run make lock"
    )


def test_type_checking_imports_are_not_runtime_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import a\n"
        "if TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
        "def f():\n    from d.e import g\n"
    )
    assert sorted(_runtime_imports(tree)) == ["a", "c", "d", "typing"]
