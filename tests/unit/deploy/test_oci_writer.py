"""packaging/image/oci.py: the same tree gives the same layer bytes whatever the files' times,
owners and the order the file system lists them in; the archive is an OCI image layout."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
from deploy_helpers import REPO


def load_oci() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kubeiam_image_oci", REPO / "packaging/image/oci.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up by name while the class is made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


oci = load_oci()


def make_tree(root: Path, names: list[str], mtime: int) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}\n")
        os.utime(path, (mtime, mtime))
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    link = root / "usr/bin/python3"
    if not link.is_symlink():
        link.symlink_to("python3.11")


def test_same_tree_same_layer(tmp_path: Path) -> None:
    names = ["usr/bin/python3.11", "usr/lib/a.py", "etc/passwd", "usr/lib/b/c.py"]
    first, second = tmp_path / "one", tmp_path / "two"
    make_tree(first, names, mtime=1_000)
    make_tree(second, list(reversed(names)), mtime=2_000_000)
    paths = [*names, "usr/bin/python3"]
    one = oci.write_layer(first, paths, tmp_path / "b1", epoch=42, created_by="x")
    two = oci.write_layer(second, reversed(paths), tmp_path / "b2", epoch=42, created_by="x")
    assert one.blob.digest == two.blob.digest
    assert one.diff_id == two.diff_id
    data = one.blob.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == one.blob.digest.removeprefix("sha256:")
    assert data[4:8] == b"\0\0\0\0"  # gzip header mtime
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        members = tar.getmembers()
    listed = [m.name for m in members]
    assert listed == sorted(listed)
    assert {"usr", "usr/bin", "usr/lib", "usr/lib/b", "etc"} <= set(listed)
    assert all(m.mtime == 42 and m.uid == 0 and m.gid == 0 and not m.uname for m in members)
    assert next(m for m in members if m.name == "usr/bin/python3").linkname == "python3.11"


def test_owners_are_applied(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", ["tmp/x"], mtime=1)
    layer = oci.write_layer(
        tmp_path / "t",
        ["tmp/x"],
        tmp_path / "b",
        epoch=1,
        created_by="x",
        owners={"tmp": (10000, 10000)},
    )
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.blob.path.read_bytes()))) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar.getmembers()}
    assert owners == {"tmp": (10000, 10000), "tmp/x": (0, 0)}


def test_missing_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    with pytest.raises(FileNotFoundError, match="nope"):
        oci.write_layer(tmp_path / "t", ["nope"], tmp_path / "b", epoch=1, created_by="x")


def test_archive_is_an_image_layout(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", ["a"], mtime=1)
    blobs = tmp_path / "blobs"
    layer = oci.write_layer(tmp_path / "t", ["a"], blobs, epoch=7, created_by="layer a")
    config, manifest, index = oci.write_image(
        [layer],
        blobs,
        epoch=7,
        config={"User": "10000:10000"},
        annotations={"org.opencontainers.image.version": "1"},
        ref_names={"org.opencontainers.image.ref.name": "1"},
    )
    out = tmp_path / "image.oci.tar"
    oci.write_archive(out, index, [layer.blob, config, manifest], epoch=7)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        layout = json.loads(tar.extractfile("oci-layout").read())  # type: ignore[union-attr]
        got_index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        got_manifest = json.loads(
            tar.extractfile("blobs/sha256/" + manifest.digest[7:]).read()  # type: ignore[union-attr]
        )
        got_config = json.loads(
            tar.extractfile("blobs/sha256/" + config.digest[7:]).read()  # type: ignore[union-attr]
        )
    assert layout == {"imageLayoutVersion": "1.0.0"}
    assert got_index["manifests"][0]["digest"] == manifest.digest
    assert got_manifest["layers"][0]["digest"] == layer.blob.digest
    assert got_manifest["config"]["digest"] == config.digest
    assert got_config["rootfs"]["diff_ids"] == [layer.diff_id]
    assert got_config["created"] == "1970-01-01T00:00:07Z"
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert names[2:] == sorted(names[2:])
    assert len(names) == 2 + 3 + 2  # two directories, three blobs, index.json, oci-layout
    assert not (tmp_path / "image.oci.tar.partial").exists()
