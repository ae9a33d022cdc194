"""The lock files in requirements/ pin everything pyproject.toml asks for, hashed, index-free.

`make install` installs requirements/dev-lock.txt alone (``--no-deps``), so a dependency added to
pyproject.toml without `make lock` would be missing on a fresh clone: these tests say so first.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: One pinned requirement per entry: ``name==version [; marker] \``, then its ``--hash`` lines.
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
LOCKS = ["lock.txt", "dev-lock.txt", "bench-lock.txt", "tools-lock.txt"]


def pins(name: str) -> dict[str, Version]:
    text = (REQUIREMENTS / name).read_text()
    return {canonicalize_name(m[1]): Version(m[2]) for m in PIN.finditer(text)}


def entries(name: str) -> list[str]:
    """Each pinned requirement with the lines that belong to it (up to the next pin)."""
    text = (REQUIREMENTS / name).read_text()
    starts = [m.start() for m in PIN.finditer(text)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def build_in() -> list[Requirement]:
    lines = (REQUIREMENTS / "build.in").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
DEV = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]]


@pytest.mark.parametrize(
    ("lock", "wanted"),
    [
        ("lock.txt", RUNTIME),
        ("lock.txt", build_in()),
        ("dev-lock.txt", RUNTIME),
        ("dev-lock.txt", DEV),
        ("dev-lock.txt", build_in()),
    ],
    ids=["runtime", "runtime-build", "dev-runtime", "dev-extra", "dev-build"],
)
def test_every_requirement_is_pinned_at_a_version_it_allows(
    lock: str, wanted: list[Requirement]
) -> None:
    pinned = pins(lock)
    missing = [str(r) for r in wanted if canonicalize_name(r.name) not in pinned]
    assert missing == [], f"not in requirements/{lock}: {missing}; fix: run `make lock`"
    outside = [
        f"{r} (pinned {pinned[canonicalize_name(r.name)]})"
        for r in wanted
        if not r.specifier.contains(pinned[canonicalize_name(r.name)], prereleases=True)
    ]
    assert outside == [], f"requirements/{lock} pins outside the range: {outside}; make lock"


def test_the_build_backend_is_locked_at_what_pyproject_builds_with() -> None:
    backend = {canonicalize_name(r.name): r for r in build_in()}
    for required in PYPROJECT["build-system"]["requires"]:
        wanted = Requirement(required)
        assert str(backend[canonicalize_name(wanted.name)].specifier) == str(wanted.specifier)


def test_runtime_and_dev_locks_pin_the_same_versions() -> None:
    runtime, dev = pins("lock.txt"), pins("dev-lock.txt")
    differ = {n: (v, dev.get(n)) for n, v in runtime.items() if dev.get(n) != v}
    assert differ == {}


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_carries_a_hash(lock: str) -> None:
    found = entries(lock)
    assert found, f"requirements/{lock} pins nothing"
    unhashed = [e.split()[0] for e in found if "--hash=sha256:" not in e]
    assert unhashed == []


@pytest.mark.parametrize("name", sorted(p.name for p in REQUIREMENTS.iterdir()))
def test_no_requirements_file_names_a_package_index(name: str) -> None:
    text = (REQUIREMENTS / name).read_text()
    assert "://" not in text
    options = re.findall(
        r"^\s*(--(?:index-url|extra-index-url|find-links|trusted-host)|-[if])\b", text, re.M
    )
    assert options == []
