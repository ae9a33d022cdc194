"""Build the kubeiam OCI image from Debian packages and PyPI only: `make image`.

    python packaging/image/build.py [--out dist] [--no-cache]

Three layers, each reproducible (same commit, same cache inputs: same digests):
  1. debian   python3.11 and the shared libraries it loads, from Debian packages made into a root
              with mmdebstrap from this machine's own apt sources; only the files of the packages
              python needs (no shell, no dpkg/apt, no perl, no coreutils); stdlib byte-compiled.
  2. python   the runtime dependencies kubeiam needs, pinned and hashed in requirements/lock.txt,
              installed from wheels only; byte-compiled.
  3. kubeiam  the kubeiam wheel built from this tree, /usr/local/bin/kubeiam, the LICENSE.
Everything is owned by root and read-only to the server, which runs as 10000:10000 (the UID/GID
the reference's manifests run as, so state directories that existing installs created keep
working). Output: dist/kubeiam-<version>.oci.tar (an OCI image layout, as a tar) and
dist/kubeiam-<version>.packages.txt (every Debian package and Python distribution in it, pinned).

The Debian root is cached under ~/.cache/kubeiam/image/ (KUBEIAM_IMAGE_CACHE), keyed by what
goes into it: the package list, the apt sources, mmdebstrap's version and ROOT_RECIPE; pip's
own cache keeps the wheels. Needs root (mmdebstrap's root mode and chroot), like the e2e suite.
Progress lines go to stderr on a terminal; piped, only the final line is printed.
"""

# The image's files get the modes an image needs (0755 directories and programs, 1777 /tmp).
# ruff: noqa: S103
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import oci

