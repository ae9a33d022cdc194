"""The binary cache: a second run builds nothing; a failed build says why and leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from cluster.binaries import (
    KUBERNETES,
    KUBERNETES_VERSION,
    RECIPES,
    BuildError,
    Recipe,
    cache_root,
    ensure,
    is_cached,
    missing_prerequisite,
)


def test_second_run_builds_nothing() -> None:
    root = cache_root(os.environ)
    outcomes = ensure(root, go=shutil.which("go"), environ=os.environ)
    assert [o.built for o in outcomes] == [False] * len(RECIPES)
    assert all(o.describe().startswith("reused: ") for o in outcomes)
    info = json.loads((KUBERNETES.directory(root) / "build.json").read_text())
    assert info["version"] == KUBERNETES_VERSION
    assert f"version.gitVersion={KUBERNETES_VERSION}" in " ".join(info["command"])


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"KUBEIAM_E2E_CACHE": "/x/cache"}, Path("/x/cache")),
        ({"XDG_CACHE_HOME": "/x/xdg"}, Path("/x/xdg/kubeiam/e2e")),
        ({"KUBEIAM_E2E_CACHE": "/x/cache", "XDG_CACHE_HOME": "/x/xdg"}, Path("/x/cache")),
    ],
    ids=["explicit", "xdg", "explicit-wins"],
)
def test_cache_root_precedence(environ: dict[str, str], expected: Path) -> None:
    assert cache_root(environ) == expected


def test_default_cache_root_ignores_a_scrubbed_home() -> None:
    # The suite's autouse fixture points HOME at a fresh directory; the cache must not follow it.
    assert cache_root({}) == cache_root({"HOME": "/nowhere"})
    assert cache_root({}).parts[-3:] == (".cache", "kubeiam", "e2e")


def test_missing_prerequisite_names_go_and_what_it_builds(tmp_path: Path) -> None:
    problem = missing_prerequisite(tmp_path, go=None)
    assert problem is not None
    assert problem.startswith("Go toolchain not on PATH")
    assert KUBERNETES_VERSION in problem
    assert missing_prerequisite(tmp_path, go="/usr/bin/go") is None


def test_a_cached_component_needs_no_go(tmp_path: Path) -> None:
    for recipe in RECIPES:
        directory = recipe.directory(tmp_path)
        directory.mkdir()
        for name in recipe.executables:
            (directory / name).write_text("#!/bin/sh\n")
            (directory / name).chmod(0o755)
        (directory / "build.json").write_text("{}")
    assert missing_prerequisite(tmp_path, go=None) is None
    outcomes = ensure(tmp_path, go=None, environ={})
    assert not any(o.built for o in outcomes)


def test_a_directory_without_build_record_is_not_cached(tmp_path: Path) -> None:
    directory = KUBERNETES.directory(tmp_path)
    directory.mkdir()
    for name in KUBERNETES.executables:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    assert not is_cached(KUBERNETES, tmp_path)
    with pytest.raises(BuildError, match="not cached and Go is not on PATH"):
        ensure(tmp_path, go=None, environ={}, recipes=[KUBERNETES])


def test_a_failed_build_reports_the_command_and_leaves_nothing(tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:  # the cache lets the suite run without Go; this test needs a real go build
        pytest.skip("needs Go on PATH to run a failing build")
    broken = Recipe(
        name="broken",
        version="v0.0.1",
        executables=("nothing",),
        packages=("k8s.io/kubernetes/cmd/no-such-command",),
        ldflags="-s -w",
        in_harness=True,
    )
    with pytest.raises(BuildError) as failure:
        ensure(tmp_path, go=go, environ=os.environ, recipes=[broken])
    message = str(failure.value)
    assert "building broken v0.0.1 failed" in message
    assert "k8s.io/kubernetes/cmd/no-such-command" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
