"""Build or reuse the real binaries the end-to-end suite runs, cached by version.

    python -m tests.e2e.cluster.binaries            # build what is missing, say what was done
    python -m tests.e2e.cluster.binaries --check    # only say whether anything is missing

kube-apiserver and kubectl come from the `k8s.io/kubernetes` module and etcd from the
`go.etcd.io/etcd/server/v3` module, both built from the harness module beside this file (its
go.sum pins every dependency); the reference aws-iam-authenticator is installed with
`go install` at a pinned release. Each component lands in `<cache>/<name>-<version>/` with a
`build.json` saying how it was made; a directory appears only when its build finished, so a
second run builds nothing and an interrupted one leaves nothing half-done behind.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: The kubernetes release the harness module pins; its staging modules are at v0.34.12.
KUBERNETES_VERSION = "v1.34.12"
#: kube-apiserver 1.34 speaks the etcd 3.6 client; 3.6.4 is the server its own go.mod pins.
ETCD_VERSION = "v3.6.4"
#: The newest v0.7 release the module proxy serves here; v0.7.x has no replace directive,
#: so `go install pkg@version` accepts it.
REFERENCE_VERSION = "v0.7.10"

HARNESS_DIR = Path(__file__).resolve().parent
CACHE_ENV = "KUBEIAM_E2E_CACHE"
BUILD_INFO = "build.json"


@dataclass(frozen=True, slots=True)
class Recipe:
    """How one component is built: its name, pinned version and the executables it yields."""

    name: str
    version: str
    executables: tuple[str, ...]
    packages: tuple[str, ...]
    ldflags: str
    #: True: built from the harness module (go.sum pinned); False: `go install pkg@version`.
    in_harness: bool

    def directory(self, root: Path) -> Path:
        return root / f"{self.name}-{self.version}"

    def command(self, go: str, out_dir: Path) -> list[str]:
        common = [go, "-trimpath", "-ldflags", self.ldflags]
        if self.in_harness:
            # One package: name the output (go would call go.etcd.io/etcd/server/v3 "server").
            single = len(self.packages) == 1
            output = str(out_dir / self.executables[0]) if single else f"{out_dir}{os.sep}"
            return [go, "build", "-mod=readonly", *common[1:], "-o", output, *self.packages]
        return [go, "install", *common[1:], *(f"{p}@{self.version}" for p in self.packages)]


KUBERNETES = Recipe(
    name="kubernetes",
    version=KUBERNETES_VERSION,
    executables=("kube-apiserver", "kubectl"),
    packages=("k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"),
    # Without the version stamp the binaries report v0.0.0-master and kubectl warns on skew.
    ldflags=f"-s -w -X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
    in_harness=True,
)
ETCD = Recipe(
    name="etcd",
    version=ETCD_VERSION,
    executables=("etcd",),
    packages=("go.etcd.io/etcd/server/v3",),
    ldflags="-s -w",
    in_harness=True,
)
REFERENCE = Recipe(
    name="aws-iam-authenticator",
    version=REFERENCE_VERSION,
    executables=("aws-iam-authenticator",),
    packages=("sigs.k8s.io/aws-iam-authenticator/cmd/aws-iam-authenticator",),
    ldflags=f"-s -w -X sigs.k8s.io/aws-iam-authenticator/pkg.Version={REFERENCE_VERSION}",
    in_harness=False,
)
#: The node the kubeiam pod runs on (test_node.py): kubelet, and for the chart's DaemonSet the
#: scheduler and controller-manager. Same module and version as kube-apiserver, built apart so a
#: run that only needs the control plane never pays for them and each build time is measured.
KUBELET = Recipe(
    name="kubelet",
    version=KUBERNETES_VERSION,
    executables=("kubelet",),
    packages=("k8s.io/kubernetes/cmd/kubelet",),
    ldflags=KUBERNETES.ldflags,
    in_harness=True,
)
CONTROLLERS = Recipe(
    name="kube-controllers",
    version=KUBERNETES_VERSION,
    executables=("kube-scheduler", "kube-controller-manager"),
    packages=(
        "k8s.io/kubernetes/cmd/kube-scheduler",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
    ),
    ldflags=KUBERNETES.ldflags,
    in_harness=True,
)
RECIPES: tuple[Recipe, ...] = (KUBERNETES, ETCD, REFERENCE, KUBELET, CONTROLLERS)


@dataclass(frozen=True, slots=True)
class Binaries:
    """Absolute paths of the executables the end-to-end suite runs."""

    kube_apiserver: Path
    kubectl: Path
    etcd: Path
    aws_iam_authenticator: Path


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `ensure` did for one component: reused the cache or built it, and how long it took."""

    recipe: Recipe
    directory: Path
    built: bool
    seconds: float

    def describe(self) -> str:
        names = ", ".join(self.recipe.executables)
        what = f"built in {self.seconds:.0f} s" if self.built else "reused"
        return f"{what}: {self.recipe.name} {self.recipe.version} ({names}) in {self.directory}"


class BuildError(RuntimeError):
    """A go build or go install failed; the message carries the command and its output tail."""


def cache_root(environ: Mapping[str, str]) -> Path:
    """`$KUBEIAM_E2E_CACHE`, else `$XDG_CACHE_HOME/kubeiam/e2e`, else `~/.cache/kubeiam/e2e`.

    The user's home comes from the password database, not `$HOME`, because the test suite
    points `$HOME` at a fresh directory for every test.
    """
    if explicit := environ.get(CACHE_ENV):
        return Path(explicit)
    if xdg := environ.get("XDG_CACHE_HOME"):
        return Path(xdg) / "kubeiam" / "e2e"
    return _real_home() / ".cache" / "kubeiam" / "e2e"