REPO = Path(__file__).resolve().parents[2]
CACHE_ENV = "KUBEIAM_IMAGE_CACHE"
SUITE = "bookworm"
#: Debian 12's python3 is 3.11, the version kubeiam is written for (pyproject requires-python).
PYTHON = "python3.11"
#: The packages whose files (and their dependencies' files) make the image's base layer.
ROOTS = ("python3.11-minimal", "libpython3.11-stdlib", "ca-certificates", "netbase")
#: Dependencies left out on purpose: the tools that maintainer scripts need at install time, not
#: python at run time (ca-certificates' bundle is generated while building the root, then kept).
LEFT_OUT = frozenset(
    {"openssl", "debconf", "debconf-2.0", "cdebconf", "dpkg", "install-info", "perl-base", "perl"}
)
#: Bump when the way the cached root is made changes (mmdebstrap options, compile step).
ROOT_RECIPE = "2"
#: Bump when the way the cached dependency layer is made changes (pip options, compile, modes).
DEPS_RECIPE = "1"
#: Paths of the kept packages that python never reads: documentation (copyright notices stay),
#: manual pages, lintian overrides, locales, admin programs.
DROPPED = re.compile(
    r"^usr/share/(doc/(?!.*/copyright$)|man/|info/|lintian/|locale/|bug/)"
    # Admin tools of the kept packages (update-ca-certificates, a shell script): nothing runs
    # them in the image, and there is no shell to run them with.
    r"|^usr/sbin/"
)
DPKG_EXCLUDES = ("/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
#: Files of left-out packages python needs: the CA bundle ca-certificates' postinst generated,
#: and openssl's links through which OpenSSL's default paths (Python's ssl.create_default_context)
#: reach it.
BORROWED = (
    "etc/ssl/certs/ca-certificates.crt",
    "usr/lib/ssl/cert.pem",
    "usr/lib/ssl/certs",
    "etc/ssl/openssl.cnf",
)
UID = GID = 10000
SITE = f"usr/local/lib/{PYTHON}/dist-packages"
ENTRYPOINT = "usr/local/bin/kubeiam"
SOURCE_URL = "https://github.com/kubeiam/kubeiam"
#: Packages in requirements/lock.txt that only build kubeiam (requirements/build.in).
BUILD_ONLY = frozenset({"hatchling", "editables", "pip", "pathspec", "pluggy", "trove-classifiers"})


class Progress:
    """Numbered step lines on a terminal (stderr); silent when piped or under CI."""

    def __init__(self, total: int) -> None:
        ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
        self.enabled = sys.stderr.isatty() and not ci
        self.total = total
        self.step = 0
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        self.step += 1
        if self.enabled:
            elapsed = time.monotonic() - self.started
            print(f"image {self.step}/{self.total} [{elapsed:4.0f} s]: {message}", file=sys.stderr)


def fail(message: str, fix: str | None = None) -> NoReturn:
    print(f"build-image: error: {message}", file=sys.stderr)
    if fix:
        print(f"fix: {fix}", file=sys.stderr)
    raise SystemExit(2)


def run(args: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        text=True,
        capture_output=True,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        fail(f"{Path(str(args[0])).name} exited {result.returncode}:\n  " + "\n  ".join(tail))
    return result  # type: ignore[no-any-return]


def source_date_epoch() -> int:
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    return int(run(["git", "-C", REPO, "log", "-1", "--format=%ct"]).stdout.strip())


def lock_epoch() -> int:
    """The deps layer's timestamp: the last commit that changed the lock, so the layer (and its
    digest) stays the same across commits that leave the dependencies alone."""
    out = run(["git", "-C", REPO, "log", "-1", "--format=%ct", "--", "requirements/lock.txt"])
    return int(out.stdout.strip() or 0)


def revision() -> str:
    return run(["git", "-C", REPO, "rev-parse", "HEAD"]).stdout.strip()


def project_metadata() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {"version": project["version"], "license": project["license"]}


def apt_sources() -> list[Path]:
    """The machine's own apt sources (deb822 and one-line files), as mmdebstrap mirrors."""
    found = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    found += sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file() and legacy.read_text().strip():
        found.insert(0, legacy)
    if not found:
        fail("this machine has no apt sources", "configure apt (apt-get update must work)")
    return found


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache/kubeiam/image")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- layer 1: the Debian root --------------------------------------------------------------


def root_key(sources: list[Path]) -> str:
    mmdebstrap = run(["mmdebstrap", "--version"]).stdout.strip()
    inputs = {
        "recipe": ROOT_RECIPE,
        "suite": SUITE,
        "roots": ROOTS,
        "excludes": DPKG_EXCLUDES,
        "mmdebstrap": mmdebstrap,
        "sources": [p.read_text() for p in sources],
    }
    return hashlib.sha256(oci.canonical_json(inputs)).hexdigest()[:16]


def make_root(target: Path, sources: list[Path], epoch: int) -> None:
    """mmdebstrap the essential set plus ROOTS into `target`, then byte-compile the stdlib."""
    if shutil.which("mmdebstrap") is None:
        fail("mmdebstrap is not installed", "apt-get install mmdebstrap")
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    run(
        [
            "mmdebstrap",
            "--quiet",
            "--mode=root",
            "--variant=essential",
            "--include=" + ",".join(ROOTS),
            *(f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES),
            SUITE,
            target,
            *sources,
        ],
        env=env,
    )
    compile_in(target, f"/usr/lib/{PYTHON}")


def compile_in(root: Path, directory: str, *, strip: str | None = None) -> None:
    """Byte-compile `directory` with the image's own python (chroot): a read-only root fs
    cannot write __pycache__, and without it every start would compile the stdlib, boto and
    aiohttp in memory. unchecked-hash pycs embed the source's hash, not its mtime."""
    args: list[str | Path] = ["chroot", root, f"/usr/bin/{PYTHON}", "-m", "compileall", "-q"]
    args += ["-j", "0"]
    args += ["--invalidation-mode", "unchecked-hash", "-x", r"/(test|tests|idle_test)/"]
    if strip:
        args += ["-s", strip, "-p", "/"]
    run([*args, directory])


def installed_packages(root: Path) -> dict[str, tuple[str, list[list[str]]]]:
    """Package -> (version, dependency groups of alternatives) from the root's dpkg status."""
    text = (root / "var/lib/dpkg/status").read_text()
    packages: dict[str, tuple[str, list[list[str]]]] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" not in fields or "installed" not in fields.get("Status", ""):
            continue
        groups: list[list[str]] = []
        for field in ("Pre-Depends", "Depends"):
            for group in filter(None, (g.strip() for g in fields.get(field, "").split(","))):
                groups.append([re.split(r"[\s(:]", alt.strip())[0] for alt in group.split("|")])
        packages[fields["Package"]] = (fields["Version"], groups)
    return packages


def package_closure(packages: dict[str, tuple[str, list[list[str]]]]) -> list[str]:
    """ROOTS and what they depend on, less LEFT_OUT (the first installed alternative wins)."""
    kept: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        if name not in packages:
            fail(f"{name} is not in the Debian root", "bump ROOT_RECIPE or check the apt sources")
        kept.add(name)
        for group in packages[name][1]:
            if any(alt in LEFT_OUT for alt in group):
                continue
            choice = next((alt for alt in group if alt in packages), None)
            if choice is None:
                fail(f"{name} needs one of {' | '.join(group)}, none installed")
            todo.append(choice)
    return sorted(kept)


def canonical(root: Path, rel: str) -> str | None:
    """`rel` with its parent directories resolved inside `root` (dpkg lists /lib/...; with merged
    /usr the file is at usr/lib/...); None when it leaves the root or does not exist."""
    parent = os.path.realpath(root / os.path.dirname(rel))
    if parent != str(root) and not parent.startswith(str(root) + os.sep):
        return None
    path = os.path.join(os.path.relpath(parent, root), os.path.basename(rel))
    path = os.path.normpath(path)
    return path if os.path.lexists(root / path) else None


def base_files(root: Path, kept: list[str]) -> list[str]:
    """The files of the kept packages, the merged-/usr links, the CA bundle and the pycs."""
    root = Path(os.path.realpath(root))
    info = root / "var/lib/dpkg/info"
    paths: set[str] = set()
    for name in kept:
        listing = info / f"{name}.list"
        if not listing.exists():
            listing = info / f"{name}:amd64.list"
        for line in listing.read_text().splitlines():
            rel = line.strip().lstrip("/")
            if not rel or rel == ".":
                continue
            path = canonical(root, rel)
            if path is not None and not DROPPED.match(path):
                paths.add(path)
    # merged /usr: /lib64/ld-linux-x86-64.so.2 (the ELF interpreter) is reached through them.
    paths.update(p.name for p in root.iterdir() if p.is_symlink())
    paths.update(BORROWED)
    for directory, _, files in os.walk(root / f"usr/lib/{PYTHON}"):
        rel_dir = os.path.relpath(directory, root)
        if os.path.basename(rel_dir) == "__pycache__":
            paths.update(f"{rel_dir}/{f}" for f in files)
    # Directories come in as the parents of what they hold: one a dropped path alone needed
    # would be left empty.
    return sorted(p for p in paths if not ((root / p).is_dir() and not (root / p).is_symlink()))


def write_etc(stage: Path) -> list[str]:
    """passwd/group naming the server's user, a writable /tmp, so names resolve and tools work."""
    (stage / "etc").mkdir(parents=True, exist_ok=True)
    (stage / "etc/passwd").write_text(
        f"root:x:0:0:root:/root:/nonexistent\nkubeiam:x:{UID}:{GID}:kubeiam:/nonexistent:/nonexistent\n"
    )
    (stage / "etc/group").write_text(f"root:x:0:\nkubeiam:x:{GID}:\n")
    (stage / "tmp").mkdir(exist_ok=True)
    os.chmod(stage / "tmp", 0o1777)
    for name in ("etc/passwd", "etc/group"):
        os.chmod(stage / name, 0o644)
    return ["etc/passwd", "etc/group", "tmp"]


def debian_layer(
    cache: Path, progress: Progress, epoch: int, use_cache: bool
) -> tuple[Path, oci.Layer, list[str]]:
    """The cached root (for chroot) and its layer; built when its key is new."""
    sources = apt_sources()
    key = root_key(sources)
    entry = cache / f"debian-{SUITE}-{key}"
    meta_path = entry / "layer.json"
    with locked(cache / ".lock"):
        if use_cache and meta_path.exists():
            progress(f"Debian root: reused {entry}")
        else:
            progress(
                f"Debian root: mmdebstrap {SUITE} from {len(sources)} apt source file(s) "
                "(once; ~3 min)"
            )
            shutil.rmtree(entry, ignore_errors=True)
            work = cache / f".build-{key}-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            # The root's own epoch is fixed by its key, not by the commit: a new commit reuses it.
            make_root(work / "root", sources, epoch=0)
            packages = installed_packages(work / "root")
            kept = package_closure(packages)
            extra = work / "extra"
            extra_files = write_etc(extra)
            progress(f"Debian root: layer of {len(kept)} packages (python3.11 and its libraries)")
            blobs = work / "blobs"
            files = base_files(work / "root", kept)
            # One tree for the layer: the root's files plus the generated /etc and /tmp.
            combined = work / "layer-tree"
            for rel in files:
                dst = combined / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                src = work / "root" / rel
                if src.is_symlink():
                    os.symlink(os.readlink(src), dst)
                else:
                    os.link(src, dst)
            for rel in extra_files:
                dst = combined / rel
                if (extra / rel).is_dir():
                    dst.mkdir(parents=True, exist_ok=True)
                    os.chmod(dst, 0o1777)
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(extra / rel, dst)
            _normalise_dirs(combined)
            layer = oci.write_layer(
                combined,
                files + extra_files,
                blobs,
                epoch=0,
                created_by=f"mmdebstrap {SUITE}: {', '.join(ROOTS)} and dependencies",
            )
            shutil.rmtree(combined)
            lines = [f"deb {name} {packages[name][0]}" for name in kept]
            meta = {
                "digest": layer.blob.digest,
                "size": layer.blob.size,
                "diff_id": layer.diff_id,
                "uncompressed_size": layer.uncompressed_size,
                "created_by": layer.created_by,
                "packages": lines,
            }
            (work / "layer.json").write_text(json.dumps(meta, indent=1))
            os.replace(work, entry)
            # A root made for other inputs (~300 MB) is not reused once its inputs changed.
            for stale in cache.glob(f"debian-{SUITE}-*"):
                if stale != entry:
                    shutil.rmtree(stale, ignore_errors=True)
        meta = json.loads(meta_path.read_text())
    blob_path = entry / "blobs" / meta["digest"].removeprefix("sha256:")
    layer = oci.Layer(
        blob=oci.Blob(meta["digest"], meta["size"], blob_path),
        diff_id=meta["diff_id"],
        uncompressed_size=meta["uncompressed_size"],
        created_by=meta["created_by"],
    )
    return entry / "root", layer, meta["packages"]


def _normalise_dirs(tree: Path) -> None:
    """Directories in a layer are 0755 (the copy made them with the umask)."""
    for directory, dirs, _ in os.walk(tree):
        for name in dirs:
            path = Path(directory) / name
            if not path.is_symlink() and path.name != "tmp":
                os.chmod(path, 0o755)


# --- layers 2 and 3: Python ----------------------------------------------------------------


def runtime_names() -> set[str]:
    """kubeiam's runtime dependency closure, read from the dev venv's installed metadata."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = ["kubeiam"]
    while todo:
        name = todo.pop()
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def runtime_lock(lock: Path, names: set[str], out: Path) -> list[str]:
    """The hashed entries of `lock` for `names`: what pip installs into the image."""
    from packaging.utils import canonicalize_name

    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    kept: list[str] = []
    pins: list[str] = []
    for block in blocks:
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", block)
        if match and canonicalize_name(match.group(1)) in names:
            if canonicalize_name(match.group(1)) in BUILD_ONLY:
                continue
            kept.append(block.rstrip("\n"))
            pins.append(f"pypi {canonicalize_name(match.group(1))} {match.group(2)}")
    missing = names - {p.split()[1] for p in pins}
    if missing:
        fail(f"{lock} lacks {', '.join(sorted(missing))}", "run make lock")
    out.write_text("\n".join(kept) + "\n")
    return sorted(pins)


def dependency_layer(root: Path, stage: Path, progress: Progress) -> tuple[oci.Layer, list[str]]:
    """Layer 2, cached beside the root it was byte-compiled with, keyed by the pinned entries:
    a build that leaves requirements/lock.txt alone reuses it."""
    names = runtime_names()
    requirements = stage / "requirements.txt"
    pins = runtime_lock(REPO / "requirements/lock.txt", names, requirements)
    epoch = lock_epoch()
    inputs = {
        "recipe": DEPS_RECIPE,
        "root": root.parent.name,
        "requirements": requirements.read_text(),
        "epoch": epoch,
    }
    key = hashlib.sha256(oci.canonical_json(inputs)).hexdigest()[:16]
    cache = root.parent.parent
    entry = cache / f"deps-{key}"
    with locked(cache / ".lock"):
        if not (entry / "layer.json").exists():
            progress(
                f"Python: {len(pins)} pinned wheels from requirements/lock.txt (hashes checked)"
            )
            work = cache / f".deps-{key}-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            deps = stage / "deps"
            quiet = [] if progress.enabled else ["-q"]
            pip = [sys.executable, "-m", "pip", "install", *quiet, "--disable-pip-version-check"]
            pip += ["--no-deps", "--require-hashes", "--only-binary", ":all:", "--no-compile"]
            run([*pip, "--target", deps / SITE, "-r", requirements])
            shutil.rmtree(deps / SITE / "bin", ignore_errors=True)
            compile_in(
                root,
                "/" + str((deps / SITE).relative_to(root)),
                strip="/" + str(deps.relative_to(root)),
            )
            _normalise_modes(deps)
            layer = oci.write_layer(
                deps,
                _walk(deps),
                work / "blobs",
                epoch=epoch,
                created_by="pip install --require-hashes -r requirements/lock.txt "
                "(kubeiam's runtime closure)",
            )
            (work / "layer.json").write_text(json.dumps(layer_meta(layer), indent=1))
            os.replace(work, entry)
            for stale in cache.glob("deps-*"):
                if stale != entry:
                    shutil.rmtree(stale, ignore_errors=True)
        else:
            progress(f"Python: {len(pins)} pinned wheels: reused {entry}")
        return read_layer(entry), pins


def layer_meta(layer: oci.Layer) -> dict[str, object]:
    return {
        "digest": layer.blob.digest,
        "size": layer.blob.size,
        "diff_id": layer.diff_id,
        "uncompressed_size": layer.uncompressed_size,
        "created_by": layer.created_by,
    }


def read_layer(entry: Path) -> oci.Layer:
    meta = json.loads((entry / "layer.json").read_text())
    return oci.Layer(
        blob=oci.Blob(meta["digest"], meta["size"], entry / "blobs" / meta["digest"][7:]),
        diff_id=meta["diff_id"],
        uncompressed_size=meta["uncompressed_size"],
        created_by=meta["created_by"],
    )


def python_layers(
    root: Path, blobs: Path, progress: Progress, epoch: int, version: str
) -> tuple[list[oci.Layer], list[str]]:
    stage = Path(tempfile.mkdtemp(prefix="kubeiam-image-", dir=root / "tmp"))
    try:
        deps_layer, pins = dependency_layer(root, stage, progress)

        progress("kubeiam: building the wheel from this tree")
        wheel_dir = stage / "wheel"
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                wheel_dir,
                REPO,
            ],
            env=env,
        )
        wheel = next(wheel_dir.glob("kubeiam-*.whl"))
        app = stage / "app"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(app / SITE)
        script = app / ENTRYPOINT
        script.parent.mkdir(parents=True)
        script.write_text(
            f"#!/usr/bin/{PYTHON}\n"
            "import sys\n\nfrom kubeiam.cli.main import main\n\nsys.exit(main())\n"
        )
        os.chmod(script, 0o755)
        licence_dir = app / "usr/share/doc/kubeiam"
        licence_dir.mkdir(parents=True)
        shutil.copyfile(REPO / "LICENSE", licence_dir / "copyright")
        compile_in(
            root, "/" + str((app / SITE).relative_to(root)), strip="/" + str(app.relative_to(root))
        )
        _normalise_modes(app)
        app_layer = oci.write_layer(
            app, _walk(app), blobs, epoch=epoch, created_by=f"kubeiam {version} wheel"
        )
        return [deps_layer, app_layer], [*pins, f"pypi kubeiam {version}"]
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _walk(tree: Path) -> list[str]:
    found: list[str] = []
    for directory, dirs, files in os.walk(tree):
        rel = os.path.relpath(directory, tree)
        for name in dirs + files:
            found.append(os.path.normpath(os.path.join(rel, name)))
    return found


def _normalise_modes(tree: Path) -> None:
    """0755 directories and executables, 0644 other files: the umask and pip leave no trace."""
    for directory, dirs, files in os.walk(tree):
        for name in dirs:
            os.chmod(os.path.join(directory, name), 0o755)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & 0o111
                os.chmod(path, 0o755 if executable else 0o644)


# --- the image -----------------------------------------------------------------------------


def build(out_dir: Path, use_cache: bool) -> tuple[Path, Path]:
    started = time.monotonic()
    progress = Progress(total=5)
    if os.geteuid() != 0:
        fail("building the image needs root (mmdebstrap's root mode, chroot)", "run it as root")
    for tool in ("mmdebstrap", "chroot"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed", "apt-get install mmdebstrap")
    meta = project_metadata()
    version = meta["version"]
    epoch = source_date_epoch()
    cache = cache_root()
    root, base, deb_pins = debian_layer(cache, progress, epoch, use_cache)
    out_dir.mkdir(parents=True, exist_ok=True)
    blobs = out_dir / f".kubeiam-{version}.blobs"
    shutil.rmtree(blobs, ignore_errors=True)
    blobs.mkdir()
    layers, py_pins = python_layers(root, blobs, progress, epoch, version)
    progress("OCI image: config, manifest, archive")
    labels = {
        "org.opencontainers.image.title": "kubeiam",
        "org.opencontainers.image.description": "AWS IAM authentication for Kubernetes",
        "org.opencontainers.image.source": SOURCE_URL,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision(),
        "org.opencontainers.image.licenses": meta["license"],
        "org.opencontainers.image.created": oci.rfc3339(epoch),
        "org.opencontainers.image.base.name": f"debian:{SUITE} (mmdebstrap, {PYTHON})",
    }
    config = {
        "User": f"{UID}:{GID}",
        "Entrypoint": ["/" + ENTRYPOINT],
        "Env": [
            "PATH=/usr/local/bin:/usr/bin",
            "LANG=C.UTF-8",
            # The root fs is read-only in the pod; the pycs are in the image already.
            "PYTHONDONTWRITEBYTECODE=1",
        ],
        "WorkingDir": "/",
        "Labels": labels,
    }
    all_layers = [base, *layers]
    config_blob, manifest_blob, index = oci.write_image(
        all_layers,
        blobs,
        epoch=epoch,
        config=config,
        annotations=labels,
        ref_names={
            "org.opencontainers.image.ref.name": version,
            # containerd's `ctr images import` names the image after this.
            "io.containerd.image.name": f"docker.io/library/kubeiam:{version}",
        },
    )
    archive = out_dir / f"kubeiam-{version}.oci.tar"
    oci.write_archive(
        archive,
        index,
        [base.blob, *(layer.blob for layer in layers), config_blob, manifest_blob],
        epoch=epoch,
    )
    shutil.rmtree(blobs)
    packages = out_dir / f"kubeiam-{version}.packages.txt"
    sizes = [(layer.created_by, layer.blob.size, layer.uncompressed_size) for layer in all_layers]
    header = [
        f"# kubeiam {version} image ({archive.name}): every package in it, pinned.",
        f"# manifest {manifest_blob.digest}",
        *(
            f"# layer {layer.blob.digest} {layer.blob.size} bytes gzip, "
            f"{layer.uncompressed_size} tar: {layer.created_by}"
            for layer in all_layers
        ),
    ]
    packages.write_text("\n".join([*header, *deb_pins, *py_pins]) + "\n")
    total = sum(s[1] for s in sizes)
    seconds = time.monotonic() - started
    print(
        f"image: {archive} ({total / 1e6:.1f} MB compressed, "
        f"{sum(s[2] for s in sizes) / 1e6:.1f} MB uncompressed) in {seconds:.0f} s; "
        f"manifest {manifest_blob.digest}"
    )
    return archive, packages


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="build-image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory [dist]")
    parser.add_argument("--no-cache", action="store_true", help="rebuild the Debian root")
    args = parser.parse_args(argv)
    build(args.out, use_cache=not args.no_cache)


if __name__ == "__main__":
    main()
