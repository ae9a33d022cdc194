"""Deterministic OCI image layout writer: layers, config, manifest and the OCI archive.

Standard library only, so that the image recipe needs nothing the build installs. Same input
tree, same SOURCE_DATE_EPOCH, same zlib: byte-identical blobs. What makes that so:
  - entries are written sorted by path, parents before children;
  - every mtime is the epoch, owner 0:0 unless a path is listed in `owners`, no user/group
    names, GNU tar format (integer mtimes, no PAX headers carrying sub-second times);
  - gzip headers carry mtime 0 and no file name;
  - JSON is written with sorted keys and no whitespace.
The image spec: https://github.com/opencontainers/image-spec (layout, manifest, config).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
#: zlib's best ratio: the layers are written once per version and pulled many times.
GZIP_LEVEL = 9
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Blob:
    """A content-addressed blob: its digest, size and bytes on disk."""

    digest: str
    size: int
    path: Path


@dataclass(frozen=True, slots=True)
class Layer:
    """A gzip layer blob and the digest of its uncompressed tar (the config's diff_id)."""

    blob: Blob
    diff_id: str
    uncompressed_size: int
    created_by: str


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class _HashingWriter(io.RawIOBase):
    """Passes bytes on to a file while hashing and counting them."""

    def __init__(self, target: io.BufferedWriter) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.sha.update(view)
        self.size += len(view)
        self.target.write(view)
        return len(view)


def tree_entries(root: Path, paths: Iterable[str]) -> list[str]:
    """The sorted relative paths to archive: the given ones and every parent directory."""
    wanted: set[str] = set()
    for rel in paths:
        rel = rel.strip("/")
        if not rel:
            continue
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):
            wanted.add("/".join(parts[:depth]))
    missing = [p for p in wanted if not os.path.lexists(root / p)]
    if missing:
        raise FileNotFoundError(f"not in {root}: {', '.join(sorted(missing)[:5])}")
    return sorted(wanted)


def _tar_info(
    root: Path, rel: str, epoch: int, owners: Mapping[str, tuple[int, int]]
) -> tarfile.TarInfo:
    st = os.lstat(root / rel)
    info = tarfile.TarInfo(rel)
    info.mtime = epoch
    info.uid, info.gid = owners.get(rel, (0, 0))
    info.uname = info.gname = ""
    info.mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(root / rel)
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    else:
        raise ValueError(f"{rel}: only directories, regular files and symlinks go in a layer")
    return info


def write_layer(
    root: Path,
    paths: Iterable[str],
    blobs_dir: Path,
    *,
    epoch: int,
    created_by: str,
    owners: Mapping[str, tuple[int, int]] | None = None,
) -> Layer:
    """Archive `paths` (relative to `root`, parents added) as a gzip layer blob in `blobs_dir`."""
    owners = owners or {}
    blobs_dir.mkdir(parents=True, exist_ok=True)
    partial = blobs_dir / ".layer.partial"
    diff_sha = hashlib.sha256()
    uncompressed = 0
    with open(partial, "wb") as raw:
        hashing = _HashingWriter(raw)
        with gzip.GzipFile(
            fileobj=hashing, mode="wb", compresslevel=GZIP_LEVEL, mtime=0, filename=""
        ) as gz:

            class _DiffWriter(io.RawIOBase):
                def writable(self) -> bool:
                    return True

                def write(self, data: bytes) -> int:  # type: ignore[override]
                    nonlocal uncompressed
                    diff_sha.update(data)
                    uncompressed += len(data)
                    gz.write(data)
                    return len(data)

            stream = _DiffWriter()
            with tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar:
                for rel in tree_entries(root, paths):
                    info = _tar_info(root, rel, epoch, owners)
                    if info.type == tarfile.REGTYPE:
                        with open(root / rel, "rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
    digest = "sha256:" + hashing.sha.hexdigest()
    final = blobs_dir / hashing.sha.hexdigest()
    os.replace(partial, final)
    return Layer(
        blob=Blob(digest, hashing.size, final),
        diff_id="sha256:" + diff_sha.hexdigest(),
        uncompressed_size=uncompressed,
        created_by=created_by,
    )


def write_json_blob(value: object, blobs_dir: Path) -> Blob:
    data = canonical_json(value)
    digest = hashlib.sha256(data).hexdigest()
    path = blobs_dir / digest
    path.write_bytes(data)
    return Blob("sha256:" + digest, len(data), path)


def rfc3339(epoch: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_image(
    layers: list[Layer],
    blobs_dir: Path,
    *,
    epoch: int,
    config: Mapping[str, object],
    annotations: Mapping[str, str],
    ref_names: Mapping[str, str],
) -> tuple[Blob, Blob, dict[str, object]]:
    """Write the config and manifest blobs; return them and the index.json document."""
    created = rfc3339(epoch)
    image_config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": dict(config),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": layer.created_by} for layer in layers],
    }
    config_blob = write_json_blob(image_config, blobs_dir)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {
            "mediaType": MEDIA_CONFIG,
            "digest": config_blob.digest,
            "size": config_blob.size,
        },
        "layers": [
            {"mediaType": MEDIA_LAYER, "digest": layer.blob.digest, "size": layer.blob.size}
            for layer in layers
        ],
        "annotations": dict(annotations),
    }
    manifest_blob = write_json_blob(manifest, blobs_dir)
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": manifest_blob.digest,
                "size": manifest_blob.size,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": dict(ref_names),
            }
        ],
    }
    return config_blob, manifest_blob, index


def write_archive(
    out: Path, index: Mapping[str, object], blobs: Iterable[Blob], *, epoch: int
) -> None:
    """The OCI image layout (oci-layout, index.json, blobs/sha256/*) as one uncompressed tar."""
    partial = out.with_name(out.name + ".partial")
    members: dict[str, bytes | Path] = {
        "oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
        "index.json": canonical_json(index),
    }
    for blob in blobs:
        members["blobs/sha256/" + blob.digest.removeprefix("sha256:")] = blob.path
    with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(info)
        for name in sorted(members):
            content = members[name]
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = 0o644, epoch
            if isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.size = content.stat().st_size
                with open(content, "rb") as handle:
                    tar.addfile(info, handle)
    os.replace(partial, out)
