"""``ModelRegistry`` over a directory: one sub-directory per model, named by its id.

::

    models_dir/
        demo-lesion-unet/
            manifest.json      # ModelManifest
            model.onnx
            model.pt
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import msgspec
import structlog

from adapters.inference.activation import ACTIVATIONS
from adapters.inference.files import MANIFEST_FILE, is_safe_name
from domain.ports.inference import ModelManifest, ModelProblem

log = structlog.get_logger(__name__)

_MAX_MANIFEST_BYTES = 1 << 20


class FilesystemModelRegistry:
    """Lists the models under ``models_dir`` whose manifest is valid and whose files match it.

    The directory is read again on every call, so models dropped in (or removed) while the
    process runs are seen. A directory is refused, with a reason in :meth:`problems` (and one
    warning in the log), when its ``manifest.json`` is missing, not valid JSON, does not fit
    :class:`ModelManifest`, names an id other than the directory's, or lists a file that is
    missing or whose SHA-256 differs from the manifest's. Checksums are cached per file
    (path, size, modification time), so a listing hashes each model file once.
    """

    def __init__(self, models_dir: Path) -> None:
        self._models_dir = Path(models_dir)
        self._digests: dict[Path, tuple[int, int, str]] = {}
        self._reported: set[ModelProblem] = set()
        self._lock = threading.Lock()

    @property
    def models_dir(self) -> Path:
        return self._models_dir

    def list(self) -> list[ModelManifest]:
        """The usable models, by id."""
        manifests, _ = self._scan()
        return manifests

    def get(self, model_id: str) -> ModelManifest | None:
        """The usable model ``model_id``, or ``None`` (unknown or refused)."""
        if not is_safe_name(model_id):
            return None
        directory = self._models_dir / model_id
        if not directory.is_dir():
            return None
        manifest, problem = self._read(directory)
        if problem is not None:
            self._report(problem)
        return manifest

    def problems(self) -> list[ModelProblem]:
        """The refused model directories with the reason, by directory name."""
        _, problems = self._scan()
        return problems

    def _scan(self) -> tuple[list[ModelManifest], list[ModelProblem]]:
        manifests: list[ModelManifest] = []
        problems: list[ModelProblem] = []
        try:
            entries = sorted(self._models_dir.iterdir())
        except OSError as err:
            log.warning(
                "models directory unreadable", models_dir=str(self._models_dir), error=str(err)
            )
            return [], []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            manifest, problem = self._read(entry)
            if manifest is not None:
                manifests.append(manifest)
            elif problem is not None:
                problems.append(problem)
                self._report(problem)
        return manifests, problems

    def _read(self, directory: Path) -> tuple[ModelManifest | None, ModelProblem | None]:
        def refuse(reason: str) -> tuple[None, ModelProblem]:
            return None, ModelProblem(directory=directory.name, reason=reason)

        path = directory / MANIFEST_FILE
        try:
            with path.open("rb") as stream:
                raw = stream.read(_MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            return refuse(f"no {MANIFEST_FILE}")
        except OSError as err:
            return refuse(f"cannot read {MANIFEST_FILE}: {err.strerror or err}")
        if len(raw) > _MAX_MANIFEST_BYTES:
            return refuse(f"{MANIFEST_FILE} is larger than {_MAX_MANIFEST_BYTES} bytes")
        try:
            manifest = msgspec.json.decode(raw, type=ModelManifest)
        except msgspec.DecodeError as err:
            return refuse(f"invalid {MANIFEST_FILE}: {err}")
        reason = _inconsistency(manifest, directory.name) or self._file_mismatch(
            manifest, directory
        )
        return refuse(reason) if reason else (manifest, None)

    def _file_mismatch(self, manifest: ModelManifest, directory: Path) -> str | None:
        for name in manifest.files.values():
            expected = manifest.sha256.get(name)
            if not expected:
                return f"no sha256 for {name}"
            try:
                actual = self._digest(directory / name)
            except FileNotFoundError:
                return f"{name} is missing"
            except OSError as err:
                return f"cannot read {name}: {err.strerror or err}"
            if actual != expected.lower():
                return f"{name} does not match its sha256 (file changed or corrupted)"
        return None

    def _digest(self, path: Path) -> str:
        stat = path.stat()
        with self._lock:
            cached = self._digests.get(path)
        if cached is not None and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2]
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        with self._lock:
            self._digests[path] = (stat.st_size, stat.st_mtime_ns, digest.hexdigest())
        return digest.hexdigest()

    def _report(self, problem: ModelProblem) -> None:
        with self._lock:
            if problem in self._reported:
                return
            self._reported.add(problem)
        log.warning(
            "model refused",
            models_dir=str(self._models_dir),
            directory=problem.directory,
            reason=problem.reason,
        )


def _inconsistency(manifest: ModelManifest, directory_name: str) -> str | None:
    """What makes a well-formed manifest unusable, or ``None``."""
    if manifest.id != directory_name:
        return f"manifest id {manifest.id!r} differs from its directory name {directory_name!r}"
    if not manifest.labels:
        return "labels is empty"
    if min(manifest.input_spacing_mm) <= 0:
        return f"input_spacing_mm must be > 0, got {list(manifest.input_spacing_mm)}"
    if min(manifest.patch_size) < 1:
        return f"patch_size must be >= 1, got {list(manifest.patch_size)}"
    if manifest.output_activation not in ACTIVATIONS:
        return (
            f"unknown output_activation {manifest.output_activation!r} "
            f"(expected one of {', '.join(ACTIVATIONS)})"
        )
    if not 0.0 < manifest.threshold < 1.0:
        return f"threshold must be between 0 and 1, got {manifest.threshold}"
    if manifest.min_lesion_size_voxels < 0:
        return f"min_lesion_size_voxels must be >= 0, got {manifest.min_lesion_size_voxels}"
    if manifest.intensity.normalise == "minmax" and manifest.intensity.window_width <= 0:
        return f"intensity.window_width must be > 0, got {manifest.intensity.window_width}"
    if manifest.intensity.normalise not in ("minmax", "zscore"):
        return f"unknown intensity.normalise {manifest.intensity.normalise!r}"
    if manifest.intensity.normalise == "zscore" and not (
        manifest.intensity.mean is not None and manifest.intensity.std
    ):
        return "zscore intensity preprocessing needs mean and a non-zero std"
    if not manifest.files:
        return "files is empty"
    for name in manifest.files.values():
        if not is_safe_name(name):
            return f"file name {name!r} is not a plain file name in the model directory"
    return None
