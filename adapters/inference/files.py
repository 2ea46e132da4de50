"""Where a model's files live and how they are read: only after their SHA-256 matches."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from domain.ports.inference import ModelManifest, ModelUnavailable

MANIFEST_FILE = "manifest.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def is_safe_name(name: str) -> bool:
    """A plain file or directory name: no separators, no ``..``, not hidden."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name


def model_directory(models_dir: Path, model_id: str) -> Path:
    """The directory of a model: ``models_dir / model_id`` (the registry enforces it)."""
    if not is_safe_name(model_id):
        raise ModelUnavailable(f"model id {model_id!r} is not a plain directory name")
    return models_dir / model_id


def read_verified(models_dir: Path, manifest: ModelManifest, file_format: str) -> bytes:
    """The bytes of the manifest's ``file_format`` file, checked against its SHA-256.

    The bytes returned are the bytes hashed: nothing can change the file between the check
    and the load.

    Raises:
        ModelUnavailable: no such format, a missing checksum, an unreadable file, or a file
            whose SHA-256 differs from the manifest's.
    """
    label = f"model {manifest.id} {manifest.version}"
    name = manifest.files.get(file_format)
    if name is None:
        formats = ", ".join(sorted(manifest.files)) or "none"
        raise ModelUnavailable(f"{label} has no {file_format} file (it has: {formats})")
    if not is_safe_name(name):
        raise ModelUnavailable(f"{label}: file name {name!r} is not a plain file name")
    expected = manifest.sha256.get(name)
    if not expected:
        raise ModelUnavailable(f"{label}: the manifest gives no sha256 for {name}")
    path = model_directory(models_dir, manifest.id) / name
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelUnavailable(f"{label}: cannot read {path}: {err.strerror or err}") from err
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        raise ModelUnavailable(
            f"{label}: {name} does not match its SHA-256 checksum (manifest {expected[:16]}..., "
            f"file {actual[:16]}...); refusing to load a changed or corrupted model file"
        )
    return data
