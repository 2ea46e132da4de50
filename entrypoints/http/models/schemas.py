"""API schemas of models, separate from the domain's manifest."""

from __future__ import annotations

import msgspec

from domain.services.models import ModelInfo


class IntensityRead(msgspec.Struct, frozen=True, kw_only=True):
    window_center: float
    window_width: float
    normalise: str
    mean: float | None
    std: float | None


class ModelRead(msgspec.Struct, frozen=True, kw_only=True):
    """A usable model as its manifest describes it, with where it runs here."""

    id: str
    version: str
    task: str
    description: str
    labels: list[str]
    clinical_use: bool
    clinical_use_statement: str
    """Says in words whether the model may guide patient care (the demo model may not)."""
    device: str
    """Where this installation runs analyses: ``cpu`` or ``cuda:N``."""
    runtimes: list[str]
    """The model file formats shipped (``onnx``, ``torchscript``)."""
    input_spacing_mm: list[float]
    """(z, y, x) spacing the model was trained at."""
    patch_size: list[int]
    """(z, y, x) voxels per sliding-window patch."""
    intensity: IntensityRead
    output_activation: str
    threshold: float
    min_lesion_size_voxels: int
    metrics: dict[str, float]
    """What the model's authors measured (held-out Dice, recall...)."""
    sha256: dict[str, str]

    @classmethod
    def of(cls, info: ModelInfo) -> ModelRead:
        manifest = info.manifest
        return cls(
            id=manifest.id,
            version=manifest.version,
            task=manifest.task,
            description=manifest.description,
            labels=list(manifest.labels),
            clinical_use=manifest.clinical_use,
            clinical_use_statement=info.clinical_use_statement,
            device=info.device,
            runtimes=sorted(manifest.files),
            input_spacing_mm=list(manifest.input_spacing_mm),
            patch_size=list(manifest.patch_size),
            intensity=msgspec.convert(manifest.intensity, IntensityRead, from_attributes=True),
            output_activation=manifest.output_activation,
            threshold=manifest.threshold,
            min_lesion_size_voxels=manifest.min_lesion_size_voxels,
            metrics=dict(manifest.metrics),
            sha256=dict(manifest.sha256),
        )