def _real_home() -> Path:
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def is_cached(recipe: Recipe, root: Path) -> bool:
    directory = recipe.directory(root)
    return (directory / BUILD_INFO).is_file() and all(
        os.access(directory / name, os.X_OK) for name in recipe.executables
    )


def binaries(root: Path) -> Binaries:
    """The executables' paths in `root` (whether or not they have been built)."""
    return Binaries(
        kube_apiserver=KUBERNETES.directory(root) / "kube-apiserver",
        kubectl=KUBERNETES.directory(root) / "kubectl",
        etcd=ETCD.directory(root) / "etcd",
        aws_iam_authenticator=REFERENCE.directory(root) / "aws-iam-authenticator",
    )


def missing_prerequisite(root: Path, go: str | None) -> str | None:
    """One line naming what stops the suite from running here, or None when nothing does."""
    absent = [r for r in RECIPES if not is_cached(r, root)]
    if not absent or go is not None:
        return None
    wanted = ", ".join(f"{r.name} {r.version}" for r in absent)
    return f"Go toolchain not on PATH: needed once to build {wanted} into {root}"


def go_environment(environ: Mapping[str, str], gobin: Path | None) -> dict[str, str]:
    """The environment for go: static binaries, no -mod override from GOFLAGS.

    HOME is the user's real one, so Go's module and build caches are shared with every other
    build on the machine even while the test suite points HOME at a scratch directory.
    """
    env = dict(environ)
    env["HOME"] = str(_real_home())
    env["CGO_ENABLED"] = "0"
    flags = [f for f in env.get("GOFLAGS", "").split() if not f.startswith("-mod=")]
    env["GOFLAGS"] = " ".join(flags)
    env.pop("GOBIN", None)
    if gobin is not None:
        env["GOBIN"] = str(gobin)
    return env


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise builds between concurrent runs (two pytest sessions, make and an IDE)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(recipe: Recipe, root: Path, go: str, environ: Mapping[str, str]) -> float:
    staging = Path(tempfile.mkdtemp(prefix=f".{recipe.name}-", dir=root))
    try:
        gobin = None if recipe.in_harness else staging
        command = recipe.command(go, staging)
        cwd = HARNESS_DIR if recipe.in_harness else staging
        started = time.monotonic()
        done = subprocess.run(
            ["nice", "-n", "10", *command],
            cwd=cwd,
            env=go_environment(environ, gobin),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            tail = "\n".join(done.stdout.splitlines()[-40:])
            raise BuildError(
                f"building {recipe.name} {recipe.version} failed (exit {done.returncode})"
                f" in {cwd}:\n"
                f"$ {' '.join(command)}\n{tail}"
            )
        for name in recipe.executables:
            if not os.access(staging / name, os.X_OK):
                raise BuildError(f"{' '.join(command)} succeeded but produced no {name}")
        go_version = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, check=True
        ).stdout.strip()
        info = {
            "component": recipe.name,
            "version": recipe.version,
            "command": command,
            "go": go_version,
            "seconds": round(seconds, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
        staging.chmod(0o755)
        target = recipe.directory(root)
        if target.exists():  # an older, incomplete attempt without build.json
            shutil.rmtree(target)
        staging.rename(target)
        return seconds
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def ensure(
    root: Path,
    *,
    go: str | None,
    environ: Mapping[str, str],
    recipes: Sequence[Recipe] = RECIPES,
    on_outcome: Callable[[Outcome], None] = lambda _o: None,
) -> tuple[Outcome, ...]:
    """Build every component in `recipes` that is not cached yet; reuse the others."""
    outcomes: list[Outcome] = []
    with _locked(root):
        for recipe in recipes:
            if is_cached(recipe, root):
                outcome = Outcome(recipe, recipe.directory(root), built=False, seconds=0.0)
            elif go is None:
                raise BuildError(
                    f"{recipe.name} {recipe.version} is not cached and Go is not on PATH"
                )
            else:
                seconds = _build(recipe, root, go, environ)
                outcome = Outcome(recipe, recipe.directory(root), built=True, seconds=seconds)
            on_outcome(outcome)
            outcomes.append(outcome)
    return tuple(outcomes)


def is_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.e2e.cluster.binaries", description=__doc__
    )
    parser.add_argument(
        "--check", action="store_true", help="build nothing; report what is missing"
    )
    parser.add_argument(
        "--skip-without-go",
        action="store_true",
        help="off CI, exit 0 quietly when Go is missing (the test suite then says so in one line)",
    )
    args = parser.parse_args(argv)
    environ = os.environ
    root = cache_root(environ)
    go = shutil.which("go")
    missing = missing_prerequisite(root, go)
    if missing is not None:
        if args.skip_without_go and not is_ci(environ):
            return 0
        print(f"e2e: {missing}", file=sys.stderr)
        return 1
    if args.check:
        for recipe in RECIPES:
            state = "cached" if is_cached(recipe, root) else "to build"
            print(f"{state}: {recipe.name} {recipe.version} in {recipe.directory(root)}")
        return 0
    try:
        ensure(root, go=go, environ=environ, on_outcome=lambda o: print(o.describe(), flush=True))
        # The node tests' images and helm (node.py imports this module, hence here).
        from .node import NodeError, prepare

        for line in prepare(root, ci=is_ci(environ)):
            print(line, flush=True)
    except (BuildError, NodeError) as error:
        print(f"e2e: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
